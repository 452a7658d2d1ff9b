"""The run store: a real SQLite database in a temporary run folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nas.result import TrialResult
from nas.store import Store, StoreError


def ok(arch: str, reward: float) -> TrialResult:
    return TrialResult(arch=arch, accuracy=reward, macs=1000, params=10, reward=reward, train_seconds=1.5, epochs=2)


def test_rows_and_controller_state_are_written_together(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "run", {"name": "run"})
    store.start_trial("a", "archA", controller="random", controller_state={"step": 1})
    store.finish_trial("a", ok("archA", 0.5), node="n1", controller_state={"step": 2})
    store.start_trial("b", "archB", controller="random", controller_state={"step": 3})
    reader = Store.open_readonly(tmp_path / "run")
    assert reader.meta()["controller_state"] == {"step": 3}
    assert reader.counts() == {"running": 1, "ok": 1, "failed": 0}
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
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.set_meta({"x": 1})


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
