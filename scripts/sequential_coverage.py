"""How much the sequential rule of ``nas reproduce`` costs the 95 % interval: simulated paired
differences (normal), the rule applied as the command applies it (a t interval after every seed from
the first ``--seeds``; stop on beats / loses to / matches, or at ``--max-seeds``), and the chance of a
false beats / loses to when the true difference is zero, and the interval's coverage at the stop.

    python scripts/sequential_coverage.py                 # the table in docs/reproduction.md
    python scripts/sequential_coverage.py --first 3 --most 6 --spread 2 --runs 20000
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats


def simulate(true: float, spread: float, first: int, most: int, margin: float, runs: int,
             rng: np.random.Generator) -> tuple[float, float, float]:
    """(false-decision rate when ``true`` is 0, else the rate of beats; coverage; mean seeds at the stop)."""
    quantile = {n: stats.t.ppf(0.975, n - 1) for n in range(2, most + 1)}
    decided = covered = seeds = 0
    for _ in range(runs):
        d = rng.normal(true, spread, most)
        for n in range(first, most + 1):
            mean, half = d[:n].mean(), quantile[n] * d[:n].std(ddof=1) / np.sqrt(n)
            low, high = mean - half, mean + half
            beats_or_loses = low > 0 or high < 0
            if beats_or_loses or (-margin <= low and high <= margin):
                break
        decided += beats_or_loses
        covered += low <= true <= high
        seeds += n
    return decided / runs, covered / runs, seeds / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", type=int, default=3, help="seeds before the rule may stop")
    parser.add_argument("--most", type=int, nargs="+", default=[3, 4, 5, 6, 10], help="--max-seeds values")
    parser.add_argument("--spread", type=float, default=4.0, help="seed spread of the difference, in points")
    parser.add_argument("--margin", type=float, default=1.0, help="equivalence margin, in points")
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| max seeds | false beats/loses (true 0) | coverage (true 0) | beats (true +2) | coverage (true +2) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for most in args.most:
        false, coverage, _ = simulate(0.0, args.spread, args.first, most, args.margin, args.runs, rng)
        power, coverage_real, _ = simulate(2.0, args.spread, args.first, most, args.margin, args.runs, rng)
        print(f"| {most} | {false:.3f} | {coverage:.3f} | {power:.3f} | {coverage_real:.3f} |")


if __name__ == "__main__":
    main()
