"""Exports that stand on their own: Python files that build the same network with timm alone or with
plain torch + torchvision, and deployable ONNX / ``torch.export`` programs.

The same network means: the same parameter count, the same residual connections, and the same
output for the same weights (a state dict of :func:`nas.model.build` loads into the exported module by
position). timm needs help for that — an explicit ``skip`` token on regular-conv blocks, an identity
channel-rounding function, batch norm with eps 1e-3, a squeeze-excitation whose width is floored
as torchvision's is — and some blocks it cannot express at all (a pooled shortcut, a regular conv with
squeeze-excitation, an expanded width that is not a multiple of 8, a stride-1 stem, no head conv):
those are refused with one line (:class:`~nas.arch.ArchError`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.arch import Architecture
from nas.errors import NasError
from nas.ops import SqueezeExcite


class ExportError(NasError):
    """An export that cannot be written (a missing package, a checkpoint that is not this network)."""


# ---------------------------------------------------------------- timm


_TIMM_FILE = '''"""{title}

A Python file that builds the network with timm alone (no nas needed): `model()` returns it. Run it to
print the module and its parameter count."""

from functools import partial

import torch
from torch import nn
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import EfficientNet

ARCH = {arch!r}
ARCH_DEF = {arch_def}


class FlooredSqueezeExcite(nn.Module):
    """timm's squeeze-excitation with the squeeze width floored, as torchvision (and nas) compute it."""

    def __init__(self, in_chs, rd_ratio=0.25, act_layer=nn.ReLU, **_):
        super().__init__()
        rd_channels = max(1, int(in_chs * rd_ratio + 1e-6))
        self.conv_reduce = nn.Conv2d(in_chs, rd_channels, 1, bias=True)
        self.act1 = act_layer(inplace=True)
        self.conv_expand = nn.Conv2d(rd_channels, in_chs, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        scale = self.gate(self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True)))))
        return x * scale


def keep_channels(channels, *_, **__):
    return channels


def model(num_classes={num_classes}, in_chans={in_channels}, drop_rate={dropout}, **kwargs):
    return EfficientNet(block_args=decode_arch_def(ARCH_DEF), num_classes=num_classes, in_chans=in_chans,
                        stem_size={stem}, fix_stem=True, num_features={head}, round_chs_fn=keep_channels,
                        act_layer=nn.{act}, norm_layer=partial(nn.BatchNorm2d, eps=1e-3),
                        se_layer=FlooredSqueezeExcite, drop_rate=drop_rate, **kwargs)


if __name__ == "__main__":
    net = model()
    print(net)
    print(sum(p.numel() for p in net.parameters()), "parameters")
'''

_ACT = {"silu": "SiLU", "relu": "ReLU"}


def timm_source(arch: Architecture, *, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                title: str = "") -> str:
    """The timm Python file for ``arch`` (see the module docstring); raises :class:`~nas.arch.ArchError` for a
    block timm cannot express."""
    arch_def = json.dumps(arch.timm_arch_def(), indent=4)
    return _TIMM_FILE.format(title=title or f"timm model of {arch}", arch=str(arch), arch_def=arch_def,
                             num_classes=num_classes, in_channels=in_channels, dropout=dropout, stem=arch.stem,
                             head=arch.head, act=_ACT[arch.act])


# ---------------------------------------------------------------- plain torch


_TORCH_FILE = '''"""{title}

A Python file that builds the network with plain torch and torchvision (no nas needed): `model()`
returns it. The network is data (LAYERS: each layer's convs and squeeze-excitations, and its
shortcut) read by a small builder below. Run it to print the module and its parameter count."""

from functools import partial

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

ARCH = {arch!r}
STEM = {stem}              # (channels, stride)
HEAD = {head}              # 1x1 conv channels (0: none)
ACTIVATION = nn.{act}
# per layer: (stride, in channels, out channels, shortcut, parts); a part is
# ("conv", in, out, kernel, stride, groups, activation) or ("se", channels, squeeze)
LAYERS = {layers}

_BatchNorm = partial(nn.BatchNorm2d, eps=1e-3)


def _part(part):
    if part[0] == "se":
        return SqueezeExcitation(part[1], part[2], activation=ACTIVATION)
    _, c_in, c_out, kernel, stride, groups, act = part
    return Conv2dNormActivation(c_in, c_out, kernel, stride, groups=groups, norm_layer=_BatchNorm,
                                activation_layer=ACTIVATION if act else None)


