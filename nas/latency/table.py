"""A latency table: each part's measured time on one device and runtime, and the predictor built on it.

A table is a JSON file (``nas latency build`` writes it) holding what it was measured on (the runtime and
its version, the thread count, the CPU, the date), the deployment it holds for (the space, the input
resolution, channels and classes), each part's time in milliseconds (:mod:`nas.latency.parts`), and a
calibration: what whole networks measured on the same runtime add to, or save on, the sum of their parts
(``latency = intercept + scale × sum``, fitted by least squares on networks sampled from the space).

Prediction is a sum of dictionary look-ups: no torch, no measurement, microseconds per architecture, the
same answer on a GPU worker as on the device the table was built on.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.core.arch import Architecture
from nas.core.atomic import write_atomic
from nas.core.errors import NasError
from nas.latency.parts import Part, network_parts, space_parts

if TYPE_CHECKING:
    from nas.space import SearchSpace

FORMAT = "nas-latency-table/1"
RUNTIMES = ("onnxruntime", "onnxruntime-int8", "torch")
"""What times parts and networks: ONNX Runtime on the CPU (float, or int8 as :mod:`nas.latency.int8` quantizes),
or eager torch."""
MAX_TABLE_BYTES = 64 << 20


class LatencyTableError(NasError):
    """A table that cannot be used: unreadable, from another space, runtime or resolution, or missing a part."""


@dataclass(frozen=True)
class Calibration:
    """``latency = intercept_ms + scale × (sum of the parts)``, fitted on ``networks`` whole networks; ``rmse_pct``
    is the fit's own error on them (relative, in percent)."""

    intercept_ms: float = 0.0
    scale: float = 1.0
    networks: int = 0
    rmse_pct: float | None = None

    def apply(self, parts_ms: float) -> float:
        return self.intercept_ms + self.scale * parts_ms


