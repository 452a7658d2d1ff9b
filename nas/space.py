"""Search spaces: a YAML file, validated into a typed, immutable space of architectures.

The MnasNet space is factorized and hierarchical: the network is a list of
blocks, each block makes its own choices (op, kernel, SE ratio, skip, filters,
layers) and all layers inside a block share them. A space is therefore a flat,
ordered list of :class:`Decision` s; a point in it is one option index per
decision (``choices``), and ``decode``/``encode`` map choices to and from an
:class:`~nas.arch.Architecture`. Validation uses pydantic (already a Ray Tune
dependency); every error becomes one :class:`SpaceError` line naming the file,
the key path, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from nas import ops
from nas.arch import LIMITS, ArchError, Architecture, Stage
from nas.errors import NasError
from nas.settings import MISSING, ProxySettings, RewardSettings, SpaceSchema, error_parts, short


class SpaceError(NasError, ValueError):
    """A user's mistake in a search-space file, as one line: ``FILE: KEY = VALUE: what is allowed``."""

    def __init__(self, source: str, key: str, value: Any, allowed: str) -> None:
        self.source, self.key, self.value, self.allowed = source, key, value, allowed
        where = f"{source}: {key}" if key else source
        shown = "" if value is _NO_VALUE else f" = {short(value)}"
        super().__init__(f"{where}{shown}: {allowed}")


_NO_VALUE = MISSING

# ---------------------------------------------------------------- reading YAML safely

MAX_FILE_BYTES = 1 << 20
"""A space file is a few kilobytes; a megabyte is a mistake (or an attack), refused before parsing."""
MAX_DEPTH = 16
"""Mappings and lists nested deeper than this are refused (a space file nests four levels)."""


class _SpaceLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that rejects a key written twice (plain PyYAML keeps the last one silently),
    aliases (``*name``: an alias bomb expands a few lines into gigabytes) and deep nesting."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _Refused(f"YAML aliases (*name) are not allowed in a space file (line {mark.line + 1}); "
                           "write the values out")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _SpaceLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise _Refused(f"line {key_node.start_mark.line + 1}: a key must be a plain value")
        if key in seen:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        self.key, self.line = key, line


class _Refused(Exception):
    """A YAML document this loader will not build (aliases, deep nesting)."""


_SpaceLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _shipped_spaces() -> Path:
    """A wheel carries the spaces inside the package; a checkout (editable install) has them beside it."""
    inside = Path(__file__).resolve().parent / "search_spaces"
    return inside if inside.is_dir() else Path(__file__).resolve().parents[1] / "search_spaces"


SHIPPED_SPACES = _shipped_spaces()
"""The spaces that come with nas (``search_spaces/`` of the repository, or of the installed wheel)."""


def find_space_file(path: str | Path) -> Path:
    """``path`` if it is there; else, for ``search_spaces/NAME.yaml`` or a bare ``NAME`` (``.yaml`` optional),
    the shipped file of that name. So the defaults work from any folder — ``ray submit`` runs the
    script from the home folder, not from the checkout."""
    path = Path(path).expanduser()
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts
    if parts and parts[0] == "search_spaces":
        tail = Path(*parts[1:]) if len(parts) > 1 else None
    else:
        tail = path if len(parts) == 1 else None
    if tail is not None:
        for name in (tail, tail.with_name(tail.name + ".yaml")):
            if (SHIPPED_SPACES / name).is_file():
                return SHIPPED_SPACES / name
    return path


