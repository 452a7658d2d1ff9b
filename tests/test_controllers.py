"""Controllers: valid proposals, asynchrony, finding a known optimum, resume, failures, duplicates, pre-filter."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import controllers
from controllers.base import ConstraintError, Controller
from nas.core import cost
from nas.core.result import TrialResult
from nas.space import loads

# 2 x (4 x 2 x 2)^2 = 512 architectures; every other decision has one option.
TINY = """
name: tiny
target_resolution: 32
num_classes: 10
activation: [relu, silu]
choices: {op: [conv, ds, mb3, mb6], kernel: [3, 5], se: 0, skip: [none, identity],
          filter_ratios: 1.0, layer_deltas: 0}
blocks:
  - {filters: 16, layers: 1, stride: 1}
  - {filters: 24, layers: 2, stride: 2}
"""
SPACE = loads(TINY)
OPTIMUM = (1, 3, 0, 0, 1, 0, 0, 2, 1, 0, 0, 0, 0)  # one option index per decision
ALL = [name for name in controllers.available() if name != "optuna-gp"]  # the GP sampler: its own test
EVENT_LOGS = {"optuna-tpe", "optuna-nsga2", "optuna-nsga3"}  # their state is the log of asks and tells
SMALL = {"evolution": {"population_size": 8, "sample_size": 3}, "nsga2": {"population_size": 8}}
FAST = {"ppo": {"lr": 0.005}}  # the paper's lr 0.00035 is for ~8,000 trials, not 64; see test_find_optimum


def score(choices: tuple[int, ...]) -> float:
    """Reward in (0, 1]: 1 at OPTIMUM only, higher the more decisions agree with it."""
    return 0.1 + 0.9 * sum(a == b for a, b in zip(choices, OPTIMUM)) / len(OPTIMUM)


def ok(arch, value: float | None = None) -> TrialResult:
    value = score(SPACE.encode(arch)) if value is None else value
    return TrialResult(arch=str(arch), accuracy=value, macs=cost.count(arch, 32).macs, reward=value)


def make(name: str, seed: int = 0, **options) -> Controller:
    return controllers.create(name, SPACE, seed=seed, **options)


def search(controller: Controller, budget: int) -> set[tuple[int, ...]]:
    """Sequential search for ``budget`` trainings; returns the choices evaluated."""
    seen: set[tuple[int, ...]] = set()
    for _ in range(4 * budget):
        if len(seen) >= budget:
            break
        proposal = controller.ask()
        if proposal.needs_training:
            controller.tell(proposal.id, ok(proposal.arch))
            seen.add(SPACE.encode(proposal.arch))
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_async_shuffled_tells_with_failures(name: str) -> None:
    """32 in flight, tells shuffled, every 5th a failure: only valid archs, no crash, no stall."""
    controller, rng, trained = make(name, **SMALL.get(name, {})), np.random.default_rng(1), 0
    flight = []
    for _ in range(12):
        while len(flight) < 32:
            proposal = controller.ask()
            assert SPACE.contains(proposal.arch)
            if proposal.needs_training:
                flight.append(proposal)
        order = rng.permutation(len(flight))
        for i in order[:16]:
            proposal = flight[i]
            result = TrialResult.failure(str(proposal.arch), "NaN loss") if trained % 5 == 0 else ok(proposal.arch)
            controller.tell(proposal.id, result)
            trained += 1
        flight = [flight[i] for i in order[16:]]
    assert controller.in_flight == len(flight) == 16
    assert controller.stats["failed"] == len(range(0, trained, 5))


@pytest.mark.parametrize("name", ALL)
def test_proposals_on_the_real_space_are_contained(name: str) -> None:
    from nas.space import load

    space = load("search_spaces/mnasnet.yaml")
    controller = controllers.create(name, space, seed=3)
    for _ in range(40):
        proposal = controller.ask()
        assert space.contains(proposal.arch)
        controller.tell(proposal.id, TrialResult(arch=str(proposal.arch), accuracy=0.5, macs=1, reward=0.5))


@pytest.mark.slow
def test_evolution_and_ppo_find_the_optimum_far_more_often_than_random() -> None:
    """20 seeds x 64 trainings on 512 archs: random finds OPTIMUM ~12% of the time."""
    found = {}
    for name, options in (("random", {}), ("evolution", {"population_size": 16, "sample_size": 4}),
                          ("ppo", FAST["ppo"])):
        found[name] = sum(OPTIMUM in search(make(name, seed, **options), 64) for seed in range(20))
    assert found["random"] <= 6, found
    assert found["evolution"] >= 14 and found["evolution"] >= 3 * max(found["random"], 1), found
    assert found["ppo"] >= 12 and found["ppo"] >= 3 * max(found["random"], 1), found


@pytest.mark.slow
@pytest.mark.parametrize("results_kept_apart", [False, True], ids=["whole-state", "results-from-the-store"])
@pytest.mark.parametrize("name", ALL)
def test_state_round_trip_reproduces_the_continuation(name: str, results_kept_apart: bool) -> None:
    def drive(controller: Controller, steps: int, rng: np.random.Generator, flight: list) -> list[str]:
        """Keep 4 in flight, tell a random one each step (every 7th fails); return the asked archs."""
        asked = []
        for step in range(steps):
            while len(flight) < 4:
                proposal = controller.ask()
                asked.append(f"{proposal.id} {proposal.arch} {proposal.cached is not None}")
                if proposal.needs_training:
                    flight.append(proposal)
            proposal = flight.pop(int(rng.integers(len(flight))))
            failed = step % 7 == 0
            controller.tell(proposal.id, TrialResult.failure(str(proposal.arch), "OOM") if failed else ok(proposal.arch))
        return asked

    options = {"batch_size": 4} if name == "ppo" else {}
    original = make(name, seed=5, **options)
    flight: list = []
    drive(original, 30, np.random.default_rng(0), flight)
    resumed = make(name, seed=99, **options)
    if results_kept_apart:  # what the run store does: the rows hold the results, the state the rest
        state = json.loads(json.dumps(original.state_dict(results=False)))
        assert "results" not in state
        with pytest.raises(ValueError, match="saved without its results"):
            resumed.load_state_dict(state)
        resumed.load_state_dict(state, results=[TrialResult.from_dict(r.to_dict())
                                                for r in original.results().values()])
    else:
        resumed.load_state_dict(json.loads(json.dumps(original.state_dict())))
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert drive(original, 40, rng_a, list(flight)) == drive(resumed, 40, rng_b, list(flight))


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in ALL if name not in EVENT_LOGS])
def test_the_stored_state_does_not_grow_with_the_run(name: str) -> None:
    """Saved at every ask and tell, a state that grew with the trials would cost O(trials²) writes."""
    options = {"batch_size": 4} if name == "ppo" else SMALL.get(name, {})  # populations full by trial 40
    controller = make(name, seed=3, reevaluate=True, **options)
    sizes = {}
    for told in range(1, 161):
        proposal = controller.ask()
        controller.tell(proposal.id, ok(proposal.arch))
        if told in (40, 160):
            sizes[told] = len(json.dumps(controller.state_dict(results=False)))
    assert sizes[160] < 1.1 * sizes[40]
    assert len(json.dumps(controller.state_dict())) > sizes[160] + 40 * 100  # the whole state does grow


def test_a_failure_never_becomes_a_parent() -> None:
    """Failures claim reward 1.0 (the best possible); successes score 0.5. No failure may enter a population."""
    for controller in (make("evolution", population_size=4, sample_size=2), make("nsga2", population_size=4)):
        failed, succeeded = set(), set()
        for step in range(60):
            proposal = controller.ask()
            if not proposal.needs_training:
                continue
            choices = SPACE.encode(proposal.arch)
            if step % 2:
                failed.add(choices)
                controller.tell(proposal.id, TrialResult.failure(str(proposal.arch), "NaN", accuracy=1.0, reward=1.0))
            else:
                succeeded.add(choices)
                controller.tell(proposal.id, ok(proposal.arch, 0.5))
            assert {c for c, *_ in controller.population} <= succeeded
        assert failed - succeeded and controller.stats["failed"] > 0


def test_a_failure_never_gets_a_positive_advantage_in_ppo() -> None:
    import torch

    ppo = make("ppo", batch_size=4, lr=0.01)
    proposals = [ppo.ask() for _ in range(4)]
    batch = torch.tensor([ppo.restrict(p.choices) for p in proposals])
    before, _ = ppo.policy.log_probs(batch)
    for p in proposals[:3]:
        ppo.tell(p.id, ok(p.arch, 0.9))
    ppo.tell(proposals[3].id, TrialResult.failure(str(proposals[3].arch), "NaN", reward=5.0))
    assert ppo.updates == 1 and ppo.baseline == pytest.approx(0.9)  # the failure's 5.0 was never used
    after, _ = ppo.policy.log_probs(batch)
    assert after[3].sum() < before[3].sum()  # pushed away from the failure (log-probs are per decision)


def test_a_ppo_update_is_adam_on_the_torch_loss() -> None:
    """One whole update (8 epochs) lands on the weights torch autograd + the same Adam would reach."""
    import copy

    import torch

    from controllers.ppo import ppo_loss

    ppo = make("ppo", batch_size=4, lr=0.01, init_range=0.3)
    reference = copy.deepcopy(ppo.policy)
    start = copy.deepcopy(ppo.policy.state_dict())
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.01)
    proposals = [ppo.ask() for _ in range(4)]
    rewards = [0.9, 0.2, 0.6, 0.4]
    choices = np.array([ppo.restrict(p.choices) for p in proposals])
    with torch.no_grad():
        old = reference.log_probs(torch.as_tensor(choices))[0].numpy()
    for proposal, reward in zip(proposals, rewards):
        ppo.tell(proposal.id, ok(proposal.arch, reward))
    assert ppo.updates == 1
    advantages = np.array(rewards, dtype=np.float32) - rewards[0]  # the baseline starts at the first reward
    for _ in range(ppo.epochs):
        optimizer.zero_grad()
        ppo_loss(reference, choices, old, advantages, clip=ppo.clip, entropy_weight=ppo.entropy_weight).backward()
        optimizer.step()
    for (name, ours), theirs in zip(ppo.policy.named_parameters(), reference.parameters()):
        ours, theirs = ours.detach().numpy(), theirs.detach().numpy()
        assert np.abs(theirs - start[name].numpy()).max() > 0.01, name  # the update moved every weight tensor
        # Adam divides by the gradient's own scale, so a weight whose gradient is ~0 can move by a rounding's
        # worth of lr: equal to float precision almost everywhere, and never by a fraction of a step.
        assert np.median(np.abs(ours - theirs)) < 1e-6 and np.abs(ours - theirs).max() < 1e-3, name


def test_ppo_draws_come_from_its_policy() -> None:
    """Sampling token by token must draw from the policy PPO trains: the teacher-forced log-probs, the same frequencies."""
    import torch

    ppo = make("ppo", seed=2, init_range=1.0)  # a peaked policy, so a wrong sampler shows
    drawn = ppo.policy.sample(np.random.default_rng(0), 4000)
    choices = torch.tensor([c for c, _ in drawn])
    logp, _ = ppo.policy.log_probs(choices[:50])
    np.testing.assert_allclose(logp.detach().numpy(), [lp for _, lp in drawn[:50]], atol=1e-5)
    first = torch.zeros(1, len(ppo.free), dtype=torch.long)  # one token per free decision
    for option in range(len(SPACE.decisions[ppo.free[0]])):
        first[0, 0] = option
        expected = float(ppo.policy.log_probs(first)[0][0, 0].detach().exp())
        seen = float((choices[:, 0] == option).float().mean())
        assert abs(seen - expected) < 0.03, (option, seen, expected)


def test_ask_and_tell_compute_on_one_thread_and_survive_pickling() -> None:
    """A controller runs beside trainings that hold the cores: inside ask and tell every BLAS and OpenMP
    pool (numpy's, torch's) runs one thread, and afterwards each is back to what it was. Ray Tune
    pickles its searcher, controller included."""
    import pickle

    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from controllers.random_search import RandomSearch

    def threads() -> tuple[int, dict[str, int]]:
        return torch.get_num_threads(), {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}

    seen = []

    class Probe(RandomSearch):
        def _propose(self):
            seen.append(threads())
            return super()._propose()

        def _observe(self, choices, extra, result):
            seen.append(threads())
            super()._observe(choices, extra, result)

    with threadpool_limits(limits=2):
        before = threads()
        assert before[0] == 2 and set(before[1].values()) == {2}
        assert {"blas", "openmp"} <= {pool["user_api"] for pool in threadpool_info()}
        controller = Probe(SPACE, seed=0)
        proposal = controller.ask()
        controller.tell(proposal.id, ok(proposal.arch))
        assert threads() == before
    assert len(seen) == 2 and all(n == 1 and set(pools.values()) == {1} for n, pools in seen)

    ppo = make("ppo")
    proposal = ppo.ask()
    ppo.tell(proposal.id, ok(proposal.arch))
    restored = pickle.loads(pickle.dumps(ppo))
    assert restored.stats == ppo.stats and restored.ask() == ppo.ask()


def test_duplicates_are_looked_up_not_retrained() -> None:
    controller = make("random")
    first = controller.ask()
    twin = None
    while twin is None:  # 512 archs: a twin of the first one turns up within a few thousand asks
        proposal = controller.ask()
        if proposal.arch == first.arch:
            twin = proposal
    assert twin.duplicate_of == first.id and not twin.needs_training
    controller.tell(first.id, ok(first.arch, 0.7))
    while True:
        proposal = controller.ask()
        if proposal.arch == first.arch:
            break
    assert proposal.cached is not None and proposal.cached.reward == 0.7 and not proposal.needs_training
    with pytest.raises(ValueError, match="not in flight"):
        controller.tell(proposal.id, ok(proposal.arch))
    assert controller.stats["cached"] >= 1 and controller.stats["waited"] >= 1

    again = make("random", reevaluate=True)
    first = again.ask()
    again.tell(first.id, ok(first.arch))
    assert all(again.ask().needs_training for _ in range(2000))


def test_max_macs_rejects_and_counts() -> None:
    macs = sorted(cost.count(SPACE.decode(SPACE.sample_choices(np.random.default_rng(i))), 32).macs
                  for i in range(200))
    bound = macs[len(macs) // 2]
    controller = make("evolution", max_macs=bound, **SMALL["evolution"])
    for _ in range(50):
        proposal = controller.ask()
        assert cost.count(proposal.arch, 32).macs <= bound
        if proposal.needs_training:
            controller.tell(proposal.id, ok(proposal.arch))
    assert controller.stats["rejected"] > 0
    assert controller.state_dict()["stats"]["rejected"] == controller.stats["rejected"]
    with pytest.raises(ConstraintError, match="max_macs"):
        make("random", max_macs=1).ask()


def test_unknown_name_and_option() -> None:
    with pytest.raises(ValueError, match="allowed: random, evolution, ppo, nsga2, bayes, optuna-tpe"):
        controllers.create("gradient-descent", SPACE, seed=0)
    with pytest.raises(ValueError, match="unknown option"):
        controllers.create("evolution", SPACE, seed=0, populaton_size=3)
    assert set(controllers.available()) == {"random", "evolution", "ppo", "nsga2", "bayes", "optuna-tpe",
                                            "optuna-gp", "optuna-nsga2", "optuna-nsga3"}


@pytest.mark.slow
def test_bayes_finds_the_optimum_far_more_often_than_random() -> None:
    """The same 512-architecture landscape: a linear model of the choices learns it in a few dozen results."""
    found = {name: sum(OPTIMUM in search(make(name, seed), 48) for seed in range(20)) for name in ("random", "bayes")}
    assert found["random"] <= 5, found
    assert found["bayes"] >= 15 and found["bayes"] >= 3 * max(found["random"], 1), found


def test_bayes_rebuilds_its_model_exactly_in_any_order() -> None:
    """The model is a sum in integer units: told in another order, it is the same to the bit."""
    results = [ok(SPACE.sample(np.random.default_rng(i))) for i in range(30)]
    models = []
    for order in (range(30), reversed(range(30))):
        controller = make("bayes", seed=1)
        for i in order:
            controller._observe(SPACE.encode(controllers.base.Architecture.parse(results[i].arch)), {}, results[i])
        models.append(controller._fit())
    assert all(np.array_equal(a, b) for a, b in zip(*models))


def test_bayes_models_pairs_of_decisions_in_a_small_space() -> None:
    """Where the reward is an interaction (the two blocks choosing the same op), a model of the choices alone
    cannot tell the good architectures; with pairs of decisions it learns them from 150 results."""
    ops = [i for i, d in enumerate(SPACE.decisions) if d.name.endswith(".op")]

    def value(choices: tuple[int, ...]) -> float:
        return 0.5 + 0.4 * (choices[ops[0]] == choices[ops[1]])

    rng = np.random.default_rng(0)
    told = [tuple(SPACE.sample_choices(rng)) for _ in range(150)]
    every = list(itertools.product(*(range(len(d)) for d in SPACE.decisions)))
    truth = np.array([value(choices) for choices in every])
    for interactions, learns in ((1000, True), (0, False)):
        controller = make("bayes", seed=0, interactions=interactions)
        for choices in told:
            controller._observe(choices, {}, ok(SPACE.decode(choices), value(choices)))
        mean, _ = controller._fit()
        fit = np.corrcoef(controller._features(every) @ mean, truth)[0, 1]
        assert (fit > 0.9) == learns and (learns or fit < 0.3), (interactions, fit)


def test_the_optuna_gp_sampler_proposes_and_resumes() -> None:
    original = make("optuna-gp", seed=2)
    for _ in range(12):
        proposal = original.ask()
        original.tell(proposal.id, ok(proposal.arch))
    state = json.loads(json.dumps(original.state_dict()))
    resumed = make("optuna-gp", seed=7)
    resumed.load_state_dict(state)
    assert str(resumed.ask().arch) == str(original.ask().arch)


def test_optuna_multi_objective_samplers_tell_accuracy_and_macs() -> None:
    controller = make("optuna-nsga2", seed=0, population_size=4)
    search(controller, 10)
    trials = controller._study.get_trials()
    assert all(len(t.values) == 2 and t.values[1] > 1000 for t in trials if t.values)  # (accuracy, MACs)


@pytest.mark.parametrize("name", ["random", "evolution", "nsga2", pytest.param("ppo", marks=pytest.mark.slow),
                                  "bayes", "optuna-tpe"])
def test_a_search_keeps_finding_new_architectures(name: str) -> None:
    """Re-proposals must not stall a search: on this 512-point space each controller evaluates 200 distinct
    architectures within 800 asks. PPO (at a learning rate that makes it converge in 64 trials) used to
    collapse onto about 65 and spin on them; NSGA-II's children repeated known architectures."""
    controller = make(name, **FAST.get(name, {}), **SMALL.get(name, {}))
    assert len(search(controller, 200)) == 200
    if name == "ppo":
        assert controller.explored > 0 and controller.updates >= 20  # it collapsed, explored, and kept learning