@dataclass
class LatencyTable:
    """What a table holds (see the module docstring); ``parts`` maps a part's key to its milliseconds."""

    space: str
    resolution: int
    num_classes: int
    in_channels: int
    runtime: str
    threads: int
    device: dict[str, Any] = field(default_factory=dict)
    """Where it was measured: runtime and torch versions, CPU model, machine, date, the statistic."""
    parts: dict[str, float] = field(default_factory=dict)
    calibration: Calibration | None = None
    space_file: str = ""
    """The space as ``nas latency build`` was given it (a shipped name or a file), for ``nas latency check``."""
    progress: dict[str, Any] | None = None
    """While building: the measurements so far (``nas latency build`` resumes from them); ``parts`` is empty."""
    source: str = "<table>"

    # ------------------------------------------------------------ prediction

    def parts_ms(self, arch: Architecture) -> float:
        """The sum of ``arch``'s parts, uncalibrated."""
        total = 0.0
        for part in self.parts_of(arch):
            try:
                total += self.parts[part.key]
            except KeyError:
                raise self._missing(part) from None
        return total

    def predict(self, arch: Architecture) -> float:
        """``arch``'s predicted batch-1 latency in milliseconds on the table's device and runtime."""
        if self.calibration is None or self.progress is not None:
            raise self._unfinished()
        return self.calibration.apply(self.parts_ms(arch))

    def parts_of(self, arch: Architecture) -> list[Part]:
        return network_parts(arch, resolution=self.resolution, num_classes=self.num_classes,
                             in_channels=self.in_channels)

    def _unfinished(self) -> LatencyTableError:
        return LatencyTableError(f"{self.source} is not finished: run `nas latency build` "
                                 "again with the same arguments to complete it")

    def _missing(self, part: Part) -> LatencyTableError:
        return LatencyTableError(f"{self.source} has no entry for `{part.key}` (a table of space {self.space!r} at "
                                 f"{self.resolution} px, {self.in_channels} channels, {self.num_classes} classes): "
                                 "build one for this space and deployment with `nas latency build`")

    def check_deployment(self, space: str, *, resolution: int, num_classes: int, in_channels: int,
                         keys: set[str] | None = None) -> None:
        """Refuse, in one line, a table that does not hold for this space and deployment: another resolution,
        channels or classes, a table not finished, or (given every part the space can produce as ``keys``) a
        part it lacks: a table built for another space is refused by its parts, not by its name (a renamed
        copy of a space is the same space)."""
        wanted = {"resolution": resolution, "in_channels": in_channels, "classes": num_classes}
        have = {"resolution": self.resolution, "in_channels": self.in_channels, "classes": self.num_classes}
        for what in wanted:
            if wanted[what] != have[what]:
                raise LatencyTableError(f"{self.source} was built for {what} {have[what]!r}, this search needs "
                                        f"{wanted[what]!r}: build a table for it with `nas latency build`")
        if self.calibration is None or self.progress is not None:
            raise self._unfinished()
        missing = sorted((keys or set()) - self.parts.keys())
        if missing:
            raise LatencyTableError(f"{self.source} (built for space {self.space!r}) lacks {len(missing)} of the parts "
                                    f"of space {space!r} (first: `{missing[0]}`): build a table for it with "
                                    "`nas latency build`")

    # ------------------------------------------------------------ the file

    def to_json(self) -> dict[str, Any]:
        calibration = None if self.calibration is None else vars(self.calibration)
        return {"format": FORMAT, "space": self.space, "resolution": self.resolution,
                "num_classes": self.num_classes, "in_channels": self.in_channels, "runtime": self.runtime,
                "threads": self.threads, "device": self.device, "space_file": self.space_file,
                "calibration": calibration, "progress": self.progress, "parts": dict(sorted(self.parts.items()))}

    def save(self, path: str | Path) -> None:
        write_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table; anything but a table this version wrote is one :class:`LatencyTableError` line."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_TABLE_BYTES:
                raise LatencyTableError(f"{path}: larger than {MAX_TABLE_BYTES >> 20} MiB; not a latency table")
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LatencyTableError(f"{path}: no such latency table") from None
        except IsADirectoryError:
            raise LatencyTableError(f"{path}: is a folder, not a latency table") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LatencyTableError(f"{path}: not a latency table (not JSON: {str(error)[:80]})") from None
        return cls.from_json(data, source=str(path))

    @classmethod
    def from_json(cls, data: Any, *, source: str = "<table>") -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LatencyTableError(f"{source}: not a latency table (its \"format\" is not {FORMAT!r})")
        try:
            calibration = data["calibration"]
            table = cls(space=_text(data["space"]), resolution=_count(data["resolution"]),
                        num_classes=_count(data["num_classes"]), in_channels=_count(data["in_channels"]),
                        runtime=_text(data["runtime"]), threads=_count(data["threads"]),
                        device=dict(data.get("device") or {}), source=source,
                        space_file=str(data.get("space_file") or ""), progress=data.get("progress"),
                        calibration=None if calibration is None else Calibration(**calibration))
            if table.runtime not in RUNTIMES:
                raise ValueError(f"runtime {table.runtime!r} is not one of {', '.join(RUNTIMES)}")
            parts = data["parts"]
            if not isinstance(parts, dict):
                raise ValueError("\"parts\" is not an object")
            for key, ms in parts.items():
                table.parts[str(key)] = _milliseconds(ms, key)
            if table.calibration is not None:
                for value in (table.calibration.intercept_ms, table.calibration.scale):
                    if not isinstance(value, (int, float)) or not math.isfinite(value):
                        raise ValueError("the calibration holds a value that is not a finite number")
        except KeyError as error:
            raise LatencyTableError(f"{source}: not a latency table (no {error.args[0]!r})") from None
        except (TypeError, ValueError) as error:
            raise LatencyTableError(f"{source}: a damaged latency table ({str(error)[:120]})") from None
        return table


def table_for(path: str | Path, space: SearchSpace, *, resolution: int | None = None,
              num_classes: int | None = None) -> LatencyTable:
    """The table at ``path``, refused in one line unless it holds every part of ``space`` deployed at
    ``resolution``² with ``num_classes`` (default: the space's): what a search checks before it starts."""
    table = LatencyTable.load(path)
    deployment = {"resolution": resolution or space.target_resolution,
                  "num_classes": num_classes or space.num_classes, "in_channels": space.in_channels}
    table.check_deployment(space.name, keys=set(space_parts(space, **deployment)), **deployment)
    return table


def load_table(path: str | Path) -> LatencyTable:
    """The table at ``path``, read once per process while the file is unchanged (every trial of a search
    predicts from it)."""
    try:
        stat = os.stat(path)
    except OSError:
        return LatencyTable.load(path)  # its own one-line error
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> LatencyTable:
    return LatencyTable.load(path)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a name")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{value!r} is not a positive integer")
    return value


def _milliseconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"the time of `{key}` is {value!r}, not a number of milliseconds")
    return float(value)


__all__ = ["FORMAT", "RUNTIMES", "Calibration", "LatencyTable", "LatencyTableError", "load_table", "table_for"]
