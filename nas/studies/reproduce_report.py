"""A reproduction's report: JSON, markdown, a plot and one HTML page, written atomically."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from nas.core.atomic import write_atomic

# ---------------------------------------------------------------- the report


def write_report(report: dict[str, Any], root: Path, *, search_rows: list[tuple[float, float]]) -> None:
    write_atomic(root / "reproduction.json", json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    write_atomic(root / "reproduction.md", markdown(report))
    png = plot(report, search_rows)
    write_atomic(root / "reproduction.png", png)
    page = ("<!doctype html><meta charset='utf-8'><title>nas reproduce</title>"
            "<style>body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
            "td:first-child{text-align:left}</style>"
            f"<h1>{html.escape(report['first_line'])}</h1><p>{html.escape(report['caveat'])}</p>"
            f"<img alt='accuracy against multiply-adds' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
            f"<pre>{html.escape(markdown(report))}</pre>")
    write_atomic(root / "reproduction.html", page)


def markdown(report: dict[str, Any]) -> str:
    lines = [report["first_line"], ""]
    if report["caveat"]:
        lines += [report["caveat"], ""]
    counts = (report.get("search") or {}).get("counts") or {}
    lines += [f"Search: {', '.join(f'{n} {status}' for status, n in counts.items() if n)} trials, "
              f"{report.get('evaluator', 'standalone')} evaluator.", ""]
    lines += [f"Retrained: {report['retrain_recipe']}; paired seeds ({report.get('first_seeds', report['seeds'])} "
              f"first, then one at a time while a verdict was undecided: {report.get('stopped', 'no rule')}); "
              "accuracy on the test split.", ""]
    comparisons = [c for c in report["comparisons"] if c.get("found") and "low" in c]
    if comparisons:
        level = f"{100 * report.get('confidence', 0.95):.0f}%"
        lines += [f"Paired comparison at matched cost (difference = found - reference, per seed; {level} t interval "
                  f"of the mean; matches = the interval within ±{report.get('margin_points', 1):g} accuracy points):", "",
                  "| found | reference | cost ratio | verdict | difference (points) | interval | seeds | per seed |",
                  "| --- | --- | ---: | --- | ---: | --- | ---: | --- |"]
        for c in comparisons:
            interval = "-" if c["low"] is None else f"{100 * c['low']:+.2f} to {100 * c['high']:+.2f}"
            lines.append(f"| {c['found']} | {c['reference']} | {c['cost_ratio']:.2f}x {c['matched_on']} | "
                         f"{c['verdict']} | {100 * c['difference']:+.2f} | {interval} | {c['seeds']} | "
                         f"{', '.join(f'{100 * d:+.1f}' for d in c['differences'])} |")
        lines.append("")
    lines += ["| architecture | MACs (M) | params (M) | accuracy (mean ± std) | per seed |",
              "| --- | ---: | ---: | ---: | --- |"]
    for row in sorted(report["architectures"], key=lambda r: r["macs"]):
        lines.append(f"| {row['name']} | {row['macs'] / 1e6:.0f} | {row['params'] / 1e6:.2f} | "
                     f"{row['mean']:.4f} ± {row['std']:.4f} | {', '.join(f'{a:.4f}' for a in row['accuracies'])} |")
    if report["scaling"]:
        lines += ["", "Compound scaling (alpha, beta, gamma = 1.2, 1.1, 1.15), one seed per member:", "",
                  "| family | phi | MACs (M) | accuracy |", "| --- | ---: | ---: | ---: |"]
        for row in report["scaling"]:
            lines.append(f"| {row['family']} | {row['phi']} | {row['macs'] / 1e6:.0f} | {row['mean']:.4f} |")
    lines += ["", "Architectures:", ""] + [f"- {row['name']}: `{row['arch']}`" for row in report["architectures"]]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], search_rows: list[tuple[float, float]]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    if search_rows:
        left.scatter([m / 1e6 for m, _ in search_rows], [a for _, a in search_rows], s=8, color="0.75",
                     label="search trials (proxy accuracy)")
    for row in report["architectures"]:
        found = row["name"].startswith("found-")
        left.errorbar(row["macs"] / 1e6, row["mean"], yerr=row["std"], fmt="o" if found else "s", capsize=3,
                      color="C0" if found else "C3", label=None)
        left.annotate(row["name"], (row["macs"] / 1e6, row["mean"]), fontsize=8, xytext=(4, 4),
                      textcoords="offset points")
    left.set_xlabel("multiply-adds (M) at the target resolution")
    left.set_ylabel("accuracy (retrained: test split; search: proxy)")
    left.set_title("found (circles) vs references (squares)", fontsize=10)
    left.grid(alpha=0.3)
    if search_rows:
        left.legend(fontsize=8)
    for family in dict.fromkeys(r["family"] for r in report["scaling"]):
        points = sorted((r for r in report["scaling"] if r["family"] == family), key=lambda r: r["macs"])
        right.plot([r["macs"] / 1e6 for r in points], [r["mean"] for r in points], marker="o", label=family)
    right.set_xlabel("multiply-adds (M)")
    right.set_ylabel("accuracy")
    phis = sorted({r["phi"] for r in report["scaling"]})
    right.set_title(f"compound scaling, phi = {', '.join(map(str, phis))}", fontsize=10)
    right.grid(alpha=0.3)
    if report["scaling"]:
        right.legend(fontsize=8)
    fig.suptitle(report["first_line"][:140] + ("..." if len(report["first_line"]) > 140 else ""), fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
