"""The Tune Searcher adapter, driven directly (no Tune loop): suggest/complete/save/restore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

import controllers  # noqa: E402
from nas import space as spaces  # noqa: E402
from nas.core.arch import Architecture  # noqa: E402
from nas.core.result import TrialResult  # noqa: E402
from nas.runs.store import Store  # noqa: E402
from nas.runs.tune import ControllerSearcher  # noqa: E402
from tests.test_search import TINY_SPACE  # noqa: E402


@pytest.fixture()
def space():
    return spaces.loads(TINY_SPACE)


def fake_result(arch: str, reward: float) -> dict:
    return {**TrialResult(arch=arch, accuracy=reward, macs=1_000_000, params=100, reward=reward).to_dict(),
            "node": "127.0.0.1"}


def test_suggest_and_complete_drive_the_controller_and_the_store(tmp_path: Path, space) -> None:
    store = Store.create(tmp_path / "run")
    searcher = ControllerSearcher(controllers.create("random", space, seed=1), store=store)
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert all(space.contains(Architecture.parse(c["arch"])) for c in configs)
    assert store.counts()["running"] == 3
    searcher.on_trial_complete("t1", fake_result(configs[1]["arch"], 0.5))
    searcher.on_trial_complete("t0", None, error=True)  # the worker died after all retries
    rows = {r.trial_id: r for r in store.trials()}
    assert rows[configs[1]["proposal_id"]].status == "ok"
    failed = rows[configs[0]["proposal_id"]]
    assert failed.status == "failed" and "crashed or was lost" in failed.error
    assert store.controller_state()["stats"]["told"] == 2


def test_save_restore_continues_with_the_same_proposals(tmp_path: Path, space) -> None:
    first = ControllerSearcher(controllers.create("evolution", space, seed=3))
    for i in range(6):
        config = first.suggest(f"t{i}")
        first.on_trial_complete(f"t{i}", fake_result(config["arch"], 0.1 * i))
    in_flight = first.suggest("t6")
    first.save(str(tmp_path / "searcher.json"))
    expected = [first.suggest(f"u{i}")["arch"] for i in range(4)]

    second = ControllerSearcher(controllers.create("evolution", space, seed=99))
    second.restore(str(tmp_path / "searcher.json"))
    again = second.suggest("v0")  # the trial in flight at save time comes back first, same id
    assert again == in_flight
    assert [second.suggest(f"v{i + 1}")["arch"] for i in range(4)] == expected


def test_list_searcher_save_restore_runs_each_candidate_once(tmp_path: Path, space) -> None:
    from nas.core.result import Candidate
    from nas.runs.tune import ListSearcher

    archs = [space.sample(np.random.default_rng(i)) for i in range(4)]
    candidates = [Candidate(arch=a, label=f"c{i}", target_resolution=224, proxy_changes={"resolution": 16 + 8 * i})
                  for i, a in enumerate(archs)]
    first = ListSearcher(candidates)
    done = first.suggest("t0")
    first.on_trial_complete("t0", fake_result(done["arch"], 0.7))
    live = first.suggest("t1")  # in flight when the driver dies
    first.save(str(tmp_path / "list.json"))

    second = ListSearcher([])
    second.restore(str(tmp_path / "list.json"))
    resumed = [second.suggest(f"u{i}") for i in range(3)]
    assert resumed[0] == live  # the trial in flight comes back first, with its resolutions
    assert [c["proposal_id"] for c in resumed] == ["c1", "c2", "c3"]
    assert resumed[2]["proxy_changes"] == {"resolution": 40}
    assert second.suggest("u3") is second.FINISHED and second.results["c0"].accuracy == 0.7


def test_schedulers_are_ray_tunes_own() -> None:
    from ray.tune.schedulers import AsyncHyperBandScheduler

    from nas.runs.tune import RANKED_BY, scheduler_for
    from nas.settings import SchedulerSettings

    assert scheduler_for(SchedulerSettings(), 5) is None
    asha = scheduler_for(SchedulerSettings(kind="asha", grace_period=1, reduction_factor=3), 9)
    hyperband = scheduler_for(SchedulerSettings(kind="hyperband", grace_period=1, reduction_factor=3), 9)
    assert isinstance(asha, AsyncHyperBandScheduler) and len(asha._brackets) == 1
    assert isinstance(hyperband, AsyncHyperBandScheduler) and len(hyperband._brackets) == 3  # log_3(9) + 1
    assert (asha._max_t, asha._metric, asha._mode) == (9, RANKED_BY, "max")


def test_a_stopped_trial_is_told_as_its_partial_reward_or_as_a_failure(tmp_path: Path, space) -> None:
    for policy, expected in (("partial", "ok"), ("failure", "failed")):
        controller = controllers.create("evolution", space, seed=0)
        searcher = ControllerSearcher(controller, tell_stopped=policy)
        config = searcher.suggest("t0")
        told = []
        original = controller.tell
        controller.tell = lambda pid, result: (told.append(result), original(pid, result))  # type: ignore[method-assign]
        searcher.on_trial_complete("t0", {**fake_result(config["arch"], 0.3), "status": "stopped", "epochs": 1})
        assert told[0].status == expected and (told[0].reward == 0.3) == (policy == "partial")


def test_each_tune_experiment_of_a_run_gets_its_own_name_wherever_its_logs_go(tmp_path: Path) -> None:
    """With --tune-storage the experiments' folders are not in the run folder, so counting them there gave
    every resume the name tune-0 again (its logs written into the first experiment's)."""
    from nas.runs.tune.experiment import next_attempt

    run = tmp_path / "run"
    run.mkdir()
    assert [next_attempt(run) for _ in range(3)] == [0, 1, 2]
    older = tmp_path / "older"
    (older / "tune-0").mkdir(parents=True)
    (older / "tune-1").mkdir()
    assert next_attempt(older) == 2  # a run from before the counter goes on from its folders


def test_a_controller_that_only_reproposes_ends_the_search_with_a_reason() -> None:
    """A search whose controller keeps proposing what it has already evaluated must stop and say why,
    not spin (a collapsed PPO re-proposed 1 600 times for under 190 distinct architectures)."""
    from types import SimpleNamespace

    from ray.tune.search import Searcher

    class Collapsed:
        name = "collapsed"
        asked = 0

        def ask(self):  # noqa: ANN202
            self.asked += 1
            return SimpleNamespace(needs_training=False)

        def results(self) -> dict:
            return {"a": None, "b": None}

    controller = Collapsed()
    searcher = ControllerSearcher(controller)
    assert searcher.suggest("t0") == Searcher.FINISHED
    assert controller.asked == 1_000
    assert "1,000 times in a row" in searcher.stopped_because and "after 2 distinct" in searcher.stopped_because
