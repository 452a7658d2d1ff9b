"""A search space: its decisions, and sampling, mutating, encoding and decoding architectures."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from nas.core import ops
from nas.core.arch import LIMITS, Architecture, Stage
from nas.settings import ProxySettings, RewardSettings, SpaceError, SpaceSchema
from nas.space.writer import _op_name

# ---------------------------------------------------------------- the space


@dataclass(frozen=True)
class Decision:
    """One categorical choice a controller makes, e.g. ``block3.kernel`` from ``(3, 5)``."""

    name: str
    options: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.options)


_BLOCK_FIELDS = ("op", "kernel", "se", "skip", "filters", "layers")
_VARIANT_FIELDS = ("variant", "skip", "filters", "layers")
"""A block's decisions in order: its op, kernel and SE, or one variant that fixes the three together."""


class SearchSpace:
    """A validated space: ordered decisions, size, sampling, mutation, decode/encode."""

    def __init__(self, schema: SpaceSchema, *, source: str = "<string>", text: str | None = None) -> None:
        self.schema = schema
        self.source = source
        self.text = text
        """The YAML it was read from (a run stores it, so a resume never re-reads a file that may have changed)."""

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self.decisions)} decisions, size {approx(self.size)})"

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def target_resolution(self) -> int:
        return self.schema.target_resolution

    @property
    def num_classes(self) -> int:
        """Classes of the deployed task: the cost is counted for them (ImageNet's 1000 for B0)."""
        return self.schema.num_classes

    @property
    def in_channels(self) -> int:
        return self.schema.in_channels

    @property
    def reward(self) -> RewardSettings:
        return self.schema.reward

    @property
    def proxy(self) -> ProxySettings:
        return self.schema.proxy

    @cached_property
    def decisions(self) -> tuple[Decision, ...]:
        """Global decisions first (activation), then each block's op, kernel, SE (or one variant fixing the
        three), skip, filters, layers."""
        out = [Decision("activation", tuple(dict.fromkeys(self.schema.activation)))]
        defaults = self.schema.choices
        for number, block in enumerate(self.schema.blocks, start=1):
            def pick(field: str) -> list:
                own = getattr(block, field)
                return own if own is not None else getattr(defaults, field)

            filters = [round(block.filters * r) for r in pick("filter_ratios")] + list(block.extra_filters)
            layers = [block.layers + d for d in pick("layer_deltas")]
            low, high = LIMITS["channels"]
            if not low <= min(filters) <= max(filters) <= high:
                raise SpaceError(self.source, f"blocks[{number - 1}].filter_ratios", pick("filter_ratios"),
                                 f"base filters {block.filters} times every ratio must round to {low}..{high} "
                                 f"channels, got {min(filters)}..{max(filters)}")
            low, high = LIMITS["repeats"]
            if not low <= min(layers) <= max(layers) <= high:
                raise SpaceError(self.source, f"blocks[{number - 1}].layer_deltas", pick("layer_deltas"),
                                 f"base layers {block.layers} plus every delta must be in {low}..{high} "
                                 "(a block of zero layers would make its other choices meaningless)")
            options = {"op": pick("op"), "kernel": pick("kernel"), "se": [float(s) for s in pick("se")],
                       "variant": pick("variants"), "skip": pick("skip"), "filters": sorted(set(filters)),
                       "layers": sorted(set(layers))}
            for field in self._fields(number - 1):
                out.append(Decision(f"block{number}.{field}", tuple(dict.fromkeys(options[field]))))
        return tuple(out)

    def _fields(self, index: int) -> tuple[str, ...]:
        """Block ``index``'s decision fields: with variants, one ``variant`` stands for op, kernel and SE."""
        block = self.schema.blocks[index]
        variants = block.variants if block.variants is not None else self.schema.choices.variants
        return _VARIANT_FIELDS if variants is not None else _BLOCK_FIELDS

    @cached_property
    def _block_slices(self) -> tuple[slice, ...]:
        """Where each block's decisions are in :attr:`decisions` (after the global ones)."""
        out, start = [], 1
        for index in range(len(self.schema.blocks)):
            width = len(self._fields(index))
            out.append(slice(start, start + width))
            start += width
        return tuple(out)

    def block_stages(self, number: int) -> list[Stage]:
        """Every stage block ``number`` (from 0) can be: the product of its own decisions."""
        options = (d.options for d in self.decisions[self._block_slices[number]])
        return [self._stage(number, values) for values in itertools.product(*options)]

    @cached_property
    def size(self) -> int:
        """Number of distinct architectures (decode is injective, so: the product of option counts)."""
        return math.prod(len(d) for d in self.decisions)

    def decode(self, choices: tuple[int, ...] | list[int]) -> Architecture:
        """Choices (one option index per decision, in order) to an architecture."""
        choices = tuple(int(c) for c in choices)
        if len(choices) != len(self.decisions):
            raise ValueError(f"expected {len(self.decisions)} choices, got {len(choices)}")
        values = []
        for decision, index in zip(self.decisions, choices):
            if not 0 <= index < len(decision):
                raise ValueError(f"{decision.name}: choice {index} out of range 0..{len(decision) - 1}")
            values.append(decision.options[index])
        stages = tuple(self._stage(number, tuple(values[where]))
                       for number, where in enumerate(self._block_slices))
        return Architecture(stages=stages, stem=self.schema.stem.channels,
                            stem_stride=self.schema.stem.stride, head=self.schema.head.channels, act=values[0])

    @cached_property
    def _stages(self) -> dict[tuple[int, tuple[Any, ...]], Stage]:
        return {}

    def _stage(self, number: int, values: tuple[Any, ...]) -> Stage:
        """Block ``number``'s stage for its decided values, made once (controllers decode thousands of
        candidates that share most of their blocks)."""
        cache = self._stages
        stage = cache.get((number, values))
        if stage is None:
            if len(values) == len(_VARIANT_FIELDS):
                variant, skip, filters, layers = values
                code, expand, kernel, se, groups = ops.variant(variant)
            else:
                op, kernel, se, skip, filters, layers = values
                (code, expand), groups = ops.from_yaml(op), 1
            stage = Stage(op=code, repeats=layers, kernel=kernel, stride=self.schema.blocks[number].stride,
                          expand=expand, channels=filters, se=se, skip=skip, groups=groups)
            if len(cache) < 1 << 16:
                cache[(number, values)] = stage
        return stage

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        """An architecture to choices; raises ``ValueError`` naming the first field outside the space."""
        schema = self.schema
        fixed = (("stem channels", arch.stem, schema.stem.channels),
                 ("stem stride", arch.stem_stride, schema.stem.stride),
                 ("head channels", arch.head, schema.head.channels),
                 ("number of stages", len(arch.stages), len(schema.blocks)))
        for what, got, want in fixed:
            if got != want:
                raise ValueError(f"{what} is {got}; this space has {want}")
        wanted: list[Any] = [arch.act]
        for number, (stage, block) in enumerate(zip(arch.stages, schema.blocks), start=1):
            if stage.stride != block.stride:
                raise ValueError(f"block{number}.stride is {stage.stride}; this space has {block.stride}")
            if len(self._fields(number - 1)) == len(_VARIANT_FIELDS):
                wanted += [ops.variant_name(stage.op, stage.expand, stage.kernel, float(stage.se), stage.groups)]
            else:
                wanted += [_op_name(stage.op, stage.expand), stage.kernel, float(stage.se)]
            wanted += [stage.skip, stage.channels, stage.repeats]
        choices = []
        for decision, value in zip(self.decisions, wanted):
            options = decision.options
            if value not in options:
                raise ValueError(f"{decision.name} is {value!r}; this space allows {list(options)}")
            choices.append(options.index(value))
        return tuple(choices)

    def contains(self, arch: Architecture) -> bool:
        try:
            self.encode(arch)
        except ValueError:
            return False
        return True

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture."""
        return self.decode(self.sample_choices(rng))

    def sample_choices(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(rng.integers(len(d))) for d in self.decisions)

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change exactly one decision (one that has alternatives) to a different option."""
        choices = list(self.encode(arch))
        free = [i for i, d in enumerate(self.decisions) if len(d) > 1]
        if not free:
            raise ValueError(f"space {self.name!r} has a single point; nothing to mutate")
        position = free[int(rng.integers(len(free)))]
        shift = 1 + int(rng.integers(len(self.decisions[position]) - 1))
        choices[position] = (choices[position] + shift) % len(self.decisions[position])
        return self.decode(choices)

    def describe(self) -> dict[str, Any]:
        """Plain data for ``nas space show --json``."""
        return {"name": self.name, "source": self.source, "size": self.size,
                "target_resolution": self.target_resolution,
                "reward": self.reward.model_dump(), "proxy": self.proxy.model_dump(),
                "decisions": [{"name": d.name, "options": list(d.options)} for d in self.decisions]}


def approx(count: int) -> str:
    """A count of any size in three significant digits (a float cannot hold 10^400)."""
    if count < 10**15:
        return f"{count:.3g}"
    digits = len(str(count))
    return f"{int(str(count)[:3]) / 100:.2f}e+{digits - 1}"
