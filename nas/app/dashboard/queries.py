"""View data (header, Pareto front, progress, table rows) computed from one snapshot of a run store.

Pure functions over plain rows: the live server and the offline report call the same code, so the
two always show the same numbers. Nothing here knows about HTTP or HTML.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nas.core import reward
from nas.runs.store import TrialRow

HV_REFERENCE_FACTOR = 4.0
"""Hypervolume is measured inside accuracy ∈ [0, 1] × MACs ∈ [0, 4·T]: a fixed box, so curves of
runs with the same T compare, and the value does not jump when a new, costlier trial arrives."""
HV_MAX_POINTS = 400
"""Hypervolume is sampled at most this often along the trial order (20 000 trials stay cheap)."""
ISO_QUANTILES = (1.0, 0.9, 0.75, 0.5)
# Markers a plot draws at most: SVG scatter costs ~0.4 ms a marker in the browser, so 20 000 trials took ~10 s.
# Beyond this, every non-dominated / labelled trial is kept and the rest is an even sample in trial order.
MAX_MARKERS = 3000
"""Iso-reward curves go through the best plotted trial and these quantiles of the plotted rewards."""


def finite(value: Any) -> float | None:
    """A number the page can plot, or ``None`` (NaN/inf/missing metrics are never sent as numbers)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Snapshot:
    """All rows, the meta and the learning curves of one run, read at one moment; ``version`` (the store's
    fingerprint) changes whenever a row or a curve does."""

    meta: dict[str, Any]
    rows: tuple[TrialRow, ...]
    counts: dict[str, int]
    version: str = ""
    curves: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)
    by_seq: dict[int, TrialRow] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_seq", {row.seq: row for row in self.rows})


CURVES_SHOWN = 12
"""Learning curves drawn: every running trial's, then the most recent finished ones, up to this many."""


def curves(snap: Snapshot) -> dict[str, Any]:
    """Accuracy after each epoch for the running trials and the latest finished ones (early stopping shows
    as curves that end early)."""
    running = [r for r in snap.rows if r.status == "running"]
    finished = [r for r in reversed(snap.rows) if r.status != "running"]
    chosen = (running + finished)[:max(CURVES_SHOWN, len(running))]
    out = []
    for row in sorted(chosen, key=lambda r: r.seq):
        points = snap.curves.get(row.trial_id, [])
        if points:
            out.append({"seq": row.seq, "trial_id": row.trial_id, "status": row.status,
                        "epoch": [e for e, _ in points], "accuracy": [finite(a) for _, a in points]})
    return {"trials": out}


def objective(meta: dict[str, Any]) -> dict[str, Any]:
    """The run's cost (``on``: ``macs``, or ``latency`` in milliseconds), its reward target T and exponent w,
    and whether they came from the run or are assumed."""
    on = "latency" if meta.get("reward_on") == "latency" else "macs"
    target = finite(meta.get("target_ms" if on == "latency" else "target_macs"))
    w = finite(meta.get("w"))
    return {"on": on, "target": target if target and target > 0 else reward.T_EFFICIENTNET,
            "w": w if w is not None else reward.W_EFFICIENTNET,
            "kind": str(meta.get("reward_kind") or "soft"),
            "assumed": not (target and target > 0) or w is None}


COST_COLUMNS = {"macs": "macs", "latency": "latency_ms"}
"""The trials' column each cost is read from."""


def cost_of(row: TrialRow, on: str = "macs") -> float | None:
    """The row's cost on the run's axis (``objective()["on"]``), when it has a positive finite one."""
    value = finite(getattr(row, COST_COLUMNS[on]))
    return value if value is not None and value > 0 else None


def plottable(row: TrialRow, on: str = "macs") -> bool:
    return row.status == "ok" and finite(row.accuracy) is not None and cost_of(row, on) is not None


