"""Search efficiency of the controllers: on the real MnasNet space with a surrogate instead of training, or
on any space with a table of known results (``--table``, as ``nas search --evaluator table`` reads one).

Surrogate objective: real analytic MACs (``nas.core.cost`` at the space's target resolution) and
a fixed accuracy surrogate, documented in :class:`Surrogate`; the reward is the
space's own (EfficientNet's soft ``ACC × (MACs/400M)^−0.07``). Every arm is run
sequentially (one trial in flight) for the largest budget; smaller budgets are
prefixes. Duplicates are looked up, not re-evaluated, for every arm (ours through
``Proposal.cached``; Optuna's through the same cache), so a budget counts distinct
evaluations; an arm stops after 5 x budget asks (it has converged onto known
architectures) and keeps its best from there on. Peers: Optuna's TPESampler (on the reward) and NSGAIISampler (on
accuracy ↑, MACs ↓), over the same free categorical decisions (option indices), driven directly; the
``*-controller`` arms are the same samplers through nas's controller interface.

    python scripts/bench_controllers.py                 # 10 seeds, budgets 100/300/1000
    python scripts/bench_controllers.py --space nas_bench_macro --table nas-bench-macro.csv --budgets 400
    python scripts/bench_controllers.py --space nas-bench-201.space.yaml --table nas-bench-201.csv --budgets 400
    python scripts/bench_controllers.py --seeds 3 --overhead-trials 2000   # quick look
    python scripts/bench_controllers.py --seeds 1 --budgets 10 --arms random --overhead-trials 2000 \
        --overhead-arms ppo,ppo-blas-threads,bayes,bayes-blas-threads --busy-cores 2   # as in a search

Overhead is printed in ms per ask+tell and as a share of the cheapest trial a search schedules
(``--cheapest-trial-s``); the bar is 1 %.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

import controllers
from nas.core import cost, reward
from nas.core.arch import Architecture
from nas.core.result import TrialResult
from nas.space import SearchSpace, load
from nas.training.evaluate import Task
from nas.training.table import ResultTable

REFERENCE = (0.6, 1.0e9)  # hypervolume reference point: (accuracy, MACs)
CHEAPEST_TRIAL_S = 31.2
"""Seconds per trial of the README's small CPU search (docs/benchmarks.md): the cheapest trial nas schedules
on real data; a controller's ask+tell should stay under 1 % of it."""


class Surrogate:
    """Proxy accuracy as a fixed function of the decisions, with interactions and noise.

    ``acc = 0.75 + 0.06·tanh(ln(MACs / 300M))``  (capacity, diminishing returns)
    ``    + Σ_i main[i][c_i]``                    (each option's own effect, N(0, 0.004))
    ``    + Σ_i pair[i][c_i, c_{i+1}]``           (neighbouring decisions interact, N(0, 0.003))
    ``    + N(0, 0.002)``                         (evaluation noise, drawn per evaluation)

    The tables are drawn once from ``numpy.random.default_rng(2019)``, so the
    landscape is the same in every run and for every arm; only the noise depends
    on the run's seed. With the soft reward the optimum trades accuracy against
    MACs (the capacity slope equals the −0.07 exponent near 300–400 M MACs).
    """

    def __init__(self, space: SearchSpace, *, table_seed: int = 2019) -> None:
        tables = np.random.default_rng(table_seed)
        sizes = [len(d) for d in space.decisions]
        self.space = space
        self.main = [tables.normal(0, 0.004, n) for n in sizes]
        self.pair = [tables.normal(0, 0.003, (a, b)) for a, b in zip(sizes, sizes[1:])]

    def __call__(self, choices: tuple[int, ...], noise: np.random.Generator) -> tuple[float, int]:
        macs = cost.count(self.space.decode(choices), self.space.target_resolution).macs
        acc = 0.75 + 0.06 * np.tanh(np.log(macs / 300e6))
        acc += sum(table[c] for table, c in zip(self.main, choices))
        acc += sum(table[a, b] for table, a, b in zip(self.pair, choices, choices[1:]))
        return float(acc + noise.normal(0, 0.002)), macs


def _reward(space: SearchSpace, acc: float, macs: int) -> float:
    spec = space.reward
    return reward.compute(spec.kind, acc, macs, target=spec.target_macs, w=spec.w, alpha=spec.alpha, beta=spec.beta)


Trace = list[tuple[float, float, float]]  # (accuracy, macs, reward) per distinct evaluation


Objective = Callable[[Architecture, tuple[int, ...], np.random.Generator], tuple[float, int, float]]
"""(architecture, its choices, the run's noise) -> (accuracy, MACs, reward)."""


