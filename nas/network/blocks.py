"""The network, built from plain data with torch and torchvision alone.

This module imports nothing from nas: ``nas export --format torch`` ships it as it is, with one
architecture's data appended, so an exported network is built by this very code. The data:
``stem`` (channels, stride), ``head`` (1×1 conv channels, 0 for none), ``activation`` (a name in
:data:`ACTIVATIONS`), ``feature_mix`` (MobileNetV3's 1×1 conv after the pool, 0 for none) and ``layers``,
one tuple per layer: (stride, in channels, out channels, shortcut, parts), where a part is ``("conv", in,
out, kernel, stride, groups, activation)`` (``None``: no activation), ``("se", channels, squeeze,
activation, gate)`` or ``("shuffle", groups)``, and the shortcut is ``none``, ``identity`` or ``pool``.
Blocks come from ``torchvision.ops`` (Conv2dNormActivation, SqueezeExcitation, StochasticDepth), so a built
B0 has exactly torchvision's ``efficientnet_b0`` parameter count.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "hswish": nn.Hardswish}
GATES = {"sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}
BatchNorm = partial(nn.BatchNorm2d, eps=1e-3)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle, as reshapes (``nn.ChannelShuffle`` has no ONNX export)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def part_module(part: tuple) -> nn.Module:
    """The ``torchvision.ops`` module for one part of a layer."""
    if part[0] == "se":
        _, channels, squeeze, act, gate = part
        return SqueezeExcitation(channels, squeeze, activation=ACTIVATIONS[act], scale_activation=GATES[gate])
    if part[0] == "shuffle":
        return ChannelShuffle(part[1])
    _, c_in, c_out, kernel, stride, groups, act = part
    return Conv2dNormActivation(c_in, c_out, kernel, stride, groups=groups, norm_layer=BatchNorm,
                                activation_layer=ACTIVATIONS[act] if act else None)


def feature_mix_module(features: int, channels: int, activation: str) -> nn.Module:
    """MobileNetV3's head after the pool: a 1×1 conv without norm or bias, then the activation."""
    return nn.Sequential(nn.Conv2d(features, channels, 1, bias=False), ACTIVATIONS[activation]())


class Block(nn.Module):
    """One layer: its parts in sequence, and its shortcut."""

    def __init__(self, stride: int, c_in: int, c_out: int, shortcut: str, parts: list[tuple],
                 drop_connect: float) -> None:
        super().__init__()
        self.body = nn.Sequential(*(part_module(p) for p in parts))
        self.residual = shortcut
        self.shortcut: nn.Module | None = None
        if shortcut == "pool":
            pool = [nn.AvgPool2d(stride, stride, ceil_mode=True)] if stride > 1 else []
            project = [part_module(("conv", c_in, c_out, 1, 1, 1, None))] if c_in != c_out else []
            self.shortcut = nn.Sequential(*pool, *project)
        self.drop_path = StochasticDepth(drop_connect, "row") if shortcut != "none" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.residual == "none":
            return out
        skip = x if self.shortcut is None else self.shortcut(x)
        return skip + self.drop_path(out)


class Network(nn.Module):
    """stem → blocks → 1×1 head → global pool → (1×1 feature mix) → dropout → linear; stochastic depth
    grows linearly with depth, as in EfficientNet."""

    def __init__(self, stem: tuple[int, int], head: int, activation: str, layers: list[tuple], *,
                 num_classes: int, in_channels: int, dropout: float, drop_connect: float,
                 feature_mix: int = 0) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        self.stem = Conv2dNormActivation(in_channels, stem[0], 3, stem[1], norm_layer=BatchNorm,
                                         activation_layer=act)
        self.blocks = nn.Sequential(*(Block(*layer, drop_connect * i / len(layers))
                                      for i, layer in enumerate(layers)))
        features = layers[-1][2]
        self.head: nn.Module = nn.Identity()
        if head:
            self.head = Conv2dNormActivation(features, head, 1, norm_layer=BatchNorm, activation_layer=act)
            features = head
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix: nn.Module = nn.Identity()
        if feature_mix:
            self.feature_mix = feature_mix_module(features, feature_mix, activation)
            features = feature_mix
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.feature_mix(self.pool(x)), 1))


def init_weights(model: nn.Module) -> None:
    """EfficientNet's initialization: Kaiming-normal convs (fan out), unit batch norms, uniform linear."""
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
