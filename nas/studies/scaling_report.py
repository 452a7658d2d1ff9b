"""A scaling search's outputs: the family's YAML files, its tables and the comparison plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.core import scaling
from nas.core.atomic import write_atomic
from nas.settings import ProxySettings
from nas.space import architecture_yaml, load


def member_yaml(member: scaling.Scaled, *, space_path: str, proxy: ProxySettings, proxy_resolution: int,
                comment: str) -> str:
    """A one-point space file for a family member: its arch, target resolution, dropout and proxy (the run's,
    at the member's proxy size)."""
    space = load(space_path)
    text = architecture_yaml(member.arch, name=member.name, comment=comment, target_resolution=member.resolution,
                             reward=space.reward)
    proxy_spec = dict(proxy.model_dump(exclude_none=True), resolution=proxy_resolution)
    extra = f"dropout: {member.dropout:g}\nproxy: {json.dumps(proxy_spec)}\n"
    return text.replace("\nblocks:\n", f"\n{extra}blocks:\n", 1)


def family_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| member | width | depth | resolution | proxy res | dropout | params | FLOPs (multiply-adds) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['member']} | {r['width']:.3f} | {r['depth']:.3f} | {r['resolution']} | "
                     f"{r.get('proxy_resolution', '')} | {r['dropout']:g} | {r['params']:,} | "
                     f"{r['macs'] / 1e9:.3f} B |")
    return "\n".join(lines)


def candidates_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| trial | α | β | γ | resolution (proxy) | params | FLOPs (multiply-adds) | proxy accuracy |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        acc = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else f"failed: {r['error']}"
        if r.get("same_as"):
            acc += f" (same network as {r['same_as']}: trained once)"
        coeff = [f"{r[k]:g}" if r[k] is not None else "-" for k in ("alpha", "beta", "gamma")]
        lines.append(f"| {r['label']} | {' | '.join(coeff)} | {r['resolution']} ({r['proxy_resolution']}) | "
                     f"{r['params']:,} | {r['macs'] / 1e9:.3f} B | {acc} |")
    return "\n".join(lines)


def write_outputs(summary: dict[str, Any], *, family: Sequence[scaling.Scaled], space_path: str,
                  proxy: ProxySettings, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chosen = summary["chosen"]
    for member, row in zip(family, summary["family"]):
        comment = (f"{member.name}: compound scaling of {summary['base']}\n"
                   f"alpha={chosen['alpha']:g} beta={chosen['beta']:g} gamma={chosen['gamma']:g} phi={member.phi:g}; "
                   f"params {row['params']:,}, FLOPs (multiply-adds) {row['macs']:,} at {member.resolution}px\n"
                   f"written by scripts/scale.py (run {summary['run_dir']})")
        write_atomic(folder / f"{member.name}.yaml",
                     member_yaml(member, space_path=space_path, proxy=proxy, proxy_resolution=row["proxy_resolution"],
                                 comment=comment))
    text = [f"# Compound scaling run {summary['run_dir']}", "",
            f"Chosen by proxy accuracy: α = {chosen['alpha']:g}, β = {chosen['beta']:g}, γ = {chosen['gamma']:g} "
            f"({chosen['label']}, accuracy {chosen['accuracy']:.4f}).", "", "## Family", "",
            family_markdown(summary["family"]), "", "## Grid candidates (φ = 1)", "",
            candidates_markdown(summary["candidates"]), ""]
    if summary["comparison"]:
        text += ["## Single-dimension baselines at the same MACs", "",
                 candidates_markdown(summary["comparison"]), ""]
    write_atomic(folder / "family.md", "\n".join(text))
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    plot_comparison(summary, folder / "comparison.png")


def plot_comparison(summary: dict[str, Any], path: Path) -> None:
    """Proxy accuracy vs MACs: every grid point, and a line per method from the base outwards."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["candidates"] + summary["comparison"] if r["accuracy"] is not None]
    base = [r for r in rows if r["kind"] == "base"]
    chosen = [r for r in rows if r["label"] == summary["chosen"]["label"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    grid_rows = [r for r in rows if r["kind"] == "grid"]
    ax.scatter([r["macs"] / 1e9 for r in grid_rows], [r["accuracy"] for r in grid_rows], s=12, color="0.7",
               label="grid candidates (φ = 1)")
    styles = {"compound": ("C3", "o"), "width": ("C0", "s"), "depth": ("C1", "^"), "resolution": ("C2", "D")}
    for kind, (color, marker) in styles.items():
        series = base + (chosen if kind == "compound" else []) + [r for r in rows if r["kind"] == kind]
        series.sort(key=lambda r: r["macs"])
        if len(series) > 1 or kind == "compound":
            ax.plot([r["macs"] / 1e9 for r in series], [r["accuracy"] for r in series], marker=marker,
                    color=color, label=f"{kind} scaling" if kind == "compound" else f"{kind} only")
    ax.set_xlabel("FLOPs (multiply-adds, billions) at the target resolution")
    ax.set_ylabel("proxy accuracy")
    config = summary["config"]
    ax.set_title(f"Scaling {config['proxy']['dataset']} proxy ({summary['proxy_resolution']}px): "
                 f"α={summary['chosen']['alpha']:g} β={summary['chosen']['beta']:g} γ={summary['chosen']['gamma']:g}",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    plt.close(fig)