def surrogate_objective(space: SearchSpace, surrogate: Surrogate) -> Objective:
    def objective(arch: Architecture, choices: tuple[int, ...], noise: np.random.Generator) -> tuple[float, int, float]:
        acc, macs = surrogate(choices, noise)
        return acc, macs, _reward(space, acc, macs)
    return objective


def table_objective(space: SearchSpace, table: ResultTable) -> Objective:
    """The table's result for an architecture, scored with the space's reward (as ``--evaluator table``)."""
    task = Task.from_space(space)

    def objective(arch: Architecture, choices: tuple[int, ...], noise: np.random.Generator) -> tuple[float, int, float]:
        result = table.result(arch, task)
        if not result.ok:
            raise SystemExit(f"error: {result.error}")
        return result.accuracy, result.macs, result.reward
    return objective


def run_ours(name: str, space: SearchSpace, objective: Objective, seed: int, budget: int,
             **options: object) -> Trace:
    """Sequential ask/tell until ``budget`` distinct evaluations; re-proposals of an evaluated architecture
    (``Proposal.cached``) are not counted. A run that asks 5 x budget times without reaching its budget has
    stalled (it is marked so by a shorter trace)."""
    controller = controllers.create(name, space, seed=seed, **options)
    noise, trace = np.random.default_rng(10_000 + seed), []
    for _ in range(5 * budget):
        if len(trace) >= budget:
            break
        proposal = controller.ask()
        if not proposal.needs_training:
            continue
        acc, macs, r = objective(proposal.arch, proposal.choices, noise)
        controller.tell(proposal.id, TrialResult(arch=str(proposal.arch), accuracy=acc, macs=macs, reward=r))
        trace.append((acc, macs, r))
    return trace


