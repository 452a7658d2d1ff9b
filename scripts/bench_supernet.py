"""The supernet measured against stand-alone training on the same proxy, side by side.

Takes the architectures of a ``nas proxy-check`` report (their stand-alone accuracies, several seeds
each, on a proxy) and, for each supernet variant asked for, trains one supernet over the space on the
same proxy, takes every architecture from it (BN re-estimated), and prints:

* Kendall τ and Spearman ρ between supernet accuracy and the stand-alone mean, over the architectures;
* seconds per candidate from the supernet vs the median stand-alone trial on the same proxy and
  machine (the report's own trainings), and their ratio;
* the supernet's training time.

    nas proxy-check mnasnet --archs 18 --seeds 3 ... --json > standalone.json
    python scripts/bench_supernet.py standalone.json --variants crop-sandwich,separate-sandwich,crop-uniform
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from scipy import stats

from nas import space as spaces
from nas.arch import Architecture
from nas.evaluate import Task
from nas.settings import ProxySettings, SupernetSettings
from nas.supernet import training
from nas.supernet.evaluate import evaluate_from_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a `nas proxy-check --json` report (stand-alone accuracies)")
    parser.add_argument("--variants", default="crop-sandwich,separate-sandwich,crop-uniform",
                        help="KERNEL_SHARING-SAMPLING pairs, comma-separated")
    parser.add_argument("--epochs", type=int, default=10, help="supernet training epochs")
    parser.add_argument("--folder", type=Path, default=Path("runs/supernet-bench"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = json.loads(args.report.read_text())
    space = spaces.load(report["space"])
    proxy = ProxySettings.model_validate(report["proxy"])
    rows = [r for r in report["architectures"] if r["proxy"]["mean"] is not None]
    standalone = [r["proxy"]["mean"] for r in rows]
    standalone_seconds = report["seconds_per_trial"]["proxy"]
    task = Task.from_space(space, proxy=proxy, device="cpu")
    print(f"{len(rows)} architectures of {space.name}; stand-alone proxy: median {standalone_seconds:.1f} s per "
          f"trial; {proxy.resolution} px, {proxy.epochs} epochs, {proxy.max_train_samples} images", flush=True)
    table = []
    for variant in args.variants.split(","):
        sharing, sampling = variant.split("-")
        settings = SupernetSettings(epochs=args.epochs, kernel_sharing=sharing, sampling=sampling)
        folder = args.folder / variant
        start = time.perf_counter()
        training.train(space, proxy, settings, folder, seed=0,
                       on_progress=lambda step, steps, loss: print(f"  {variant}: step {step}/{steps} loss {loss:.3f}",
                                                                   flush=True) if step % 50 == 0 else None)
        trained_s = time.perf_counter() - start
        accuracies, seconds = [], []
        for row in rows:
            t = time.perf_counter()
            result = evaluate_from_supernet(Architecture.parse(row["arch"]), task, space, settings, folder)
            seconds.append(time.perf_counter() - t)
            accuracies.append(result.accuracy if result.ok else 0.0)
        per_candidate = statistics.median(seconds[1:] or seconds)  # the first one also loads the supernet
        table.append((variant, trained_s, stats.kendalltau(accuracies, standalone).statistic,
                      stats.spearmanr(accuracies, standalone).statistic, per_candidate,
                      standalone_seconds / per_candidate))
        print(f"{variant}: tau {table[-1][2]:.3f}", flush=True)
    print("\n| variant | supernet training | Kendall τ | Spearman ρ | s per candidate | stand-alone s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for variant, trained_s, tau, rho, per, ratio in table:
        print(f"| {variant} | {trained_s / 60:.1f} min | {tau:.3f} | {rho:.3f} | {per:.2f} | {standalone_seconds:.1f} | "
              f"{ratio:.0f}x |")


if __name__ == "__main__":
    main()
