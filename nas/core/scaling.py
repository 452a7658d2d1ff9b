"""Width, depth and resolution scaling, compound scaling and the α β γ grid (EfficientNet §3.3, §4).

Every function here maps a configuration to a *new* value: a :class:`Scaled` holding
the scaled :class:`~nas.core.arch.Architecture` and the multipliers that made it. Nothing is
rewritten in place (torchvision's config classes rewrite their own fields; we don't).
Channel and repeat rounding is :func:`nas.core.arch.scale` (EfficientNet's rules), so
``nas.network.builder.build`` and ``nas.core.cost.count`` agree with everything this module returns.

Conventions (the paper's): α scales depth, β width, γ resolution, with
α·β²·γ² ≈ 2 so that each step of φ roughly doubles the multiply-adds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from nas.core import cost
from nas.core.arch import LIMITS, Architecture, scale
from nas.core.errors import NasError

BASE_RESOLUTION = 224
BASE_DROPOUT = 0.2
DIMENSIONS = ("width", "depth", "resolution")


class ScalingError(NasError, ValueError):
    """A scaling request that cannot be met (a non-positive multiplier, an unreachable MACs target)."""


@dataclass(frozen=True)
class Preset:
    """One row of a scaling table: multipliers on the base network and an absolute input resolution."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float


PAPER_PRESETS: tuple[Preset, ...] = (
    Preset("B0", 1.0, 1.0, 224, 0.2),
    Preset("B1", 1.0, 1.1, 240, 0.2),
    Preset("B2", 1.1, 1.2, 260, 0.3),
    Preset("B3", 1.2, 1.4, 300, 0.3),
    Preset("B4", 1.4, 1.8, 380, 0.4),
    Preset("B5", 1.6, 2.2, 456, 0.4),
    Preset("B6", 1.8, 2.6, 528, 0.5),
    Preset("B7", 2.0, 3.1, 600, 0.5),
)
"""EfficientNet B0…B7 as released (TF ``efficientnet_params``; torchvision uses the same values).
These are *not* exactly (1.1^φ, 1.2^φ, 224·1.15^φ): the authors hand-adjusted them."""

PAPER_TABLE2_GMACS: dict[str, float] = {"B0": 0.39, "B1": 0.70, "B2": 1.0, "B3": 1.8, "B4": 4.2, "B5": 9.9,
                                        "B6": 19.0, "B7": 37.0}
"""FLOPs (multiply-adds), in billions, as printed in the paper's Table 2 (two significant digits)."""

PAPER_COEFFICIENTS = (1.2, 1.1, 1.15)
"""(α, β, γ) the paper found by its grid search on B0 at φ = 1."""


@dataclass(frozen=True)
class Scaled:
    """A scaled network and how it was made. ``resolution`` is the target (deployment) input size,
    where cost is counted; the proxy input size is derived separately (:func:`proxy_resolution`)."""

    arch: Architecture
    width: float
    depth: float
    resolution: int
    dropout: float = BASE_DROPOUT
    name: str = ""
    phi: float | None = None
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None

    @property
    def resolution_mult(self) -> float:
        return self.resolution / BASE_RESOLUTION

    def cost(self, num_classes: int = 1000) -> cost.Cost:
        return cost.count(self.arch, self.resolution, num_classes=num_classes)

    def row(self, num_classes: int = 1000) -> dict[str, object]:
        """Plain data for tables and JSON."""
        total = self.cost(num_classes)
        out: dict[str, object] = {"member": self.name, "width": self.width, "depth": self.depth,
                                  "resolution": self.resolution, "dropout": self.dropout,
                                  "params": total.params, "macs": total.macs, "arch": str(self.arch)}
        if self.phi is not None:
            out.update(phi=self.phi, alpha=self.alpha, beta=self.beta, gamma=self.gamma)
        return out


def _positive(**values: float) -> None:
    for key, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ScalingError(f"{key} must be a positive number, got {value!r}")


def scale_dims(arch: Architecture, *, width: float = 1.0, depth: float = 1.0, resolution: float = 1.0,
               base_resolution: int = BASE_RESOLUTION, dropout: float = BASE_DROPOUT, name: str = "") -> Scaled:
    """Scale by three *multipliers*; the input size becomes ``round(base_resolution · resolution)``."""
    _positive(width=width, depth=depth, resolution=resolution, base_resolution=base_resolution)
    return Scaled(arch=scale(arch, width=width, depth=depth), width=width, depth=depth,
                  resolution=max(1, round(base_resolution * resolution)), dropout=dropout, name=name)


