"""``nas reproduce``: the B0 search end to end, in one run folder, one phase after another.

1. **search** the space on the proxy (``RUN/search``, a normal search run: dashboard, resume);
2. **retrain** the ``top_k`` found architectures (best reward) and the space's reference points
   (EfficientNet-B0, MnasNet-A1, ...) with a longer recipe and several seeds (``RUN/retrain/*``,
   each a ``nas train`` folder);
3. **compare** them at matched multiply-adds: for each reference, the best found architecture that
   costs no more; the difference of mean accuracies and its standard error;
4. **scale** the winner and the first reference by compound scaling (φ = 1, 2, the paper's α β γ) and
   train both families the same way (``RUN/scale/*``);
5. **report**: ``RUN/reproduction.{md,json,png,html}``, whose first line answers the question.

Every phase keeps its results in the run folder, so the command started again continues where it was
stopped (a search resumes, a training resumes from its last epoch, finished work is not repeated).
The search and training steps are parameters, so the orchestration is testable without training.
"""

from __future__ import annotations

import math
import statistics
import sys
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
    "cpu": {"trials": 16, "top_k": 1, "retrain_seeds": 2, "phis": (1,), "resources": {"concurrency": 2},
            "proxy": {"resolution": 16, "epochs": 2, "batch_size": 64, "max_train_samples": 2000,
                      "max_val_samples": 1000, "bn_recalibration_batches": 8},
            "retrain": {"resolution": 16, "epochs": 2, "batch_size": 64, "max_train_samples": 4000,
                        "max_val_samples": 2000, "warmup_epochs": 0.5}},
    "gpu": {"trials": 200, "top_k": 3, "retrain_seeds": 2, "phis": (1, 2),
            "resources": {"concurrency": 4, "gpus_per_trial": 0.25, "cpus_per_trial": 2},
            "proxy": {"bn_recalibration_batches": 8},
            "retrain": {"epochs": 20, "batch_size": 256, "warmup_epochs": 1.0, "drop_connect": 0.1}},
}
"""What each preset changes; the user's flags win. ``retrain`` changes the space's proxy recipe."""

CPU_CAVEAT = ("A CPU-sized run: 16 px images, a few thousand training images, a few epochs. It shows the "
              "pipeline and whether the search beats random picks on this proxy; it cannot show ImageNet-level "
              "accuracy, and differences of a point or two between architectures are within its noise.")

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
        out: TextIO = sys.stdout) -> dict[str, Any]:
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
    say(f"2/5 retrain {len(set(contenders.values()))} architectures x {settings.retrain_seeds} seeds "
        f"({_recipe(settings.retrain)}) -> {root / 'retrain'}")
    trained: dict[Architecture, list[dict[str, Any]]] = {}
    for name, arch in contenders.items():  # a reference the search found itself is trained once, as found-N
        if arch not in trained:
            trained[arch] = _train_seeds(name, arch, settings, root / "retrain", train, out)
    retrained = {name: trained[arch] for name, arch in contenders.items()}
    rows = [_summary_row(name, arch, retrained[name], space) for name, arch in contenders.items()]

    say("3/5 compare at matched multiply-adds")
    comparisons = [compare(rows, reference) for reference in references]
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
                runs = _train_seeds(f"{name}-phi{phi}", member.arch, settings.changed(retrain=recipe.model_dump(),
                                                                                      retrain_seeds=1),
                                    root / "scale", train, out)
                row = _summary_row(f"{name}-phi{phi}", member.arch, runs, space, resolution=member.resolution)
                scaled.append({**row, "phi": phi, "family": name})
    else:
        say("4/5 compound scaling: skipped (no reference point or no --scale-phis)")

    say("5/5 report")
    report = {"first_line": answer(comparisons), "space": space.name, "preset": settings.preset,
              "caveat": CPU_CAVEAT if settings.preset == "cpu" else "", "search": _search_summary(summary),
              "evaluator": settings.evaluator,
              "retrain_recipe": _recipe(settings.retrain), "seeds": settings.retrain_seeds, "architectures": rows,
              "comparisons": comparisons, "winner": winner["name"], "scaling": scaled,
              "settings": settings.model_dump(mode="json")}
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


