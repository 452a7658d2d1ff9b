"""Trials as plain data: a fixed candidate to train, and the outcome of one trial (JSON round-trip)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from nas.arch import Architecture

Status = Literal["ok", "failed"]


@dataclass(frozen=True)
class TrialResult:
    """What evaluating one architecture produced; ``status == "failed"`` carries ``error``."""

    arch: str
    status: Status = "ok"
    accuracy: float | None = None
    macs: int | None = None
    params: int | None = None
    reward: float | None = None
    latency_ms: float | None = None
    train_seconds: float = 0.0
    epochs: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        # NaN / inf are not JSON; a metric that is not finite is stored as missing.
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> TrialResult:
        return cls.from_dict(json.loads(text))

    @classmethod
    def failure(cls, arch: str, error: str, **metrics: Any) -> TrialResult:
        return cls(arch=arch, status="failed", error=error, **metrics)


@dataclass(frozen=True)
class Candidate:
    """A fixed architecture to train (compound-scaling grids, baselines), at its own resolutions."""

    arch: Architecture
    proxy_resolution: int
    target_resolution: int
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"arch": str(self.arch), "proxy_resolution": self.proxy_resolution,
                "target_resolution": self.target_resolution, "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        from nas.arch import Architecture

        return cls(arch=Architecture.parse(data["arch"]), proxy_resolution=int(data["proxy_resolution"]),
                   target_resolution=int(data["target_resolution"]), label=str(data["label"]))
