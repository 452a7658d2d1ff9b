"""Reading a space file safely: bounded YAML, the shipped spaces, architecture strings and files."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nas.core.arch import Architecture
from nas.settings import MISSING, SpaceError, SpaceSchema, error_parts, short
from nas.space.search_space import SearchSpace

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
# YAML 1.2's booleans (true, false) only: in YAML 1.1, which PyYAML follows, `on`, `off`, `yes` and `no` are
# booleans too, so the reward's `on: latency` would arrive as the key True.
_BOOL = "tag:yaml.org,2002:bool"
_SpaceLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SpaceLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _shipped_spaces() -> Path:
    """``nas/search_spaces``: in a wheel the spaces themselves, in a checkout a link to the repository's
    ``search_spaces/`` (resolved, so messages name the file a user edits)."""
    return (Path(__file__).resolve().parents[1] / "search_spaces").resolve()


SHIPPED_SPACES = _shipped_spaces()
"""The spaces that come with nas (``search_spaces/`` of the repository, or of the installed wheel)."""


def find_space_file(path: str | Path) -> Path:
    """``path`` if it is there; else, for ``search_spaces/NAME.yaml`` or a bare ``NAME`` (``.yaml`` optional),
    the shipped file of that name. So the defaults work from any folder — ``ray submit`` runs the
    script from the home folder, not from the checkout."""
    path = Path(path).expanduser()
    try:
        if path.exists() or path.is_absolute():
            return path
    except OSError:  # too long to be a path: not a file, and no shipped space's name
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
        # Non-blocking, then checked: a FIFO or a device given as a space would otherwise wait forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SpaceError(given, "", MISSING, "not a regular file (a pipe, a device or a folder); "
                                                      "give a YAML file")
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        where = "" if path.is_absolute() else f"; also looked in {SHIPPED_SPACES}"
        raise SpaceError(given, "", MISSING, f"cannot read the file ({error.strerror or error}{where})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpaceError(given, "", MISSING, f"larger than {MAX_FILE_BYTES // 1024} KiB; a space file is "
                                               "a few kilobytes of YAML")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpaceError(given, "", MISSING, f"not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def loads(text: str, *, source: str = "<string>") -> SearchSpace:
    """Validate a search space given as YAML text (``source`` names it in errors)."""
    if len(text) > MAX_FILE_BYTES:
        raise SpaceError(source, "", MISSING, f"larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        data = yaml.load(text, Loader=_SpaceLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as dup:
        raise SpaceError(source, str(dup.key)[:60], MISSING,
                         f"key written twice (again on line {dup.line}); each key may appear once") from None
    except _Refused as refused:
        raise SpaceError(source, "", MISSING, str(refused)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpaceError(source, "", MISSING, f"not valid YAML at {where}: {short(problem, 120)}") from None
    except ValueError as error:  # e.g. an integer of thousands of digits (Python refuses to convert it)
        raise SpaceError(source, "", MISSING, f"a value cannot be read: {short(str(error), 120)}") from None
    if not isinstance(data, dict):
        raise SpaceError(source, "", MISSING,
                         f"expected a mapping of keys (name, blocks, ...), got {type(data).__name__}")
    try:
        schema = SpaceSchema.model_validate(data)
    except ValidationError as error:
        key, value, allowed = error_parts(error)
        raise SpaceError(source, key, value, allowed) from None
    space = SearchSpace(schema, source=source, text=text)
    space.decisions  # noqa: B018 - resolve choices now, so impossible ones fail at load time
    return space


def _is_file(path: Path) -> bool:
    """Whether ``path`` names a file; a string too long to be a path (a long architecture) is no file."""
    try:
        return path.is_file()
    except OSError:
        return False


def load_architecture(text_or_path: str) -> Architecture:
    """An architecture from a canonical/block string, or from a YAML space file with exactly one point
    (a path, or the name of a shipped one: ``efficientnet_b0``)."""
    path = find_space_file(text_or_path)
    if text_or_path.endswith((".yaml", ".yml")) or _is_file(path):
        space = load(path)
        if space.size != 1:
            raise SpaceError(str(path), "", MISSING,
                             f"this space holds {space.size} architectures; an architecture file must hold one")
        return space.decode((0,) * len(space.decisions))
    return Architecture.parse(text_or_path)