class Block(nn.Module):
    def __init__(self, stride, c_in, c_out, shortcut, parts, drop_connect):
        super().__init__()
        self.body = nn.Sequential(*(_part(p) for p in parts))
        self.residual = shortcut
        self.shortcut = None
        if shortcut == "pool":
            pool = [nn.AvgPool2d(stride, stride, ceil_mode=True)] if stride > 1 else []
            project = [_part(("conv", c_in, c_out, 1, 1, 1, False))] if c_in != c_out else []
            self.shortcut = nn.Sequential(*pool, *project)
        self.drop_path = StochasticDepth(drop_connect, "row") if shortcut != "none" else nn.Identity()

    def forward(self, x):
        out = self.body(x)
        if self.residual == "none":
            return out
        skip = x if self.shortcut is None else self.shortcut(x)
        return skip + self.drop_path(out)


class Network(nn.Module):
    def __init__(self, num_classes, in_channels, dropout, drop_connect):
        super().__init__()
        self.stem = Conv2dNormActivation(in_channels, STEM[0], 3, STEM[1], norm_layer=_BatchNorm,
                                         activation_layer=ACTIVATION)
        self.blocks = nn.Sequential(*(Block(*layer, drop_connect * i / len(LAYERS)) for i, layer in enumerate(LAYERS)))
        features = LAYERS[-1][2]
        self.head = nn.Identity()
        if HEAD:
            self.head = Conv2dNormActivation(features, HEAD, 1, norm_layer=_BatchNorm, activation_layer=ACTIVATION)
            features = HEAD
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def model(num_classes={num_classes}, in_channels={in_channels}, dropout={dropout}, drop_connect={drop_connect}):
    return Network(num_classes, in_channels, dropout, drop_connect)


if __name__ == "__main__":
    net = model()
    print(net)
    print(sum(p.numel() for p in net.parameters()), "parameters")
'''


def _layer_data(arch: Architecture) -> list[tuple[Any, ...]]:
    layers = []
    for layer in arch.layers():
        parts = [("se", p.channels, p.squeeze) if isinstance(p, SqueezeExcite) else
                 ("conv", p.c_in, p.c_out, p.kernel, p.stride, p.groups, p.act) for p in layer.body()]
        layers.append((layer.stride, layer.in_channels, layer.out_channels, layer.residual, parts))
    return layers


def torch_source(arch: Architecture, *, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                 drop_connect: float = 0.2, title: str = "") -> str:
    """The plain-torch Python file for ``arch``: any architecture, any op."""
    layers = "[\n" + "".join(f"    {layer!r},\n" for layer in _layer_data(arch)) + "]"
    return _TORCH_FILE.format(title=title or f"torch model of {arch}", arch=str(arch),
                              stem=(arch.stem, arch.stem_stride), head=arch.head, act=_ACT[arch.act], layers=layers,
                              num_classes=num_classes, in_channels=in_channels, dropout=dropout,
                              drop_connect=drop_connect)


# ---------------------------------------------------------------- deployable programs


def load_weights(module: Any, checkpoint: str | Path) -> None:
    """Load a state dict (``nas train``'s ``weights.pt``, or a checkpoint holding one under ``model``)."""
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise ExportError(f"cannot read the checkpoint {checkpoint}: {str(error).splitlines()[0]}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        first = str(error).splitlines()[1:2] or [str(error)]
        raise ExportError(f"the checkpoint {checkpoint} is not this network's weights ({first[0].strip()})") from None


def deployable(arch: Architecture, *, num_classes: int, in_channels: int, checkpoint: str | Path | None = None) -> Any:
    """The network in eval mode, with ``checkpoint``'s weights when given."""
    from nas.model import build

    net = build(arch, num_classes=num_classes, in_channels=in_channels)
    if checkpoint is not None:
        load_weights(net, checkpoint)
    return net.eval()


def export_program(net: Any, path: Path, *, fmt: str, resolution: int, in_channels: int) -> None:
    """``onnx`` (opset of torch's exporter; dynamic batch) or ``pt2`` (``torch.export``; load it with
    ``torch.export.load(path).module()``), traced at ``resolution``² with a dynamic batch size."""
    import torch

    example = (torch.randn(2, in_channels, resolution, resolution),)
    batch = torch.export.Dim("batch", min=1, max=65_536)
    program = torch.export.export(net, example, dynamic_shapes={"x": {0: batch}})
    partial = path.with_name(f".{path.name}.partial")
    if fmt == "pt2":
        torch.export.save(program, partial)
    else:
        try:
            import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
        except ModuleNotFoundError:
            raise ExportError("ONNX export needs the onnx and onnxscript packages: pip install 'nas[export]'") \
                from None
        torch.onnx.export(program, dynamo=True, verbose=False).save(str(partial))
    partial.replace(path)  # a reader never sees half a file


__all__ = ["ExportError", "deployable", "export_program", "load_weights", "timm_source", "torch_source"]