def load(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file; raises :class:`SpaceError` with one clear line.

    A relative ``search_spaces/…`` path or a bare name also finds the shipped spaces (:func:`find_space_file`)."""
    given, path = str(path), find_space_file(path)
    return loads(read_space_text(given, path), source=str(path))


def read_space_text(given: str, path: Path) -> str:
    """A space file's text: at most :data:`MAX_FILE_BYTES`, UTF-8, else one line saying why not."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        where = "" if path.is_absolute() else f"; also looked in {SHIPPED_SPACES}"
        raise SpaceError(given, "", _NO_VALUE, f"cannot read the file ({error.strerror or error}{where})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpaceError(given, "", _NO_VALUE, f"larger than {MAX_FILE_BYTES // 1024} KiB; a space file is "
                                               "a few kilobytes of YAML")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpaceError(given, "", _NO_VALUE, f"not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def loads(text: str, *, source: str = "<string>") -> SearchSpace:
    """Validate a search space given as YAML text (``source`` names it in errors)."""
    if len(text) > MAX_FILE_BYTES:
        raise SpaceError(source, "", _NO_VALUE, f"larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        data = yaml.load(text, Loader=_SpaceLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as dup:
        raise SpaceError(source, str(dup.key)[:60], _NO_VALUE,
                         f"key written twice (again on line {dup.line}); each key may appear once") from None
    except _Refused as refused:
        raise SpaceError(source, "", _NO_VALUE, str(refused)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpaceError(source, "", _NO_VALUE, f"not valid YAML at {where}: {short(problem, 120)}") from None
    if not isinstance(data, dict):
        raise SpaceError(source, "", _NO_VALUE,
                         f"expected a mapping of keys (name, blocks, ...), got {type(data).__name__}")
    try:
        schema = SpaceSchema.model_validate(data)
    except ValidationError as error:
        key, value, allowed = error_parts(error)
        raise SpaceError(source, key, value, allowed) from None
    space = SearchSpace(schema, source=source, text=text)
    space.decisions  # noqa: B018 - resolve choices now, so impossible ones fail at load time
    return space


# ---------------------------------------------------------------- the space


@dataclass(frozen=True)
class Decision:
    """One categorical choice a controller makes, e.g. ``block3.kernel`` from ``(3, 5)``."""

    name: str
    options: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.options)


_BLOCK_FIELDS = ("op", "kernel", "se", "skip", "filters", "layers")


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
        """Global decisions first (activation), then each block's op, kernel, SE, skip, filters, layers."""
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
                       "skip": pick("skip"), "filters": sorted(set(filters)), "layers": sorted(set(layers))}
            for field in _BLOCK_FIELDS:
                out.append(Decision(f"block{number}.{field}", tuple(dict.fromkeys(options[field]))))
        return tuple(out)

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
        act, per_block = values[0], values[1:]
        stages = tuple(self._stage(number, tuple(per_block[number * 6:(number + 1) * 6]))
                       for number in range(len(self.schema.blocks)))
        return Architecture(stages=stages, stem=self.schema.stem.channels,
                            stem_stride=self.schema.stem.stride, head=self.schema.head.channels, act=act)

    @cached_property
    def _stages(self) -> dict[tuple[int, tuple[Any, ...]], Stage]:
        return {}

    def _stage(self, number: int, values: tuple[Any, ...]) -> Stage:
        """Block ``number``'s stage for its decided values, made once (controllers decode thousands of
        candidates that share most of their blocks)."""
        cache = self._stages
        stage = cache.get((number, values))
        if stage is None:
            op, kernel, se, skip, filters, layers = values
            code, expand = ops.from_yaml(op)
            stage = Stage(op=code, repeats=layers, kernel=kernel, stride=self.schema.blocks[number].stride,
                          expand=expand, channels=filters, se=se, skip=skip)
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
            wanted += [_op_name(stage.op, stage.expand), stage.kernel, float(stage.se), stage.skip, stage.channels, stage.repeats]
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


def _op_name(code: str, expand: float) -> str:
    return ops.OPS[code].yaml_name(expand)


def architecture_yaml(arch: Architecture, *, name: str, comment: str = "", target_resolution: int = 224,
                      reward: RewardSettings | None = None) -> str:
    """A one-point space file for ``arch`` (the format of ``search_spaces/efficientnet_b0.yaml``)."""
    reward = reward or RewardSettings()
    lines = [f"# {line}" for line in comment.splitlines()] + [
        f"name: {name}", f"target_resolution: {target_resolution}", f"activation: {arch.act}",
        f"stem: {{channels: {arch.stem}, stride: {arch.stem_stride}}}", f"head: {{channels: {arch.head}}}",
        f"reward: {{kind: {reward.kind}, target_macs: {reward.target_macs:.6g}, w: {reward.w}}}",
        "choices: {filter_ratios: 1.0, layer_deltas: 0}", "blocks:"]
    for stage in arch.stages:
        lines.append(f"  - {{op: {_op_name(stage.op, stage.expand)}, kernel: {stage.kernel}, se: {stage.se:g}, skip: {stage.skip}, "
                     f"filters: {stage.channels}, layers: {stage.repeats}, stride: {stage.stride}}}")
    return "\n".join(lines) + "\n"


def reference_points(space: SearchSpace) -> dict[str, Architecture]:
    """The shipped architecture files (one-point spaces: B0, MnasNet-A1, ...) that are points of ``space``,
    by their ``name``: the known networks a search in this space should find or beat."""
    found: dict[str, Architecture] = {}
    for path in sorted(SHIPPED_SPACES.glob("*.yaml")):
        try:
            point = load(path)
        except SpaceError:
            continue
        if point.size == 1:
            arch = point.decode((0,) * len(point.decisions))
            if space.contains(arch):
                found[point.name] = arch
    return found


def load_architecture(text_or_path: str) -> Architecture:
    """An architecture from a canonical/block string, or from a YAML space file with exactly one point
    (a path, or the name of a shipped one: ``efficientnet_b0``)."""
    path = find_space_file(text_or_path)
    if text_or_path.endswith((".yaml", ".yml")) or path.is_file():
        space = load(path)
        if space.size != 1:
            raise SpaceError(str(path), "", _NO_VALUE,
                             f"this space holds {space.size} architectures; an architecture file must hold one")
        return space.decode((0,) * len(space.decisions))
    return Architecture.parse(text_or_path)


__all__ = ["SHIPPED_SPACES", "ArchError", "Decision", "SearchSpace", "SpaceError", "approx", "architecture_yaml",
           "find_space_file", "load", "load_architecture", "loads", "read_space_text", "reference_points"]
