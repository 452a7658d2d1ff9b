"""Rewards and Pareto utilities. Pure functions on floats: no torch, no project imports.

Objectives are (accuracy ↑, MACs ↓) everywhere; a point is ``(accuracy, macs)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

T_EFFICIENTNET = 400e6
W_EFFICIENTNET = -0.07
V_EFFICIENTNETV2 = -0.05


def soft(accuracy: float, macs: float, target: float = T_EFFICIENTNET, w: float = W_EFFICIENTNET) -> float:
    """EfficientNet's objective ``ACC × (MACs / T)^w``."""
    _check(macs, target)
    return accuracy * (macs / target) ** w


def mnasnet(accuracy: float, cost: float, target: float, alpha: float = -0.07, beta: float = -0.07) -> float:
    """MnasNet's piecewise form: exponent ``alpha`` when ``cost <= target``, else ``beta``.
    Soft: α = β = −0.07; hard: α = 0, β = −1. ``cost`` may be MACs or a measured latency."""
    _check(cost, target)
    return accuracy * (cost / target) ** (alpha if cost <= target else beta)


def hard(accuracy: float, cost: float, target: float) -> float:
    """A hard constraint: accuracy if within budget, else 0."""
    _check(cost, target)
    return accuracy if cost <= target else 0.0


def training_aware(accuracy: float, step_ratio: float, params_ratio: float, w: float = W_EFFICIENTNET,
                   v: float = V_EFFICIENTNETV2) -> float:
    """EfficientNetV2's objective ``A × S^w × P^v``: S the (normalized) training step time, P the
    (normalized) parameter count; ``w = −0.07``, ``v = −0.05`` in the paper."""
    _check(step_ratio, 1.0)
    _check(params_ratio, 1.0)
    return accuracy * step_ratio ** w * params_ratio ** v


def compute(kind: str, accuracy: float, cost: float, *, target: float = T_EFFICIENTNET,
            w: float = W_EFFICIENTNET, alpha: float | None = None, beta: float | None = None) -> float:
    """The reward a search space's ``reward:`` block names (``soft``, ``mnasnet`` or ``hard``)."""
    if kind == "soft":
        return soft(accuracy, cost, target, w)
    if kind == "mnasnet":
        return mnasnet(accuracy, cost, target, w if alpha is None else alpha, w if beta is None else beta)
    if kind == "hard":
        return hard(accuracy, cost, target)
    raise ValueError(f"unknown reward kind {kind!r}; expected soft, mnasnet or hard")


def _check(cost: float, target: float) -> None:
    if cost <= 0 or target <= 0:
        raise ValueError(f"cost and target must be positive, got cost={cost}, target={target}")


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` = (acc, macs) is at least as good as ``b`` in both and better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_front(points: Iterable[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points, sorted by MACs ascending (O(n log n))."""
    indexed = sorted(enumerate(points), key=lambda item: (item[1][1], -item[1][0]))
    front: list[int] = []
    best_acc, best_macs = float("-inf"), None
    for index, (acc, macs) in indexed:
        # Exact duplicates of a front point do not dominate each other: both are on the front.
        if acc > best_acc or (acc == best_acc and macs == best_macs):
            front.append(index)
            best_acc, best_macs = acc, macs
    return front


def hypervolume_2d(points: Iterable[Sequence[float]], reference: Sequence[float]) -> float:
    """Area dominated by ``points`` and bounded by ``reference`` = (min accuracy, max MACs).
    Points outside the reference box add nothing."""
    ref_acc, ref_macs = reference
    kept = [(a, m) for a, m in points if a > ref_acc and m < ref_macs]
    area, best_acc = 0.0, ref_acc
    # Sweep from cheapest to dearest; each point adds the slab up to the next MACs level.
    kept.sort(key=lambda p: p[1])
    for i, (acc, macs) in enumerate(kept):
        best_acc = max(best_acc, acc)
        next_macs = kept[i + 1][1] if i + 1 < len(kept) else ref_macs
        area += (best_acc - ref_acc) * (next_macs - macs)
    return area
