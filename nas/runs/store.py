"""The run store: one SQLite database per run folder (``runs/NAME/trials.db``).

Only the search driver writes; the dashboard and ``nas export`` open it
read-only. Each trial is a row from the moment it is proposed (``running``)
until it ends (``ok`` / ``failed``, never changed after), and the controller's
state is written in the same transaction as every change to the rows, so the
database is always a consistent checkpoint: ``--resume`` re-runs exactly the
``running`` rows and nothing that completed.

The database is created whole or not at all (built aside, then linked into place,
which also makes creation exclusive), uses WAL while the driver writes so readers
can poll, and is switched back to a plain rollback journal when the driver closes
it, so a finished run is one self-contained file that reads fine from read-only
media. It belongs on the driver's local disk: SQLite's WAL does not work over a
network file system (:func:`network_filesystem`).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from nas.core.atomic import write_atomic
from nas.core.errors import NasError
from nas.core.result import STATUSES, TrialResult

DB_NAME = "trials.db"
SCHEMA_VERSION = 2
LEDGER_NAME = "finished.count"
"""Beside the database, the number of finished trials it held after the last one finished (written after
each commit). A store found with fewer has lost rows (a ``trials.db`` copied without its ``-wal``, a damaged
log): the driver says so instead of training them again."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id      TEXT NOT NULL UNIQUE,
    arch          TEXT NOT NULL,
    controller    TEXT,
    status        TEXT NOT NULL CHECK (status IN ({statuses})),
    accuracy      REAL,
    macs          INTEGER,
    params        INTEGER,
    reward        REAL,
    latency_ms    REAL,
    step_ms       REAL,
    train_seconds REAL,
    epochs        INTEGER,
    error         TEXT,
    evaluator     TEXT,
    device        TEXT,
    node          TEXT,
    started_at    REAL NOT NULL,
    finished_at   REAL
);
CREATE INDEX IF NOT EXISTS trials_status ON trials (status);
CREATE INDEX IF NOT EXISTS trials_reward ON trials (reward);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS controller_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS epochs (
    trial_id  TEXT NOT NULL,
    epoch     INTEGER NOT NULL,
    accuracy  REAL,
    reward    REAL,
    at        REAL NOT NULL,
    PRIMARY KEY (trial_id, epoch)
);
""".replace("{statuses}", ", ".join(f"'{status}'" for status in STATUSES))

_METRICS = ("accuracy", "macs", "params", "reward", "latency_ms", "step_ms", "train_seconds", "epochs", "error",
            "evaluator", "device")
_NUMBERS = ("seq", "accuracy", "macs", "params", "reward", "latency_ms", "step_ms", "train_seconds", "epochs",
            "started_at", "finished_at")
COLUMNS = ("seq", "trial_id", "arch", "controller", "status", *_METRICS, "node", "started_at", "finished_at")

NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "lustre", "gpfs",
                                 "glusterfs", "fuse.glusterfs", "ceph", "fuse.ceph", "fuse.sshfs", "fuse.s3fs",
                                 "fuse.gcsfuse", "beegfs", "fuse.juicefs"})


class StoreError(NasError):
    """A run folder that is missing, damaged, holds no (or a foreign) database, or cannot be written."""


@dataclass(frozen=True)
class TrialRow:
    """One row of the ``trials`` table."""

    seq: int
    trial_id: str
    arch: str
    controller: str | None
    status: str
    accuracy: float | None
    macs: int | None
    params: int | None
    reward: float | None
    latency_ms: float | None
    step_ms: float | None
    train_seconds: float | None
    epochs: int | None
    error: str | None
    evaluator: str | None
    device: str | None
    node: str | None
    started_at: float
    finished_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}

    def result(self) -> TrialResult:
        return TrialResult.from_dict({**self.to_dict(), "train_seconds": self.train_seconds or 0.0,
                                      "epochs": self.epochs or 0, "evaluator": self.evaluator or "standalone"})


Method = TypeVar("Method", bound=Callable[..., Any])


def _guarded(method: Method) -> Method:
    """SQLite's own errors (a damaged file, a full disk) become one :class:`StoreError` line naming the file."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, OSError) as error:  # OSError: the ledger beside the database
            raise self._error(error) from None

    return wrapper  # type: ignore[return-value]


