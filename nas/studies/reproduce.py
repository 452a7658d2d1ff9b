"""``nas reproduce``: the B0 search end to end, in one run folder, one phase after another.

1. **search** the space on the proxy (``RUN/search``, a normal search run: dashboard, resume);
2. **retrain** the ``top_k`` found architectures (best reward) and the space's reference points
   (EfficientNet-B0, MnasNet-A1, ...) with a longer recipe and paired seeds (``RUN/retrain/*``, each a
   ``nas train`` folder), adding seeds while a comparison is undecided (:func:`compare_sequentially`);
3. **compare** them at matched multiply-adds: for each reference, the best found architecture (by
   reward) that costs no more; the mean per-seed difference, its t interval, and a verdict;
4. **scale** the winner and the first reference by compound scaling (the preset's φ, the paper's α β γ)
   and train both families the same way (``RUN/scale/*``);
5. **report**: ``RUN/reproduction.{md,json,png,html}``, whose first line answers the question.

Every phase keeps its results in the run folder, so the command started again continues where it was
stopped (a search resumes, a training resumes from its last epoch, finished work is not repeated).
The search and training steps are parameters, so the orchestration is testable without training.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from nas import space as spaces
from nas.core import cost, scaling
from nas.core.arch import Architecture
from nas.core.errors import NasError
from nas.settings import ProxySettings, ReproduceSettings, RunPlace, SearchSettings, TrainSettings
from nas.studies.reproduce_report import write_report

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"trials": 16, "top_k": 1, "retrain_seeds": 3, "max_seeds": 6, "compare_minutes": 45, "phis": (),
            "resources": {"concurrency": 2},
            "proxy": {"resolution": 16, "epochs": 2, "batch_size": 64, "max_train_samples": 2000,
                      "max_val_samples": 1000, "bn_recalibration_batches": 8},
            "retrain": {"resolution": 16, "epochs": 3, "batch_size": 64, "max_train_samples": 4000,
                        "warmup_epochs": 0.5}},
    "gpu": {"trials": 200, "top_k": 3, "retrain_seeds": 3, "max_seeds": 10, "compare_minutes": 60, "phis": (1, 2),
            "resources": {"concurrency": 4, "gpus_per_trial": 0.25, "cpus_per_trial": 2},
            "proxy": {"bn_recalibration_batches": 8},
            "retrain": {"epochs": 20, "batch_size": 256, "warmup_epochs": 1.0, "drop_connect": 0.1}},
}
"""What each preset changes; the user's flags win. ``retrain`` changes the space's proxy recipe; its test
split is never capped (``max_val_samples`` unset): the comparison reads the whole of it."""

CONFIDENCE = 0.95
"""Level of the paired-difference interval the verdicts and the sequential rule read."""

MATCHED_SLACK = 1.05
"""A found architecture is compared with a reference when it costs at most this many times as much: in
MACs, or in latency on the target device when the reward has a latency table (``--latency-table``; the
``matched_on`` field of each comparison names the cost)."""

CPU_CAVEAT = ("A CPU-sized run: small images, a few thousand training images, a few epochs. It "
              "shows the pipeline and, at a stated confidence, whether the search's network beats the references "
              "on this small-image proxy; it says nothing about ImageNet accuracy.")

Search = Callable[[SearchSettings, TextIO], dict[str, Any]]
Train = Callable[[Architecture, TrainSettings, Path, TextIO], dict[str, Any]]


class ReproduceError(NasError):
    """A reproduction that cannot go on (a search with no successful trial, a phase with nothing to train)."""


def default_search(settings: SearchSettings, out: TextIO) -> dict[str, Any]:
    from nas.runs import search

    if (settings.run_dir() / "trials.db").exists():
        return search.run(resume_from=settings.run_dir(), changes={"trials": settings.trials}, out=out)
    return search.run(settings, out=out)


def default_train(arch: Architecture, settings: TrainSettings, folder: Path, out: TextIO) -> dict[str, Any]:
    from nas.runs import full_training

    if not (folder / full_training.SETTINGS_FILE).exists():
        full_training.start(arch, settings)
    return full_training.run(folder, out=out, progress_seconds=60)


def run(settings: ReproduceSettings, *, search: Search = default_search, train: Train = default_train,
        out: TextIO = sys.stdout, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """All five phases; returns the report (also written into the run folder)."""
    root = settings.place.run_dir()
    root.mkdir(parents=True, exist_ok=True)
    space = spaces.load(settings.space)
    references = spaces.reference_points(space)
    say = lambda text: print(f"[reproduce] {text}", file=out, flush=True)  # noqa: E731

    say(f"1/5 search: {settings.trials} trials of {settings.controller} on {space.name} ({settings.evaluator} "
        f"evaluator) -> {root / 'search'}")
    search_settings = SearchSettings(space=settings.space, controller=settings.controller, trials=settings.trials,
                                     seed=settings.seed, place=RunPlace(name="search", storage=str(root)),
                                     resources=settings.resources, proxy=settings.proxy, reward=settings.reward,
                                     evaluator=settings.evaluator, supernet=settings.supernet)
    summary = search(search_settings, out)
    found = _top(root / "search", settings.top_k)
    if not found:
        raise ReproduceError(f"the search in {root / 'search'} has no successful trial to retrain")

    contenders = {f"found-{i + 1}": Architecture.parse(row.arch) for i, row in enumerate(found)}
    contenders.update(references)
    say(f"2/5 retrain {len(set(contenders.values()))} architectures with paired seeds ({settings.retrain_seeds} "
        f"first, up to {max(settings.max_seeds, settings.retrain_seeds)} while a verdict is undecided; "
        f"{_recipe(settings.retrain)}) -> {root / 'retrain'}")
    costs, matched_on = contender_costs(contenders, space, settings.reward.latency_table)
    trainer = _SeedTrainer(contenders, settings, root / "retrain", train, out, clock)
    comparisons, retrained, stopped = compare_sequentially(
        list(contenders), list(references), costs, trainer, matched_on=matched_on,
        first_seeds=settings.retrain_seeds, max_seeds=settings.max_seeds,
        budget_seconds=None if settings.compare_minutes is None else 60 * settings.compare_minutes,
        margin=settings.margin_points / 100, same=contenders, say=say, spent=lambda: trainer.spent,
        estimate=trainer.estimate)
    rows = [_summary_row(name, arch, retrained[name], space) for name, arch in contenders.items()]

    say(f"3/5 compare at matched {'latency' if matched_on == 'latency' else 'multiply-adds'} (paired seeds; "
        f"{stopped})")
    winner = max((r for r in rows if r["name"].startswith("found-")), key=lambda r: r["mean"])

    scaled: list[dict[str, Any]] = []
    if settings.phis and references:
        base_name = next(iter(references))
        say(f"4/5 compound scaling (phi = {', '.join(map(str, settings.phis))}; alpha, beta, gamma = "
            f"{', '.join(map(str, scaling.PAPER_COEFFICIENTS))}) of {winner['name']} and {base_name}")
        for name, arch in ((winner["name"], contenders[winner["name"]]), (base_name, references[base_name])):
            scaled.append({**_summary_row(name, arch, retrained[name], space), "phi": 0, "family": name})
            for phi in settings.phis:
                member = scaling.compound(arch, phi=phi, alpha=scaling.PAPER_COEFFICIENTS[0],
                                          beta=scaling.PAPER_COEFFICIENTS[1], gamma=scaling.PAPER_COEFFICIENTS[2],
                                          base_resolution=space.target_resolution)
                recipe = settings.retrain.override(resolution=scaling.proxy_resolution(
                    settings.retrain.resolution, member.resolution_mult, divisor=4))
                where = root / "scale" / f"{name}-phi{phi}-s0"
                run = train(member.arch, _train_settings(settings, recipe, 0, where), where, out)
                row = _summary_row(f"{name}-phi{phi}", member.arch, [run], space, resolution=member.resolution)
                scaled.append({**row, "phi": phi, "family": name})
    else:
        say("4/5 compound scaling: skipped (no reference point or no --scale-phis)")

    say("5/5 report")
    tested = next((r["test_images"] for runs in retrained.values() for r in runs if r.get("test_images")), None)
    recipe = _recipe(settings.retrain, tested)
    report = {"first_line": answer(comparisons, recipe=recipe), "space": space.name, "preset": settings.preset,
              "caveat": CPU_CAVEAT if settings.preset == "cpu" else "", "search": _search_summary(summary),
              "evaluator": settings.evaluator, "retrain_recipe": recipe,
              "seeds": max((len(r["accuracies"]) for r in rows), default=0), "first_seeds": settings.retrain_seeds,
              "stopped": stopped, "confidence": CONFIDENCE, "margin_points": settings.margin_points,
              "matched_on": matched_on, "architectures": rows, "comparisons": comparisons, "winner": winner["name"],
              "scaling": scaled, "settings": settings.model_dump(mode="json")}
    write_report(report, root, search_rows=_search_points(root / "search"))
    say(report["first_line"])
    return report


# ---------------------------------------------------------------- phases' pieces


def _top(run_dir: Path, k: int) -> list[Any]:
    from nas.runs.store import Store

    with Store.open_readonly(run_dir) as store:
        return store.trials(status="ok", order_by="reward", descending=True, limit=k)


def _search_points(run_dir: Path) -> list[tuple[float, float]]:
    from nas.runs.store import Store

    with Store.open_readonly(run_dir) as store:
        return [(row.macs, row.accuracy) for row in store.trials(status="ok") if row.macs and row.accuracy]


def _train_settings(settings: ReproduceSettings, recipe: ProxySettings, seed: int, where: Path) -> TrainSettings:
    # One seed fixes the initialization, the training subset, the batch order and the augmentation: two
    # networks trained with the same seed see the same images in the same order, which is what pairs them.
    return TrainSettings(seed=seed, device=settings.device, proxy=recipe,
                         place=RunPlace(name=where.name, storage=str(where.parent)))


class _SeedTrainer:
    """Trains contender NAME with seed S once (an architecture that is two contenders, once) and counts the
    seconds spent, so that the sequential rule can tell whether one more seed fits the budget."""

    def __init__(self, contenders: dict[str, Architecture], settings: ReproduceSettings, folder: Path,
                 train: Train, out: TextIO, clock: Callable[[], float]) -> None:
        self.contenders, self.settings, self.folder, self.train, self.out, self.clock = \
            contenders, settings, folder, train, out, clock
        self.results: dict[tuple[Architecture, int], dict[str, Any]] = {}
        self.seconds: dict[Architecture, list[float]] = {}
        self.spent = 0.0

    def __call__(self, name: str, seed: int) -> dict[str, Any]:
        arch = self.contenders[name]
        if (arch, seed) not in self.results:
            first = next(n for n, a in self.contenders.items() if a == arch)  # a reference found is kept as found-N
            where = self.folder / f"{first}-s{seed}"
            started = self.clock()
            result = self.train(arch, _train_settings(self.settings, self.settings.retrain, seed, where), where,
                                self.out)
            # a run finished before a restart returns at once: its recorded seconds still count
            spent = max(self.clock() - started, float(result.get("seconds") or 0.0))
            self.spent += spent
            self.seconds.setdefault(arch, []).append(spent)
            self.results[(arch, seed)] = result
        return self.results[(arch, seed)]

    def estimate(self, name: str, seed: int) -> float:
        """Seconds one more training of NAME is expected to take (its mean so far)."""
        arch = self.contenders[name]
        if (arch, seed) in self.results:
            return 0.0
        spent = self.seconds.get(arch) or [statistics.fmean(s) for s in self.seconds.values()] or [0.0]
        return statistics.fmean(spent)


def _summary_row(name: str, arch: Architecture, runs: list[dict[str, Any]], space: spaces.SearchSpace, *,
                 resolution: int | None = None) -> dict[str, Any]:
    accuracies = [r["test_accuracy"] for r in runs]
    price = cost.count(arch, resolution or space.target_resolution, num_classes=space.num_classes)
    return {"name": name, "arch": str(arch), "macs": price.macs, "params": price.params, "accuracies": accuracies,
            "mean": statistics.fmean(accuracies), "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0}


def contender_costs(contenders: dict[str, Architecture], space: Any, latency_table: str | None
                    ) -> tuple[dict[str, float], str]:
    """What each contender costs and in what: its latency on the target device predicted by
    ``latency_table``, else its multiply-adds at the space's target resolution."""
    if latency_table is not None:
        from nas.latency.table import load_table

        table = load_table(latency_table)
        return {name: table.predict(arch) for name, arch in contenders.items()}, "latency"
    return {name: float(cost.count(arch, space.target_resolution, num_classes=space.num_classes).macs)
            for name, arch in contenders.items()}, "MACs"