def run_optuna(kind: str, space: SearchSpace, objective: Objective, seed: int, budget: int) -> Trace:
    """Optuna used directly, as a user would: one categorical parameter per free decision."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "tpe":
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    else:
        study = optuna.create_study(directions=["maximize", "minimize"],
                                    sampler=optuna.samplers.NSGAIISampler(seed=seed))
    noise, trace, seen = np.random.default_rng(10_000 + seed), [], {}
    free = [d for d in space.decisions if len(d) > 1]
    for _ in range(5 * budget):
        if len(trace) >= budget:
            break
        trial = study.ask()
        picked = {d.name: trial.suggest_categorical(d.name, list(range(len(d)))) for d in free}
        choices = tuple(picked.get(d.name, 0) for d in space.decisions)
        if choices not in seen:
            seen[choices] = objective(space.decode(choices), choices, noise)
            trace.append(seen[choices])
        acc, macs, r = seen[choices]
        study.tell(trial, r if kind == "tpe" else (acc, macs))
    return trace


def best_curve(trace: Trace, length: int) -> np.ndarray:
    """Best reward after each evaluation; a run that stopped early (5 x budget asks, all duplicates:
    the search has converged) keeps its last best."""
    curve = np.maximum.accumulate([r for _, _, r in trace])
    return np.concatenate([curve, np.full(length - len(curve), curve[-1])])


def hypervolume(trace: Trace, n: int) -> float:
    """Area (accuracy × GMACs) dominated by the first ``n`` evaluations, up to :data:`REFERENCE`."""
    return reward.hypervolume_2d([(a, m / 1e9) for a, m, _ in trace[:n]], (REFERENCE[0], REFERENCE[1] / 1e9))


# Overhead references, each measured in lockstep with the controller it is read against.
REFERENCES = {"ppo-blas-threads": "ppo", "bayes-blas-threads": "bayes"}


def overhead_controller(name: str, space: SearchSpace) -> controllers.Controller:
    """A controller by name, or a reference: ``X-blas-threads`` (X with numpy's BLAS on its default
    threads inside ask and tell; OpenMP, torch's, still on one)."""
    controller = controllers.create(name.removesuffix("-blas-threads"), space, seed=0, reevaluate=True)
    if name.endswith("-blas-threads"):
        pools = ThreadpoolController()
        controller._one_thread = lambda: pools.limit(limits=1, user_api="openmp")  # type: ignore[method-assign]
    return controller


def _train_forever() -> None:
    """A stand-in for one trial's training: a small convolution trained on one torch thread (what a
    1-CPU Ray trial gets), forever."""
    torch.set_num_threads(1)
    layer, batch = torch.nn.Conv2d(32, 32, 3, padding=1), torch.randn(8, 32, 32, 32)
    while True:
        layer(batch).square().mean().backward()


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` processes training beside the measurement, as a search's trials do beside its driver."""
    workers = [multiprocessing.get_context("spawn").Process(target=_train_forever, daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()


def overhead_ms(names: list[str], space: SearchSpace, objective: Objective, trials: int,
                window: int = 500) -> dict[str, float]:
    """Mean ask+tell time (evaluation excluded) over the last ``window`` of ``trials`` told trials, per
    controller. Several names step in lockstep, one ask+tell each in turn, so a drift in the machine's
    speed lands on all of them alike (a ratio of two runs one after the other can flip with it).
    Names may be :data:`REFERENCES` (see :func:`overhead_controller`)."""
    running = {name: overhead_controller(name, space) for name in names}
    noise = {name: np.random.default_rng(0) for name in names}
    spent = dict.fromkeys(names, 0.0)
    for told in range(1, trials + 1):
        for name, controller in running.items():
            start = time.perf_counter()
            proposal = controller.ask()
            asked = time.perf_counter()
            if not proposal.needs_training:  # a re-proposal: nothing to tell
                if told > trials - window:
                    spent[name] += asked - start
                continue
            acc, macs, r = objective(proposal.arch, proposal.choices, noise[name])
            result = TrialResult(arch=str(proposal.arch), accuracy=acc, macs=macs, reward=r)
            before_tell = time.perf_counter()
            controller.tell(proposal.id, result)
            if told > trials - window:
                spent[name] += (asked - start) + (time.perf_counter() - before_tell)
    return {name: 1e3 * total / min(window, trials) for name, total in spent.items()}


def surrogate_report(traces: dict[str, list[Trace]], budgets: list[int]) -> None:
    """Per arm, medians over seeds: best reward and hypervolume (as a ratio to random search's) at each
    budget, and evaluations until random search's median best at the largest budget."""
    top = max(budgets)
    target = statistics.median(best_curve(t, top)[top - 1] for t in traces["random"])
    random_hv = {n: statistics.median(hypervolume(t, n) for t in traces["random"]) for n in budgets}
    print(f"\nrandom search's median best reward at {top} evaluations: {target:.4f}")
    header = ["arm", "seeds"] + [f"best@{n}" for n in budgets] + [f"HV@{n} / random" for n in budgets]
    header += [f"evals to random@{top}"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for arm, runs in traces.items():
        curves = [best_curve(t, top) for t in runs]
        row = [arm, str(len(runs))]
        row += [f"{statistics.median(c[n - 1] for c in curves):.4f}" for n in budgets]
        row += [f"{statistics.median(hypervolume(t, n) for t in runs) / random_hv[n]:.3f}" for n in budgets]
        reach = [int(np.argmax(c >= target)) + 1 if c[-1] >= target else top + 1 for c in curves]
        median_reach = statistics.median(reach)
        row.append(f"{median_reach:.0f}" if median_reach <= top else f">{top}")
        print("| " + " | ".join(row) + " |")


def table_report(space: SearchSpace, table: ResultTable, traces: dict[str, list[Trace]], budgets: list[int]) -> None:
    """Per arm, medians over seeds (with the interquartile range): evaluations until the table's best, its
    top 0.1 % and top 1 % by the space's reward; the best reward after 50/100/200 evaluations; how many
    seeds reached the best; how many stalled (re-proposed known architectures until 5 x budget asks)."""
    task = Task.from_space(space)
    rewards = np.sort([table.result(Architecture.parse(arch), task).reward for arch in table.rows])[::-1]
    top = max(budgets)
    marks = {"best": rewards[0], "top 0.1 %": rewards[max(0, int(len(rewards) * 0.001) - 1)],
             "top 1 %": rewards[max(0, int(len(rewards) * 0.01) - 1)]}
    print(f"\ntable {table.source}: {len(rewards)} architectures; best reward {rewards[0]:.4f}, "
          f"top 0.1 % >= {marks['top 0.1 %']:.4f}, top 1 % >= {marks['top 1 %']:.4f}; budget {top} evaluations")
    steps = [n for n in (50, 100, 200) if n <= top]
    header = ["arm", "seeds", *[f"evals to {m} (median [IQR])" for m in marks], "reached best",
              *[f"best@{n}" for n in steps], "stalled"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for arm, runs in traces.items():
        row = [arm, str(len(runs))]
        for mark in marks.values():
            reach = [next((i + 1 for i, (_, _, r) in enumerate(t) if r >= mark - 1e-12), math.inf) for t in runs]
            q1, median, q3 = np.percentile(reach, [25, 50, 75], method="inverted_cdf")
            row.append(f"{_count(median)} [{_count(q1)}–{_count(q3)}]")
        reached = sum(any(r >= marks["best"] - 1e-12 for _, _, r in t) for t in runs)
        row.append(f"{reached}/{len(runs)}")
        row += [f"{statistics.median(best_curve(t, top)[n - 1] for t in runs):.4f}" for n in steps]
        row.append(f"{sum(len(t) < top for t in runs)}/{len(runs)}")
        print("| " + " | ".join(row) + " |")


def _count(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else "never"


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="search_spaces/mnasnet.yaml")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--ppo-seeds", type=int, default=None, help="fewer seeds for the PPO arm (default: --seeds)")
    parser.add_argument("--budgets", default="100,300,1000")
    parser.add_argument("--arms", default="random,evolution,ppo,nsga2,bayes,optuna-tpe,optuna-nsga2",
                        help="arms to run; one of ours with options as name:key=value[:key=value], e.g. ppo:epochs=4")
    parser.add_argument("--overhead-trials", type=int, default=10_000)
    parser.add_argument("--overhead-arms", default="random,evolution,ppo,nsga2,bayes",
                        help="controllers whose ask+tell time is measured (Optuna's grow with the run: see docs); "
                             "references: ppo-blas-threads and bayes-blas-threads (numpy's BLAS on its default "
                             "threads)")
    parser.add_argument("--cheapest-trial-s", type=float, default=CHEAPEST_TRIAL_S,
                        help="the cheapest trial a search schedules, in seconds: overhead is reported as a share "
                             f"of it (default {CHEAPEST_TRIAL_S:g}: one trial of the README's CPU search)")
    parser.add_argument("--busy-cores", type=int, default=0,
                        help="processes training a small convolution on one thread each while the overhead "
                             "is measured, as a search's trials do (default: the machine otherwise idle)")
    parser.add_argument("--table", default=None,
                        help="a table of known results (as --evaluator table reads) instead of the surrogate: "
                             "prints evaluations to the table's best, top 0.1 %% and top 1 %%")
    args = parser.parse_args()
    space, budgets = load(args.space), [int(b) for b in args.budgets.split(",")]
    top = max(budgets)
    table = ResultTable.read(args.table, space) if args.table else None
    surrogate = table_objective(space, table) if table else surrogate_objective(space, Surrogate(space))
    arms: dict[str, Callable[[int], Trace]] = {
        "random": lambda s: run_ours("random", space, surrogate, s, top),
        "evolution": lambda s: run_ours("evolution", space, surrogate, s, top),
        "ppo": lambda s: run_ours("ppo", space, surrogate, s, top),
        "nsga2": lambda s: run_ours("nsga2", space, surrogate, s, top),
        "bayes": lambda s: run_ours("bayes", space, surrogate, s, top),
        "optuna-tpe-controller": lambda s: run_ours("optuna-tpe", space, surrogate, s, top),
        "optuna-gp-controller": lambda s: run_ours("optuna-gp", space, surrogate, s, top),
        "optuna-nsga3-controller": lambda s: run_ours("optuna-nsga3", space, surrogate, s, top),
        "optuna-tpe": lambda s: run_optuna("tpe", space, surrogate, s, top),
        "optuna-nsga2": lambda s: run_optuna("nsga2", space, surrogate, s, top),
    }
    traces: dict[str, list[Trace]] = {}
    for arm in args.arms.split(","):
        seeds = args.ppo_seeds if arm.startswith("ppo") and args.ppo_seeds else args.seeds
        start = time.perf_counter()
        if ":" in arm:   # one of ours with options, e.g. ppo:epochs=4:batch_size=16
            name, *pairs = arm.split(":")
            options = {key: _number(value) for key, value in (pair.split("=", 1) for pair in pairs)}
            traces[arm] = [run_ours(name, space, surrogate, seed, top, **options) for seed in range(seeds)]
        else:
            traces[arm] = [arms[arm](seed) for seed in range(seeds)]
        print(f"# {arm}: {seeds} seeds in {time.perf_counter() - start:.0f} s", flush=True)

    if table is not None:
        table_report(space, table, traces, budgets)
    else:
        surrogate_report(traces, budgets)

    if args.overhead_trials:
        print(f"\nask+tell overhead at {args.overhead_trials} told trials (mean of the last 500, evaluation "
              f"excluded), cores busy training: {args.busy_cores}")
        print(f"| controller | ms per ask+tell | share of a {args.cheapest_trial_s:g} s trial |\n|---|---|---|")
        arms = args.overhead_arms.split(",")
        groups: dict[str, list[str]] = {}   # a controller and its references, measured in lockstep
        for name in arms:
            groups.setdefault(REFERENCES.get(name, name), []).append(name)
        spent: dict[str, float] = {}
        with busy_cores(args.busy_cores):
            for group in groups.values():
                spent.update(overhead_ms(group, space, surrogate, args.overhead_trials))
        for name in arms:
            lockstep = len(groups[REFERENCES.get(name, name)]) > 1
            share = spent[name] / 1e3 / args.cheapest_trial_s
            print(f"| {name}{' (lockstep)' if lockstep else ''} | {spent[name]:.2f} | {share:.3%} |")
        for reference, base in REFERENCES.items():
            if reference in spent and base in spent:
                print(f"{reference} / {base}: {spent[reference] / spent[base]:.2f}x (in lockstep)")


if __name__ == "__main__":
    main()
