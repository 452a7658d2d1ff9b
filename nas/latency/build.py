"""``nas latency build``: measure every part a space can produce on this machine, then calibrate.

Every distinct part (:func:`nas.latency.parts.space_parts`) is timed against the reference layer
(:meth:`nas.latency.timing.Timer.fastest`, in shuffled order, a chunk at a time). Then ``networks``
architectures sampled from the space are timed whole, the same way, and
``latency = intercept + scale × sum of parts`` is fitted on them: what a whole network adds or saves beyond
its parts (one input copy instead of one per part, caches warm or cold across layers). Last, the reference
layer's own fastest time turns the ratios into milliseconds.

The table file is written as it goes (atomically, after every chunk), so a killed build resumes where it
stopped when run again with the same arguments.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.arch import Architecture
from nas.latency.parts import space_parts
from nas.latency.table import Calibration, LatencyTable, LatencyTableError
from nas.latency.timing import (
    CHUNK,
    NETWORKS_AT_ONCE,
    ROUNDS,
    Timer,
    cpu_model,
    device_info,
    part_network,
    whole_network,
)

NETWORKS = 32
NETWORK_WEIGHT = 12
"""Roughly how many parts' time one whole network takes to export and time (for the ETA)."""
SAY_SECONDS = 10.0


def build_table(space: Any, *, space_file: str, runtime: str, threads: int, resolution: int, out: Path,
                rounds: int = ROUNDS, networks: int = NETWORKS, seed: int = 0,
                say: Callable[[str], None] = print) -> LatencyTable:
    """Build (or resume building) the table of ``space`` (a :class:`~nas.space.SearchSpace`) at ``out``."""
    deployment = {"resolution": resolution, "num_classes": space.num_classes, "in_channels": space.in_channels}
    parts = space_parts(space, **deployment)
    table = _start(out, space=space.name, space_file=space_file, runtime=runtime, threads=threads, rounds=rounds,
                   **deployment)
    if table.progress is None and table.calibration is not None and table.parts.keys() >= parts.keys():
        say(f"{out} is complete ({len(table.parts)} parts, calibrated on {table.calibration.networks} networks)")
        return table
    progress = table.progress = table.progress or {"ratios": {}, "network_ratios": []}
    ratios: dict[str, float] = progress["ratios"]
    network_ratios: list[float] = progress["network_ratios"]
    del network_ratios[networks:]  # resumed with fewer --networks than it started with
    todo = [parts[key] for key in np.random.default_rng(seed).permutation(sorted(parts)) if key not in ratios]
    archs = sample_architectures(space, networks, seed)
    timer = Timer(runtime, threads)
    meter = _Meter(total=len(todo) + NETWORK_WEIGHT * (networks - len(network_ratios)), say=say)
    say(f"timing {len(todo)} of the {len(parts)} parts of {space.name}, then {networks - len(network_ratios)} whole "
        f"networks, on {runtime} ({threads} thread{'s' if threads > 1 else ''}, {resolution} px); writing {out} "
        "as it goes")
    for begin in range(0, len(todo), CHUNK):
        chunk = todo[begin:begin + CHUNK]
        ratios.update(zip((part.key for part in chunk), timer.fastest(chunk, part_network, rounds=rounds)))
        table.save(out)
        meter.step(len(chunk), f"{len(ratios)}/{len(parts)} parts")
    while len(network_ratios) < networks:  # timed a chunk at a time, as the check times them
        chunk = archs[len(network_ratios):len(network_ratios) + NETWORKS_AT_ONCE]
        network_ratios += timer.fastest(chunk, lambda a: whole_network(a, **deployment), rounds=rounds,
                                        chunk=NETWORKS_AT_ONCE)
        table.save(out)
        meter.step(NETWORK_WEIGHT * len(chunk), f"{len(network_ratios)}/{networks} whole networks")
    reference = table.device["reference_ms"] = timer.reference_ms()
    table.parts = {key: ratio * reference for key, ratio in ratios.items()}
    table.calibration = fit([table.parts_ms(arch) for arch in archs], [ratio * reference for ratio in network_ratios])
    table.progress = None
    table.save(out)
    say(f"wrote {out}: {len(table.parts)} parts; a whole network = {table.calibration.intercept_ms:.3f} ms + "
        f"{table.calibration.scale:.3f} × its parts (fit error {table.calibration.rmse_pct:.1f} % on {networks} "
        f"networks); {meter.elapsed() / 60:.1f} min")
    return table


def fit(parts_ms: list[float], measured_ms: list[float]) -> Calibration:
    """Least squares ``measured ≈ intercept + scale × parts`` on relative errors (a millisecond matters more
    to a small network than to a large one); the identity when fewer than two networks."""
    if len(parts_ms) < 2 or max(parts_ms) - min(parts_ms) <= 0:
        return Calibration(networks=len(parts_ms))
    x, y = np.asarray(parts_ms), np.asarray(measured_ms)
    scale, intercept = np.polyfit(x, y, 1, w=1 / y)
    errors = (intercept + scale * x - y) / y
    return Calibration(intercept_ms=float(intercept), scale=float(scale), networks=len(parts_ms),
                       rmse_pct=float(100 * np.sqrt(np.mean(errors ** 2))))


def _start(out: Path, *, space: str, space_file: str, runtime: str, threads: int, rounds: int, resolution: int,
           num_classes: int, in_channels: int) -> LatencyTable:
    """The table at ``out`` to resume, or a new one; a file there measured otherwise is refused in one line."""
    fresh = LatencyTable(space=space, resolution=resolution, num_classes=num_classes, in_channels=in_channels,
                         runtime=runtime, threads=threads, device=device_info(runtime, threads, rounds),
                         space_file=space_file, source=str(out))
    if not out.exists():
        return fresh
    table = LatencyTable.load(out)
    same = {"space": (table.space, space), "runtime": (table.runtime, runtime), "threads": (table.threads, threads),
            "resolution": (table.resolution, resolution), "classes": (table.num_classes, num_classes),
            "in_channels": (table.in_channels, in_channels), "CPU": (table.device.get("cpu"), cpu_model())}
    for what, (have, want) in same.items():
        if have != want:
            raise LatencyTableError(f"{out} holds a table with {what} {have!r}, not {want!r}: give another --out, or "
                                    "remove it to start over")
    return table


class _Meter:
    """A progress line with an ETA at most every few seconds."""

    def __init__(self, *, total: int, say: Callable[[str], None]) -> None:
        self.total, self.say, self.done = max(total, 1), say, 0
        self.started = self.last = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def step(self, units: int, what: str) -> None:
        self.done += units
        now = time.monotonic()
        if now - self.last < SAY_SECONDS:
            return
        self.last = now
        rate = self.done / max(self.elapsed(), 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        self.say(f"{what} · {100 * self.done / self.total:.0f} % · {self.elapsed() / 60:.1f} min · "
                 f"about {left / 60:.1f} min left")


def sample_architectures(space: Any, count: int, seed: int) -> list[Architecture]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(count)]


__all__ = ["NETWORKS", "build_table", "fit", "sample_architectures"]