def matched(names: list[str], costs: dict[str, float], reference: str, *,
            slack: float = MATCHED_SLACK) -> str | None:
    """The found architecture compared with ``reference``: the best by search reward (``found-1`` first)
    among those costing at most ``slack`` × its cost. Chosen before any retraining is seen, so the
    comparison's own seeds do not pick the contender they then judge."""
    return next((n for n in names if n.startswith("found-") and costs[n] <= slack * costs[reference]), None)


def compare_sequentially(names: list[str], references: list[str], costs: dict[str, float],
                         trainer: Callable[[str, int], dict[str, Any]], *, first_seeds: int, max_seeds: int,
                         budget_seconds: float | None, margin: float, same: dict[str, Architecture] | None = None,
                         say: Callable[[str], None] = lambda text: None,
                         spent: Callable[[], float] | None = None,
                         estimate: Callable[[str, int], float] | None = None, matched_on: str = "MACs",
                         ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], str]:
    """Phases 2 and 3: every contender trained with seeds 0..first_seeds-1, then the sequential rule.

    Each reference is paired with one found architecture (:func:`matched`); seed S trains both with the
    same seed, so the difference is taken seed by seed. While a pair's interval straddles zero and does
    not lie within ±``margin`` (its verdict is "undecided"), seed S+1 trains that pair again — unless
    ``max_seeds`` are reached or the next seed would end past ``budget_seconds`` (measured from the first
    training). Returns the comparisons, every contender's results in seed order, and why it stopped.
    """
    spent = spent or (lambda: 0.0)
    estimate = estimate or (lambda name, seed: 0.0)
    same = same or {}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for seed in range(first_seeds):
        for name in names:
            results[name].append(trainer(name, seed))
    pairs = {ref: matched(names, costs, ref) for ref in references}
    most = max(max_seeds, first_seeds)

    def compared() -> list[dict[str, Any]]:
        return [paired_comparison(ref, found, results.get(found, []), results[ref], costs, margin,
                                  identical=found is not None and same.get(found) is not None
                                  and same.get(found) == same.get(ref), matched_on=matched_on)
                for ref, found in pairs.items()]

    seed = first_seeds
    while True:
        comparisons = compared()
        open_ = [c["reference"] for c in comparisons if c["verdict"] == "undecided"]
        if not open_:
            stopped = "every verdict decided"
            break
        if seed >= most:
            stopped = f"undecided at the most seeds allowed ({most})"
            break
        round_ = list(dict.fromkeys(name for ref in open_ for name in (pairs[ref], ref)))
        needed = sum(estimate(name, seed) for name in round_)
        if budget_seconds is not None and spent() + needed > budget_seconds:
            stopped = (f"undecided when the time budget ended ({spent() / 60:.0f} of {budget_seconds / 60:.0f} "
                       f"minutes spent; another seed needs about {needed / 60:.0f})")
            break
        say(f"seed {seed}: {', '.join(open_)} undecided; training {', '.join(round_)} with seed {seed}")
        for name in round_:
            results[name].append(trainer(name, seed))
        seed += 1
    return comparisons, results, stopped


