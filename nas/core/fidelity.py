"""How much of a proxy's ranking is signal: seed noise, spread between architectures, rank agreement.

A search climbs whatever ranking its proxy gives, so a proxy is judged on (1) whether architectures
differ by more than the proxy's own seed noise, and (2) whether it orders them as a longer, more
faithful proxy does. Pure functions of accuracies; scipy computes the rank correlations.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Fidelity:
    """A proxy's quality over a set of architectures, each trained with several seeds.

    ``noise``: the median over architectures of the standard deviation over seeds (the noise floor).
    ``spread``: the standard deviation of the per-architecture means (how much architectures differ).
    ``signal_to_noise``: spread / noise; below ~1 the ranking is mostly seed luck.
    ``kendall_tau``/``spearman_rho``: rank agreement of the per-architecture means with the reference
    proxy's (None without one); ``top_k_overlap``: the share of the reference's top k that the proxy
    also puts in its top k.
    """

    architectures: int
    seeds: int
    noise: float
    spread: float
    signal_to_noise: float
    kendall_tau: float | None = None
    spearman_rho: float | None = None
    top_k: int | None = None
    top_k_overlap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def means(results: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {arch: statistics.fmean(values) for arch, values in results.items() if values}


def noise_floor(results: Mapping[str, Sequence[float]]) -> float:
    """Median over architectures of the sample standard deviation over seeds (needs ≥ 2 seeds)."""
    spreads = [statistics.stdev(values) for values in results.values() if len(values) >= 2]
    return statistics.median(spreads) if spreads else math.nan


def fidelity(proxy: Mapping[str, Sequence[float]], reference: Mapping[str, Sequence[float]] | None = None, *,
             top_k: int | None = None) -> Fidelity:
    """The statistics of ``proxy`` (architecture → accuracy per seed), against ``reference`` when given
    (the same architectures under a more faithful proxy); architectures missing from either are left out."""
    proxy_means = means(proxy)
    noise = noise_floor(proxy)
    spread = statistics.stdev(proxy_means.values()) if len(proxy_means) >= 2 else math.nan
    ratio = spread / noise if noise and math.isfinite(noise) and noise > 0 else math.inf if spread > 0 else math.nan
    seeds = min((len(v) for v in proxy.values() if v), default=0)
    result = Fidelity(architectures=len(proxy_means), seeds=seeds, noise=noise, spread=spread, signal_to_noise=ratio)
    if reference is None:
        return result
    reference_means = means(reference)
    shared = sorted(set(proxy_means) & set(reference_means))
    if len(shared) < 3:
        return result
    from scipy import stats  # rank correlations, only when a reference is compared

    a = [proxy_means[arch] for arch in shared]
    b = [reference_means[arch] for arch in shared]
    tau = stats.kendalltau(a, b).statistic
    rho = stats.spearmanr(a, b).statistic
    k = top_k or max(1, len(shared) // 4)
    return Fidelity(architectures=result.architectures, seeds=seeds, noise=noise, spread=spread,
                    signal_to_noise=ratio, kendall_tau=float(tau), spearman_rho=float(rho), top_k=k,
                    top_k_overlap=top_k_overlap(a, b, k))


def top_k_overlap(proxy: Sequence[float], reference: Sequence[float], k: int) -> float:
    """The share of the reference's k best that are also among the proxy's k best (ties by position)."""
    order = sorted(range(len(proxy)), key=lambda i: -proxy[i])[:k]
    best = sorted(range(len(reference)), key=lambda i: -reference[i])[:k]
    return len(set(order) & set(best)) / k


__all__ = ["Fidelity", "fidelity", "means", "noise_floor", "top_k_overlap"]
