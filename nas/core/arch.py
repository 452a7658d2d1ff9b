"""Architectures as values: a frozen genotype with one canonical string.

An :class:`Architecture` is a stem, a tuple of :class:`Stage` s and a head. Its
canonical string is a comma-separated list of tokens whose block tokens are
timm block strings (``ir_r2_k3_s2_e6_c24_se0.25``), so a found model can be
pasted into timm, and the same string appears in the store, the dashboard,
the logs and ``nas export``. This module imports nothing from torch: decoding
never builds.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, replace

from nas.core.errors import NasError
from nas.core.limits import ACTIVATION_TOKENS, ACTIVATIONS, LIMITS, SKIPS
from nas.core.ops import OPS, SE_STYLES, Primitive, canonical


class ArchError(NasError, ValueError):
    """A malformed architecture string or an impossible stage; the message names the bad token."""


@dataclass(frozen=True)
class Stage:
    """A run of ``repeats`` identical layers; only the first one strides and changes channels."""

    op: str
    repeats: int
    kernel: int
    stride: int
    expand: float
    channels: int
    se: float = 0.0
    skip: str = "identity"
    groups: int = 1
    """Groups of the 1×1 convs (FBNet's grouped blocks, with a channel shuffle); 1 for every other op."""
    act: str = ""
    """This stage's own activation (MobileNetV3 mixes ReLU and hard swish); empty: the network's."""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ArchError(f"op {self.op!r} is not one of {', '.join(OPS)}")
        checks = (
            (_within(self.repeats, "repeats"), f"repeats must be in {_range('repeats')}, got {self.repeats}"),
            (_within(self.kernel, "kernel") and self.kernel % 2 == 1,
             f"kernel must be odd and in {_range('kernel')}, got {self.kernel}"),
            (self.stride in (1, 2), f"stride must be 1 or 2, got {self.stride}"),
            (_within(self.expand, "expand"), f"expand must be in {_range('expand')}, got {self.expand}"),
            (OPS[self.op].expands or self.expand == 1, f"op {self.op} takes no expansion, got e{self.expand:g}"),
            (_within(self.channels, "channels"), f"channels must be in {_range('channels')}, got {self.channels}"),
            (0 <= self.se < 1, f"se ratio must be in [0, 1), got {self.se}"),
            (self.skip in SKIPS, f"skip {self.skip!r} is not one of {', '.join(SKIPS)}"),
            (_within(self.groups, "groups"), f"groups must be in {_range('groups')}, got {self.groups}"),
            (self.groups == 1 or self.op == "fb", f"only an FBNet block (fb) groups its 1x1 convs, got {self.op}"),
            (self.channels % self.groups == 0, f"{self.channels} channels do not split into {self.groups} groups"),
            (self.act in ("", *ACTIVATIONS), f"activation {self.act!r} is not one of {', '.join(ACTIVATIONS)}"),
        )
        for ok, message in checks:
            if not ok:
                raise ArchError(message)
        # An expanding op at ratio 1 *is* another op (MBConv e1 = depthwise-separable): one network, one string.
        op, expand = canonical(self.op, self.expand, self.groups)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "expand", expand)

    def layers(self, in_channels: int, index: int = 0, se_style: str = "efficientnet") -> list[Layer]:
        """This stage's layers on ``in_channels`` inputs, as stage ``index`` of a network whose
        squeeze-excitations are made in ``se_style``."""
        return [Layer(stage=index, op=self.op, kernel=self.kernel, stride=self.stride if repeat == 0 else 1,
                      expand=self.expand, in_channels=in_channels if repeat == 0 else self.channels,
                      out_channels=self.channels, se=self.se, skip=self.skip, groups=self.groups, act=self.act,
                      se_style=se_style)
                for repeat in range(self.repeats)]

    def block_string(self) -> str:
        """timm block string (a stage's own activation as timm writes it: ``_nre``, ``_nhs``); ``fb``,
        ``_g<groups>`` and ``_poolskip`` are our extensions (timm has no grouped 1×1 convs nor a pooling skip)."""
        parts = [self.op, f"r{self.repeats}", f"k{self.kernel}", f"s{self.stride}",
                 f"e{self.expand:g}", f"c{self.channels}"]
        if self.se > 0:
            parts.append(f"se{self.se:g}")
        if self.groups > 1:
            parts.append(f"g{self.groups}")
        if self.act:
            parts.append(f"n{ACTIVATION_TOKENS[self.act]}")
        if self.skip == "none":
            parts.append("noskip")
        elif self.skip == "pool":
            parts.append("poolskip")
        return "_".join(parts)

    def timm_block_string(self) -> str:
        """The timm block string that builds these same layers: timm gives a regular-conv block a residual
        only with an explicit ``skip`` token, and has no pooling skip."""
        token = self.block_string().replace("_poolskip", "").replace("_noskip", "")
        if self.op == "fb":  # timm's inverted residual keeps its 1x1 expansion at e1, as FBNet's block does
            token = "ir" + token[len("fb"):]
        if self.op == "cn":
            return token + ("_skip" if self.skip == "identity" else "")
        return token + ("_noskip" if self.skip == "none" else "")

    @classmethod
    def parse(cls, token: str) -> Stage:
        """Parse one block string: ours, timm's (``s2``) or the TPU form (``s22``, ``i32_o16``)."""
        op, *options = token.split("_")
        if op not in OPS:
            raise ArchError(f"block {token!r}: op {op!r} is not one of {', '.join(OPS)}")
        values: dict[str, str] = {}
        skip, act = "identity", ""
        for option in options:
            if option in ("noskip", "poolskip", "skip"):
                skip = {"noskip": "none", "poolskip": "pool", "skip": "identity"}[option]
                continue
            if option.startswith("n") and not act:
                act = next((name for name, code in ACTIVATION_TOKENS.items() if option == f"n{code}"), "")
                if not act:
                    raise ArchError(f"block {token!r}: cannot read activation {option!r} (expected "
                                    f"{', '.join('n' + code for code in ACTIVATION_TOKENS.values())})")
                continue
            match = _OPTION.fullmatch(option)
            if match is None or match["key"] in values:
                raise ArchError(f"block {token!r}: cannot read option {option!r} (expected r<int>, k<int>, "
                                "s<int>, e<num>, c<int>, se<num>, g<int>, n<activation>, noskip or poolskip)")
            values[match["key"]] = match["value"]
        if "o" in values:
            values.setdefault("c", values.pop("o"))
        values.pop("i", None)  # the TPU form names input filters; they follow from the previous stage
        missing = [key for key in ("r", "k", "s", "c") if key not in values]
        if missing:
            raise ArchError(f"block {token!r}: missing option(s) {', '.join(missing)}")
        stride = values["s"]
        if len(stride) == 2 and stride[0] == stride[1]:
            stride = stride[0]  # "s22" -> 2
        try:
            return cls(op=op, repeats=int(values["r"]), kernel=int(values["k"]), stride=int(stride),
                       expand=_number(values.get("e", "1")), channels=int(values["c"]),
                       se=_number(values.get("se", "0")), skip=skip, groups=int(values.get("g", "1")), act=act)
        except ValueError as error:
            raise ArchError(f"block {token!r}: {error}") from None