def summary(snap: Snapshot, *, now: float | None = None) -> dict[str, Any]:
    """The header: name, controller, counts, best reward and elapsed wall time."""
    meta, counts = snap.meta, snap.counts
    now = time.time() if now is None else now
    best = max((r for r in snap.rows if r.status == "ok" and finite(r.reward) is not None),
               key=lambda r: r.reward, default=None)
    started = finite(meta.get("created_at")) or min((r.started_at for r in snap.rows), default=None)
    finished = [r.finished_at for r in snap.rows if r.finished_at is not None]
    end = now if counts.get("running") else max(finished, default=started)
    controllers = sorted({r.controller for r in snap.rows if r.controller})
    return {
        "name": meta.get("name"),
        "controller": meta.get("controller") or (", ".join(controllers) or None),
        "space": meta.get("space"),
        "requested": meta.get("trials"),
        "counts": counts,
        "total": sum(counts.values()),
        "best_reward": finite(best.reward) if best else None,
        "best_seq": best.seq if best else None,
        "elapsed_s": (end - started) if started is not None and end is not None else None,
        "objective": objective(meta),
        "messages": messages(snap),
    }


def messages(snap: Snapshot) -> list[str]:
    """What a user needs told instead of being shown an empty plot."""
    counts = snap.counts
    done = counts.get("ok", 0) + counts.get("failed", 0) + counts.get("stopped", 0)
    if not snap.rows:
        return ["No trials yet: this page updates by itself when the search writes its first trial."]
    out = []
    if done == 0:
        out.append(f"{counts.get('running', 0)} trial(s) running, none finished yet.")
    elif counts.get("ok", 0) == 0:
        errors = Counter((r.error or "no error recorded").strip().splitlines()[0][:200]
                         for r in snap.rows if r.status == "failed")
        common, n = errors.most_common(1)[0]
        out.append(f"All {done} finished trials failed; nothing to plot. Most common error ({n}×): {common}")
    supernet = snap.meta.get("supernet")
    if isinstance(supernet, dict) and supernet.get("steps"):
        state = "trained" if supernet.get("step") == supernet.get("steps") else "training"
        out.append(f"Supernet {state}: step {supernet.get('step')} of {supernet.get('steps')} "
                   f"(loss {supernet.get('loss', float('nan')):.3f}); trials take their weights from it.")
    if snap.meta.get("reward_kind") == "training_aware":
        out.append("This run's reward is training-aware (accuracy x step-time^w x params^v): it has three "
                   "objectives, so the front below is the accuracy/MACs projection with no iso-reward curves.")
    stopped = counts.get("stopped", 0)
    if stopped:
        out.append(f"{stopped} trial(s) were stopped early by the scheduler; the front and the best reward use "
                   "full-fidelity trials only.")
    on = objective(snap.meta)["on"]
    unplotted = sum(1 for r in snap.rows if r.status == "ok" and not plottable(r, on))
    if unplotted:
        cost = "latency" if on == "latency" else "MACs"
        out.append(f"{unplotted} finished trial(s) have no finite accuracy or {cost} and are not plotted.")
    return out


def row_dict(row: TrialRow, labels: dict[str, str]) -> dict[str, Any]:
    """A row for JSON: non-finite numbers become null; the reference label is attached."""
    data = row.to_dict()
    for key in ("accuracy", "reward", "latency_ms", "step_ms", "train_seconds"):
        data[key] = finite(data[key])
    for key in ("macs", "params"):
        value = finite(data[key])
        data[key] = int(value) if value is not None else None
    data["label"] = labels.get(row.arch)
    return data


def front(snap: Snapshot, labels: dict[str, str]) -> dict[str, Any]:
    """Plottable trials (columns; sampled above ``MAX_MARKERS``), the non-dominated subset, iso-reward curves, T.
    ``cost`` is the run's reward cost: MACs, or the latency in milliseconds for a reward on latency."""
    obj = objective(snap.meta)
    points = [r for r in snap.rows if plottable(r, obj["on"])]
    pairs = [(float(r.accuracy), cost_of(r, obj["on"])) for r in points]  # type: ignore[arg-type]
    on_front = reward.pareto_front(pairs)  # type: ignore[arg-type]
    front_rows = [points[i] for i in on_front]
    keep = _sample(len(points), must={*on_front, *(i for i, r in enumerate(points) if r.arch in labels)})
    shown = [points[i] for i in keep]
    return {
        "seq": [r.seq for r in shown],
        "accuracy": [pairs[i][0] for i in keep],
        "cost": [pairs[i][1] for i in keep],
        "reward": [finite(r.reward) for r in shown],
        "labels": {str(r.seq): labels[r.arch] for r in shown if r.arch in labels},
        "front": [r.seq for r in front_rows],
        "total": len(points),
        "stopped": stopped_points(snap, obj["on"]),
        "objective": obj,
        "iso": iso_curves(pairs, obj),  # type: ignore[arg-type]
    }


