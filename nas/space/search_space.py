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
_SHARED_FIELDS = ("skip", "filters", "layers")
"""The decisions a per-layer block makes once, after each of its layers' own."""


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
        three), skip, filters, layers; a per-layer block has the first three for each of its layers
        (``block2.layer1.kernel``)."""
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
            for field in self._fields(number - 1, max(layers)):
                out.append(Decision(f"block{number}.{field}", tuple(dict.fromkeys(options[field.split(".")[-1]]))))
        return tuple(out)

    def _layer_fields(self, index: int) -> tuple[str, ...]:
        """What block ``index`` decides about a layer: one ``variant`` standing for op, kernel and SE, or the
        three."""
        block = self.schema.blocks[index]
        variants = block.variants if block.variants is not None else self.schema.choices.variants
        return _VARIANT_FIELDS[:1] if variants is not None else _BLOCK_FIELDS[:3]

    def _fields(self, index: int, depth: int) -> tuple[str, ...]:
        """Block ``index``'s decision fields; a per-layer block's first ones are each of its (at most
        ``depth``) layers' own."""
        own = self._layer_fields(index)
        if not self.schema.blocks[index].per_layer:
            return (*own, *_SHARED_FIELDS)
        return (*(f"layer{i}.{field}" for i in range(1, depth + 1) for field in own), *_SHARED_FIELDS)

    @cached_property
    def _block_slices(self) -> tuple[slice, ...]:
        """Where each block's decisions are in :attr:`decisions` (after the global ones)."""
        out, start = [], 1
        for number in range(1, len(self.schema.blocks) + 1):
            end = start
            while end < len(self.decisions) and self.decisions[end].name.startswith(f"block{number}."):
                end += 1
            out.append(slice(start, end))
            start = end
        return tuple(out)

    def block_positions(self, number: int) -> list[tuple[list[Stage], bool]]:
        """Block ``number`` (from 0) as the positions of its layers: for each, every stage it can be and whether
        it may be absent. A block whose layers share their choices is one position of whole stages; a
        per-layer block has one position per layer, each a one-layer stage, those past its least depth
        optional."""
        decisions = self.decisions[self._block_slices[number]]
        shared = [d.options for d in decisions[-3:-1]]  # skip, filters
        depths = decisions[-1].options
        own = len(self._layer_fields(number))
        if not self.schema.blocks[number].per_layer:
            return [([self._stage(number, values[:own], *values[own:]) for values in
                      itertools.product(*(d.options for d in decisions))], False)]
        positions = []
        for layer in range(max(depths)):
            mine = [d.options for d in decisions[layer * own:(layer + 1) * own]]
            stages = [self._stage(number, values[:own], *values[own:], 1, first=layer == 0)
                      for values in itertools.product(*mine, *shared)]
            positions.append((stages, layer >= min(depths)))
        return positions

    @cached_property
    def size(self) -> int:
        """Number of distinct architectures: the product of option counts, except that a per-layer block
        counts the layers of each of its depths (the choices of layers it leaves out make no network)."""
        total = 1
        for number, where in enumerate(self._block_slices):
            decisions = self.decisions[where]
            if not self.schema.blocks[number].per_layer:
                total *= math.prod(len(d) for d in decisions)
                continue
            own = len(self._layer_fields(number))
            per_layer = [math.prod(len(d) for d in decisions[i:i + own]) for i in range(0, len(decisions) - 3, own)]
            total *= len(decisions[-3]) * len(decisions[-2]) * sum(
                math.prod(per_layer[:depth]) for depth in decisions[-1].options)
        return total * len(self.decisions[0])

    @cached_property
    def _plan(self) -> tuple[tuple[int, slice, int, bool], ...]:
        """Per block, what decoding needs: its number, where its decisions are, how many of them each layer
        has, and whether its layers choose separately."""
        return tuple((number, where, len(self._layer_fields(number)), block.per_layer)
                     for number, (where, block) in enumerate(zip(self._block_slices, self.schema.blocks)))

    def left_out(self, choices: tuple[int, ...] | list[int]) -> frozenset[int]:
        """The positions of the decisions that build nothing for these choices: those of the layers a per-layer
        block's chosen depth leaves out. Any option there decodes to the same architecture."""
        out: list[int] = []
        for _, where, own, per_layer in self._plan:
            if per_layer:
                depth = self.decisions[where.stop - 1].options[choices[where.stop - 1]]
                out += range(where.start + depth * own, where.stop - 3)
        return frozenset(out)

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
        stages: list[Stage] = []
        for number, where, own, per_layer in self._plan:
            block_values = tuple(values[where])
            skip, filters, layers = block_values[-3:]
            if not per_layer:
                stages.append(self._stage(number, block_values[:own], skip, filters, layers))
                continue
            stages += [self._stage(number, block_values[i * own:(i + 1) * own], skip, filters, 1, first=i == 0)
                       for i in range(layers)]
        return self._architecture(tuple(stages), values[0])

    def _architecture(self, stages: tuple[Stage, ...], act: str) -> Architecture:
        schema = self.schema
        return Architecture(stages=stages, stem=schema.stem.channels, stem_stride=schema.stem.stride,
                            head=schema.head.channels, act=act, feature_mix=schema.head.feature_mix,
                            se_style=schema.se_style)

    @cached_property
    def _stages(self) -> dict[tuple[Any, ...], Stage]:
        return {}

    def _stage(self, number: int, what: tuple[Any, ...], skip: str, filters: int, repeats: int, *,
               first: bool = True) -> Stage:
        """Block ``number``'s stage for its decided values — ``what`` is a variant, or an op, kernel and SE —
        made once (controllers decode thousands of candidates that share most of their blocks). Only a
        block's first layer strides."""
        cache = self._stages
        key = (number, what, skip, filters, repeats, first)
        stage = cache.get(key)
        if stage is None:
            if len(what) == 1:
                code, expand, kernel, se, groups = ops.variant(what[0])
            else:
                op, kernel, se = what
                (code, expand), groups = ops.from_yaml(op), 1
            block = self.schema.blocks[number]
            stage = Stage(op=code, repeats=repeats, kernel=kernel, stride=block.stride if first else 1,
                          expand=expand, channels=filters, se=se, skip=skip, groups=groups,
                          act=block.activation or "")
            if len(cache) < 1 << 16:
                cache[key] = stage
        return stage

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        """An architecture to choices; raises ``ValueError`` naming the first field outside the space. The
        decisions that build nothing (:meth:`left_out`) are given their first option."""
        schema = self.schema
        fixed = (("stem channels", arch.stem, schema.stem.channels),
                 ("stem stride", arch.stem_stride, schema.stem.stride),
                 ("head channels", arch.head, schema.head.channels),
                 ("feature-mix channels", arch.feature_mix, schema.head.feature_mix),
                 ("SE style", arch.se_style, schema.se_style))
        for what, got, want in fixed:
            if got != want:
                raise ValueError(f"{what} is {got}; this space has {want}")
        if not any(block.per_layer for block in schema.blocks) and len(arch.stages) != len(schema.blocks):
            raise ValueError(f"number of stages is {len(arch.stages)}; this space has {len(schema.blocks)}")
        act = self._index(self.decisions[0], arch.act)
        return act + self._encode_blocks(arch, 0, 0)

    def _index(self, decision: Decision, value: Any) -> tuple[int]:
        if value not in decision.options:
            raise ValueError(f"{decision.name} is {value!r}; this space allows {list(decision.options)}")
        return (decision.options.index(value),)

    def _encode_blocks(self, arch: Architecture, number: int, position: int) -> tuple[int, ...]:
        """The choices of blocks ``number`` on, matched to ``arch``'s stages from ``position`` on."""
        blocks = self.schema.blocks
        if number == len(blocks):
            if position != len(arch.stages):
                raise ValueError(f"number of stages is {len(arch.stages)}; this space has fewer")
            return ()
        decisions = self.decisions[self._block_slices[number]]
        if not blocks[number].per_layer:
            if position >= len(arch.stages):
                raise ValueError(f"number of stages is {len(arch.stages)}; this space has more")
            stage = arch.stages[position]
            head = self._match(arch, number, [stage], decisions, stage.repeats)
            return head + self._encode_blocks(arch, number + 1, position + 1)
        failure: ValueError | None = None
        for depth in sorted(decisions[-1].options, reverse=True):
            taken, layers = [], 0
            while layers < depth and position + len(taken) < len(arch.stages):
                taken.append(arch.stages[position + len(taken)])
                layers += taken[-1].repeats
            if layers != depth:
                continue
            try:
                head = self._match(arch, number, taken, decisions, depth)
                return head + self._encode_blocks(arch, number + 1, position + len(taken))
            except ValueError as error:
                failure = failure or error
        raise failure or ValueError(f"block{number + 1}.layers: the architecture's stages from stage "
                                    f"{position + 1} on do not make any of its depths {list(decisions[-1].options)}")

    def _match(self, arch: Architecture, number: int, stages: list[Stage], decisions: tuple[Decision, ...],
               depth: int) -> tuple[int, ...]:
        """Block ``number``'s choices for ``stages`` (``depth`` layers); raises ``ValueError`` naming the first
        field outside the space."""
        block = self.schema.blocks[number]
        if stages[0].stride != block.stride or any(stage.stride != 1 for stage in stages[1:]):
            got = [stage.stride for stage in stages]
            raise ValueError(f"block{number + 1}.stride is {got[0] if len(got) == 1 else got}; this space has "
                             f"{block.stride}")
        want_act = block.activation or arch.act
        for stage in stages:
            if (stage.act or arch.act) != want_act:
                raise ValueError(f"block{number + 1}.activation is {stage.act or arch.act}; this space has {want_act}")
        own = len(self._layer_fields(number))
        per_layer = [stage for stage in stages for _ in range(stage.repeats)] if block.per_layer else stages[:1]

        def what(stage: Stage) -> list[Any]:
            if own == 1:
                return [ops.variant_name(stage.op, stage.expand, stage.kernel, float(stage.se), stage.groups)]
            return [_op_name(stage.op, stage.expand), stage.kernel, float(stage.se)]

        layer_decisions = decisions[:-3]
        values: list[Any] = []
        for stage in per_layer:
            values += what(stage)
        out: list[int] = []
        for decision, value in zip(layer_decisions, values):
            out += self._index(decision, value)
        out += [0] * (len(layer_decisions) - len(out))  # the layers left out
        for decision, value in zip(decisions[-3:], (stages[0].skip, stages[0].channels, depth)):
            out += self._index(decision, value)
        for stage in stages[1:]:
            if (stage.skip, stage.channels) != (stages[0].skip, stages[0].channels):
                raise ValueError(f"block{number + 1}: its layers differ in skip or filters, which it chooses once")
        return tuple(out)

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
        """Change exactly one decision (one that has alternatives) to a different option, one that changes the
        network (a choice for a layer a per-layer block leaves out does not)."""
        choices = list(self.encode(arch))
        left_out = self.left_out(choices)
        free = [i for i, d in enumerate(self.decisions) if len(d) > 1 and i not in left_out]
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