_OPTION = re.compile(r"(?P<key>se|[rksecgio])(?P<value>\d{1,12}(\.\d{1,12})?)")


def _within(value: float, what: str) -> bool:
    low, high = LIMITS[what]
    return low <= value <= high


def _range(what: str) -> str:
    low, high = LIMITS[what]
    return f"{low}..{high}"


def _parse_fields(token: str, prefix: str, names: dict[str, str]) -> dict[str, int]:
    """``stem_c32_s2`` -> ``{"stem": 32, "stem_stride": 2}``."""
    out: dict[str, int] = {}
    for option in token.split("_")[1:]:
        key, digits = option[:1], option[1:]
        if key not in names or not re.fullmatch(r"[0-9]{1,12}", digits) or names[key] in out:
            allowed = " and ".join(f"{k}<int>" for k in names)
            raise ArchError(f"{prefix} token {token!r}: cannot read {option!r} (expected {allowed})")
        out[names[key]] = int(digits)
    return out


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class Architecture:
    """A whole network: stem conv, stages, 1×1 head conv, activation. Hashable; ``str()`` is canonical.

    ``feature_mix`` is MobileNetV3's head: a 1×1 conv after the pool, without norm or bias (OFA's feature-mix
    layer), then the activation; 0 for none. ``se_style`` is how the squeeze-excitations are made
    (:data:`nas.core.ops.SE_STYLES`)."""

    stages: tuple[Stage, ...]
    stem: int = 32
    stem_stride: int = 2
    head: int = 1280
    act: str = "silu"
    feature_mix: int = 0
    se_style: str = "efficientnet"
    _string: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a stage's own activation, where it is the network's, is no activation of its own: one network, one string
        object.__setattr__(self, "stages", tuple(replace(stage, act="") if stage.act == self.act else stage
                                                 for stage in self.stages))
        if not _within(len(self.stages), "stages"):
            raise ArchError(f"an architecture has {_range('stages')} stages, got {len(self.stages)}")
        if not _within(self.stem, "channels") or not (self.head == 0 or _within(self.head, "channels")):
            raise ArchError(f"stem channels must be in {_range('channels')} and head channels 0 (none) or in "
                            f"{_range('channels')}, got {self.stem}, {self.head}")
        if self.stem_stride not in (1, 2):
            raise ArchError(f"stem stride must be 1 or 2, got {self.stem_stride}")
        if self.act not in ACTIVATIONS:
            raise ArchError(f"activation {self.act!r} is not one of {', '.join(ACTIVATIONS)}")
        if not (self.feature_mix == 0 or _within(self.feature_mix, "channels")):
            raise ArchError(f"feature-mix channels must be 0 (none) or in {_range('channels')}, got {self.feature_mix}")
        if self.se_style not in SE_STYLES:
            raise ArchError(f"SE style {self.se_style!r} is not one of {', '.join(SE_STYLES)}")
        in_channels = self.stem
        for stage in self.stages:
            if stage.groups > 1 and (in_channels % stage.groups or
                                     make_divisible_exact(in_channels * stage.expand) % stage.groups):
                raise ArchError(f"block {stage.block_string()!r}: its {in_channels} input channels (expanded "
                                f"x{stage.expand:g}) do not split into {stage.groups} groups")
            in_channels = stage.channels
        tokens = [f"stem_c{self.stem}_s{self.stem_stride}", *(s.block_string() for s in self.stages),
                  f"head_c{self.head}", *([f"mix_c{self.feature_mix}"] if self.feature_mix else []), f"act_{self.act}",
                  *([f"se_{self.se_style}"] if self.se_style != "efficientnet" else [])]
        object.__setattr__(self, "_string", ",".join(tokens))

    def __str__(self) -> str:
        return self._string

    # The canonical string is the identity: compare and hash it once instead of walking every stage.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and self._string == other._string

    def __hash__(self) -> int:
        return hash(self._string)

    @property
    def digest(self) -> str:
        """Stable short hash of the canonical string (Python's ``hash`` is salted per process)."""
        return hashlib.sha256(self._string.encode()).hexdigest()[:12]

    @classmethod
    def parse(cls, text: str) -> Architecture:
        """Read a canonical string; a bare list of block strings gets the B0 stem, head and SiLU."""
        tokens = [t.strip() for t in re.split(r"[,\s]+", text.strip()) if t.strip()]
        kwargs: dict[str, object] = {}
        stages = []
        for token in tokens:
            try:
                if token.startswith("stem_"):
                    kwargs.update(_parse_fields(token, "stem", {"c": "stem", "s": "stem_stride"}))
                elif token.startswith("head_"):
                    kwargs.update(_parse_fields(token, "head", {"c": "head"}))
                elif token.startswith("mix_"):
                    kwargs.update(_parse_fields(token, "mix", {"c": "feature_mix"}))
                elif token.startswith("act_"):
                    kwargs["act"] = token[len("act_"):]
                elif token.startswith("se_"):
                    kwargs["se_style"] = token[len("se_"):]
                else:
                    stages.append(Stage.parse(token))
            except ArchError as error:
                raise ArchError(f"{error} (in architecture {text!r})") from None
        try:
            return cls(stages=tuple(stages), **kwargs)  # type: ignore[arg-type]
        except ArchError as error:
            raise ArchError(f"{error} (in architecture {text!r})") from None

    def timm_arch_def(self) -> list[list[str]]:
        """timm's ``arch_def`` that builds this same network (skip tokens made explicit, identity layers left
        out; see
        :mod:`nas.app.export` for what else timm is told); raises :class:`ArchError` naming a block timm
        cannot express."""
        if self.stem_stride != 2:
            raise ArchError(f"stem stride {self.stem_stride}: timm's EfficientNet stem always strides 2")
        if self.head == 0:
            raise ArchError("no head conv (head_c0): timm's EfficientNet always has one")
        if self.feature_mix or self.se_style != "efficientnet":
            raise ArchError("MobileNetV3's head or squeeze-excitation: timm's EfficientNet has neither (build it with "
                            "nas export --format torch)")
        for layer in self.layers():
            block = self.stages[layer.stage].block_string()
            if layer.residual == "pool":
                raise ArchError(f"block {block!r}: timm has no pooling skip")
            if layer.op == "id" and layer.body():
                raise ArchError(f"block {block!r}: timm has no projecting identity layer (build it with nas export "
                                "--format torch)")
            if layer.op == "cn" and layer.se > 0:
                raise ArchError(f"block {block!r}: timm's conv block has no squeeze-excitation")
            if layer.groups > 1:
                raise ArchError(f"block {block!r}: timm has no grouped 1x1 convs (build it with nas export --format "
                                "torch)")
            expanded = make_divisible(layer.in_channels * layer.expand)
            if layer.op in ("ir", "er", "fb") and layer.mid_channels != expanded:
                raise ArchError(f"block {block!r}: timm rounds the expanded width {layer.in_channels} x "
                                f"{layer.expand:g} = {layer.mid_channels} to a multiple of 8")
        # an identity layer where the shapes match is no module at all: timm builds the same network without it
        return [[stage.timm_block_string()] for stage in self.stages if stage.op != "id"]

    def adapted(self, *, stem_stride: int | None = None, drop_downsamples: int = 0) -> Architecture:
        """The same network for small proxy images: a different stem stride, and the first
        ``drop_downsamples`` stride-2 stages made stride 1. Cost is taken on the original."""
        strides = proxy_strides([stage.stride for stage in self.stages], drop_downsamples)
        stages = tuple(replace(stage, stride=stride) for stage, stride in zip(self.stages, strides))
        return replace(self, stages=stages,
                       stem_stride=self.stem_stride if stem_stride is None else stem_stride)

    def layers(self) -> list[Layer]:
        """Every layer in order, with the input channels and stride each one sees."""
        out, in_channels = [], self.stem
        for index, stage in enumerate(self.stages):
            out += stage.layers(in_channels, index, self.se_style)
            in_channels = stage.channels
        return out


