"""Multi-objective ASHA: its decisions against the definition (non-dominated sorting on accuracy ↑ and
MACs ↓, crowding distance inside a front, the top 1/η of a rung kept), against Ray Tune's own ASHA on
the same reports, asynchronous rungs, failed epochs, the state a resumed run starts from, and a real
search."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from nas.core.result import TrialResult
from nas.core.reward import soft
from nas.runs.store import Store
from nas.runs.tune import RANKED_BY, scheduler_for
from nas.runs.tune.moasha import MOASHAScheduler, rung_epochs
from nas.settings import SchedulerSettings
from tests.test_search import local_ray, rows, tiny_config, tiny_space  # noqa: F401 - fixtures

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
M = 1_000_000


def trial(name: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=name, config={"proposal_id": name})


def report(epoch: int, accuracy: float, macs: float) -> dict:
    """What a trial reports after an epoch: its accuracy, MACs and reward (the metric Tune's ASHA ranks by)."""
    reward = soft(accuracy, macs) if math.isfinite(accuracy) else math.nan
    return {"training_iteration": epoch, "accuracy": accuracy, "macs": macs, RANKED_BY: reward}


def both(reports: list[tuple[str, int, float, float]], eta: float = 2.0, max_t: int = 9) -> tuple[list, list]:
    """The decisions of MOASHA and of Ray Tune's ASHA (same grace period, reduction factor, rungs) on the
    same reports, in order."""
    moasha = MOASHAScheduler(max_t=max_t, grace_period=1, reduction_factor=eta)
    asha = ASHAScheduler(time_attr="training_iteration", metric=RANKED_BY, mode="max", max_t=max_t,
                         grace_period=1, reduction_factor=eta)
    ours, theirs = [], []
    for name, epoch, accuracy, macs in reports:
        t = trial(name)
        if epoch == 1:
            asha.on_trial_add(None, t)
        ours.append(moasha.on_trial_result(None, t, report(epoch, accuracy, macs)))
        theirs.append(asha.on_trial_result(None, t, report(epoch, accuracy, macs)))
    return ours, theirs


def test_it_is_a_tune_scheduler_with_asha_rungs() -> None:
    scheduler = scheduler_for(SchedulerSettings(kind="moasha", grace_period=1, reduction_factor=3), 9)
    assert isinstance(scheduler, TrialScheduler)
    # rungs where Tune's ASHA has them (below the last epoch, where a decision saves nothing)
    asha = ASHAScheduler(time_attr="training_iteration", metric="m", mode="max", max_t=27, grace_period=1,
                         reduction_factor=3)
    assert rung_epochs(1, 3, 27) == sorted(m for m, _ in asha._brackets[0]._rungs if m < 27) == [1, 3, 9]
    assert rung_epochs(2, 2, 10) == [2, 4, 8]
    assert list(scheduler.rungs) == [1, 3]
    assert rung_epochs(1, 1.5, 4) == [1, 2, 3]  # ceil(1.5) = 2, ceil(2.25) = 3


def test_a_dominated_trial_with_a_high_reward_is_stopped_where_asha_keeps_it() -> None:
    # A, C, D are mutually non-dominated; B is dominated by A (less accurate and dearer) yet its reward
    # (0.85 at 150 M MACs) is above the median of A's, C's and D's. Of 4 at the rung, η = 2 keeps 2:
    # three trials (front 0) are ahead of B (front 1).
    reports = [("A", 1, 0.90, 100 * M), ("C", 1, 0.50, 10 * M), ("D", 1, 0.55, 20 * M), ("B", 1, 0.85, 150 * M)]
    assert soft(0.85, 150 * M) > sorted(soft(a, c) for _, _, a, c in reports[:3])[1]
    ours, theirs = both(reports)
    assert theirs[-1] == CONTINUE and ours[-1] == STOP


def test_a_cheap_non_dominated_trial_with_a_low_reward_is_kept_where_asha_stops_it() -> None:
    # F is the cheapest at the rung, so no one dominates it and it is an end of front 0 (infinite crowding
    # distance): nobody is ahead of it. Its reward is the lowest of all.
    reports = [("A", 1, 0.90, 100 * M), ("B", 1, 0.88, 90 * M), ("C", 1, 0.86, 80 * M), ("F", 1, 0.30, 1 * M)]
    assert soft(0.30, 1 * M) < min(soft(a, c) for _, _, a, c in reports[:3])
    ours, theirs = both(reports)
    assert theirs[-1] == STOP and ours[-1] == CONTINUE


def test_the_top_fraction_counts_fronts_then_crowding() -> None:
    # One front of five: A and E are its ends (infinite distance); by the normalized gaps between
    # neighbours (accuracy span 0.4, MACs span 9 M): B 0.11/0.4 + 1.1/9 = 0.397, C 0.2/0.4 + 3/9 = 0.833,
    # D 0.29/0.4 + 7.9/9 = 1.603. Order: A = E, D, C, B. η = 1.6 keeps floor(5 / 1.6) = 3.
    front = {"A": (0.50, 1 * M), "B": (0.60, 2 * M), "C": (0.61, 2.1 * M), "D": (0.80, 5 * M), "E": (0.90, 10 * M)}
    for last, expected in [("D", CONTINUE), ("C", STOP), ("B", STOP), ("A", CONTINUE), ("E", CONTINUE)]:
        scheduler = MOASHAScheduler(max_t=9, grace_period=1, reduction_factor=1.6)
        for name, (accuracy, macs) in front.items():
            if name != last:
                scheduler.on_trial_result(None, trial(name), report(1, accuracy, macs))
        assert scheduler.on_trial_result(None, trial(last), report(1, *front[last])) == expected, last
    # a chain (each dominates the next): the k-th of n is kept while k - 1 < floor(n / η)
    chain = [(0.9, 1 * M), (0.8, 2 * M), (0.7, 3 * M), (0.6, 4 * M)]
    scheduler = MOASHAScheduler(max_t=9, grace_period=1, reduction_factor=2)
    decisions = [scheduler.on_trial_result(None, trial(f"t{i}"), report(1, a, c)) for i, (a, c) in enumerate(chain)]
    assert decisions == [CONTINUE, STOP, STOP, STOP]  # n = 2, 3, 4 keep 1, 1, 2; ahead 1, 2, 3
    better = [scheduler.on_trial_result(None, trial("top"), report(1, 0.95, 0.5 * M))]
    assert better == [CONTINUE]


def test_rungs_are_asynchronous() -> None:
    scheduler = MOASHAScheduler(max_t=9, grace_period=1, reduction_factor=3)  # rungs at epochs 1 and 3
    good, weak = trial("good"), trial("weak")
    # the first trial at a rung goes on, however poor: nobody waits for a rung to fill
    assert scheduler.on_trial_result(None, weak, report(1, 0.10, 500 * M)) == CONTINUE
    assert scheduler.on_trial_result(None, good, report(1, 0.80, 50 * M)) == CONTINUE  # n = 2 keeps 1: itself
    # off-rung epochs go on; a rung judges each trial once
    assert scheduler.on_trial_result(None, weak, report(2, 0.12, 500 * M)) == CONTINUE
    assert scheduler.on_trial_result(None, weak, report(1, 0.10, 500 * M)) == CONTINUE
    # "weak" reaches epoch 3 first: it is alone there, so it goes on, though "good" dominated it at epoch 1
    assert scheduler.on_trial_result(None, weak, report(3, 0.20, 500 * M)) == CONTINUE
    assert scheduler.on_trial_result(None, good, report(3, 0.85, 50 * M)) == CONTINUE
    # a third at epoch 3 dominated by both: n = 3 keeps 1
    assert scheduler.on_trial_result(None, trial("late"), report(3, 0.15, 600 * M)) == STOP
    assert {name: len(rung) for name, rung in zip(("1", "3"), scheduler.rungs.values(), strict=True)} == \
        {"1": 2, "3": 3}
    # a report past a rung it skipped is judged at the highest rung it reached
    assert scheduler.on_trial_result(None, trial("jump"), report(4, 0.01, 900 * M)) == STOP
    assert "jump" in scheduler.rungs[3] and "jump" not in scheduler.rungs[1]


def test_a_failed_epoch_is_neither_promoted_nor_counted() -> None:
    scheduler = MOASHAScheduler(max_t=9, grace_period=1, reduction_factor=2)
    assert scheduler.on_trial_result(None, trial("nan"), report(1, math.nan, 10 * M)) == STOP
    assert scheduler.on_trial_result(None, trial("no-macs"), {"training_iteration": 1, "accuracy": 0.9}) == STOP
    assert scheduler.on_trial_result(None, trial("inf"), report(1, 0.9, math.inf)) == STOP
    assert all(not rung for rung in scheduler.rungs.values())
    # had the failures counted, a trial dominated by nothing finite would not be alone
    assert scheduler.on_trial_result(None, trial("poor"), report(1, 0.05, 900 * M)) == CONTINUE
    assert scheduler.on_trial_result(None, trial("worse"), report(1, 0.04, 901 * M)) == STOP


REPORTS = [("a", 1, 0.70, 100 * M), ("b", 1, 0.60, 50 * M), ("c", 1, 0.40, 300 * M), ("a", 2, 0.75, 100 * M),
           ("d", 1, 0.72, 90 * M), ("d", 2, 0.80, 90 * M)]
PROBES = [("p", 1, 0.65, 120 * M), ("q", 2, 0.74, 95 * M), ("r", 1, 0.30, 20 * M)]


def decisions_after(scheduler: MOASHAScheduler) -> list[str]:
    return [scheduler.on_trial_result(None, trial(n), report(e, a, c)) for n, e, a, c in PROBES]


def live(eta: float = 2) -> MOASHAScheduler:
    scheduler = MOASHAScheduler(max_t=3, grace_period=1, reduction_factor=eta)
    for name, epoch, accuracy, macs in REPORTS:
        scheduler.on_trial_result(None, trial(name), report(epoch, accuracy, macs))
    return scheduler


def test_tunes_checkpoint_round_trip_keeps_the_rungs(tmp_path: Path) -> None:
    original = live()
    original.save(str(tmp_path / "scheduler.json"))
    restored = MOASHAScheduler(max_t=3, grace_period=1, reduction_factor=2)
    restored.restore(str(tmp_path / "scheduler.json"))
    assert restored.rungs == original.rungs
    expected = decisions_after(original)
    assert decisions_after(restored) == expected
    assert decisions_after(MOASHAScheduler(max_t=3, grace_period=1, reduction_factor=2)) != expected  # not vacuous


def test_a_resumed_run_rebuilds_the_rungs_from_its_store(tmp_path: Path) -> None:
    """The store as the searcher writes it: every reported epoch, and the MACs when a trial finishes."""
    store = Store.create(tmp_path / "run")
    final = {}
    for name, epoch, accuracy, macs in REPORTS:
        if epoch == 1:
            store.start_trial(name, f"arch-{name}")
        store.record_epoch(name, epoch, accuracy=accuracy, reward=soft(accuracy, macs))
        final[name] = (epoch, accuracy, macs)
    for name, (epoch, accuracy, macs) in final.items():
        store.finish_trial(name, TrialResult(arch=f"arch-{name}", status="stopped", accuracy=accuracy, macs=int(macs),
                                             reward=soft(accuracy, macs), epochs=epoch))
    store.start_trial("flying", "arch-flying")  # in flight when the driver stopped: no MACs known yet
    store.record_epoch("flying", 1, accuracy=0.99, reward=None)
    rebuilt = scheduler_for(SchedulerSettings(kind="moasha", grace_period=1, reduction_factor=2), 3, store)
    assert rebuilt.rungs == live().rungs
    assert decisions_after(rebuilt) == decisions_after(live())
    # the trial in flight trains again under its id and is judged then, at its new report
    assert rebuilt.on_trial_result(None, trial("flying"), report(1, 0.99, 10 * M)) == CONTINUE
    assert "flying" in rebuilt.rungs[1]


def test_the_dashboard_front_shows_stopped_trials_at_their_rung(tmp_path: Path) -> None:
    from nas.app.dashboard import queries

    store = Store.create(tmp_path / "run")
    for name, status, epochs, accuracy in [("full", "ok", 3, 0.8), ("r1", "stopped", 1, 0.5), ("r2", "stopped", 2, 0.6),
                                           ("bad", "failed", 1, None)]:
        store.start_trial(name, f"arch-{name}")
        store.finish_trial(name, TrialResult(arch=f"arch-{name}", status=status, accuracy=accuracy, macs=100 * M,
                                             reward=None if accuracy is None else soft(accuracy, 100 * M),
                                             epochs=epochs, error="x" if status == "failed" else None))
    rows_ = tuple(store.trials())
    data = queries.front(queries.Snapshot(meta={}, rows=rows_, counts=store.counts()), {})
    seq = {row.trial_id: row.seq for row in rows_}
    assert data["seq"] == [seq["full"]] and data["front"] == [seq["full"]]  # the front stays full-fidelity
    stopped = data["stopped"]
    assert sorted(zip(stopped["seq"], stopped["epochs"], stopped["accuracy"], strict=True)) == \
        [(seq["r1"], 1, 0.5), (seq["r2"], 2, 0.6)]


@pytest.mark.slow
def test_a_real_search_with_moasha_stops_trials_and_completes(local_ray, tmp_path: Path,  # noqa: F811
                                                             tiny_space: Path) -> None:  # noqa: F811
    from nas.runs import search

    config = tiny_config(tmp_path, tiny_space, trials=6, name="moasha", controller="nsga2",
                         scheduler={"kind": "moasha", "grace_period": 1, "reduction_factor": 2},
                         proxy={"dataset": "fashion_mnist", "max_train_samples": 256, "max_val_samples": 128,
                                "epochs": 3, "resolution": 16})
    summary = search.run(config)
    run_dir = Path(summary["run_dir"])
    stored = rows(run_dir)
    assert len(stored) == 6 and all(r["status"] in ("ok", "stopped") for r in stored), stored
    stopped = [r for r in stored if r["status"] == "stopped"]
    assert stopped and all(r["epochs"] in (1, 2) and r["macs"] for r in stopped), stored
    assert summary["counts"]["stopped"] == len(stopped)
    with Store.open_readonly(run_dir) as store:
        rebuilt = MOASHAScheduler.from_store(store, max_t=3, grace_period=1, reduction_factor=2)
    # every trial was recorded at rung 1; the stopped ones at the rung where they stopped
    assert set(rebuilt.rungs[1]) == {r["trial_id"] for r in stored}
    assert all(r["trial_id"] in rebuilt.rungs[r["epochs"]] for r in stopped)