# ---------------------------------------------------------------- the statistics of a paired comparison


def paired_interval(differences: list[float], confidence: float = CONFIDENCE) -> tuple[float, float | None,
                                                                                         float | None]:
    """Mean of the per-seed differences and its two-sided t interval (n - 1 degrees of freedom);
    ``None`` bounds with fewer than two seeds."""
    from scipy import stats

    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, None, None
    half = float(stats.t.ppf((1 + confidence) / 2, len(differences) - 1)) * statistics.stdev(differences) \
        / math.sqrt(len(differences))
    return mean, mean - half, mean + half


def verdict(low: float | None, high: float | None, margin: float) -> str:
    """beats / loses to (the interval excludes zero), matches (it lies within ±margin), else undecided."""
    if low is None or high is None:
        return "undecided"
    if low > 0:
        return "beats"
    if high < 0:
        return "loses to"
    if -margin <= low and high <= margin:
        return "matches"
    return "undecided"


def seeds_needed(differences: list[float], margin: float, confidence: float = CONFIDENCE,
                 most: int = 10_000) -> int | None:
    """Paired seeds the interval would need to decide, if the observed mean and spread were the truth:
    narrow enough to exclude zero, or to fit within ±margin, whichever comes first. ``None`` when it
    cannot be told (fewer than two seeds, a zero difference, or more than ``most``)."""
    from scipy import stats

    n = len(differences)
    if n < 2:
        return None
    mean, spread = abs(statistics.fmean(differences)), statistics.stdev(differences)
    target = max(mean, margin - mean)  # the half-width that would decide it either way
    if spread == 0:
        return n
    for m in range(n + 1, most + 1):
        if stats.t.ppf((1 + confidence) / 2, m - 1) * spread / math.sqrt(m) < target:
            return m
    return None


