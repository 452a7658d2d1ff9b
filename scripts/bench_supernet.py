"""The supernet measured against stand-alone training on the same proxy, side by side.

Takes the architectures of a ``nas proxy-check`` report (their stand-alone accuracies, several seeds
each, on a proxy), takes every architecture from a trained supernet (BN re-estimated), and prints:

* Kendall τ and Spearman ρ between supernet accuracy and the stand-alone mean, over the architectures,
  measured on the report's validation images and on the search's (often fewer);
* seconds per candidate from the supernet vs stand-alone training of the same architectures on the
  same proxy, timed here, in this process, one after the other — and their ratio;
* the supernet's training time (its training loop, from ``progress.json``).

The supernet is either trained here, once per variant asked for, or taken from a finished
``nas search --evaluator supernet`` run (``--trained RUN``: its stored proxy and supernet settings).

    nas proxy-check mnasnet --archs 18 --seeds 3 ... --json > standalone.json
    python scripts/bench_supernet.py standalone.json --variants crop-sandwich,crop-sandwich-distill --epochs 10
    python scripts/bench_supernet.py standalone.json --trained runs/supernet-search
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from scipy import stats

from nas import space as spaces
from nas.core.arch import Architecture
from nas.runs import folder as run_folder
from nas.settings import ProxySettings, SupernetSettings
from nas.training import supernet_training as training
from nas.training.evaluate import Task, evaluate
from nas.training.supernet_evaluator import evaluate_from_supernet
from nas.training.trainer import resolve_device


def supernet_accuracies(archs: list[Architecture], space: spaces.SearchSpace, proxy: ProxySettings,
                        settings: SupernetSettings, folder: Path, device: str = "cpu") -> tuple[list[float], float]:
    """Each architecture's accuracy from the supernet in ``folder``, and the median seconds per candidate
    (the first one, which also loads the supernet, left out)."""
    task = Task.from_space(space, proxy=proxy, device=device)
    accuracies, seconds = [], []
    for arch in archs:
        start = time.perf_counter()
        result = evaluate_from_supernet(arch, task, space, settings, folder)
        seconds.append(time.perf_counter() - start)
        accuracies.append(result.accuracy if result.ok else 0.0)
    return accuracies, statistics.median(seconds[1:] or seconds)


def standalone_seconds(archs: list[Architecture], space: spaces.SearchSpace, proxy: ProxySettings,
                       device: str = "cpu") -> float:
    """Median seconds of a stand-alone proxy trial (build, train, BN re-estimation, accuracy), timed here."""
    task = Task.from_space(space, proxy=proxy, device=device)
    evaluate(archs[0], replace(task, proxy=proxy.changed(epochs=1)))  # loads the data, warms up
    seconds = []
    for arch in archs:
        start = time.perf_counter()
        evaluate(arch, task)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a `nas proxy-check --json` report (stand-alone accuracies)")
    parser.add_argument("--variants", default="crop-sandwich,separate-sandwich",
                        help="KERNEL_SHARING-SAMPLING[-distill] to train here, comma-separated (-distill: the "
                        "sub-networks learn the largest one's predictions)")
    parser.add_argument("--epochs", type=int, default=10, help="supernet training epochs (when trained here)")
    parser.add_argument("--bn-batches", type=int, default=8, help="BN re-estimation batches (when trained here)")
    parser.add_argument("--folder", type=Path, default=Path("runs/supernet-bench"))
    parser.add_argument("--trained", type=Path, help="take the supernet of this `nas search --evaluator "
                        "supernet` run instead of training one")
    parser.add_argument("--timed", type=int, default=3,
                        help="architectures trained stand-alone for the timing (0: no timing)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto: where the supernet trains and "
                        "where both sides are timed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = json.loads(args.report.read_text())
    space = spaces.load(report["space"])
    proxy = ProxySettings.model_validate(report["proxy"])
    rows = [r for r in report["architectures"] if r["proxy"]["mean"] is not None]
    archs = [Architecture.parse(r["arch"]) for r in rows]
    standalone = [r["proxy"]["mean"] for r in rows]
    print(f"{len(rows)} architectures of {space.name}; stand-alone proxy: {proxy.resolution} px, {proxy.epochs} "
          f"epochs, {proxy.max_train_samples} training and {proxy.max_val_samples} validation images", flush=True)
    if args.trained:
        run, run_space = run_folder.stored(args.trained)  # the space its supernet was trained on
        plans = [(f"{run.supernet.kernel_sharing}-{run.supernet.sampling} (run {args.trained.name})", run.supernet,
                  args.trained / "supernet", run.proxy, run_space)]
    else:
        plans = []
        for variant in args.variants.split(","):
            sharing, sampling, *distill = variant.split("-")
            if distill not in ([], ["distill"]):
                parser.error(f"--variants: {variant!r} is not KERNEL_SHARING-SAMPLING[-distill]")
            plans.append((variant, SupernetSettings(epochs=args.epochs, kernel_sharing=sharing, sampling=sampling,
                                                   targets="largest" if distill else "labels",
                                                   bn_batches=args.bn_batches), args.folder / variant, proxy,
                          space))
    device = str(resolve_device(args.device))
    alone = standalone_seconds(archs[:args.timed], space, proxy, device) if args.timed else float("nan")
    print(f"stand-alone: {alone:.1f} s per trial (median of {args.timed}, timed here)", flush=True)
    table = []
    for name, settings, folder, search_proxy, plan_space in plans:
        training.train(plan_space, search_proxy, settings, folder, seed=0, device=device,  # at once if already trained
                       on_progress=lambda step, steps, loss: print(f"  {name}: step {step}/{steps} loss {loss:.3f}",
                                                                   flush=True) if step % 50 == 0 else None)
        trained_s = float((training.progress(folder) or {}).get("seconds", float("nan")))
        for label, measure in (("report's", search_proxy.changed(max_val_samples=proxy.max_val_samples)),
                               ("search's", search_proxy)):
            if label == "search's" and measure.max_val_samples == proxy.max_val_samples:
                continue
            accuracies, per_candidate = supernet_accuracies(archs, plan_space, measure, settings, folder, device)
            tau = stats.kendalltau(accuracies, standalone).statistic
            rho = stats.spearmanr(accuracies, standalone).statistic
            table.append((name, settings.epochs, trained_s, measure.max_val_samples, settings.bn_batches,
                          statistics.median(accuracies), tau, rho, per_candidate))
            print(f"{name}, {measure.max_val_samples} validation images: tau {tau:.3f}", flush=True)
    print("\n| supernet | epochs | training | validation images | BN batches | median accuracy | Kendall τ | "
          "Spearman ρ | s per candidate | stand-alone s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, epochs, trained_s, images, bn, median, tau, rho, per in table:
        print(f"| {name} | {epochs} | {trained_s / 60:.1f} min | {images} | {bn} | {median:.3f} | {tau:.3f} | "
              f"{rho:.3f} | {per:.2f} | {alone:.1f} | {alone / per:.0f}x |")


if __name__ == "__main__":
    main()
