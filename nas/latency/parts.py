"""The parts a latency table times: the stem, each distinct layer at its input size, and the head.

A network's batch-1 latency is predicted as the sum of its parts' latencies (then calibrated, see
:mod:`nas.latency.table`). A part is named by a key that holds everything its time depends on: the
network's activation, the input size, and the layer as built (op, kernel, stride, expansion, channels,
squeeze-excitation, and the shortcut it actually has). Two architectures that share a layer at the same
input size share its key, which is why a factorized space needs only a few hundred measurements per
block, not one per architecture.

This module imports no torch: a controller or a trial prices an architecture from its keys alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from nas.core.arch import Architecture, Layer, Stage
from nas.core.cost import conv_out, layer_output_size

if TYPE_CHECKING:
    from nas.space import SearchSpace


@dataclass(frozen=True)
class Part:
    """One thing to time: ``kind`` is ``stem``, ``layer`` or ``head``; ``channels`` and ``size`` are its input
    (channels, height = width). A layer carries its :class:`~nas.core.arch.Layer`; the stem its output
    channels and stride; the head its 1×1 conv width (0: none), its feature mix after the pool (0: none) and the
    classifier's outputs. ``act`` is the activation the part uses (a layer's own, or the network's)."""

    kind: str
    act: str
    channels: int
    size: int
    layer: Layer | None = None
    out_channels: int = 0
    stride: int = 1
    classes: int = 0
    mix: int = 0

    @cached_property
    def key(self) -> str:
        if self.kind == "stem":
            return f"stem {self.act} {self.channels}>{self.out_channels} s{self.stride} @{self.size}"
        if self.kind == "head":
            mix = f">m{self.mix}" if self.mix else ""
            return f"head {self.act} {self.channels}>{self.out_channels}{mix}>{self.classes} @{self.size}"
        return layer_key(self.layer, self.act, self.size)  # type: ignore[arg-type]


def layer_key(layer: Layer, act: str, size: int) -> str:
    """A layer's key: what its time depends on, and nothing else (not its stage, nor a skip it cannot use).
    ``act`` is the activation it uses."""
    style = f"/{layer.se_style}" if layer.se > 0 and layer.se_style != "efficientnet" else ""
    return (f"layer {act} {layer.op} k{layer.kernel} s{layer.stride} e{layer.expand:g} "
            f"{layer.in_channels}>{layer.out_channels} se{layer.se:g}{style}"
            f"{f' g{layer.groups}' if layer.groups > 1 else ''} {layer.residual} @{size}")


def stem_part(arch: Architecture, resolution: int, in_channels: int) -> Part:
    return Part("stem", arch.act, in_channels, resolution, out_channels=arch.stem, stride=arch.stem_stride)


def head_part(arch: Architecture, features: int, size: int, classes: int) -> Part:
    return Part("head", arch.act, features, size, out_channels=arch.head, classes=classes, mix=arch.feature_mix)


@lru_cache(maxsize=65536)
def stage_parts(stage: Stage, act: str, in_channels: int, size: int,
                se_style: str = "efficientnet") -> tuple[tuple[Part, ...], int]:
    """One stage's layer parts on a ``size``² input with ``in_channels`` in a network of activation ``act``,
    and its output size (cached: the candidates of a search share most of their stages)."""
    parts = []
    for layer in stage.layers(in_channels, se_style=se_style):
        parts.append(Part("layer", layer.act or act, layer.in_channels, size, layer=layer))
        size = layer_output_size(layer, size)
    return tuple(parts), size


def network_parts(arch: Architecture, *, resolution: int, num_classes: int, in_channels: int) -> list[Part]:
    """Every part of ``arch`` deployed at ``resolution``² with ``in_channels`` and ``num_classes``, in order."""
    size = conv_out(resolution, 3, arch.stem_stride)
    parts, channels = [stem_part(arch, resolution, in_channels)], arch.stem
    for stage in arch.stages:
        layers, size = stage_parts(stage, arch.act, channels, size, arch.se_style)
        parts += layers
        channels = stage.channels
    parts.append(head_part(arch, channels, size, num_classes))
    return parts


def space_parts(space: SearchSpace, *, resolution: int, num_classes: int, in_channels: int) -> dict[str, Part]:
    """Every distinct part any architecture of ``space`` has at this
    deployment, by key: block by block, each of the block's settings on each input the blocks before it can
    hand it (a few channel counts, one size per stride pattern)."""
    found: dict[str, Part] = {}
    acts = space.decisions[0].options
    first = space.decode(tuple(0 for _ in space.decisions))
    for act in acts:
        probe = replace(first, act=act)
        stem = stem_part(probe, resolution, in_channels)
        found[stem.key] = stem
        inputs = {(probe.stem, conv_out(resolution, 3, probe.stem_stride))}
        for number in range(len(space.schema.blocks)):
            for stages, optional in space.block_positions(number):
                outputs = set(inputs) if optional else set()
                for stage in stages:
                    for channels, size in inputs:
                        layers, out_size = stage_parts(stage, act, channels, size, probe.se_style)
                        found.update((part.key, part) for part in layers)
                        outputs.add((stage.channels, out_size))
                inputs = outputs
        for channels, size in sorted(inputs):
            head = head_part(probe, channels, size, num_classes)
            found[head.key] = head
    return found
