"""The search-space file: the schema its YAML is validated against."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, Strict

from nas.core import ops
from nas.core.limits import ACTIVATIONS, LIMITS, SKIPS
from nas.settings.base import Finite, Settings
from nas.settings.proxy import ProxySettings, RewardSettings

# ---------------------------------------------------------------- the search-space file

Int = Annotated[int, Strict()]


def _as_list(value: Any) -> Any:
    """A scalar is a one-choice list: ``kernel: 3`` means ``kernel: [3]``."""
    return value if isinstance(value, list) else [value]


def _choices(item: Any) -> Any:
    return Annotated[list[item], BeforeValidator(_as_list), Field(min_length=1, max_length=64)]


def _check_op(value: str) -> str:
    """An op name as written (``mb1``, ``fmb4``) to its canonical name (``ds``, ``fmb4``): see :mod:`nas.core.ops`."""
    code, expand = ops.from_yaml(value)
    return ops.OPS[code].yaml_name(expand)


def _check_variant(value: str) -> str:
    """A variant as written (``mb3_k3``) to its canonical name: see :func:`nas.core.ops.variant`."""
    return ops.variant_name(*ops.variant(value))


def _check_kernel(kernel: int) -> int:
    if kernel % 2 == 0:
        raise ValueError("kernel must be odd (3, 5, 7, ...)")
    return kernel


Op = Annotated[str, Strict(), AfterValidator(_check_op)]
Variant = Annotated[str, Strict(), AfterValidator(_check_variant)]
Kernel = Annotated[int, Strict(), Field(ge=1, le=LIMITS["kernel"][1]), AfterValidator(_check_kernel)]
Channels = Annotated[int, Strict(), Field(ge=1, le=LIMITS["channels"][1])]
Layers = Annotated[int, Strict(), Field(ge=1, le=LIMITS["repeats"][1])]
SeRatio = Annotated[float, Field(ge=0, lt=1)]
Skip = Literal[SKIPS]
FilterRatio = Annotated[float, Field(gt=0, le=16)]
LayerDelta = Annotated[int, Strict(), Field(ge=-LIMITS["repeats"][1], le=LIMITS["repeats"][1])]


class ChoiceDefaults(Settings):
    """Choices every block gets unless the block overrides them."""

    op: _choices(Op) = ["mb6"]
    kernel: _choices(Kernel) = [3]
    se: _choices(SeRatio) = [0.0]
    skip: _choices(Skip) = ["identity"]
    filter_ratios: _choices(FilterRatio) = [1.0]
    layer_deltas: _choices(LayerDelta) = [0]
    variants: _choices(Variant) | None = None


class BlockSpec(Settings):
    """One block of the factorized space: MobileNetV2-style base filters/layers, plus its choices."""

    filters: Channels
    layers: Layers
    stride: Literal[1, 2]
    extra_filters: Annotated[list[Channels], BeforeValidator(_as_list), Field(max_length=64)] = []
    op: _choices(Op) | None = None
    kernel: _choices(Kernel) | None = None
    se: _choices(SeRatio) | None = None
    skip: _choices(Skip) | None = None
    filter_ratios: _choices(FilterRatio) | None = None
    layer_deltas: _choices(LayerDelta) | None = None
    variants: _choices(Variant) | None = None
    """Per-layer choices that fix op, kernel and SE together (``[identity, mb3_k3, mb6_k5]``); where given,
    they replace the block's op, kernel and se choices."""
    per_layer: Annotated[bool, Strict()] = False
    """Each layer chooses its own op, kernel and SE (or variant), and the block's layers choice is its depth:
    the first that many layers are built (OFA's elastic depth). Otherwise all layers of the block share them."""
    activation: Literal[ACTIVATIONS] | None = None  # type: ignore[valid-type]
    """The block's own activation (MobileNetV3 uses ReLU early and hard swish late); by default the network's."""


class StemSpec(Settings):
    channels: Channels = 32
    stride: Literal[1, 2] = 2


class HeadSpec(Settings):
    channels: Annotated[int, Strict(), Field(ge=0, le=LIMITS["channels"][1])] = 1280
    feature_mix: Annotated[int, Strict(), Field(ge=0, le=LIMITS["channels"][1])] = 0
    """MobileNetV3's head: a 1×1 conv of this width after the pool, without norm or bias; 0 for none."""


class SpaceSchema(Settings):
    """A search-space file. ``num_classes``/``in_channels`` are the deployed task's (the cost is counted
    for them, as the papers count B0 for ImageNet); ``dropout``/``drop_connect`` are the model's for
    full training and export (the proxy has its own, see :class:`ProxySettings`)."""

    name: Annotated[str, Strict(), Field(min_length=1, max_length=200)]
    target_resolution: Annotated[int, Strict(), Field(ge=LIMITS["resolution"][0], le=LIMITS["resolution"][1])] = 224
    num_classes: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 1000
    in_channels: Annotated[int, Strict(), Field(ge=1, le=64)] = 3
    activation: _choices(Literal[ACTIVATIONS]) = ["silu"]  # type: ignore[valid-type]
    se_style: Literal[tuple(ops.SE_STYLES)] = "efficientnet"  # type: ignore[valid-type]
    """How squeeze-excitations are made: EfficientNet's, or MobileNetV3's (see :data:`nas.core.ops.SE_STYLES`)."""
    stem: StemSpec = StemSpec()
    head: HeadSpec = HeadSpec()
    dropout: Finite = Field(0.2, ge=0, lt=1)
    drop_connect: Finite = Field(0.2, ge=0, lt=1)
    reward: RewardSettings = RewardSettings()
    proxy: ProxySettings = ProxySettings()
    choices: ChoiceDefaults = ChoiceDefaults()
    blocks: Annotated[list[BlockSpec], Field(min_length=1, max_length=LIMITS["stages"][1])]
