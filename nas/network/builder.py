"""The builder: the one place a genotype becomes an ``nn.Module``.

An architecture becomes plain data (:func:`layer_data`: each layer's op body, :mod:`nas.core.ops`, which
``nas.core.cost`` prices) that :mod:`nas.network.blocks` builds with torch and torchvision alone.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nas.core.arch import Architecture, Layer, scale
from nas.core.ops import Shuffle, SqueezeExcite
from nas.network.blocks import Network


def layer_tuple(layer: Layer, network_act: str) -> tuple[Any, ...]:
    """One layer as :mod:`nas.network.blocks` takes it: (stride, in, out, shortcut, parts), each activation
    named (the layer's own, else the network's)."""
    act = layer.act or network_act
    parts = [("se", p.channels, p.squeeze, p.act or act, p.gate) if isinstance(p, SqueezeExcite) else
             ("shuffle", p.groups) if isinstance(p, Shuffle) else
             ("conv", p.c_in, p.c_out, p.kernel, p.stride, p.groups, act if p.act else None) for p in layer.body()]
    return layer.stride, layer.in_channels, layer.out_channels, layer.residual, parts


def layer_data(arch: Architecture) -> list[tuple[Any, ...]]:
    """Each layer of ``arch`` as :mod:`nas.network.blocks` takes it (:func:`layer_tuple`)."""
    return [layer_tuple(layer, arch.act) for layer in arch.layers()]


def build(arch: Architecture, num_classes: int = 1000, in_channels: int = 3, *, width_mult: float = 1.0,
          depth_mult: float = 1.0, dropout: float = 0.2, drop_connect: float = 0.2) -> nn.Module:
    """An ``nn.Module`` for ``arch``, optionally width/depth-scaled with EfficientNet's rounding.

    ``nas.core.cost.count(nas.core.arch.scale(arch, width=w, depth=d))`` prices exactly this module.
    """
    if width_mult != 1.0 or depth_mult != 1.0:
        arch = scale(arch, width=width_mult, depth=depth_mult)
    return Network((arch.stem, arch.stem_stride), arch.head, arch.act, layer_data(arch), num_classes=num_classes,
                   in_channels=in_channels, dropout=dropout, drop_connect=drop_connect, feature_mix=arch.feature_mix)
