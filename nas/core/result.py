"""Trials as plain data: a fixed candidate to train, and the outcome of one trial (JSON round-trip)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from nas.core.arch import Architecture

Status = Literal["running", "ok", "failed", "stopped"]
"""``running``: in flight (a stored row only; no result says it); ``ok``: trained to the end; ``failed``: no
accuracy (its ``error`` says why); ``stopped``: ended early by an early-stopping scheduler, with the
accuracy of its last epoch (lower fidelity than ``ok``)."""
STATUSES: tuple[Status, ...] = get_args(Status)
"""Every status, in a trial's order: the one list the store's CHECK constraint and the views derive from."""


@dataclass(frozen=True)
class TrialResult:
    """What evaluating one architecture produced (:data:`Status`); ``status == "failed"`` carries ``error``."""

    arch: str
    status: Status = "ok"
    accuracy: float | None = None
    macs: int | None = None
    params: int | None = None
    reward: float | None = None
    latency_ms: float | None = None
    step_ms: float | None = None
    train_seconds: float = 0.0
    epochs: int = 0
    error: str | None = None
    evaluator: str = "standalone"
    """What measured the accuracy: ``standalone`` (trained on the proxy) or ``supernet`` (weight sharing)."""
    device: str | None = None
    """Where the trial trained (``cpu``, ``cuda:0`` — the index among the devices the trial was given)."""

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
    """A fixed architecture to train (compound-scaling grids and their baselines, proxy checks), with what
    differs from the run's task: the cost's resolution, changes to the proxy, the seed."""

    arch: Architecture
    label: str
    target_resolution: int | None = None
    proxy_changes: dict[str, Any] = field(default_factory=dict)
    """Changes to the run's proxy settings (``ProxySettings.override``), e.g. ``{"resolution": 40}``."""
    seed: int | None = None

    @property
    def proxy_resolution(self) -> int | None:
        return self.proxy_changes.get("resolution")

    def to_dict(self) -> dict[str, Any]:
        return {"arch": str(self.arch), "label": self.label, "target_resolution": self.target_resolution,
                "proxy_changes": dict(self.proxy_changes), "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        from nas.core.arch import Architecture

        return cls(arch=Architecture.parse(data["arch"]), label=str(data["label"]),
                   target_resolution=data.get("target_resolution"), proxy_changes=dict(data.get("proxy_changes") or {}),
                   seed=data.get("seed"))
