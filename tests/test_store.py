"""The run store: a real SQLite database in a temporary run folder."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas.core.result import TrialResult
from nas.runs.store import Store, StoreError


def ok(arch: str, reward: float) -> TrialResult:
    return TrialResult(arch=arch, accuracy=reward, macs=1000, params=10, reward=reward, train_seconds=1.5, epochs=2)


def test_rows_and_controller_state_are_written_together(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run", {"name": "run"})
    store.start_trial("a", "archA", controller="random", controller_state={"step": 1})
    store.finish_trial("a", ok("archA", 0.5), node="n1", controller_state={"step": 2})
    store.start_trial("b", "archB", controller="random", controller_state={"step": 3})
    reader = Store.open_readonly(tmp_path / "run")
    assert reader.controller_state() == {"step": 3}
    assert reader.counts() == {"running": 1, "ok": 1, "failed": 0, "stopped": 0}
    row = reader.trials(status="ok")[0]
    assert (row.trial_id, row.reward, row.node, row.train_seconds) == ("a", 0.5, "n1", 1.5)
    assert row.result() == ok("archA", 0.5)


def test_failed_results_keep_their_reason(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run")
    store.start_trial("x", "archX")
    store.finish_trial("x", TrialResult.failure("archX", "loss became nan at step 3"))
    row = store.trials()[0]
    assert row.status == "failed" and row.error == "loss became nan at step 3" and row.accuracy is None


def test_nan_metrics_are_stored_as_missing(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run")
    store.start_trial("x", "archX")
    store.finish_trial("x", TrialResult(arch="archX", accuracy=float("nan"), reward=float("inf"), macs=5))
    row = store.trials()[0]
    assert row.accuracy is None and row.reward is None and row.macs == 5


def test_best_and_ordering(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run")
    for name, reward in [("a", 0.3), ("b", 0.9), ("c", 0.6)]:
        store.start_trial(name, f"arch{name}")
        store.finish_trial(name, ok(f"arch{name}", reward))
    assert store.best().trial_id == "b"
    assert [r.trial_id for r in store.trials(order_by="reward", descending=True)] == ["b", "c", "a"]
    assert [r.trial_id for r in store.trials(limit=2, offset=1)] == ["b", "c"]
    with pytest.raises(ValueError, match="cannot order by"):
        store.trials(order_by="reward; DROP TABLE trials")


def test_restarting_a_running_trial_is_allowed_but_a_finished_one_is_not(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run")
    store.start_trial("a", "archA")
    store.start_trial("a", "archA")  # re-run after a crash
    assert store.counts()["running"] == 1
    store.finish_trial("a", ok("archA", 0.4))
    with pytest.raises(StoreError, match="already finished"):
        store.start_trial("a", "archA")
    with pytest.raises(StoreError, match="never started"):
        store.finish_trial("zzz", ok("archZ", 0.1))


def test_a_run_is_never_overwritten_and_readers_cannot_write(tmp_path: Path) -> None:
    Store.create(tmp_path / "run").close()
    with pytest.raises(StoreError, match="already holds a run"):
        Store.create(tmp_path / "run")
    reader = Store.open_readonly(tmp_path / "run")
    with pytest.raises(StoreError, match="readonly"):
        reader.set_meta({"x": 1})


def test_a_store_that_lost_finished_rows_is_reported_not_rerun(tmp_path: Path) -> None:
    """Finished rows that lived only in the write-ahead log (a trials.db copied alone, a damaged -wal) are
    missing on resume: the driver must say so instead of training them again."""
    store = Store.create(tmp_path / "run", {"name": "run"})
    for trial in "abcd":
        store.start_trial(trial, f"arch{trial}")
        store.finish_trial(trial, ok(f"arch{trial}", 0.5))
    store.close()
    with sqlite3.connect(tmp_path / "run" / "trials.db") as raw:  # what the lost log held
        raw.execute("DELETE FROM trials WHERE trial_id IN ('c', 'd')")
    with pytest.raises(StoreError, match="holds 2 finished trials but the run had finished 4"):
        Store.open(tmp_path / "run")
    (tmp_path / "run" / "finished.count").unlink()  # the user's way to go on, as the message says
    Store.open(tmp_path / "run").close()


def test_the_finished_rows_are_in_the_database_file_itself_after_each_trial(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run", {"name": "run"})
    store.start_trial("a", "archA")
    store.finish_trial("a", ok("archA", 0.5))
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "run" / "trials.db", copy / "trials.db")  # the database alone, without its -wal
    store.close()
    assert Store.open_readonly(copy).counts()["ok"] == 1


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    Store.create(tmp_path / "run", {"name": "run"}).close()
    with sqlite3.connect(tmp_path / "run" / "trials.db") as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    for opening in (Store.open, Store.open_readonly):
        with pytest.raises(StoreError, match="schema version 99; this nas reads versions 1 to 2"):
            opening(tmp_path / "run")
    with sqlite3.connect(tmp_path / "run" / "trials.db") as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "99"


def test_missing_run_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open_readonly(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="holds no trials.db"):
        Store.open(tmp_path / "empty")


def test_wal_mode_lets_a_reader_poll_while_the_driver_writes(tmp_path: Path) -> None:
    writer = Store.create(tmp_path / "run")
    reader = Store.open_readonly(tmp_path / "run")
    assert reader.counts()["ok"] == 0
    writer.start_trial("a", "archA")
    writer.finish_trial("a", ok("archA", 0.7))
    assert reader.counts()["ok"] == 1
    assert [r.trial_id for r in reader.trials()] == ["a"]


def test_controller_state_parts_are_written_only_when_they_change(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run")
    blob = "w" * 1_000_000  # a policy's weights: large, and the same object until the policy updates
    store.start_trial("a", "archA", controller_state={"next_id": 1, "algorithm": {"torch": blob, "batch": []}})
    before = store._db.total_changes
    store.finish_trial("a", ok("archA", 0.5), controller_state={"next_id": 1, "algorithm": {"torch": blob,
                                                                                             "batch": [1]}})
    assert store._db.total_changes - before == 2  # the trial row and "algorithm.batch"; not the blob
    store.start_trial("b", "archB", controller_state={"next_id": 2, "algorithm": {"torch": "new", "batch": [1]}})
    assert store.controller_state() == {"next_id": 2, "algorithm": {"torch": "new", "batch": [1]}}


def _create(path: str, queue: multiprocessing.Queue[str]) -> None:
    try:
        Store.create(path).close()
        queue.put("created")
    except StoreError as error:
        queue.put(str(error))


def test_creation_is_exclusive_when_two_processes_race(tmp_path: Path) -> None:
    for attempt in range(3):
        queue: multiprocessing.Queue[str] = multiprocessing.Queue()
        racers = [multiprocessing.Process(target=_create, args=(str(tmp_path / f"run{attempt}"), queue))
                  for _ in range(4)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        outcomes = [queue.get(timeout=5) for _ in racers]
        assert outcomes.count("created") == 1, outcomes
        assert all("already holds a run" in o for o in outcomes if o != "created")


def test_a_creation_killed_halfway_leaves_nothing_in_the_way(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / ".trials.db.999.partial").write_bytes(b"half a database")  # what a SIGKILL mid-creation leaves
    store = Store.create(run, {"settings": {"x": 1}})
    assert store.meta()["settings"] == {"x": 1} and store.counts()["ok"] == 0


def test_a_finished_row_is_never_overwritten(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run")
    store.start_trial("a", "archA")
    store.finish_trial("a", ok("archA", 0.5))
    with pytest.raises(StoreError, match="already finished"):
        store.finish_trial("a", ok("archA", 0.9))
    assert store.trials()[0].reward == 0.5


@pytest.mark.parametrize("damage", ["random bytes", "empty", "truncated", "foreign database"])
def test_a_damaged_database_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    run = tmp_path / "run"
    store = Store.create(run)
    for i in range(200):
        store.start_trial(f"t{i}", f"arch{i}")
    store.close()
    db = run / "trials.db"
    if damage == "random bytes":
        db.write_bytes(os.urandom(8192))
    elif damage == "empty":
        db.write_bytes(b"")
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:5000])
    else:
        db.unlink()
        sqlite3.connect(db).execute("CREATE TABLE other (x)").connection.commit()
    for opener in (Store.open, Store.open_readonly):
        with pytest.raises(StoreError) as caught:
            with opener(run) as opened:
                opened.trials()
        assert str(db) in str(caught.value) and "\n" not in str(caught.value)


def test_learning_curves_and_the_stopped_status(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run")
    store.start_trial("a", "archA")
    store.record_epoch("a", 1, accuracy=0.2, reward=0.2)
    assert store.trials()[0].epochs == 1 and store.trials()[0].accuracy == 0.2  # the running row follows
    store.record_epoch("a", 2, accuracy=0.3, reward=0.3)
    store.finish_trial("a", TrialResult(arch="archA", status="stopped", accuracy=0.3, reward=0.3, epochs=2))
    assert store.curves() == {"a": [(1, 0.2), (2, 0.3)]}
    assert store.counts() == {"running": 0, "ok": 0, "failed": 0, "stopped": 1} and store.best() is None


def test_an_older_database_is_upgraded_on_open(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    old = sqlite3.connect(run / "trials.db")
    old.executescript(_VERSION_1_SCHEMA)
    old.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", "1"),
                                                        ("controller_state", '{"next_id": 7, "rng": {"s": 1}}')])
    old.commit()
    old.close()
    old = sqlite3.connect(run / "trials.db")
    old.execute("INSERT INTO trials (trial_id, arch, status, started_at) VALUES ('t', 'archT', 'ok', 1.0)")
    old.commit()
    old.close()
    store = Store.open(run)
    assert store.controller_state() == {"next_id": 7, "rng": {"s": 1}}
    assert store.meta()["schema_version"] == 2 and "controller_state" not in store.meta()
    assert [r.trial_id for r in store.trials()] == ["t"] and store.trials()[0].step_ms is None
    store.start_trial("u", "archU")
    store.finish_trial("u", TrialResult(arch="archU", status="stopped", accuracy=0.1, reward=0.1, epochs=1))
    assert store.counts()["stopped"] == 1  # the new status is allowed in an upgraded file


def test_a_closed_run_is_one_file_without_wal(tmp_path: Path) -> None:
    """What lets a finished run be read from read-only media: no WAL index is needed once the driver closed it."""
    store = Store.create(tmp_path / "run")
    store.start_trial("a", "archA")
    store.close()
    header = (tmp_path / "run" / "trials.db").read_bytes()[:20]
    assert header[18:20] == b"\x01\x01"  # rollback journal, not WAL (2, 2)
    assert not (tmp_path / "run" / "trials.db-wal").exists()


@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real small file system of our own (needs the right to mount; skipped without it)."""
    point = tmp_path / "mnt"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_finished_run_reads_from_read_only_media(tmpfs: Path, tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run", {"name": "run"})
    store.start_trial("a", "archA")
    store.finish_trial("a", ok("archA", 0.5))
    store.close()
    shutil.copytree(tmp_path / "run", tmpfs / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    with Store.open_readonly(tmpfs / "run") as reader:
        assert reader.best().trial_id == "a" and reader.meta()["name"] == "run"


def test_a_full_disk_is_one_line_and_the_run_stays_intact(tmpfs: Path) -> None:
    store = Store.create(tmpfs / "run")
    with pytest.raises(StoreError, match="is full; the run is intact") as caught:
        for i in range(100_000):
            store.start_trial(f"t{i}", "x" * 2000)
    assert "\n" not in str(caught.value)
    count = store.counts()["running"]
    store._db.close()
    assert Store.open_readonly(tmpfs / "run").counts()["running"] == count > 0


_VERSION_1_SCHEMA = """
CREATE TABLE trials (seq INTEGER PRIMARY KEY AUTOINCREMENT, trial_id TEXT NOT NULL UNIQUE, arch TEXT NOT NULL,
    controller TEXT, status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')), accuracy REAL, macs INTEGER, params INTEGER, reward REAL,
    latency_ms REAL, train_seconds REAL, epochs INTEGER, error TEXT, node TEXT, started_at REAL NOT NULL,
    finished_at REAL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def test_a_disk_full_at_creation_leaves_nothing_behind(tmpfs: Path) -> None:
    """A run that cannot be created (the disk is full before its database is whole) leaves no .partial file,
    no lock and no folder: the same command can simply be run again once there is room."""
    from nas import space as spaces
    from nas.runs import folder as run_folder
    from nas.settings import SearchSettings
    from tests.test_search import TINY_SPACE

    (tmpfs / "filler").write_bytes(b"\0" * (600 * 1024 - 8 * 1024))  # leave less than a database needs
    space = spaces.loads(TINY_SPACE)
    settings = SearchSettings.for_space(space, {"place": {"name": "run", "storage": str(tmpfs)},
                                                "proxy": {"dataset": "synthetic"}})
    with pytest.raises(StoreError, match="cannot create"):
        run_folder.create(settings, space)
    assert not (tmpfs / "run").exists()


def test_text_in_a_number_column_is_one_line_naming_the_trial(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run", {"name": "run"})
    store.start_trial("a", "archA")
    store.finish_trial("a", ok("archA", 0.5))
    store.close()
    with sqlite3.connect(tmp_path / "run" / "trials.db") as raw:  # SQLite keeps whatever it is given
        raw.execute("UPDATE trials SET accuracy = 'abc' WHERE trial_id = 'a'")
    with pytest.raises(StoreError, match="trial 'a' has accuracy = 'abc', not a number"):
        Store.open_readonly(tmp_path / "run").trials()
