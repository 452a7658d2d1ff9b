"""Exports that stand on their own: Python files that build the same network with timm alone or with
plain torch + torchvision, and deployable ONNX / ``torch.export`` programs.

The same network means: the same parameter count, the same residual connections, and the same
output for the same weights (a state dict of :func:`nas.network.builder.build` loads into the exported module by
position). timm needs help for that — an explicit ``skip`` token on regular-conv blocks, an identity
channel-rounding function, batch norm with eps 1e-3, a squeeze-excitation whose width is floored
as torchvision's is — and some blocks it cannot express at all (a pooled shortcut, a regular conv with
squeeze-excitation, an expanded width that is not a multiple of 8, a stride-1 stem, no head conv):
those are refused with one line (:class:`~nas.core.arch.ArchError`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from nas.core.arch import Architecture
from nas.core.errors import NasError


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

_ACT = {"silu": "SiLU", "relu": "ReLU", "relu6": "ReLU6", "hswish": "Hardswish"}


def timm_source(arch: Architecture, *, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                title: str = "") -> str:
    """The timm Python file for ``arch`` (see the module docstring); raises :class:`~nas.core.arch.ArchError` for a
    block timm cannot express."""
    arch_def = json.dumps(arch.timm_arch_def(), indent=4)
    return _TIMM_FILE.format(title=title or f"timm model of {arch}", arch=str(arch), arch_def=arch_def,
                             num_classes=num_classes, in_channels=in_channels, dropout=dropout, stem=arch.stem,
                             head=arch.head, act=_ACT[arch.act])


# ---------------------------------------------------------------- plain torch


_TORCH_MAIN = '''

# ---------------------------------------------------------------- the exported network

ARCH = {arch!r}
STEM = {stem}              # (channels, stride)
HEAD = {head}              # 1x1 conv channels (0: none)
FEATURE_MIX = {feature_mix}           # 1x1 conv channels after the pool (0: none)
ACTIVATION = {act!r}
LAYERS = {layers}


def model(num_classes={num_classes}, in_channels={in_channels}, dropout={dropout}, drop_connect={drop_connect}):
    return Network(STEM, HEAD, ACTIVATION, LAYERS, num_classes=num_classes, in_channels=in_channels,
                   dropout=dropout, drop_connect=drop_connect, feature_mix=FEATURE_MIX)


if __name__ == "__main__":
    net = model()
    print(net)
    print(sum(p.numel() for p in net.parameters()), "parameters")
'''


def torch_source(arch: Architecture, *, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                 drop_connect: float = 0.2, title: str = "") -> str:
    """The plain-torch Python file for ``arch`` (any architecture, any op): :mod:`nas.network.blocks` as it is
    in the package, then the architecture's data and ``model()``."""
    from nas.network.builder import layer_data

    blocks = resources.files("nas.network").joinpath("blocks.py").read_text(encoding="utf-8")
    header = f'"""{title or f"torch model of {arch}"}\n\nA Python file that builds the network with plain torch ' \
             'and torchvision (no nas needed): `model()` returns it.\nRun it to print the module and its parameter ' \
             'count. What follows is nas\'s own network code.\n"""\n\n'
    layers = "[\n" + "".join(f"    {layer!r},\n" for layer in layer_data(arch)) + "]"
    code = blocks[blocks.index('"""', 3) + 3:]  # its own docstring gives way to the file's
    return header.rstrip("\n") + code + _TORCH_MAIN.format(
        arch=str(arch), stem=(arch.stem, arch.stem_stride), head=arch.head, act=arch.act, layers=layers,
        feature_mix=arch.feature_mix,
        num_classes=num_classes, in_channels=in_channels, dropout=dropout, drop_connect=drop_connect)


# ---------------------------------------------------------------- deployable programs


def load_weights(module: Any, checkpoint: str | Path) -> None:
    """Load a state dict (``nas train``'s ``weights.pt``, or a checkpoint holding one under ``model``)."""
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever a file that is not a checkpoint makes torch.load raise
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ExportError(f"cannot read the checkpoint {checkpoint}: {reason[:200]}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        first = str(error).splitlines()[1:2] or [str(error)]
        raise ExportError(f"the checkpoint {checkpoint} is not this network's weights ({first[0].strip()})") from None


def deployable(arch: Architecture, *, num_classes: int, in_channels: int, checkpoint: str | Path | None = None) -> Any:
    """The network in eval mode, with ``checkpoint``'s weights when given."""
    from nas.network.builder import build

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


def export_int8(net: Any, path: Path, *, resolution: int, in_channels: int, calibration: list[Any]) -> None:
    """An int8 ONNX program (dynamic batch), exactly as an ``onnxruntime-int8`` latency table times networks:
    the same exporter (:func:`nas.latency.timing.onnx_bytes`; ``torch.export``'s graph of a squeeze-excitation
    quantizes to a program measured 1.3× slower) and :func:`nas.latency.int8.quantize` on ``calibration``
    (float32 input batches, normalized as in training)."""
    import torch

    from nas.core.atomic import write_atomic
    from nas.latency.int8 import quantize
    from nas.latency.timing import onnx_bytes

    example = torch.randn(1, in_channels, resolution, resolution)
    write_atomic(path, quantize(onnx_bytes(net, example, dynamic_batch=True), calibration))


def calibration_images(proxy: Any, *, count: int, resolution: int, batch: int = 8) -> list[Any]:
    """``count`` training images of ``proxy``'s dataset at ``resolution``, normalized as in training, in float32
    batches of ``batch``: what an int8 program is calibrated on to keep its accuracy."""
    from nas.training import data

    images = data.load(proxy.dataset, root=proxy.data_dir, resolution=resolution, split="test", max_train=count)
    x = data.normalize(images.train.images, images.mean, images.std)
    return [chunk.numpy() for chunk in x.split(batch)]


__all__ = ["ExportError", "calibration_images", "deployable", "export_int8", "export_program", "load_weights",
           "timm_source", "torch_source"]