def paired_comparison(reference: str, found: str | None, found_runs: list[dict[str, Any]],
                      reference_runs: list[dict[str, Any]], costs: dict[str, float], margin: float, *,
                      identical: bool = False, matched_on: str = "MACs") -> dict[str, Any]:
    if found is None:
        return {"reference": reference, "found": None, "verdict": "no found architecture at or below its cost"}
    pairs = list(zip((r["test_accuracy"] for r in found_runs), (r["test_accuracy"] for r in reference_runs),
                     strict=False))
    differences = [0.0] * len(pairs) if identical else [f - r for f, r in pairs]
    mean, low, high = paired_interval(differences)
    if identical:  # the search found the reference itself: the same network, trained once
        low = high = 0.0
    decided = verdict(low, high, margin)
    return {"reference": reference, "found": found, "matched_on": matched_on, "cost_ratio": costs[found] / costs[reference],
            "verdict": decided, "difference": mean, "low": low, "high": high, "confidence": CONFIDENCE,
            "margin": margin, "seeds": len(pairs), "differences": differences, "identical": identical,
            "found_mean": statistics.fmean(f for f, _ in pairs), "reference_mean": statistics.fmean(r for _, r in pairs),
            "seeds_needed": seeds_needed(differences, margin) if decided == "undecided" else None}


