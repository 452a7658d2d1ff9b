"""Analytic cost: multiply-adds and parameters from an :class:`~nas.core.arch.Architecture` alone.

No model is built, so a controller can price thousands of candidates a second
(``scripts/bench_cost.py``). Counts follow the papers' convention (FLOPs =
multiply-adds of convolutions and linear layers; BN, activations and pooling
are free) and price the same op bodies (:mod:`nas.core.ops`) that ``nas.network.builder.build`` builds: the parameter count is
exact and the multiply-adds equal ``torch.utils.flop_counter`` / 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from nas.core.arch import Architecture, Layer, Stage
from nas.core.ops import Shuffle, SqueezeExcite


@dataclass(frozen=True)
class Cost:
    """What a network costs at one input resolution."""

    macs: int
    params: int
    resolution: int

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Spatial size after a 'same'-padded conv (padding (k-1)//2), as torch computes it."""
    return (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


class _Tally:
    def __init__(self) -> None:
        self.macs = 0
        self.params = 0

    def conv(self, size: int, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
             bn: bool = True) -> int:
        out = conv_out(size, kernel, stride)
        weights = c_out * (c_in // groups) * kernel * kernel
        self.params += weights + (2 * c_out if bn else c_out)  # BN weight+bias, or the conv's bias
        self.macs += weights * out * out
        return out

    def se(self, channels: int, squeeze: int) -> None:
        self.conv(1, channels, squeeze, bn=False)
        self.conv(1, squeeze, channels, bn=False)

    def linear(self, c_in: int, c_out: int) -> None:
        self.params += c_in * c_out + c_out
        self.macs += c_in * c_out


def _layer(tally: _Tally, layer: Layer, size: int) -> int:
    """Price one layer's body (:mod:`nas.core.ops`), primitive by primitive, and its projected shortcut."""
    out = size
    for part in layer.body():
        if isinstance(part, SqueezeExcite):
            tally.se(part.channels, part.squeeze)
        elif isinstance(part, Shuffle):
            continue  # a reshape: no weights, no multiply-adds
        else:
            out = tally.conv(out, part.c_in, part.c_out, part.kernel, part.stride, groups=part.groups)
    if layer.residual == "pool" and layer.in_channels != layer.out_channels:
        tally.conv(out, layer.in_channels, layer.out_channels)  # projection after the (free) average pool
    return out


@lru_cache(maxsize=65536)
def layer_output_size(layer: Layer, size: int) -> int:
    """The spatial size ``layer`` turns a ``size``² input into (cached: layers are values)."""
    return _layer(_Tally(), layer, size)


@lru_cache(maxsize=65536)
def stage_cost(stage: Stage, in_channels: int, size: int, se_style: str = "efficientnet") -> tuple[int, int, int]:
    """(multiply-adds, parameters, output size) of one stage on a ``size``² input with ``in_channels``:
    the unit :func:`count` sums. Cached, because neighbouring candidates share most of their stages (a
    controller that prices thousands of them pays for each distinct stage once)."""
    tally = _Tally()
    for layer in stage.layers(in_channels, se_style=se_style):
        size = _layer(tally, layer, size)
    return tally.macs, tally.params, size


@lru_cache(maxsize=65536)
def count(arch: Architecture, resolution: int = 224, num_classes: int = 1000, in_channels: int = 3) -> Cost:
    """Multiply-adds and parameters of ``arch`` on a ``resolution``² input (cached: archs are values)."""
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    tally = _Tally()
    size = tally.conv(resolution, in_channels, arch.stem, 3, arch.stem_stride)
    channels = arch.stem
    for stage in arch.stages:
        macs, params, size = stage_cost(stage, channels, size, arch.se_style)
        tally.macs += macs
        tally.params += params
        channels = stage.channels
    features = arch.stages[-1].channels
    if arch.head:
        tally.conv(size, features, arch.head)
        features = arch.head
    if arch.feature_mix:  # a 1x1 conv on the pooled features, without norm or bias
        tally.params += features * arch.feature_mix
        tally.macs += features * arch.feature_mix
        features = arch.feature_mix
    tally.linear(features, num_classes)
    return Cost(macs=tally.macs, params=tally.params, resolution=resolution)