def dropout_for(phi: float) -> float:
    """The paper's dropout for a compound member: B⌊φ⌉'s value (0.2 … 0.5), clamped to B0…B7."""
    index = min(max(round(phi), 0), len(PAPER_PRESETS) - 1)
    return PAPER_PRESETS[index].dropout


def compound(arch: Architecture, *, phi: float, alpha: float, beta: float, gamma: float,
             base_resolution: int = BASE_RESOLUTION, name: str = "") -> Scaled:
    """EfficientNet's compound scaling: depth α^φ, width β^φ, resolution round(base · γ^φ)."""
    _positive(alpha=alpha, beta=beta, gamma=gamma)
    if not (math.isfinite(phi) and phi >= 0):
        raise ScalingError(f"phi must be >= 0, got {phi!r}")
    scaled = scale_dims(arch, width=beta ** phi, depth=alpha ** phi, resolution=gamma ** phi,
                        base_resolution=base_resolution, dropout=dropout_for(phi), name=name)
    return Scaled(arch=scaled.arch, width=scaled.width, depth=scaled.depth, resolution=scaled.resolution,
                  dropout=scaled.dropout, name=name, phi=phi, alpha=alpha, beta=beta, gamma=gamma)


def family(arch: Architecture, presets: Sequence[Preset] = PAPER_PRESETS) -> list[Scaled]:
    """One :class:`Scaled` per preset row (absolute resolutions, as the table gives them)."""
    out = []
    for preset in presets:
        _positive(width=preset.width, depth=preset.depth, resolution=preset.resolution)
        out.append(Scaled(arch=scale(arch, width=preset.width, depth=preset.depth), width=preset.width,
                          depth=preset.depth, resolution=preset.resolution, dropout=preset.dropout,
                          name=preset.name))
    return out


def compound_family(arch: Architecture, *, alpha: float, beta: float, gamma: float,
                    phis: Iterable[int] = range(1, 8), base_resolution: int = BASE_RESOLUTION,
                    prefix: str = "B") -> list[Scaled]:
    """B1…B7 (by default) from one (α, β, γ): member ``f"{prefix}{φ}"`` is ``compound(φ)``."""
    return [compound(arch, phi=phi, alpha=alpha, beta=beta, gamma=gamma, base_resolution=base_resolution,
                     name=f"{prefix}{phi}") for phi in phis]


def proxy_resolution(proxy: int, multiplier: float, *, divisor: int = 8) -> int:
    """Proxy input size for a resolution multiplier: ``proxy · multiplier`` to the nearest multiple
    of ``divisor`` (never below one ``divisor``); 32 at γ = 1.15 gives 40, at γ = 1.0 stays 32."""
    _positive(proxy=proxy, multiplier=multiplier)
    return max(divisor, round(proxy * multiplier / divisor) * divisor)


# ---------------------------------------------------------------- the α β γ grid


@dataclass(frozen=True)
class Coefficients:
    """One grid point: α (depth), β (width), γ (resolution)."""

    alpha: float
    beta: float
    gamma: float

    @property
    def flops_factor(self) -> float:
        """α·β²·γ²: how much one step of φ multiplies the multiply-adds (ideally)."""
        return self.alpha * self.beta ** 2 * self.gamma ** 2

    @property
    def label(self) -> str:
        return f"a{self.alpha:.2f}-b{self.beta:.2f}-g{self.gamma:.2f}"


def grid(*, step: float = 0.05, tolerance: float = 0.05, target: float = 2.0,
         max_value: float | None = None) -> list[Coefficients]:
    """Every (α, β, γ) on ``1, 1+step, 1+2·step, …`` (each ≥ 1, ≤ ``max_value``) whose α·β²·γ² lies
    within ±``tolerance`` (relative) of ``target``. Without ``max_value`` the constraint bounds the
    grid itself (α ≤ target·(1+tol) with β = γ = 1). Sorted by (α, β, γ)."""
    _positive(step=step, target=target)
    if not (math.isfinite(tolerance) and 0 <= tolerance < 1):
        raise ScalingError(f"tolerance must be in [0, 1), got {tolerance!r}")
    upper = target * (1 + tolerance) if max_value is None else max_value
    if upper < 1:
        raise ScalingError(f"max_value must be >= 1, got {max_value!r}")
    # Integer steps, rounded values: 1 + k·0.05 stays 1.15, not 1.1500000000000001.
    values = [round(1 + k * step, 10) for k in range(int(math.floor((upper - 1) / step + 1e-9)) + 1)]
    low, high = target * (1 - tolerance), target * (1 + tolerance)
    out = []
    for alpha in values:
        for beta in values:
            for gamma in values:
                point = Coefficients(alpha, beta, gamma)
                if low - 1e-12 <= point.flops_factor <= high + 1e-12:
                    out.append(point)
    return out


