"""Latency tables, measured: how long a prediction takes, and whether the program `nas export --format onnx`
(or `onnx-int8`) writes runs as fast as the ONNX a table's timing uses (so a network deploys as it was timed).

    python scripts/bench_latency.py --table mnasnet-cpu.json --archs 12

Prediction: microseconds per architecture, with the per-stage cache cold (the first time a search meets
an architecture's stages) and warm. Exporters: each sampled network exported both ways (torch's
TorchScript-based exporter, which the table's timing uses because it takes milliseconds, and
`torch.export`, which `nas export` uses), both timed side by side in the same rounds on the table's runtime
and threads; printed as the ratio export / timing's, per network and its median. For an `onnxruntime-int8`
table both are int8 programs (`nas export --format onnx-int8` uses the timing's exporter, with a dynamic
batch), and the float program of each network is timed in the same rounds too: the ratio int8 / float is
what quantization buys on this CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from nas import space as spaces
from nas.app.export import export_int8, export_program
from nas.latency.build import sample_architectures
from nas.latency.int8 import random_inputs
from nas.latency.parts import stage_parts
from nas.latency.table import LatencyTable
from nas.latency.timing import Timer, onnx_bytes, whole_network


def prediction_us(table: LatencyTable, archs: list, repeats: int = 50) -> tuple[float, float]:
    """(cold, warm) microseconds per prediction."""
    cold = []
    for arch in archs:
        stage_parts.cache_clear()
        start = time.perf_counter()
        table.predict(arch)
        cold.append(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(repeats):
        for arch in archs:
            table.predict(arch)
    warm = (time.perf_counter() - start) / (repeats * len(archs))
    return statistics.median(cold) * 1e6, warm * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="a table `nas latency build` wrote")
    parser.add_argument("--archs", type=int, default=12, help="networks sampled from the table's space")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    table = LatencyTable.load(args.table)
    space = spaces.load(table.space_file or table.space)
    archs = sample_architectures(space, args.archs, args.seed)
    cold, warm = prediction_us(table, archs)
    print(f"prediction: {cold:.1f} µs per architecture with a cold stage cache, {warm:.1f} µs warm "
          f"({len(archs)} architectures of {space.name})")
    if not table.runtime.startswith("onnxruntime"):
        return 0
    int8 = table.runtime == "onnxruntime-int8"
    timer = Timer(table.runtime, table.threads)
    deployment = {"resolution": table.resolution, "num_classes": table.num_classes, "in_channels": table.in_channels}
    with tempfile.TemporaryDirectory() as folder:

        def prepare(item: tuple[int, str]):  # noqa: ANN202
            index, how = item
            module, shape = whole_network(archs[index], **deployment)
            example = torch.randn(shape)
            if how == "float":
                return timer.onnx_call(onnx_bytes(module, example), example)
            if how == "timing":
                return timer.prepare(module, shape)
            path = Path(folder) / f"{index}.onnx"
            if int8:
                export_int8(module, path, resolution=table.resolution, in_channels=table.in_channels,
                            calibration=random_inputs(shape))
            else:
                export_program(module, path, fmt="onnx", resolution=table.resolution, in_channels=table.in_channels)
            return timer.onnx_call(str(path), example)

        kinds = ("timing", "export", "float") if int8 else ("timing", "export")
        items = [(i, how) for i in range(len(archs)) for how in kinds]
        ratios = timer.fastest(items, prepare=prepare, rounds=args.rounds, chunk=len(items))
    reference = float(table.device.get("reference_ms") or 1.0)
    ms = {item: ratio * reference for item, ratio in zip(items, ratios)}
    float_columns = " float (ms) | int8 / float |" if int8 else ""
    print(f"| network | timing's ONNX (ms) | `nas export` ONNX (ms) | export / timing |{float_columns}")
    print(f"|---|---:|---:|---:|{'---:|---:|' if int8 else ''}")
    quotients, speedups = [], []
    for i in range(len(archs)):
        mine, exported = ms[(i, "timing")], ms[(i, "export")]
        quotients.append(exported / mine)
        extra = ""
        if int8:
            speedups.append(mine / ms[(i, "float")])
            extra = f" {ms[(i, 'float')]:.2f} | {speedups[-1]:.3f} |"
        print(f"| {i} | {mine:.2f} | {exported:.2f} | {exported / mine:.3f} |{extra}")
    print(f"median export / timing: {statistics.median(quotients):.3f} "
          f"(range {min(quotients):.3f}–{max(quotients):.3f}, {len(archs)} networks)")
    if int8:
        print(f"median int8 / float: {statistics.median(speedups):.3f} "
              f"(range {min(speedups):.3f}–{max(speedups):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
