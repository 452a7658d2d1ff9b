"""``nas latency check``: the table's predictions against whole networks measured on the same runtime.

Architectures are sampled from the space with a seed other than the calibration's (so the check is on
networks the fit never saw), or given; each is timed whole as the table's parts were (against the reference
layer, in milliseconds of the table's reference time) and compared with what the table predicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.arch import Architecture
from nas.core.atomic import write_atomic
from nas.latency.build import sample_architectures
from nas.latency.table import LatencyTable
from nas.latency.timing import NETWORKS_AT_ONCE, ROUNDS, Timer, cpu_model, whole_network

SEED = 1_000_003
"""The check's networks (the calibration samples with the build's seed, 0 by default)."""


@dataclass(frozen=True)
class CheckReport:
    """Predicted against measured, per architecture, and the summary a user reads."""

    table: str
    runtime: str
    threads: int
    cpu: str
    archs: list[str]
    predicted_ms: list[float]
    measured_ms: list[float]
    predict_us: float
    """Microseconds per prediction (the mean over the checked architectures, repeated)."""
    seconds: float

    def errors(self) -> np.ndarray:
        return (np.asarray(self.predicted_ms) - np.asarray(self.measured_ms)) / np.asarray(self.measured_ms)

    def within(self, share: float) -> float:
        return float(np.mean(np.abs(self.errors()) <= share))

    def summary(self) -> dict[str, Any]:
        errors = self.errors()
        predicted, measured = np.asarray(self.predicted_ms), np.asarray(self.measured_ms)
        return {"architectures": len(self.archs), "within_5pct": self.within(0.05), "within_10pct": self.within(0.10),
                "rmse_ms": float(np.sqrt(np.mean((predicted - measured) ** 2))),
                "rmse_pct": float(100 * np.sqrt(np.mean(errors ** 2))),
                "mean_error_pct": float(100 * np.mean(errors)), "worst_error_pct": float(100 * np.max(np.abs(errors))),
                "measured_ms_range": [float(measured.min()), float(measured.max())],
                "predict_us": self.predict_us, "seconds": self.seconds}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def check_table(table: LatencyTable, space: Any, *, archs: int = 100, rounds: int = ROUNDS, seed: int = SEED,
                given: list[Architecture] | None = None, say: Callable[[str], None] = print) -> CheckReport:
    """Predict ``given`` architectures (else ``archs`` sampled from ``space``) from ``table``, time them whole,
    compare."""
    started = time.monotonic()
    chosen = given if given else sample_architectures(space, archs, seed)
    predicted = [table.predict(arch) for arch in chosen]
    predict_us = _prediction_time(table, chosen)
    deployment = {"resolution": table.resolution, "num_classes": table.num_classes, "in_channels": table.in_channels}
    reference = float(table.device.get("reference_ms") or 1.0)
    last = time.monotonic()

    def done(index: int, _ratio: float) -> None:
        nonlocal last
        if time.monotonic() - last > 10:
            last = time.monotonic()
            say(f"{index + 1}/{len(chosen)} networks timed · {(last - started) / 60:.1f} min")

    ratios = Timer(table.runtime, table.threads).fastest(chosen, lambda a: whole_network(a, **deployment),
                                                          rounds=rounds, chunk=NETWORKS_AT_ONCE, done=done)
    return CheckReport(table=table.source, runtime=table.runtime, threads=table.threads, cpu=cpu_model(),
                       archs=[str(a) for a in chosen], predicted_ms=predicted,
                       measured_ms=[ratio * reference for ratio in ratios], predict_us=predict_us,
                       seconds=time.monotonic() - started)


def _prediction_time(table: LatencyTable, archs: list[Any], repeats: int = 20) -> float:
    """Microseconds per prediction, with the per-stage cache warm as it is during a search."""
    start = time.perf_counter()
    for _ in range(repeats):
        for arch in archs:
            table.predict(arch)
    return (time.perf_counter() - start) / (repeats * max(1, len(archs))) * 1e6


def write_plot(report: CheckReport, path: Path) -> None:
    """Predicted against measured, with the ±10 % band, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = report.summary()
    measured, predicted = np.asarray(report.measured_ms), np.asarray(report.predicted_ms)
    low, high = 0.9 * min(measured.min(), predicted.min()), 1.1 * max(measured.max(), predicted.max())
    figure, axes = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    line = np.array([low, high])
    axes.fill_between(line, line * 0.9, line * 1.1, color="#d0e4f5", label="±10 %")
    axes.plot(line, line, color="#667085", linewidth=1)
    axes.scatter(measured, predicted, s=14, color="#1f5fa8", zorder=3)
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel(f"measured latency (ms, {report.runtime}, {report.threads} thread(s), batch 1)")
    axes.set_ylabel("predicted by the table (ms)")
    axes.set_title(f"{summary['architectures']} architectures: {100 * summary['within_10pct']:.0f} % within ±10 %, "
                   f"RMSE {summary['rmse_pct']:.1f} %", fontsize=10)
    axes.legend(loc="upper left")
    figure.tight_layout()
    write_atomic(path, lambda handle: figure.savefig(handle, format="png"))
    plt.close(figure)


__all__ = ["CheckReport", "check_table", "write_plot"]
