"""``nas proxy-check``: is a proxy's ranking signal or seed noise?

Trains N architectures of a space (sampled, plus the space's reference points such as B0 and
MnasNet-A1) S times each with different seeds, on the proxy and, when given, on a more faithful
``against`` proxy (more epochs, more data), through the same Ray machinery as a search
(:mod:`nas.runs.candidates`: parallel, fractional GPUs, resumable, stored as a run the dashboard shows),
then reports the statistics of :mod:`nas.core.fidelity` with a table, a JSON file and a PNG.

Every trial's label names its proxy (a digest of the settings), architecture and seed, so checks of
several proxies can share one run folder: a second check with another proxy against the same
``against`` proxy trains only what is new.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from nas import space as spaces
from nas.core.arch import Architecture
from nas.core.atomic import write_atomic
from nas.core.fidelity import fidelity
from nas.core.result import Candidate, TrialResult
from nas.settings import ProxyCheckSettings, ProxySettings
from nas.studies.proxy_check_report import markdown, plot

Evaluate = Callable[..., list[TrialResult]]


def architectures(space: spaces.SearchSpace, count: int, seed: int) -> dict[str, Architecture]:
    """The space's reference points by name, then ``count`` distinct sampled ones by digest."""
    chosen = dict(spaces.reference_points(space))
    wanted = len(chosen) + count
    rng = np.random.default_rng(seed)
    seen = set(chosen.values())
    attempts = 0
    while len(chosen) < wanted and attempts < 100 * (count + 1):
        attempts += 1
        arch = space.sample(rng)
        if arch not in seen:
            seen.add(arch)
            chosen[f"arch-{arch.digest}"] = arch
    return chosen


def proxy_tag(proxy: ProxySettings) -> str:
    """A short, stable name for a proxy's settings (labels of its trials)."""
    text = json.dumps(proxy.model_dump(mode="json"), sort_keys=True)
    return "p" + hashlib.sha256(text.encode()).hexdigest()[:8]


def candidates_for(proxy: ProxySettings, archs: dict[str, Architecture], seeds: int) -> list[Candidate]:
    """Every (architecture, seed) on ``proxy``; the proxy is given whole (its lr resolved), so it does not
    depend on the run's stored proxy."""
    whole = {**proxy.model_dump(), "lr": proxy.learning_rate}
    tag = proxy_tag(proxy)
    return [Candidate(arch=arch, label=f"{tag}-{name}-s{seed}", proxy_changes=whole, seed=seed)
            for name, arch in archs.items() for seed in range(seeds)]


def run(settings: ProxyCheckSettings, *, evaluate: Evaluate | None = None, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Train, compare, and write ``proxy-check.{json,md,png}`` into the run folder; returns the report."""
    if evaluate is None:
        from nas.runs.candidates import evaluate_many as evaluate
    space = spaces.load(settings.space)
    archs = architectures(space, settings.archs, settings.seed)
    proxies = {"proxy": settings.proxy} | ({"against": settings.against} if settings.against else {})
    todo = [c for role, proxy in proxies.items() for c in candidates_for(proxy, archs, settings.seeds_for(role))]
    run_dir = settings.place.run_dir()
    against = f" ({settings.seeds_for('against')} on the --against proxy)" if settings.against else ""
    print(f"[proxy-check] {len(archs)} architectures x {settings.seeds} seeds{against} = {len(todo)} trainings; "
          f"run folder {run_dir} (watch: nas dashboard {run_dir})", file=out, flush=True)
    results = evaluate(todo, run_dir=run_dir, space_path=settings.space, proxy=settings.proxy,
                       reward=settings.reward, resources=settings.resources, seed=settings.seed, out=out)
    by_label = {c.label: r for c, r in zip(todo, results)}
    report = summarize(settings, archs, by_label)
    folder = run_dir
    write_atomic(folder / "proxy-check.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_atomic(folder / "proxy-check.md", markdown(report))
    plot(report, folder / "proxy-check.png")
    print(markdown(report), file=out, flush=True)
    return report


def summarize(settings: ProxyCheckSettings, archs: dict[str, Architecture],
              results: dict[str, TrialResult]) -> dict[str, Any]:
    """Per architecture and proxy: accuracies by seed, mean, std; the statistics; the costs."""
    proxies = {"proxy": settings.proxy} | ({"against": settings.against} if settings.against else {})
    accuracies: dict[str, dict[str, list[float]]] = {role: {} for role in proxies}
    seconds: dict[str, list[float]] = {role: [] for role in proxies}
    failed: list[str] = []
    rows = []
    for name, arch in archs.items():
        row: dict[str, Any] = {"name": name, "arch": str(arch)}
        for role, proxy in proxies.items():
            values = []
            for seed in range(settings.seeds_for(role)):
                result = results.get(f"{proxy_tag(proxy)}-{name}-s{seed}")
                if result is None or not result.ok or result.accuracy is None:
                    failed.append(f"{role} {name} seed {seed}: {result.error if result else 'missing'}")
                    continue
                values.append(result.accuracy)
                seconds[role].append(result.train_seconds)
                row["macs"] = result.macs
            accuracies[role][name] = values
            row[role] = {"accuracies": values, "mean": statistics.fmean(values) if values else None,
                         "std": statistics.stdev(values) if len(values) >= 2 else None}
        rows.append(row)
    stats = fidelity(accuracies["proxy"], accuracies.get("against"))
    return {"space": settings.space, "proxy": settings.proxy.model_dump(mode="json"),
            "against": settings.against.model_dump(mode="json") if settings.against else None,
            "seeds": settings.seeds, "against_seeds": settings.seeds_for("against") if settings.against else None,
            "statistics": stats.to_dict(), "architectures": rows, "failed": failed,
            "seconds_per_trial": {role: statistics.median(v) if v else None for role, v in seconds.items()},
            "chance": 1 / _classes(settings.proxy)}


def _classes(proxy: ProxySettings) -> int:
    from nas.training import data

    return data.num_classes(proxy.dataset, proxy.data_dir)

