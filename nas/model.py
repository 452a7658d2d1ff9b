"""The builder: the one place a genotype becomes an ``nn.Module``.

Blocks come from ``torchvision.ops`` (Conv2dNormActivation, SqueezeExcitation,
StochasticDepth), so a built B0 has exactly torchvision's ``efficientnet_b0``
parameter count. Each layer is its op's body (:mod:`nas.ops`), which ``nas.cost`` prices.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

from nas.arch import Architecture, Layer, scale
from nas.ops import Conv, Primitive, SqueezeExcite

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU}
_BatchNorm = partial(nn.BatchNorm2d, eps=1e-3)


def module(part: Primitive, act: type[nn.Module]) -> nn.Module:
    """The ``torchvision.ops`` module for one primitive of an op's body."""
    if isinstance(part, SqueezeExcite):
        return SqueezeExcitation(part.channels, part.squeeze, activation=act)
    return Conv2dNormActivation(part.c_in, part.c_out, part.kernel, part.stride, groups=part.groups,
                                norm_layer=_BatchNorm, activation_layer=act if part.act else None)


class Block(nn.Module):
    """One layer of a stage: its op's convs and squeeze-excitations (:mod:`nas.ops`), and its shortcut."""

    def __init__(self, layer: Layer, act: type[nn.Module], drop_connect: float) -> None:
        super().__init__()
        c_in, c_out, s = layer.in_channels, layer.out_channels, layer.stride
        self.body = nn.Sequential(*(module(part, act) for part in layer.body()))
        self.residual = layer.residual
        self.shortcut: nn.Module | None = None
        if self.residual == "pool":
            pool = [nn.AvgPool2d(s, s, ceil_mode=True)] if s > 1 else []
            project = [module(Conv(c_in, c_out, act=False), act)] if c_in != c_out else []
            self.shortcut = nn.Sequential(*pool, *project)
        self.drop_path = StochasticDepth(drop_connect, "row") if self.residual != "none" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.residual == "none":
            return out
        skip = x if self.shortcut is None else self.shortcut(x)
        return skip + self.drop_path(out)


class Network(nn.Module):
    """stem → blocks → 1×1 head → global pool → dropout → linear."""

    def __init__(self, arch: Architecture, num_classes: int, in_channels: int, dropout: float,
                 drop_connect: float) -> None:
        super().__init__()
        act = _ACTIVATIONS[arch.act]
        layers = arch.layers()
        self.stem = Conv2dNormActivation(in_channels, arch.stem, 3, arch.stem_stride, norm_layer=_BatchNorm,
                                         activation_layer=act)
        # Stochastic depth grows linearly with depth, as in EfficientNet.
        self.blocks = nn.Sequential(*(Block(layer, act, drop_connect * i / len(layers))
                                      for i, layer in enumerate(layers)))
        features = arch.stages[-1].channels
        self.head: nn.Module = nn.Identity()
        if arch.head:
            self.head = Conv2dNormActivation(features, arch.head, 1, norm_layer=_BatchNorm, activation_layer=act)
            features = arch.head
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def _init_weights(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.out_features)
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)


def build(arch: Architecture, num_classes: int = 1000, in_channels: int = 3, *, width_mult: float = 1.0,
          depth_mult: float = 1.0, dropout: float = 0.2, drop_connect: float = 0.2) -> nn.Module:
    """An ``nn.Module`` for ``arch``, optionally width/depth-scaled with EfficientNet's rounding.

    ``nas.cost.count(nas.arch.scale(arch, width=w, depth=d))`` prices exactly this module.
    """
    if width_mult != 1.0 or depth_mult != 1.0:
        arch = scale(arch, width=width_mult, depth=depth_mult)
    return Network(arch, num_classes, in_channels, dropout, drop_connect)
