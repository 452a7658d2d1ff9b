"""Proxy-fidelity statistics on planted data: a known ranking with known noise, and no ranking at all."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nas.core.fidelity import fidelity, noise_floor, top_k_overlap


def planted(truth: np.ndarray, noise: float, seeds: int, rng: np.random.Generator) -> dict[str, list[float]]:
    return {f"a{i}": list(value + rng.normal(0, noise, seeds)) for i, value in enumerate(truth)}


def test_a_noiseless_proxy_ranks_like_the_truth() -> None:
    truth = np.linspace(0.5, 0.9, 12)
    rng = np.random.default_rng(0)
    proxy = planted(truth, 0.0, 3, rng)
    reference = planted(truth * 0.5 + 0.2, 0.0, 3, rng)  # another scale, the same order
    result = fidelity(proxy, reference)
    assert result.kendall_tau == pytest.approx(1.0) and result.spearman_rho == pytest.approx(1.0)
    assert result.top_k_overlap == 1.0 and result.noise == 0.0 and result.signal_to_noise == math.inf
    reversed_ = fidelity(proxy, planted(-truth, 0.0, 3, rng))
    assert reversed_.kendall_tau == pytest.approx(-1.0)


def test_known_noise_is_measured_and_lowers_tau_as_theory_says() -> None:
    rng = np.random.default_rng(1)
    truth = np.linspace(0.5, 0.9, 40)                  # spread of the true means: std 0.118
    proxy = planted(truth, 0.05, 3, rng)
    reference = planted(truth, 0.0, 1, rng)
    result = fidelity(proxy, reference)
    # the median of a 3-sample std is sigma * sqrt(ln 2) (chi distribution, 2 degrees of freedom)
    assert result.noise == pytest.approx(0.05 * np.sqrt(np.log(2)), rel=0.25)
    assert result.spread == pytest.approx(np.std(truth, ddof=1), rel=0.15)
    # a mean of 3 seeds has noise 0.05/sqrt(3); for Gaussian data tau = (2/pi) asin(rho)
    rho = np.std(truth) / np.sqrt(np.var(truth) + 0.05 ** 2 / 3)
    assert result.kendall_tau == pytest.approx(2 / np.pi * np.arcsin(rho), abs=0.1)


def test_an_all_equal_set_has_no_ranking() -> None:
    rng = np.random.default_rng(2)
    truth = np.full(300, 0.7)
    result = fidelity(planted(truth, 0.03, 3, rng), planted(truth, 0.03, 3, rng))
    assert abs(result.kendall_tau) < 0.08 and result.signal_to_noise < 0.8


def test_noise_floor_is_the_median_of_per_architecture_std() -> None:
    assert noise_floor({"a": [0.1, 0.3], "b": [0.5, 0.5], "c": [0.0, 1.0]}) == pytest.approx(0.1414, abs=1e-3)
    assert math.isnan(noise_floor({"a": [0.1]}))


def test_top_k_overlap_counts_shared_leaders() -> None:
    assert top_k_overlap([4, 3, 2, 1], [1, 2, 3, 4], 2) == 0.0
    assert top_k_overlap([4, 3, 2, 1], [4, 3, 1, 2], 2) == 1.0
    assert top_k_overlap([4, 3, 2, 1], [4, 1, 3, 2], 2) == 0.5
