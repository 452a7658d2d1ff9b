"""The run store: one SQLite database per run folder (``runs/NAME/trials.db``).

Only the search driver writes; the dashboard and ``nas export`` open it
read-only. Each trial is a row from the moment it is proposed (``running``)
until it ends (``ok`` / ``failed``), and the controller's state is written in
the same transaction as every change to the rows, so the database is always a
consistent checkpoint: ``--resume`` re-runs exactly the ``running`` rows and
nothing that completed. WAL mode lets readers poll while the driver writes.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.result import TrialResult

DB_NAME = "trials.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id      TEXT NOT NULL UNIQUE,
    arch          TEXT NOT NULL,
    controller    TEXT,
    status        TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
    accuracy      REAL,
    macs          INTEGER,
    params        INTEGER,
    reward        REAL,
    latency_ms    REAL,
    train_seconds REAL,
    epochs        INTEGER,
    error         TEXT,
    node          TEXT,
    started_at    REAL NOT NULL,
    finished_at   REAL
);
CREATE INDEX IF NOT EXISTS trials_status ON trials (status);
CREATE INDEX IF NOT EXISTS trials_reward ON trials (reward);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_METRICS = ("accuracy", "macs", "params", "reward", "latency_ms", "train_seconds", "epochs", "error")
COLUMNS = ("seq", "trial_id", "arch", "controller", "status", *_METRICS, "node", "started_at", "finished_at")


class StoreError(Exception):
    """A run folder that is missing or holds no (or a foreign) database."""


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
    train_seconds: float | None
    epochs: int | None
    error: str | None
    node: str | None
    started_at: float
    finished_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}

    def result(self) -> TrialResult:
        return TrialResult.from_dict({**self.to_dict(), "train_seconds": self.train_seconds or 0.0,
                                      "epochs": self.epochs or 0})


class Store:
    """A run's database. ``Store.create`` / ``Store.open`` for the driver; ``Store.open_readonly`` for readers."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, run_dir: str | Path, meta: dict[str, Any] | None = None) -> Store:
        """A new run folder and database; refuses to overwrite an existing run."""
        run_dir = Path(run_dir)
        path = run_dir / DB_NAME
        if path.exists():
            raise StoreError(f"{run_dir} already holds a run; use --resume {run_dir} or another --name")
        run_dir.mkdir(parents=True, exist_ok=True)
        store = cls._connect(path)
        store._db.executescript(_SCHEMA)  # executescript commits on its own; DDL is idempotent
        with store._transaction():
            store._set_meta({"schema_version": SCHEMA_VERSION, "created_at": time.time(), **(meta or {})})
        return store

    @classmethod
    def open(cls, run_dir: str | Path) -> Store:
        """An existing run, for the driver to continue (``--resume``)."""
        path = cls._existing(run_dir)
        return cls._connect(path)

    @classmethod
    def open_readonly(cls, run_dir: str | Path) -> Store:
        """An existing run for readers; SQLite itself refuses any write through this connection."""
        path = cls._existing(run_dir)
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        return cls(connection, path)

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
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # a completed trial survives a SIGKILL / power cut
        return cls(connection, path)

    def close(self) -> None:
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
                self._set_meta({"controller_state": controller_state})

    def finish_trial(self, trial_id: str, result: TrialResult, *, node: str | None = None,
                     controller_state: dict[str, Any] | None = None) -> None:
        """Record a trial's result and the controller state right after the tell, atomically."""
        values = result.to_dict()
        with self._transaction():
            cursor = self._db.execute(
                f"UPDATE trials SET status = ?, {', '.join(f'{m} = ?' for m in _METRICS)}, node = ?, "
                "finished_at = ? WHERE trial_id = ?",
                (result.status, *(values[m] for m in _METRICS), node or socket.gethostname(), time.time(),
                 trial_id))
            if cursor.rowcount != 1:
                raise StoreError(f"trial {trial_id!r} was never started in {self.path}")
            if controller_state is not None:
                self._set_meta({"controller_state": controller_state})

    def set_meta(self, values: dict[str, Any]) -> None:
        with self._transaction():
            self._set_meta(values)

    def _set_meta(self, values: dict[str, Any]) -> None:
        self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             [(k, json.dumps(v)) for k, v in values.items()])

    # ------------------------------------------------------------ reading

    def meta(self) -> dict[str, Any]:
        return {row["key"]: json.loads(row["value"]) for row in self._db.execute("SELECT key, value FROM meta")}

    def trials(self, *, status: str | None = None, order_by: str = "seq", descending: bool = False,
               limit: int | None = None, offset: int = 0) -> list[TrialRow]:
        """Rows, optionally filtered by status; ``order_by`` must be a column name (checked, never interpolated raw)."""
        if order_by not in COLUMNS:
            raise ValueError(f"cannot order by {order_by!r}; allowed: {', '.join(COLUMNS)}")
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        direction = "DESC" if descending else "ASC"
        sql = (f"SELECT {', '.join(COLUMNS)} FROM trials {where} "
               f"ORDER BY {order_by} IS NULL, {order_by} {direction}, seq ASC LIMIT ? OFFSET ?")
        rows = self._db.execute(sql, (*params, -1 if limit is None else limit, offset))
        return [TrialRow(**dict(row)) for row in rows]

    def counts(self) -> dict[str, int]:
        """Trials per status, every status present (zeros included)."""
        counts = {"running": 0, "ok": 0, "failed": 0}
        for row in self._db.execute("SELECT status, COUNT(*) AS n FROM trials GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    def best(self) -> TrialRow | None:
        rows = self.trials(status="ok", order_by="reward", descending=True, limit=1)
        return rows[0] if rows else None
