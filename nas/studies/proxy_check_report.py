"""A proxy check's report: its markdown and its plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.core.atomic import write_atomic


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