# ---------------------------------------------------------------- single-dimension baselines


def single_dimension(arch: Architecture, *, dimension: str, multiplier: float,
                     base_resolution: int = BASE_RESOLUTION) -> Scaled:
    """Scale one dimension only (``width``, ``depth`` or ``resolution``) by ``multiplier``."""
    if dimension not in DIMENSIONS:
        raise ScalingError(f"dimension {dimension!r} is not one of {', '.join(DIMENSIONS)}")
    scaled = scale_dims(arch, base_resolution=base_resolution, **{dimension: multiplier})
    return Scaled(arch=scaled.arch, width=scaled.width, depth=scaled.depth, resolution=scaled.resolution,
                  dropout=scaled.dropout, name=f"{dimension}-only x{multiplier:.3f}")


def match_macs(arch: Architecture, *, dimension: str, target_macs: float, base_resolution: int = BASE_RESOLUTION,
               num_classes: int = 1000, max_multiplier: float = 16.0, iterations: int = 60) -> Scaled:
    """Scale one dimension until the multiply-adds are as close to ``target_macs`` as that dimension
    allows. MACs are a non-decreasing step function of each multiplier (channels round to 8, repeats
    round up, pixels are integers), so bisect for the first step at or above the target and keep
    whichever of it and the step below is closer."""
    _positive(target_macs=target_macs)

    def macs_at(m: float) -> int:
        member = single_dimension(arch, dimension=dimension, multiplier=m, base_resolution=base_resolution)
        return member.cost(num_classes).macs

    low, high = 1.0, min(max_multiplier, _largest_multiplier(arch, dimension, base_resolution))
    if macs_at(low) >= target_macs:
        high = low
    elif macs_at(high) < target_macs:
        raise ScalingError(f"{dimension}-only scaling up to x{high:g} stays below "
                           f"{target_macs:,.0f} multiply-adds")
    else:
        for _ in range(iterations):
            middle = (low + high) / 2
            if macs_at(middle) >= target_macs:
                high = middle
            else:
                low = middle
    best = min((low, high), key=lambda m: (abs(macs_at(m) - target_macs), m))
    best = _tidy(best, macs_at)
    return single_dimension(arch, dimension=dimension, multiplier=best, base_resolution=base_resolution)


def _largest_multiplier(arch: Architecture, dimension: str, base_resolution: int) -> float:
    """The largest multiplier of ``dimension`` that still gives an architecture within :data:`nas.core.arch.LIMITS`."""
    if dimension == "depth":
        return LIMITS["repeats"][1] / max(stage.repeats for stage in arch.stages)
    if dimension == "width":
        widest = max(arch.stem, arch.head, *(stage.channels for stage in arch.stages))
        return (LIMITS["channels"][1] - 8) / widest  # rounding to a multiple of 8 adds at most 4
    return LIMITS["resolution"][1] / base_resolution


def _tidy(multiplier: float, macs_at: Callable[[float], int]) -> float:
    """The shortest decimal (up to 6 places) that gives the same network as ``multiplier``."""
    want = macs_at(multiplier)
    for places in range(1, 7):
        for candidate in (round(multiplier, places), math.ceil(multiplier * 10 ** places) / 10 ** places):
            if candidate > 0 and macs_at(candidate) == want:
                return candidate
    return multiplier


def baselines(arch: Architecture, *, target_macs: float, base_resolution: int = BASE_RESOLUTION,
              num_classes: int = 1000) -> dict[str, Scaled]:
    """Width-only, depth-only and resolution-only networks at (as near as each allows) ``target_macs``."""
    return {dim: match_macs(arch, dimension=dim, target_macs=target_macs, base_resolution=base_resolution,
                            num_classes=num_classes) for dim in DIMENSIONS}


__all__ = ["BASE_RESOLUTION", "Coefficients", "DIMENSIONS", "PAPER_COEFFICIENTS", "PAPER_PRESETS",
           "PAPER_TABLE2_GMACS", "Preset", "Scaled", "ScalingError", "baselines", "compound", "compound_family",
           "dropout_for", "family", "grid", "match_macs", "proxy_resolution", "scale_dims", "single_dimension"]