class Store:
    """A run's database. ``Store.create`` / ``Store.open`` for the driver; ``Store.open_readonly`` for readers."""

    def __init__(self, connection: sqlite3.Connection, path: Path, *, writer: bool) -> None:
        self._db = connection
        self.path = path
        self._writer = writer
        self._state_written: dict[str, tuple[Any, str]] = {}  # key -> (object, JSON) last written

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, run_dir: str | Path, meta: dict[str, Any] | None = None) -> Store:
        """A new run folder and database, whole (schema and ``meta`` in one step) or not at all; refuses
        to overwrite an existing run, also when two processes create the same run at once."""
        run_dir = Path(run_dir)
        path = run_dir / DB_NAME
        if path.exists():
            raise StoreError(f"{run_dir} already holds a run; use --resume {run_dir} or another --name")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            partial = run_dir / f".{DB_NAME}.{os.getpid()}.partial"
            partial.unlink(missing_ok=True)
            try:
                connection = sqlite3.connect(partial, isolation_level=None)
                try:
                    connection.executescript(_SCHEMA)
                    connection.execute("BEGIN")
                    connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                        (k, json.dumps(v)) for k, v in
                        {"schema_version": SCHEMA_VERSION, "created_at": time.time(), **(meta or {})}.items()])
                    connection.execute("COMMIT")
                finally:
                    connection.close()
                os.link(partial, path)  # atomic, and fails if the run exists: exactly one creator wins
            except FileExistsError:
                raise StoreError(f"{run_dir} already holds a run; use --resume {run_dir} or another --name") from None
            finally:
                for leftover in (partial, partial.with_name(partial.name + "-journal")):
                    leftover.unlink(missing_ok=True)  # a failed creation (a full disk) leaves nothing behind
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot create the run database in {run_dir}: {error}") from None
        except OSError as error:
            raise StoreError(f"cannot create the run folder {run_dir}: {error.strerror or error}") from None
        return cls._connect(path)

    @classmethod
    def open(cls, run_dir: str | Path) -> Store:
        """An existing run, for the driver to continue (``--resume``); an older database is upgraded."""
        return cls._connect(cls._existing(run_dir))

    @classmethod
    def open_readonly(cls, run_dir: str | Path) -> Store:
        """An existing run for readers; SQLite itself refuses any write through this connection. On
        read-only media (no place for WAL's index) the file is read as immutable."""
        path = cls._existing(run_dir)
        try:
            return cls._reader(path, immutable=False)
        except StoreError:
            if os.access(path.parent, os.W_OK):
                raise  # not the media: the file itself is bad
            return cls._reader(path, immutable=True)

    @classmethod
    def _reader(cls, path: Path, *, immutable: bool) -> Store:
        options = "mode=ro&immutable=1" if immutable else "mode=ro"
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?{options}", uri=True, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        store = cls(connection, path, writer=False)
        try:
            store._check()
        except StoreError:
            connection.close()
            raise
        return store

    @staticmethod
    def _existing(run_dir: str | Path) -> Path:
        run_dir = Path(run_dir)
        path = run_dir / DB_NAME
        if not run_dir.is_dir():
            raise StoreError(f"run folder {run_dir} does not exist")
        if not path.is_file():
            raise StoreError(f"{run_dir} holds no {DB_NAME}; is it a run folder made by `nas search`?")
        return path

    @classmethod
    def _connect(cls, path: Path) -> Store:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        connection.row_factory = sqlite3.Row
        store = cls(connection, path, writer=True)
        try:
            store._check()
            store._check_ledger()
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")  # a completed trial survives a SIGKILL / power cut
            store._upgrade()
        except sqlite3.DatabaseError as error:
            connection.close()
            raise store._error(error) from None
        except StoreError:
            connection.close()
            raise
        return store

    def _check(self) -> None:
        """Fail now, with one line, if the file is not a run database (damaged, truncated, foreign)."""
        try:
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"trials", "meta"} <= tables:
                raise StoreError(f"{self.path} is not a nas run database (no trials table)")
            self._db.execute("SELECT COUNT(*) FROM trials").fetchone()
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as error:
            raise self._error(error) from None
        try:
            version = int(json.loads(row[0])) if row is not None else 1
        except (ValueError, TypeError):
            version = -1
        if not 1 <= version <= SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {row[0][:20] if row else None}; this nas reads "
                             f"versions 1 to {SCHEMA_VERSION} (a run written by a newer nas, or not by nas)")

    def _check_ledger(self) -> None:
        """Refuse to continue a store that holds fewer finished trials than it had (:data:`LEDGER_NAME`)."""
        try:
            expected = int((self.path.parent / LEDGER_NAME).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return  # none yet (a new run, or one written before the ledger): nothing to compare
        held = self._finished()
        if held < expected:
            raise StoreError(f"{self.path} holds {held} finished trials but the run had finished {expected}: its "
                             f"write-ahead log ({DB_NAME}-wal) is missing or damaged; put it back beside {DB_NAME}, "
                             f"or delete {self.path.parent / LEDGER_NAME} to continue and train the lost trials again")

    def _finished(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]

    def _upgrade(self) -> None:
        """Version 1 kept the controller state in ``meta`` (it has its own table now, written by parts), had
        no ``step_ms`` column, no learning curves and no ``stopped`` status."""
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        for column, kind in (("step_ms", "REAL"), ("evaluator", "TEXT"), ("device", "TEXT")):
            if column not in columns:
                self._db.execute(f"ALTER TABLE trials ADD COLUMN {column} {kind}")
        table = self._db.execute("SELECT sql FROM sqlite_master WHERE name = 'trials'").fetchone()[0]
        if "'stopped'" not in table:  # a CHECK constraint cannot be altered: copy into a new table
            with self._transaction():
                self._db.execute("ALTER TABLE trials RENAME TO trials_before_stopped")
                self._db.execute(_SCHEMA.split(";")[0])
                self._db.execute(f"INSERT INTO trials ({', '.join(COLUMNS)}) "
                                 f"SELECT {', '.join(COLUMNS)} FROM trials_before_stopped")
                self._db.execute("DROP TABLE trials_before_stopped")
            self._db.executescript(_SCHEMA)  # its indexes
        old = self._db.execute("SELECT value FROM meta WHERE key = 'controller_state'").fetchone()
        with self._transaction():
            if old is not None:
                self._db.execute("INSERT OR REPLACE INTO controller_state (key, value) VALUES ('', ?)", (old[0],))
                self._db.execute("DELETE FROM meta WHERE key = 'controller_state'")
            self._set_meta({"schema_version": SCHEMA_VERSION})

    def _error(self, error: sqlite3.DatabaseError | OSError) -> StoreError:
        text = str(error)
        if "full" in text or getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return StoreError(f"the disk holding {self.path} is full; the run is intact up to its last finished "
                              f"trial: free some space and continue with --resume {self.path.parent}")
        if isinstance(error, OSError):
            return StoreError(f"cannot write {getattr(error, 'filename', None) or self.path}: "
                              f"{error.strerror or text}")
        if "readonly" in text or "read-only" in text:
            return StoreError(f"cannot write {self.path}: {text}")
        return StoreError(f"{self.path} is damaged or not a nas run database ({text})")

    def close(self) -> None:
        """Close; the driver's close also ends WAL mode, so the file stands alone and reads on read-only media."""
        if self._writer:
            try:
                self._db.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.DatabaseError:
                pass  # another connection still has it open in WAL mode: it stays readable either way
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------ writing (driver only)

    @_guarded
    def start_trial(self, trial_id: str, arch: str, *, controller: str | None = None,
                    controller_state: dict[str, Any] | None = None) -> None:
        """Record a proposed trial as running, with the controller state right after the ask."""
        with self._transaction():
            # Starting a row that is still 'running' (re-run after a crash) only refreshes its start time.
            cursor = self._db.execute(
                "INSERT INTO trials (trial_id, arch, controller, status, started_at) VALUES (?, ?, ?, 'running', ?) "
                "ON CONFLICT (trial_id) DO UPDATE SET started_at = excluded.started_at "
                "WHERE trials.status = 'running' AND trials.arch = excluded.arch",
                (trial_id, arch, controller, time.time()))
            if cursor.rowcount != 1:
                raise StoreError(f"trial {trial_id!r} already finished (or names another architecture) in {self.path}")
            if controller_state is not None:
                self._write_state(controller_state)

    @_guarded
    def finish_trial(self, trial_id: str, result: TrialResult, *, node: str | None = None,
                     controller_state: dict[str, Any] | None = None) -> None:
        """Record a trial's result and the controller state right after the tell, atomically. A finished
        row is never overwritten."""
        values = result.to_dict()
        with self._transaction():
            cursor = self._db.execute(
                f"UPDATE trials SET status = ?, {', '.join(f'{m} = ?' for m in _METRICS)}, node = ?, "
                "finished_at = ? WHERE trial_id = ? AND status = 'running'",
                (result.status, *(values[m] for m in _METRICS), node or socket.gethostname(), time.time(),
                 trial_id))
            if cursor.rowcount != 1:
                known = self._db.execute("SELECT status FROM trials WHERE trial_id = ?", (trial_id,)).fetchone()
                what = "was never started" if known is None else f"already finished ({known[0]})"
                raise StoreError(f"trial {trial_id!r} {what} in {self.path}")
            if controller_state is not None:
                self._write_state(controller_state)
        # The database file itself holds the row from here on (a copy of trials.db alone has it), and the
        # ledger remembers how many there are.
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        write_atomic(self.path.parent / LEDGER_NAME, f"{self._finished()}\n")

    @_guarded
    def record_epoch(self, trial_id: str, epoch: int, *, accuracy: float | None, reward: float | None) -> None:
        """One point of a running trial's learning curve; the row shows its latest epoch and accuracy."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO epochs (trial_id, epoch, accuracy, reward, at) VALUES (?, ?, ?, ?, ?)",
                             (trial_id, epoch, accuracy, reward, time.time()))
            self._db.execute("UPDATE trials SET epochs = ?, accuracy = ? WHERE trial_id = ? AND status = 'running'",
                             (epoch, accuracy, trial_id))

    @_guarded
    def curves(self, trial_ids: list[str] | None = None) -> dict[str, list[tuple[int, float | None]]]:
        """Learning curves, ``trial id → [(epoch, accuracy), ...]`` (of all trials, or of ``trial_ids``)."""
        present = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "epochs" not in present:
            return {}
        rows = self._db.execute("SELECT trial_id, epoch, accuracy FROM epochs ORDER BY trial_id, epoch").fetchall()
        out: dict[str, list[tuple[int, float | None]]] = {}
        wanted = set(trial_ids) if trial_ids is not None else None
        for row in rows:
            if wanted is None or row[0] in wanted:
                out.setdefault(row[0], []).append((row[1], row[2]))
        return out

    @_guarded
    def set_meta(self, values: dict[str, Any]) -> None:
        with self._transaction():
            self._set_meta(values)

    def _set_meta(self, values: dict[str, Any]) -> None:
        self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             [(k, json.dumps(v)) for k, v in values.items()])

    def _write_state(self, state: dict[str, Any]) -> None:
        """The controller state by parts (top-level keys, and one level into dicts): only the parts that
        changed since the last write are written, so a large, rarely changing part (a policy's weights)
        is not rewritten at every ask and tell."""
        parts = dict(_parts(state))
        changed = []
        for key, value in parts.items():
            last = self._state_written.get(key)
            if last is not None and isinstance(value, str) and last[0] is value:
                continue  # the very same (immutable) string: unchanged without encoding it again
            text = json.dumps(value)
            if last is None or last[1] != text:
                changed.append((key, text))
            self._state_written[key] = (value, text)
        stale = [(key,) for key in self._state_written if key not in parts]
        for (key,) in stale:
            del self._state_written[key]
        self._db.executemany("DELETE FROM controller_state WHERE key = ?", stale)
        self._db.executemany("INSERT INTO controller_state (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", changed)

    # ------------------------------------------------------------ reading

    @_guarded
    def meta(self) -> dict[str, Any]:
        out = {}
        for row in self._db.execute("SELECT key, value FROM meta"):
            try:
                out[row["key"]] = json.loads(row["value"])
            except (ValueError, TypeError):
                raise StoreError(f"{self.path} is damaged: its stored {str(row['key'])[:40]!r} is not JSON") from None
        return out

    @_guarded
    def controller_state(self) -> dict[str, Any] | None:
        """The controller state as last written (None before the first ask)."""
        rows = self._db.execute("SELECT key, value FROM controller_state ORDER BY key").fetchall()
        if not rows:
            return None
        state: dict[str, Any] = {}
        for row in rows:
            key, value = row["key"], json.loads(row["value"])
            if key == "":  # written whole (schema version 1)
                state.update(value)
                continue
            head, _, tail = key.partition(".")
            if tail:
                state.setdefault(head, {})[tail] = value
            else:
                state[head] = value
        return state

    @_guarded
    def trials(self, *, status: str | None = None, order_by: str = "seq", descending: bool = False,
               limit: int | None = None, offset: int = 0) -> list[TrialRow]:
        """Rows, optionally filtered by status; ``order_by`` must be a column name (checked, never interpolated raw)."""
        if order_by not in COLUMNS:
            raise ValueError(f"cannot order by {order_by!r}; allowed: {', '.join(COLUMNS)}")
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        direction = "DESC" if descending else "ASC"
        present = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        selected = ", ".join(c if c in present else f"NULL AS {c}" for c in COLUMNS)  # an older file, read as is
        sql = (f"SELECT {selected} FROM trials {where} "
               f"ORDER BY {order_by} IS NULL, {order_by} {direction}, seq ASC LIMIT ? OFFSET ?")
        rows = self._db.execute(sql, (*params, -1 if limit is None else limit, offset))
        return [self._checked(TrialRow(**dict(row))) for row in rows]

    def _checked(self, row: TrialRow) -> TrialRow:
        """A row whose numbers are numbers: a value written into the file by other hands (text in a number
        column) is one line naming it, not a TypeError somewhere downstream."""
        for name in _NUMBERS:
            value = getattr(row, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise StoreError(f"{self.path} is damaged: trial {row.trial_id!r} has {name} = {str(value)[:40]!r}, "
                                 "not a number")
        return row

    @_guarded
    def counts(self) -> dict[str, int]:
        """Trials per status, every status present (zeros included)."""
        counts = dict.fromkeys(STATUSES, 0)
        for row in self._db.execute("SELECT status, COUNT(*) AS n FROM trials GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    @_guarded
    def fingerprint(self) -> str:
        """Changes whenever a row is added or finished or a learning curve grows: readers cache on it."""
        counts = self.counts()
        present = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        epochs = self._db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] if "epochs" in present else 0
        return ".".join(str(counts[status]) for status in STATUSES) + f".{epochs}"

    def best(self) -> TrialRow | None:
        rows = self.trials(status="ok", order_by="reward", descending=True, limit=1)
        return rows[0] if rows else None


def _parts(state: dict[str, Any]) -> list[tuple[str, Any]]:
    """``{"a": 1, "b": {"c": 2}}`` → ``[("a", 1), ("b.c", 2)]`` (an empty dict stays whole)."""
    out: list[tuple[str, Any]] = []
    for key, value in state.items():
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            out += [(f"{key}.{inner}", item) for inner, item in value.items()]
        else:
            out.append((key, value))
    return out


def network_filesystem(path: str | Path, *, mounts_file: str | Path = "/proc/mounts") -> str | None:
    """The file-system type holding ``path`` when it is a network one (``nfs4``, ``cifs``, …), else None.
    Read from ``/proc/mounts`` (Linux); elsewhere None."""
    try:
        mounts = Path(mounts_file).read_text().splitlines()
    except OSError:
        return None
    target = str(Path(path).resolve())
    best, kind = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].encode().decode("unicode_escape")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind if kind in NETWORK_FILESYSTEMS else None


__all__ = ["COLUMNS", "DB_NAME", "NETWORK_FILESYSTEMS", "SCHEMA_VERSION", "STATUSES", "Store", "StoreError",
           "TrialRow", "network_filesystem"]
