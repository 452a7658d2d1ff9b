"""``nas report``: the dashboard's views as one offline HTML file, and the Pareto front as a PNG.

The HTML is the dashboard's own page with its stylesheet, Plotly.js, the script and a snapshot of
the data inlined, so the report and the live page cannot drift apart and the file opens anywhere,
with no server and no network. The PNG (matplotlib) is for docs and papers.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from pathlib import Path
from typing import Any

from nas.app.dashboard import queries
from nas.app.dashboard.architectures import describe, reference_labels
from nas.app.dashboard.assets import plotly_js
from nas.app.dashboard.runs import RunSet
from nas.core.atomic import write_atomic
from nas.runs.store import COLUMNS, StoreError

_STYLE_TAG = '<link rel="stylesheet" href="/static/style.css">'
_PRELOAD_TAG = '<link rel="preload" href="/static/plotly.min.js" as="script">'
_APP_TAG = '<script src="/static/app.js" defer></script>'


def report_data(run_dirs: list[str | Path]) -> dict[str, Any]:
    """Everything the page asks the server for, for every run, computed once."""
    runs = RunSet(run_dirs)
    labels = reference_labels()
    out = []
    for run in runs.runs:
        try:
            snap = run.snapshot()
        except StoreError:
            out.append({"columns": [*COLUMNS, "label"], "rows": [], "archs": {}, "front": None, "progress": None})
            continue
        rows = [queries.row_dict(r, labels) for r in snap.rows]
        columns = [*COLUMNS, "label"]
        out.append({
            "columns": columns,
            "rows": [[row[c] for c in columns] for row in rows],
            "archs": {arch: describe(arch) for arch in {r.arch for r in snap.rows}},
            "front": run.front(),
            "progress": run.progress(),
            "curves": run.curves(),
        })
    return {"state": runs.state(), "runs": out,
            "written": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}


def _inline_script(code: str) -> str:
    if "</script" in code.lower():
        raise ValueError("a script to inline contains '</script'")
    return f"<script>{code}</script>"


def render_html(run_dirs: list[str | Path]) -> str:
    """The self-contained page; raises ``StoreError`` if no run folder holds a run."""
    data = report_data(run_dirs)
    if not any(run["available"] for run in data["state"]["runs"]):
        raise StoreError(next(run["message"] for run in data["state"]["runs"]).split(". The page")[0])
    static = resources.files("nas.app.dashboard") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")
    style = (static / "style.css").read_text(encoding="utf-8")
    app = (static / "app.js").read_text(encoding="utf-8")
    # "<" never appears outside a JSON string, so escaping it cannot close the script element
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    names = ", ".join(str(run.get("summary", {}).get("name") or run["label"]) for run in data["state"]["runs"])
    replacements = {
        _STYLE_TAG: f"<style>{style}</style>",
        _PRELOAD_TAG: "",
        _APP_TAG: "\n".join([_inline_script(f"window.NAS_REPORT = {payload};"),
                             _inline_script(plotly_js().decode("utf-8")), _inline_script(app)]),
        "<title>nas dashboard</title>": f"<title>nas report: {_escape(names)}</title>",
    }
    for tag, replacement in replacements.items():
        if page.count(tag) != 1:
            raise RuntimeError(f"the dashboard page no longer holds {tag!r} exactly once; update nas/report.py")
        page = page.replace(tag, replacement)
    return page


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_html(run_dirs: list[str | Path], out: str | Path) -> Path:
    out = Path(out)
    write_atomic(out, render_html(run_dirs))
    return out


def write_png(run_dirs: list[str | Path], out: str | Path, *, dpi: int = 150) -> Path:
    """Pareto front(s) with the non-dominated step line, iso-reward curves, T, and B0 / MnasNet-A1."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot
    import matplotlib.pyplot as plt

    runs = RunSet(run_dirs)
    fronts = []
    for run in runs.runs:
        snap = run.snapshot()  # StoreError for a missing run: the caller reports it
        fronts.append((queries.summary(snap).get("name") or run.label, run.front()))
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    plotted = [f for f in fronts if f[1]["seq"]]
    if not plotted:
        ax.text(0.5, 0.5, "no finished trial with accuracy and a cost to plot", ha="center", va="center",
                transform=ax.transAxes)
    else:
        accs = [a for _, f in plotted for a in f["accuracy"]]
        pad = max((max(accs) - min(accs)) * 0.08, 0.005)
        for curve in plotted[0][1]["iso"]:
            ax.plot(curve["cost"], curve["accuracy"], ":", color="0.6", lw=0.8)
        latency = plotted[0][1]["objective"]["on"] == "latency"
        ax.plot([], [], ":", color="0.6", lw=0.8, label=f"iso-reward ACC·({'latency' if latency else 'MACs'}/T)$^w$")
        for i, (name, f) in enumerate(plotted):
            color = colors[i % len(colors)]
            ax.scatter(f["cost"], f["accuracy"], s=8, alpha=0.45, color=color, lw=0, label=f"{name} trials")
            where = {seq: j for j, seq in enumerate(f["seq"])}
            at = [where[s] for s in f["front"]]
            ax.step([f["cost"][j] for j in at], [f["accuracy"][j] for j in at], where="post", color=color, lw=1.6,
                    marker="o", ms=4, mfc="none", label=f"{name} non-dominated")
            for seq, label in f["labels"].items():
                j = where[int(seq)]
                ax.scatter([f["cost"][j]], [f["accuracy"][j]], marker="*", s=160, color="#f2b705",
                           edgecolor="#6b4e00", zorder=5)
                side = 1 if len(ax.texts) % 2 else -1  # alternate sides: B0 and MnasNet-A1 sit close together
                ax.annotate(label, (f["cost"][j], f["accuracy"][j]), xytext=(10 * side, 8), textcoords="offset points",
                            ha="left" if side > 0 else "right")
        target = plotted[0][1]["objective"]["target"]
        ax.axvline(target, color="#b42318", ls="--", lw=1)
        ax.annotate(f"T = {target:g} ms" if latency else f"T = {target / 1e6:g}M", (target, 0.01), xycoords=("data", "axes fraction"),
                    xytext=(4, 0), textcoords="offset points", color="#b42318", fontsize=9)
        ax.set_ylim(min(accs) - pad, max(accs) + pad)
        ax.set_xscale("log")
        ax.legend(fontsize=8, loc="lower right")
    latency = bool(plotted) and plotted[0][1]["objective"]["on"] == "latency"
    ax.set_xlabel("batch-1 latency (ms), log scale" if latency else "FLOPs (multiply-adds), log scale")
    ax.set_ylabel("proxy accuracy")
    ax.set_title("Pareto front: " + ", ".join(name for name, _ in fronts), fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    out = Path(out)
    write_atomic(out, lambda handle: fig.savefig(handle, format="png", dpi=dpi))
    plt.close(fig)
    return out