def stopped_points(snap: Snapshot, on: str = "macs") -> dict[str, list[Any]]:
    """Trials an early-stopping scheduler stopped, at their last epoch's accuracy: ``epochs`` is the rung
    where each was stopped. Drawn beside the front, never on it (sampled like the trials above
    ``MAX_MARKERS``)."""
    points = [r for r in snap.rows if r.status == "stopped" and finite(r.accuracy) is not None
              and cost_of(r, on) is not None]
    shown = [points[i] for i in _sample(len(points))]
    return {"seq": [r.seq for r in shown], "accuracy": [float(r.accuracy) for r in shown],  # type: ignore[arg-type]
            "cost": [cost_of(r, on) for r in shown], "epochs": [r.epochs or 0 for r in shown]}


def _sample(n: int, *, must: set[int] = frozenset(), limit: int = MAX_MARKERS) -> list[int]:
    """All indices when ``n <= limit``; else ``must`` plus an even stride over the rest, in order."""
    if n <= limit:
        return list(range(n))
    stride = max(1, math.ceil(n / max(1, limit - len(must))))
    return sorted(set(range(0, n, stride)) | must)


def iso_curves(pairs: list[tuple[float, float]], obj: dict[str, Any], samples: int = 60) -> list[dict[str, Any]]:
    """Curves ACC = R / (cost/T)^w through the best point and a few quantiles of the plotted points."""
    if not pairs or obj["kind"] in ("hard", "training_aware"):
        # a hard constraint has no smooth iso-lines (the T marker says it all); a training-aware reward
        # also depends on the step time and the parameters, so it has none on this plane (see messages)
        return []
    target, w = obj["target"], obj["w"]
    values = sorted(reward.soft(a, m, target, w) for a, m in pairs)
    levels = sorted({values[round(q * (len(values) - 1))] for q in ISO_QUANTILES}, reverse=True)
    low = min(min(m for _, m in pairs), target) / 1.5
    high = max(max(m for _, m in pairs), target) * 1.5
    grid = [low * (high / low) ** (i / (samples - 1)) for i in range(samples)]
    return [{"reward": level, "cost": grid, "accuracy": [level / (m / target) ** w for m in grid]}
            for level in levels]


def progress(snap: Snapshot) -> dict[str, Any]:
    """Reward per finished trial in trial order (sampled above ``MAX_MARKERS``), best-so-far at every
    improvement, and the hypervolume of the front so far."""
    seqs, rewards, improved = [], [], []
    best = -math.inf
    for row in snap.rows:
        value = finite(row.reward)
        if row.status != "ok" or value is None:
            continue
        if value > best:
            improved.append(len(seqs))
        best = max(best, value)
        seqs.append(row.seq)
        rewards.append(value)
    keep = _sample(len(seqs), must=set(improved))
    # The best-so-far line only needs its corners: each improvement and the last trial.
    corners = sorted({*improved, len(seqs) - 1}) if seqs else []
    running, best_line = -math.inf, []
    for i in corners:
        running = max(running, rewards[i])
        best_line.append(running)
    return {"seq": [seqs[i] for i in keep], "reward": [rewards[i] for i in keep],
            "best_seq": [seqs[i] for i in corners], "best": best_line, "total": len(seqs),
            "hypervolume": hypervolume(snap)}


def hypervolume(snap: Snapshot) -> dict[str, Any]:
    """Normalised hypervolume after each sampled trial; the running front is carried forward so the
    whole curve costs about one Pareto sort, not one per trial."""
    obj = objective(snap.meta)
    ref_cost = HV_REFERENCE_FACTOR * obj["target"]
    points = [r for r in snap.rows if plottable(r, obj["on"])]
    step = max(1, math.ceil(len(points) / HV_MAX_POINTS))
    running: list[tuple[float, float]] = []
    seqs, values = [], []
    for start in range(0, len(points), step):
        chunk = points[start:start + step]
        running = running + [(float(r.accuracy), cost_of(r, obj["on"])) for r in chunk]  # type: ignore[misc]
        running = [running[i] for i in reward.pareto_front(running)]
        seqs.append(chunk[-1].seq)
        values.append(reward.hypervolume_2d(running, (0.0, ref_cost)) / ref_cost)
    return {"seq": seqs, "value": values, "reference_cost": ref_cost}
