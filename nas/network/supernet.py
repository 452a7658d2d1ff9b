"""One network holding the weights of every architecture of a space (weight sharing, as Once-for-All and
TuNAS do), and the extraction of any one of them as a stand-alone ``nas.network.builder`` network.

Sharing is defined on the ops' own bodies (:mod:`nas.core.ops`), so it covers every op the space offers:
each layer slot of each stage keeps, per op, the weights of that op's *widest* layer (the largest input
and output channels and expansion any architecture of the space can give it, the largest kernel, a
squeeze-excitation if any option has one, a pooled-shortcut projection). A smaller layer uses prefixes
of those weights: output filters and expanded widths are channel prefixes; a smaller kernel is the
centre crop of the largest (Once-for-All's ``crop``) or has its own weights (TuNAS's ``separate``);
fewer layers are the first layers of the stage. Ops do not share weights with one another. Batch norm
keeps shared affine parameters only: its statistics are re-estimated for each extracted network.

The supernet's own forward (batch statistics) computes exactly what the extracted network computes in
training mode; extraction copies the slices into :func:`nas.network.builder.build`'s module in its own order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.core.arch import Architecture, Layer, proxy_strides
from nas.core.ops import Conv, SqueezeExcite
from nas.network.blocks import ACTIVATIONS
from nas.network.builder import build
from nas.space import SearchSpace

KERNEL_SHARING = ("crop", "separate")
BN_EPS = 1e-3


@dataclass(frozen=True)
class Slot:
    """Layer ``index`` of stage ``stage``: the widest sizes any architecture of the space gives it."""

    stage: int
    index: int
    in_channels: int
    out_channels: int
    stride: int


def unsupported(space: SearchSpace) -> str | None:
    """Why ``space`` has no supernet here, or None: the supernet shares weights between the op, kernel and
    SE choices of each block; a block of variants or an identity layer is not among them."""
    for decision in space.decisions:
        if decision.name.endswith(".variant") or (decision.name.endswith(".op") and "identity" in decision.options):
            return (f"space {space.name!r}: {decision.name} chooses variants or an identity layer, which the "
                    "supernet does not share weights for; use --evaluator standalone (or table)")
    schema = space.schema
    if (any(block.per_layer or block.activation for block in schema.blocks) or schema.head.feature_mix
            or schema.se_style != "efficientnet"):
        return (f"space {space.name!r}: per-layer blocks, a block's own activation, a feature mix and MobileNetV3's SE "
                "are not in the supernet; use --evaluator standalone (or table)")
    return None


class Supernet(nn.Module):
    """The shared weights of a space's architectures in their proxy form (``stem_stride``, ``drop_downsamples``)."""

    def __init__(self, space: SearchSpace, *, num_classes: int, in_channels: int, stem_stride: int = 1,
                 drop_downsamples: int = 0, kernel_sharing: str = "crop") -> None:
        super().__init__()
        reason = unsupported(space)
        if reason:
            raise ValueError(reason)
        if kernel_sharing not in KERNEL_SHARING:
            raise ValueError(f"kernel_sharing must be one of {', '.join(KERNEL_SHARING)}, got {kernel_sharing!r}")
        self.space, self.num_classes, self.in_channels = space, num_classes, in_channels
        self.stem_stride, self.drop_downsamples, self.kernel_sharing = stem_stride, drop_downsamples, kernel_sharing
        options = {d.name: d.options for d in space.decisions}
        schema = space.schema
        self.stem_channels, self.head_channels = schema.stem.channels, schema.head.channels
        self.weights = nn.ParameterDict()
        self._kernels: dict[str, tuple[int, ...]] = {}  # conv key -> the kernel sizes it keeps weights for
        self._conv("stem", Conv(in_channels, self.stem_channels, 3, stem_stride), kernels=(3,))
        previous = self.stem_channels
        self.slots: list[Slot] = []
        strides = proxy_strides([b.stride for b in schema.blocks], self.drop_downsamples)
        for number, _block in enumerate(schema.blocks, start=1):
            widest = max(options[f"block{number}.filters"])
            for index in range(max(options[f"block{number}.layers"])):
                slot = Slot(number - 1, index, previous if index == 0 else widest, widest,
                            strides[number - 1] if index == 0 else 1)
                self.slots.append(slot)
                self._slot_weights(slot, options, number)
            previous = widest
        features = previous
        if self.head_channels:
            self._conv("head", Conv(previous, self.head_channels, 1), kernels=(1,))
            features = self.head_channels
        self.weights[_key("classifier.weight")] = nn.Parameter(torch.empty(num_classes, features))
        self.weights[_key("classifier.bias")] = nn.Parameter(torch.zeros(num_classes))
        self.reset_parameters()

    # ------------------------------------------------------------ the shared weights

    def _conv(self, key: str, conv: Conv, *, kernels: tuple[int, ...]) -> None:
        groups = 1 if conv.groups == 1 else conv.c_in  # depthwise stays depthwise at every width
        per_kernel = kernels if self.kernel_sharing == "separate" else (max(kernels),)
        self._kernels[key] = per_kernel
        for k in per_kernel:
            shape = (conv.c_out, conv.c_in // groups, k, k)
            self.weights[_key(f"{key}.k{k}.weight")] = nn.Parameter(torch.empty(shape))
        self.weights[_key(f"{key}.bn.weight")] = nn.Parameter(torch.ones(conv.c_out))
        self.weights[_key(f"{key}.bn.bias")] = nn.Parameter(torch.zeros(conv.c_out))

    def _slot_weights(self, slot: Slot, options: dict[str, tuple], number: int) -> None:
        kernels = tuple(sorted(options[f"block{number}.kernel"]))
        se = max(options[f"block{number}.se"])
        for code, expand in self._ops(options[f"block{number}.op"]):
            layer = Layer(stage=slot.stage, op=code, kernel=max(kernels), stride=slot.stride, expand=expand,
                          in_channels=slot.in_channels, out_channels=slot.out_channels, se=se, skip="identity")
            convs = 0
            for part in layer.body():
                key = f"s{slot.stage}.l{slot.index}.{code}"
                if isinstance(part, SqueezeExcite):
                    self.weights[_key(f"{key}.se.fc1.weight")] = nn.Parameter(torch.empty(part.squeeze, part.channels))
                    self.weights[_key(f"{key}.se.fc1.bias")] = nn.Parameter(torch.zeros(part.squeeze))
                    self.weights[_key(f"{key}.se.fc2.weight")] = nn.Parameter(torch.empty(part.channels, part.squeeze))
                    self.weights[_key(f"{key}.se.fc2.bias")] = nn.Parameter(torch.zeros(part.channels))
                else:
                    self._conv(f"{key}.conv{convs}", part, kernels=kernels if part.kernel > 1 else (1,))
                    convs += 1
        if "pool" in options[f"block{number}.skip"] and slot.index == 0:
            self._conv(f"s{slot.stage}.l0.project", Conv(slot.in_channels, slot.out_channels, act=False),
                       kernels=(1,))

    @staticmethod
    def _ops(names: tuple[str, ...]) -> list[tuple[str, float]]:
        """Each op code once, at its largest expansion among the options."""
        from nas.core import ops

        widest: dict[str, float] = {}
        for name in names:
            code, expand = ops.from_yaml(name)
            widest[code] = max(widest.get(code, 1), expand)
        return sorted(widest.items())

    def reset_parameters(self) -> None:
        """The initialization ``nas.network.builder`` uses (Kaiming fan-out for convs, uniform for the classifier)."""
        for name, weight in self.weights.items():
            name = name.replace("/", ".")
            if name.endswith(".weight") and weight.ndim == 4:
                nn.init.kaiming_normal_(weight, mode="fan_out")
            elif name.startswith("classifier.weight"):
                bound = 1.0 / math.sqrt(weight.shape[0])
                nn.init.uniform_(weight, -bound, bound)
            elif ".se.fc" in name and name.endswith(".weight"):
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5))

    # ------------------------------------------------------------ one architecture's slices

    def proxy_form(self, arch: Architecture) -> Architecture:
        return arch.adapted(stem_stride=self.stem_stride, drop_downsamples=self.drop_downsamples)

    def conv_weight(self, key: str, conv: Conv) -> torch.Tensor:
        k = conv.kernel
        kept = k if k in self._kernels[key] else max(self._kernels[key])
        stored = self.weights[_key(f"{key}.k{kept}.weight")]
        offset = (stored.shape[-1] - k) // 2  # the centre crop of a larger kernel
        per_group = conv.c_in // conv.groups
        return stored[:conv.c_out, :per_group, offset:offset + k, offset:offset + k]

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """``arch`` (in proxy form) with the shared weights, batch norm on batch statistics."""
        act = ACTIVATIONS[arch.act]()
        x = self._apply_conv("stem", Conv(self.in_channels, arch.stem, 3, arch.stem_stride), x, act)
        for layer, index in _indexed(arch):
            x = self._apply_layer(layer, index, x, act)
        if arch.head:
            x = self._apply_conv("head", Conv(arch.stages[-1].channels, arch.head, 1), x, act)
        features = arch.head or arch.stages[-1].channels
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.linear(x, self.weights[_key("classifier.weight")][:, :features], self.weights[_key("classifier.bias")])

    def _apply_conv(self, key: str, conv: Conv, x: torch.Tensor, act: Any) -> torch.Tensor:
        weight = self.conv_weight(key, conv)
        x = F.conv2d(x, weight, stride=conv.stride, padding=(conv.kernel - 1) // 2, groups=conv.groups)
        x = F.batch_norm(x, None, None, self.weights[_key(f"{key}.bn.weight")][:conv.c_out],
                         self.weights[_key(f"{key}.bn.bias")][:conv.c_out], training=True, eps=BN_EPS)
        return act(x) if conv.act else x

    def _apply_layer(self, layer: Layer, index: int, x: torch.Tensor, act: Any) -> torch.Tensor:
        key = f"s{layer.stage}.l{index}.{layer.op}"
        out, convs = x, 0
        for part in layer.body():
            if isinstance(part, SqueezeExcite):
                w = self.weights
                scale = F.adaptive_avg_pool2d(out, 1)
                scale = act(F.conv2d(scale, w[_key(f"{key}.se.fc1.weight")][:part.squeeze, :part.channels, None, None],
                                     w[_key(f"{key}.se.fc1.bias")][:part.squeeze]))
                scale = torch.sigmoid(F.conv2d(scale, w[_key(f"{key}.se.fc2.weight")][:part.channels, :part.squeeze, None, None],
                                               w[_key(f"{key}.se.fc2.bias")][:part.channels]))
                out = out * scale
            else:
                out = self._apply_conv(f"{key}.conv{convs}", part, out, act)
                convs += 1
        if layer.residual == "none":
            return out
        skip = x
        if layer.residual == "pool":
            if layer.stride > 1:
                skip = F.avg_pool2d(skip, layer.stride, layer.stride, ceil_mode=True)
            if layer.in_channels != layer.out_channels:
                skip = self._apply_conv(f"s{layer.stage}.l0.project", Conv(layer.in_channels, layer.out_channels,
                                                                          act=False), skip, act)
        return skip + out

    # ------------------------------------------------------------ extraction

    def extract(self, arch: Architecture, *, dropout: float = 0.0) -> nn.Module:
        """``arch`` as a stand-alone ``nas.network.builder`` network (proxy form) holding its slices of the weights."""
        form = self.proxy_form(arch)
        net = build(form, num_classes=self.num_classes, in_channels=self.in_channels, dropout=dropout,
                    drop_connect=0.0)
        slices = list(self._slices(form))
        targets = [(name, p) for name, p in net.named_parameters()]
        if len(slices) != len(targets):
            raise RuntimeError(f"{arch}: {len(slices)} weight slices for {len(targets)} parameters")
        with torch.no_grad():
            for (name, target), (role, source) in zip(targets, slices):
                if target.shape != source.shape:
                    raise RuntimeError(f"{arch}: {role} slice {tuple(source.shape)} for {name} {tuple(target.shape)}")
                target.copy_(source)
        return net

    def _slices(self, arch: Architecture) -> Iterator[tuple[str, torch.Tensor]]:
        """Every parameter of ``nas.network.builder.build(arch)``, in its order, as a slice of the shared weights."""
        w = self.weights

        def conv(key: str, part: Conv) -> Iterator[tuple[str, torch.Tensor]]:
            yield f"{key}.weight", self.conv_weight(key, part)
            yield f"{key}.bn.weight", w[_key(f"{key}.bn.weight")][:part.c_out]
            yield f"{key}.bn.bias", w[_key(f"{key}.bn.bias")][:part.c_out]

        yield from conv("stem", Conv(self.in_channels, arch.stem, 3, arch.stem_stride))
        for layer, index in _indexed(arch):
            key, convs = f"s{layer.stage}.l{index}.{layer.op}", 0
            for part in layer.body():
                if isinstance(part, SqueezeExcite):
                    yield f"{key}.se.fc1.weight", w[_key(f"{key}.se.fc1.weight")][:part.squeeze, :part.channels, None, None]
                    yield f"{key}.se.fc1.bias", w[_key(f"{key}.se.fc1.bias")][:part.squeeze]
                    yield f"{key}.se.fc2.weight", w[_key(f"{key}.se.fc2.weight")][:part.channels, :part.squeeze, None, None]
                    yield f"{key}.se.fc2.bias", w[_key(f"{key}.se.fc2.bias")][:part.channels]
                else:
                    yield from conv(f"{key}.conv{convs}", part)
                    convs += 1
            if layer.residual == "pool" and layer.in_channels != layer.out_channels:
                yield from conv(f"s{layer.stage}.l0.project", Conv(layer.in_channels, layer.out_channels, act=False))
        if arch.head:
            yield from conv("head", Conv(arch.stages[-1].channels, arch.head, 1))
        features = arch.head or arch.stages[-1].channels
        yield "classifier.weight", w[_key("classifier.weight")][:, :features]
        yield "classifier.bias", w[_key("classifier.bias")]


def _key(name: str) -> str:
    """Parameter names may not contain dots: the shared weights' names use slashes."""
    return name.replace(".", "/")


def _indexed(arch: Architecture) -> Iterator[tuple[Layer, int]]:
    """Every layer with its index inside its stage."""
    index, stage = 0, -1
    for layer in arch.layers():
        index = index + 1 if layer.stage == stage else 0
        stage = layer.stage
        yield layer, index


def largest_and_smallest(space: SearchSpace) -> tuple[Architecture, Architecture]:
    """The sandwich rule's two ends: every decision at its most and at its least expensive option (by MACs,
    one decision at a time from the smallest network)."""
    from nas.core import cost

    def macs(choices: list[int]) -> int:
        return cost.count(space.decode(choices), space.target_resolution).macs

    ends = []
    for pick in (max, min):
        choices = [0] * len(space.decisions)
        for position, decision in enumerate(space.decisions):
            trial = {i: macs(choices[:position] + [i] + choices[position + 1:]) for i in range(len(decision))}
            choices[position] = pick(trial, key=trial.get)
        ends.append(space.decode(choices))
    return ends[0], ends[1]


__all__ = ["KERNEL_SHARING", "Slot", "Supernet", "largest_and_smallest"]
