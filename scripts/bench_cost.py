"""Benchmark: pricing a candidate analytically vs building it and counting with torch.

A controller prices every proposal (constraint pre-filter, NSGA-II objectives), so
the cost model must be cheap. Side by side, on the same random architectures:
  analytic   nas.core.cost.count (cache cleared: every call computes)
  meta       nas.network.builder.build on the meta device + FlopCounterMode (no real compute)
  cpu        nas.network.builder.build on CPU + FlopCounterMode forward at batch 1
Prints per-call times and ratios against the analytic count.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas import space as spaces
from nas.core import cost
from nas.network import builder as model


def time_each(fn, items) -> list[float]:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return times


def torch_count(arch, device: str, resolution: int) -> float:
    with torch.device(device):
        net = model.build(arch).eval()
        x = torch.randn(1, 3, resolution, resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="search_spaces/mnasnet.yaml")
    parser.add_argument("--archs", type=int, default=2000, help="architectures for the analytic count")
    parser.add_argument("--torch-archs", type=int, default=20, help="architectures for the torch counts")
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(2)
    space = spaces.load(args.space)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(args.archs)]

    def analytic(arch):
        cost.count.cache_clear()
        return cost.count(arch, args.resolution)

    rows = {"analytic (nas.core.cost)": time_each(analytic, archs),
            "meta build + FlopCounterMode": time_each(lambda a: torch_count(a, "meta", args.resolution),
                                                      archs[:args.torch_archs]),
            "cpu build + FlopCounterMode": time_each(lambda a: torch_count(a, "cpu", args.resolution),
                                                     archs[:args.torch_archs])}
    for arch in archs:  # fill the cache, then time hits
        cost.count(arch, args.resolution)
    cached = time_each(lambda a: cost.count(a, args.resolution), archs)
    base = statistics.median(rows["analytic (nas.core.cost)"])
    print(f"device: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads), "
          f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    print(f"{'method':<32} {'n':>6} {'median ms':>10} {'calls/s':>10} {'x analytic':>11}")
    for name, times in rows.items():
        median = statistics.median(times)
        print(f"{name:<32} {len(times):>6} {median * 1e3:>10.3f} {1 / median:>10.0f} {median / base:>11.1f}")
    print(f"{'analytic, cached (repeat arch)':<32} {len(cached):>6} {statistics.median(cached) * 1e3:>10.4f} "
          f"{1 / statistics.median(cached):>10.0f} {statistics.median(cached) / base:>11.2f}")


if __name__ == "__main__":
    main()
