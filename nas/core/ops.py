"""The block ops, each defined once: its block-string token, its YAML name, and its layers.

An op's ``body`` lists the layers one block of it is made of, as two primitives —
:class:`Conv` (conv + batch norm, with or without the activation) and
:class:`SqueezeExcite`. The builder (:mod:`nas.network.builder`) turns each primitive into a
``torchvision.ops`` module and the cost model (:mod:`nas.core.cost`) prices the same
primitive, so a network and its cost cannot disagree: adding an op is one entry in
:data:`OPS`, and both sides know it. The shortcut (identity or pooled) is the same
for every op and lives in :class:`nas.core.arch.Layer`.

This module imports nothing (no torch): architectures are decoded and priced without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from nas.core.limits import LIMITS

if TYPE_CHECKING:
    from nas.core.arch import Layer


@dataclass(frozen=True)
class Conv:
    """A conv, then batch norm, then the network's activation when ``act``; ``groups == c_in`` is depthwise.
    'Same' padding, no bias (the norm has one)."""

    c_in: int
    c_out: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act: bool = True


@dataclass(frozen=True)
class SqueezeExcite:
    """Squeeze-and-excitation on ``channels``: global pool, 1×1 to ``squeeze`` (+ bias, ``act``), 1×1 back
    (+ bias, ``gate``), multiply (torchvision's ``SqueezeExcitation``). ``act`` empty: the layer's own."""

    channels: int
    squeeze: int
    act: str = ""
    gate: str = "sigmoid"


@dataclass(frozen=True)
class SeStyle:
    """How a network's squeeze-excitations are made: the squeeze width is the SE ratio times the block's
    input channels, or (``from_expanded``) times its expanded channels rounded to a multiple of 8; the inner
    activation is ``act`` (empty: the layer's own); ``gate`` scales the channels."""

    from_expanded: bool
    act: str
    gate: str


SE_STYLES = {
    "efficientnet": SeStyle(from_expanded=False, act="", gate="sigmoid"),
    "mobilenetv3": SeStyle(from_expanded=True, act="relu", gate="hardsigmoid"),
}
"""EfficientNet's and MnasNet's SE (torchvision's, timm's ``efficientnet``), and MobileNetV3's (torchvision's
``mobilenet_v3``, timm's ``mobilenetv3``, OFA's ``SEModule``): a quarter of the expanded width, ReLU, hard
sigmoid."""


@dataclass(frozen=True)
class Shuffle:
    """Channel shuffle of ``channels`` in ``groups`` groups (ShuffleNet), after a grouped 1×1 conv so the
    next one mixes every group: free in parameters and multiply-adds."""

    channels: int
    groups: int


Primitive = Conv | SqueezeExcite | Shuffle


@dataclass(frozen=True)
class Op:
    """One kind of block.

    ``code`` is its token in block strings (timm's names); ``yaml`` its name in a space file, followed
    by the expansion ratio when ``expands`` (``mb6``); ``unexpanded`` is the op an expansion of 1 turns
    it into (an MBConv without expansion *is* a depthwise-separable block), so one network has one
    string. ``body(layer)`` lists the primitives of one layer of this op.
    """

    code: str
    yaml: str
    title: str
    expands: bool
    body: Callable[[Layer], tuple[Primitive, ...]]
    unexpanded: str | None = None

    def yaml_name(self, expand: float) -> str:
        return f"{self.yaml}{expand:g}" if self.expands else self.yaml


def _se(layer: Layer, channels: int) -> tuple[Primitive, ...]:
    if layer.se <= 0:
        return ()
    style = SE_STYLES[layer.se_style]
    return (SqueezeExcite(channels, layer.se_channels, style.act, style.gate),)


def _conv_body(layer: Layer) -> tuple[Primitive, ...]:
    return (Conv(layer.in_channels, layer.out_channels, layer.kernel, layer.stride),
            *_se(layer, layer.out_channels))


def _separable_body(layer: Layer) -> tuple[Primitive, ...]:
    c = layer.in_channels
    return (Conv(c, c, layer.kernel, layer.stride, groups=c), *_se(layer, c),
            Conv(c, layer.out_channels, act=False))


def _mbconv_body(layer: Layer) -> tuple[Primitive, ...]:
    mid = layer.mid_channels
    return (Conv(layer.in_channels, mid), Conv(mid, mid, layer.kernel, layer.stride, groups=mid),
            *_se(layer, mid), Conv(mid, layer.out_channels, act=False))


def _fbnet_body(layer: Layer) -> tuple[Primitive, ...]:
    mid, groups = layer.mid_channels, layer.groups
    shuffle = (Shuffle(mid, groups),) if groups > 1 else ()
    return (Conv(layer.in_channels, mid, groups=groups), *shuffle,
            Conv(mid, mid, layer.kernel, layer.stride, groups=mid), *_se(layer, mid),
            Conv(mid, layer.out_channels, groups=groups, act=False))


def _fused_mbconv_body(layer: Layer) -> tuple[Primitive, ...]:
    mid = layer.mid_channels
    return (Conv(layer.in_channels, mid, layer.kernel, layer.stride), *_se(layer, mid),
            Conv(mid, layer.out_channels, act=False))


def _identity_body(layer: Layer) -> tuple[Primitive, ...]:
    if layer.stride == 1 and layer.in_channels == layer.out_channels:
        return ()
    return (Conv(layer.in_channels, layer.out_channels, 1, layer.stride, act=False),)


OPS: dict[str, Op] = {op.code: op for op in (
    Op("cn", "conv", "regular conv", expands=False, body=_conv_body),
    Op("ds", "ds", "depthwise-separable conv", expands=False, body=_separable_body),
    Op("ir", "mb", "MBConv (inverted residual)", expands=True, body=_mbconv_body, unexpanded="ds"),
    Op("er", "fmb", "Fused-MBConv", expands=True, body=_fused_mbconv_body, unexpanded="cn"),
    Op("fb", "fb", "FBNet block", expands=True, body=_fbnet_body),
    Op("id", "identity", "identity: the layer left out", expands=False, body=_identity_body),
)}
"""Every op, by block-string code. MBConv: 1×1 expand, k×k depthwise, SE, 1×1 project (MobileNetV2,
MnasNet). Fused-MBConv: the expand and the depthwise replaced by one regular k×k conv, then SE and
the 1×1 project (EfficientNetV2; torchvision's ``FusedMBConv``, timm's ``er``). FBNet block: an MBConv
whose 1×1 convs may be grouped (a channel shuffle after the first) and which keeps its 1×1 expansion
at ratio 1 (FBNet's ``k3_e1``, timm's ``ir`` at ``e1``); ungrouped and expanding, it *is* an MBConv.
Identity: a layer a
search may leave out (the zero / skip option of FBNet, ProxylessNAS and NAS-Bench-Macro); where its
stride or width changes, a 1×1 conv + batch norm projects instead (NAS-Bench-Macro's downsampling
identity). It never has a shortcut of its own (:attr:`nas.core.arch.Layer.residual`)."""

_YAML_NAME = re.compile(r"(?P<name>[a-z]+?)(?P<expand>\d+(\.\d+)?)?")


def canonical(code: str, expand: float, groups: int = 1) -> tuple[str, float]:
    """``(code, expand)`` with an op replaced by the op it then is: an expanding op at ratio 1 by its
    unexpanded op, an ungrouped, expanding FBNet block by the MBConv."""
    op = OPS[code]
    if code == "fb" and groups == 1 and expand != 1:
        return "ir", expand
    if op.expands and expand == 1 and op.unexpanded is not None:
        return op.unexpanded, 1
    return code, expand


def from_yaml(name: str) -> tuple[str, float]:
    """A space file's op name (``conv``, ``ds``, ``mb6``, ``fmb4``) as a canonical ``(code, expand)``;
    raises ``ValueError`` saying what is allowed."""
    match = _YAML_NAME.fullmatch(name) if isinstance(name, str) else None
    op = next((op for op in OPS.values() if match and op.yaml == match["name"]), None)
    if op is None or match is None or bool(match["expand"]) != op.expands or (
            op.expands and not LIMITS["expand"][0] <= float(match["expand"]) <= LIMITS["expand"][1]):
        raise ValueError(f"op must be one of {yaml_help()}")
    expand = float(match["expand"]) if op.expands else 1.0
    return canonical(op.code, int(expand) if expand.is_integer() else expand)


_VARIANT_PART = re.compile(r"(?P<key>k|se|g)(?P<value>\d{1,3}(\.\d{1,6})?)")


class Variant(NamedTuple):
    """One per-layer option: the op and the fields it fixes."""

    code: str
    expand: float
    kernel: int
    se: float
    groups: int = 1


def variant(name: str) -> Variant:
    """A space file's *variant* — one option of a per-layer choice that fixes several fields at once, as
    FBNet's, ProxylessNAS's and NAS-Bench-Macro's spaces are written: ``mb3_k3``, ``mb6_k5_se0.25``,
    ``fb1_k3_g2`` (FBNet's grouped block), ``identity``; raises ``ValueError`` saying what is allowed."""
    if not isinstance(name, str) or not name:
        raise ValueError("a variant is an op name with its kernel, e.g. mb6_k5, mb3_k3_se0.25 or fb1_k5_g2, "
                         "or identity")
    op_name, *parts = name.split("_")
    code, expand = from_yaml(op_name)
    fields: dict[str, str] = {}
    for part in parts:
        match = _VARIANT_PART.fullmatch(part)
        if match is None or match["key"] in fields:
            raise ValueError(f"variant {name!r}: cannot read {part!r} "
                             "(expected k<kernel> and optionally se<ratio> and g<groups>)")
        fields[match["key"]] = match["value"]
    if code == "id":
        if fields:
            raise ValueError(f"variant {name!r}: an identity layer takes no kernel or SE")
        return Variant(code, 1, 1, 0.0)
    if "k" not in fields:
        raise ValueError(f"variant {name!r}: give its kernel, e.g. {op_name}_k3")
    kernel, se, groups = int(fields["k"]), float(fields.get("se", 0)), float(fields.get("g", 1))
    if kernel % 2 == 0 or not LIMITS["kernel"][0] <= kernel <= LIMITS["kernel"][1] or not 0 <= se < 1:
        raise ValueError(f"variant {name!r}: the kernel must be odd and at most {LIMITS['kernel'][1]}, "
                         "the SE ratio in [0, 1)")
    if groups != 1 and (code != "fb" or not groups.is_integer() or not 2 <= groups <= LIMITS["groups"][1]):
        raise ValueError(f"variant {name!r}: only an FBNet block (fb<expansion>) groups its 1x1 convs, "
                         f"in 2..{LIMITS['groups'][1]} groups")
    code, expand = canonical(code, expand, int(groups))
    return Variant(code, expand, kernel, se, int(groups))


def variant_name(code: str, expand: float, kernel: int, se: float, groups: int = 1) -> str:
    """The canonical name of a variant (:func:`variant` read backwards)."""
    if code == "id":
        return "identity"
    return (f"{OPS[code].yaml_name(expand)}_k{kernel}" + (f"_se{se:g}" if se > 0 else "")
            + (f"_g{groups}" if groups > 1 else ""))


def yaml_help() -> str:
    """The allowed op names in a space file, for error messages."""
    names = [f"{op.yaml}N ({op.title}, expansion {LIMITS['expand'][0]} <= N <= {LIMITS['expand'][1]})" if op.expands
             else f"{op.yaml} ({op.title})" for op in OPS.values()]
    return ", ".join(names)


__all__ = ["OPS", "SE_STYLES", "Conv", "Op", "Primitive", "SeStyle", "Shuffle", "SqueezeExcite", "Variant", "canonical", "from_yaml", "variant",
           "variant_name", "yaml_help"]
