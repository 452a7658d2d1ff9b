"""Rewards against hand-computed values; Pareto front and hypervolume against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas.core import reward

# ---------------------------------------------------------------- rewards, by hand

def test_soft_reward_hand_computed() -> None:
    assert reward.soft(0.75, 400e6) == pytest.approx(0.75)  # at the target: the accuracy itself
    # 2^-0.07 = exp(-0.07 ln 2) = 0.9526375 ; 0.5^-0.07 = 1.0497167
    assert reward.soft(0.8, 800e6) == pytest.approx(0.8 * 0.9526375, abs=1e-6)
    assert reward.soft(0.8, 200e6) == pytest.approx(0.8 * 1.0497167, abs=1e-6)
    # a different target and exponent: 0.5 × (3e8/1e8)^-0.5 = 0.5 / √3
    assert reward.soft(0.5, 3e8, target=1e8, w=-0.5) == pytest.approx(0.2886751, abs=1e-6)


def test_mnasnet_piecewise_reward() -> None:
    # hard form (α = 0, β = −1): within budget the accuracy; twice over budget, half of it
    assert reward.mnasnet(0.7, 50, 100, alpha=0, beta=-1) == pytest.approx(0.7)
    assert reward.mnasnet(0.7, 200, 100, alpha=0, beta=-1) == pytest.approx(0.35)
    # α applies at or below the target, β above: 0.7 × 2^-0.2 = 0.7 × 0.8705506
    assert reward.mnasnet(0.7, 200, 100, alpha=-0.07, beta=-0.2) == pytest.approx(0.6093854, abs=1e-6)
    assert reward.mnasnet(0.7, 50, 100, alpha=-0.5, beta=-0.2) == pytest.approx(0.7 * 2 ** 0.5)
    # soft MnasNet (α = β = −0.07) equals EfficientNet's soft reward
    assert reward.mnasnet(0.8, 800e6, 400e6) == pytest.approx(reward.soft(0.8, 800e6))


def test_hard_constraint() -> None:
    assert reward.hard(0.7, 100, 100) == 0.7
    assert reward.hard(0.7, 101, 100) == 0.0


def test_compute_dispatches_and_defaults_alpha_beta_to_w() -> None:
    assert reward.compute("soft", 0.8, 800e6) == pytest.approx(0.8 * 0.9526375, abs=1e-6)
    assert reward.compute("mnasnet", 0.7, 200, target=100, w=-1.0) == pytest.approx(0.35)
    assert reward.compute("mnasnet", 0.7, 200, target=100, w=-1.0, alpha=0.0, beta=-0.2) == pytest.approx(
        0.6093854, abs=1e-6)  # explicit α/β win over w
    assert reward.compute("hard", 0.7, 101, target=100) == 0.0
    with pytest.raises(ValueError, match="unknown reward kind"):
        reward.compute("linear", 0.7, 1.0)
    with pytest.raises(ValueError, match="positive"):
        reward.soft(0.7, 0.0)


# ---------------------------------------------------------------- Pareto front

def brute_front(points: list[tuple[float, float]]) -> set[int]:
    return {i for i, p in enumerate(points) if not any(reward.dominates(q, p) for q in points)}


def test_pareto_front_hand_case() -> None:
    points = [(0.7, 100), (0.8, 200), (0.75, 300), (0.9, 400), (0.6, 50)]
    # (0.75, 300) is dominated by (0.8, 200); the rest form the front, cheapest first
    assert reward.pareto_front(points) == [4, 0, 1, 3]
    assert reward.dominates((0.8, 100), (0.8, 200)) and not reward.dominates((0.8, 200), (0.8, 200))
    assert reward.pareto_front([(0.8, 200), (0.7, 100), (0.8, 200)]) == [1, 0, 2]  # duplicates both count


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    # a coarse grid makes ties and exact duplicates common
    points = [(float(a), float(m)) for a, m in zip(rng.integers(0, 8, n) / 8, rng.integers(1, 9, n) * 1e8)]
    front = reward.pareto_front(points)
    assert set(front) == brute_front(points)
    assert [points[i][1] for i in front] == sorted(points[i][1] for i in front)


# ---------------------------------------------------------------- hypervolume

def brute_hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Union of the boxes [p.macs, ref.macs] × [ref.acc, p.acc], cell by cell on the compressed grid."""
    xs = sorted({m for _, m in points if m < ref[1]} | {ref[1]})
    ys = sorted({a for a, _ in points if a > ref[0]} | {ref[0]})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs, xs[1:]), zip(ys, ys[1:])):
        if any(m <= x0 and a >= y1 for a, m in points):
            area += (x1 - x0) * (y1 - y0)
    return area


def test_hypervolume_hand_case() -> None:
    points = [(0.8, 100), (0.9, 300)]
    # 0.3 × (300 − 100) + 0.4 × (400 − 300) = 60 + 40
    assert reward.hypervolume_2d(points, (0.5, 400)) == pytest.approx(100.0)
    # a dominated point and points outside the reference box add nothing
    more = points + [(0.7, 200), (0.4, 10), (0.95, 500)]
    assert reward.hypervolume_2d(more, (0.5, 400)) == pytest.approx(100.0)
    assert reward.hypervolume_2d([], (0.5, 400)) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_hypervolume_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 25))
    points = [(float(a), float(m)) for a, m in zip(rng.uniform(0, 1, n), rng.uniform(0, 10, n))]
    if seed % 2:  # ties and duplicates
        points += points[: n // 2] + [(points[0][0], 5.0)]
    ref = (0.2, 8.0)
    assert reward.hypervolume_2d(points, ref) == pytest.approx(brute_hypervolume(points, ref), rel=1e-9, abs=1e-12)
