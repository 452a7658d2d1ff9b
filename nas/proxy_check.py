"""``nas proxy-check``: is a proxy's ranking signal or seed noise?

Trains N architectures of a space (sampled, plus the space's reference points such as B0 and
MnasNet-A1) S times each with different seeds, on the proxy and, when given, on a more faithful
``against`` proxy (more epochs, more data), through the same Ray machinery as a search
(:mod:`nas.candidates`: parallel, fractional GPUs, resumable, stored as a run the dashboard shows),
then reports the statistics of :mod:`nas.fidelity` with a table, a JSON file and a PNG.

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
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from nas import space as spaces
from nas.arch import Architecture
from nas.atomic import write_atomic
from nas.fidelity import fidelity
from nas.result import Candidate, TrialResult
from nas.settings import ProxyCheckSettings, ProxySettings

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
        from nas.candidates import evaluate_many as evaluate
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
    from nas import data

    return data.num_classes(proxy.dataset, proxy.data_dir)


def describe_proxy(proxy: dict[str, Any]) -> str:
    lr = proxy.get("lr")
    return (f"{proxy['dataset']} {proxy['resolution']} px, {proxy['epochs']} epochs, batch {proxy['batch_size']}"
            f"{f', lr {lr:g}' if lr else ''}, {proxy.get('max_train_samples') or 'all'} training images, "
            f"BN re-estimated on {proxy.get('bn_recalibration_batches', 0)} batches")


def markdown(report: dict[str, Any]) -> str:
    s = report["statistics"]
    lines = [f"Proxy: {describe_proxy(report['proxy'])}"]
    if report["against"]:
        lines.append(f"Against: {describe_proxy(report['against'])}")
    fmt = (lambda v: "-" if v is None else f"{v:.3f}")  # noqa: E731
    seconds = report["seconds_per_trial"]
    lines += ["", "| architectures | seeds | noise floor | spread | spread / noise | Kendall τ | Spearman ρ | "
                  "top-k overlap | s per trial (proxy / against) |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
              f"| {s['architectures']} | {s['seeds']} | {fmt(s['noise'])} | {fmt(s['spread'])} | "
              f"{fmt(s['signal_to_noise'])} | {fmt(s['kendall_tau'])} | {fmt(s['spearman_rho'])} | "
              f"{fmt(s['top_k_overlap'])} (k={s['top_k'] or '-'}) | {fmt(seconds.get('proxy'))} / "
              f"{fmt(seconds.get('against'))} |", "",
              "| architecture | MACs (M) | proxy mean ± std | against mean ± std |", "| --- | ---: | ---: | ---: |"]
    for row in sorted(report["architectures"], key=lambda r: -(r["proxy"]["mean"] or 0)):
        cells = []
        for role in ("proxy", "against"):
            part = row.get(role)
            cells.append("-" if not part or part["mean"] is None else
                         f"{part['mean']:.3f} ± {part['std'] or 0:.3f}")
        lines.append(f"| {row['name']} | {(row.get('macs') or 0) / 1e6:.0f} | {cells[0]} | {cells[1]} |")
    if report["failed"]:
        lines += ["", f"{len(report['failed'])} failed trainings: " + "; ".join(report["failed"][:5])]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def plot(report: dict[str, Any], path: Path) -> None:
    """Proxy mean vs against mean with seed error bars (or proxy accuracy by architecture without one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["architectures"] if r["proxy"]["mean"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    s = report["statistics"]
    if report["against"]:
        rows = [r for r in rows if r.get("against", {}).get("mean") is not None]
        for row in rows:
            reference = not row["name"].startswith("arch-")
            ax.errorbar(row["against"]["mean"], row["proxy"]["mean"], xerr=row["against"]["std"] or 0,
                        yerr=row["proxy"]["std"] or 0, fmt="o", color="C3" if reference else "C0", ms=4,
                        capsize=2, alpha=0.8)
            if reference:
                ax.annotate(row["name"], (row["against"]["mean"], row["proxy"]["mean"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("accuracy, against proxy (mean ± std over seeds)")
        title = f"Kendall τ {_number(s['kendall_tau'])}, spread/noise {_number(s['signal_to_noise'])}"
    else:
        rows.sort(key=lambda r: r["proxy"]["mean"])
        ax.errorbar(range(len(rows)), [r["proxy"]["mean"] for r in rows], yerr=[r["proxy"]["std"] or 0 for r in rows],
                    fmt="o", ms=4, capsize=2)
        ax.set_xlabel("architectures, by proxy accuracy")
        title = f"spread/noise {_number(s['signal_to_noise'])}" + \
            (" (one seed: no noise estimate)" if s["signal_to_noise"] is None else "")
    ax.axhline(report["chance"], color="0.6", lw=0.8, ls="--")
    ax.set_ylabel("accuracy, proxy (mean ± std over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    plt.close(fig)


__all__ = ["architectures", "candidates_for", "markdown", "plot", "proxy_tag", "run", "summarize"]