def _train_seeds(name: str, arch: Architecture, settings: ReproduceSettings, folder: Path, train: Train,
                 out: TextIO) -> list[dict[str, Any]]:
    runs = []
    for seed in range(settings.retrain_seeds):
        where = folder / f"{name}-s{seed}"
        train_settings = TrainSettings(seed=seed, device=settings.device, proxy=settings.retrain,
                                       place=RunPlace(name=where.name, storage=str(where.parent)))
        runs.append(train(arch, train_settings, where, out))
    return runs


def _summary_row(name: str, arch: Architecture, runs: list[dict[str, Any]], space: spaces.SearchSpace, *,
                 resolution: int | None = None) -> dict[str, Any]:
    accuracies = [r["test_accuracy"] for r in runs]
    price = cost.count(arch, resolution or space.target_resolution, num_classes=space.num_classes)
    return {"name": name, "arch": str(arch), "macs": price.macs, "params": price.params, "accuracies": accuracies,
            "mean": statistics.fmean(accuracies), "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0}


def compare(rows: list[dict[str, Any]], reference: str, *, slack: float = 1.05) -> dict[str, Any]:
    """The best found architecture costing at most ``slack`` × the reference's MACs, against the reference:
    difference of means, its standard error, and a verdict (beats / matches / loses, at 2 standard errors)."""
    ref = next(r for r in rows if r["name"] == reference)
    peers = [r for r in rows if r["name"].startswith("found-") and r["macs"] <= slack * ref["macs"]]
    if not peers:
        return {"reference": reference, "found": None, "verdict": "no found architecture at or below its cost"}
    best = max(peers, key=lambda r: r["mean"])
    difference = best["mean"] - ref["mean"]
    error = math.sqrt(best["std"] ** 2 / len(best["accuracies"]) + ref["std"] ** 2 / len(ref["accuracies"]))
    verdict = "beats" if difference > 2 * error and difference > 0 else \
        "loses to" if difference < -2 * error and difference < 0 else "matches"
    return {"reference": reference, "found": best["name"], "difference": difference, "standard_error": error,
            "macs_ratio": best["macs"] / ref["macs"], "verdict": verdict, "found_mean": best["mean"],
            "reference_mean": ref["mean"]}


def answer(comparisons: list[dict[str, Any]]) -> str:
    """The report's first line, from the comparisons alone."""
    if not comparisons:
        return "No reference point of this space to compare with: see the retrained architectures below."
    parts = []
    for c in comparisons:
        if c["found"] is None:
            parts.append(f"nothing found at or below {c['reference']}'s cost")
            continue
        parts.append(f"{c['found']} {c['verdict']} {c['reference']} at {c['macs_ratio']:.2f}x its MACs "
                     f"({c['found_mean']:.4f} vs {c['reference_mean']:.4f}, {100 * c['difference']:+.2f} points "
                     f"± {100 * c['standard_error']:.2f})")
    verdicts = {c["verdict"] for c in comparisons if c["found"] is not None}
    head = ("Yes: the search found architectures that beat the references at matched cost" if verdicts == {"beats"}
            else "Partly: the search's architectures beat or match the references at matched cost"
            if verdicts and verdicts <= {"beats", "matches"} else
            "No: at matched cost the search's architectures do not beat every reference")
    return f"{head} — " + "; ".join(parts) + "."


def _recipe(proxy: ProxySettings) -> str:
    return (f"{proxy.dataset} {proxy.resolution} px, {proxy.epochs} epochs, batch {proxy.batch_size}, "
            f"{proxy.max_train_samples or 'all'} training images")


def _search_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {"run_dir": summary.get("run_dir"), "counts": summary.get("counts"),
            "best": (summary.get("best") or {}).get("arch")}