def answer(comparisons: list[dict[str, Any]], *, recipe: str = "") -> str:
    """The report's first line, from the comparisons alone: the verdicts, their intervals and seeds, and
    the recipe they hold for."""
    tail = (f" Recipe: {recipe}; a small-image proxy, not ImageNet." if recipe else "")
    if not comparisons:
        return "No reference point of this space to compare with: see the retrained architectures below." + tail
    parts = []
    for c in comparisons:
        if c["found"] is None:
            parts.append(f"nothing found at or below {c['reference']}'s cost")
        elif c.get("identical"):
            parts.append(f"{c['found']} is {c['reference']} itself")
        else:
            parts.append(_clause(c))
    verdicts = {c["verdict"] for c in comparisons if c["found"] is not None}
    head = ("Yes: the search found architectures that beat the references at matched cost" if verdicts == {"beats"}
            else "No: at matched cost a reference beats the search's architectures" if "loses to" in verdicts
            else "Partly: the search's architectures beat or match the references at matched cost"
            if verdicts and verdicts <= {"beats", "matches"}
            else "Undecided: at matched cost the paired seeds cannot yet tell" if "undecided" in verdicts
            else "No: nothing the search found costs as little as a reference")
    return f"{head} — " + "; ".join(parts) + "." + tail


def _clause(c: dict[str, Any]) -> str:
    level = f"{100 * c['confidence']:.0f}%"
    interval = ("no interval from one seed" if c["low"] is None else
                f"{level} interval {100 * c['low']:+.2f} to {100 * c['high']:+.2f}")
    numbers = (f"{100 * c['difference']:+.2f} points, {interval}, {c['seeds']} paired seeds "
               f"({c['found_mean']:.4f} vs {c['reference_mean']:.4f})")
    where = f"at {c['cost_ratio']:.2f}x its {c['matched_on']}"
    if c["verdict"] == "undecided":
        needed = (f"about {c['seeds_needed']} seeds would decide it" if c["seeds_needed"] else
                  "too few seeds to estimate how many would decide it")
        return f"{c['found']} vs {c['reference']} {where}: undecided, {numbers}; {needed}"
    if c["verdict"] == "matches":
        return f"{c['found']} matches {c['reference']} {where}: {numbers}, within ±{_points(c['margin'])}"
    return f"{c['found']} {c['verdict']} {c['reference']} {where}: {numbers}"


def _points(fraction: float) -> str:
    return f"{100 * fraction:g} point{'' if round(100 * fraction, 9) == 1 else 's'}"


def _recipe(proxy: ProxySettings, test_images: int | None = None) -> str:
    tested = f"{test_images:,}" if test_images else proxy.max_val_samples or "all"
    return (f"{proxy.dataset} {proxy.resolution} px, {proxy.epochs} epochs, batch {proxy.batch_size}, "
            f"{proxy.max_train_samples or 'all'} training images, {tested} test images")


def _search_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {"run_dir": summary.get("run_dir"), "counts": summary.get("counts"),
            "best": (summary.get("best") or {}).get("arch")}