def proxy_strides(strides: list[int], drop_downsamples: int) -> list[int]:
    """Stage strides for small proxy images: the first ``drop_downsamples`` stride-2 stages made stride 1."""
    out, to_drop = [], drop_downsamples
    for stride in strides:
        if stride == 2 and to_drop > 0:
            stride, to_drop = 1, to_drop - 1
        out.append(stride)
    return out


@dataclass(frozen=True)
class Layer:
    """One block as built: the unit the builder and the cost model share."""

    stage: int
    op: str
    kernel: int
    stride: int
    expand: float
    in_channels: int
    out_channels: int
    se: float
    skip: str
    groups: int = 1
    act: str = ""
    """The layer's own activation; empty: the network's."""
    se_style: str = "efficientnet"

    @property
    def mid_channels(self) -> int:
        return make_divisible_exact(self.in_channels * self.expand)

    @property
    def se_channels(self) -> int:
        """Squeeze width: a ratio of the block's *input* channels (TF EfficientNet, torchvision, timm), or in
        MobileNetV3's style of its expanded channels, rounded to a multiple of 8."""
        if SE_STYLES[self.se_style].from_expanded:
            return make_divisible(self.mid_channels * self.se)
        return max(1, int(self.in_channels * self.se))

    def body(self) -> tuple[Primitive, ...]:
        """The convs and squeeze-excitations this layer is made of, in order (its op's definition)."""
        return OPS[self.op].body(self)

    @property
    def residual(self) -> str:
        """``identity``, ``pool`` (pooled/projected shortcut) or ``none``: what this layer actually adds
        (an identity layer adds nothing: it *is* the shortcut)."""
        if self.skip == "none" or self.op == "id":
            return "none"
        if self.stride == 1 and self.in_channels == self.out_channels:
            return "identity"
        return "pool" if self.skip == "pool" else "none"


def make_divisible_exact(value: float) -> int:
    """Expanded width, rounded as torchvision does for the expansion (``_make_divisible(c * e, 8)``)
    only when the product is not already an integer; integer products are kept exactly."""
    if float(value).is_integer():
        return int(value)
    return make_divisible(value)


def make_divisible(value: float, divisor: int = 8) -> int:
    """EfficientNet rounding: nearest multiple of ``divisor``, never below 90 % of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def scale(arch: Architecture, *, width: float = 1.0, depth: float = 1.0) -> Architecture:
    """Width and depth scaling with EfficientNet's rules: channels rounded to multiples of 8 (never
    below 90 %), repeats rounded up. Identity at 1.0, so an unscaled architecture is unchanged."""
    if width <= 0 or depth <= 0:
        raise ArchError(f"width and depth multipliers must be positive, got {width}, {depth}")

    def channels(c: int) -> int:
        return c if width == 1.0 else make_divisible(c * width)

    stages = tuple(replace(s, channels=channels(s.channels), repeats=int(math.ceil(s.repeats * depth)))
                   for s in arch.stages)
    return replace(arch, stages=stages, stem=channels(arch.stem), head=channels(arch.head),
                   feature_mix=channels(arch.feature_mix) if arch.feature_mix else 0)
