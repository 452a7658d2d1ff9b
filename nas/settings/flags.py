"""Command-line flags derived from the settings tree (:mod:`nas.settings`), never written twice.

Every field made with :func:`nas.settings.flag` becomes a flag whose help is the field's text, whose
name is the field's (``max_train_samples`` → ``--max-train-samples``, or the names the field gives),
and whose value lands at the field's place in the tree. A flag not given stays out of the result, so
a resumed run can tell what was asked from what was not. Errors from validating the result name the
flag the user typed (:func:`error_for`).
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from nas.settings import SettingsError, describe_error

Path = tuple[str, ...]
T = TypeVar("T")


@dataclass(frozen=True)
class Flags:
    """The flags a command derived from its settings model: what the user gave, validated into settings
    whose errors name the flag (or the space file's key). A command's parser carries its own
    (:func:`declare`), so nothing is kept in module globals."""

    model: type[BaseModel]
    names: dict[Path, str]

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        return given(args, self.names)

    def validate(self, build: Callable[[], T], *, source: str = "") -> T:
        """``build()``, its ``ValidationError`` turned into one line naming the flag."""
        try:
            return build()
        except ValidationError as error:
            raise error_for(error, self.names, source=source) from None

    def for_space(self, space: Any, given: dict[str, Any]) -> Any:
        """The command's settings for ``space`` (or the defaults when None) with the ``given`` flags."""
        from nas.settings import for_space

        return self.validate(lambda: for_space(self.model, space, given), source=space.source if space else "")


def declare(parser: argparse.ArgumentParser, model: type[BaseModel], *, skip: tuple[str, ...] = (),
            group: Any = None) -> Flags:
    """Add ``model``'s flags to ``parser`` (or to an argument ``group`` of it); ``args.settings_flags`` is
    the :class:`Flags` the command's ``run`` reads them back with."""
    flags = Flags(model, add_flags(group if group is not None else parser, model, skip=skip))
    parser.set_defaults(settings_flags=flags)
    return flags


def add_flags(parser: argparse.ArgumentParser | Any, model: type[BaseModel], *, skip: tuple[str, ...] = (),
              prefix: Path = ()) -> dict[Path, str]:
    """Add a flag for every flag field of ``model`` and its nested settings (not those whose name is in
    ``skip``); returns field path → the flag's name, for error messages."""
    names: dict[Path, str] = {}
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        if name in skip:
            continue
        nested = _settings_type(field.annotation)
        if nested is not None:
            names.update(add_flags(parser, nested, skip=skip, prefix=path))
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else None
        if extra is None or "flags" not in extra:
            continue
        flags = list(extra["flags"]) or [f"--{name.replace('_', '-')}"]
        if field.annotation is bool:  # a switch: given only when on, so a resumed run can tell
            parser.add_argument(*flags, dest=".".join(path), action="store_true", default=None,
                                help=field.description or "")
            names[path] = flags[0]
            continue
        many = typing.get_origin(field.annotation) in (tuple, list)
        kind, choices = _value_type(typing.get_args(field.annotation)[0] if many else field.annotation)
        help_text = field.description or ""
        if "default" not in help_text and field.default is not None:
            shown = " ".join(map(str, field.default)) if many else field.default
            help_text += f" (default {shown})"
        parser.add_argument(*flags, dest=".".join(path), type=kind, choices=choices, default=None,
                            nargs="+" if many else None, metavar=None if choices else name.upper(), help=help_text)
        names[path] = flags[0]
    return names


def given(args: argparse.Namespace, names: dict[Path, str]) -> dict[str, Any]:
    """The flags the user gave, as a nested dict shaped like the settings tree."""
    out: dict[str, Any] = {}
    for path in names:
        value = getattr(args, ".".join(path), None)
        if value is None:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, nested dicts merged: a preset's settings under the flags a user gave."""
    out = dict(base)
    for key, value in top.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def error_for(error: ValidationError, names: dict[Path, str], *, prefix: Path = (), source: str = "") -> SettingsError:
    """``error`` as one line naming the flag (``--epochs = 0: Input should be greater than or equal to 1``);
    a value no flag set (a key of the space file ``source``) is named by its path in that file."""
    loc = tuple(error.errors()[0]["loc"])
    path = (*prefix, *(part for part in loc if isinstance(part, str)))
    flag = next((names[path[:n]] for n in range(len(path), 0, -1) if path[:n] in names), None)
    if flag is not None:
        return describe_error(error, source="", key_name=lambda _: flag)
    return describe_error(error, source=source, key_name=lambda _: ".".join(path))


def _settings_type(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _value_type(annotation: Any) -> tuple[Any, list[Any] | None]:
    """The argparse ``type`` and ``choices`` for a field's annotation (``int | None`` → int)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _value_type(inner[0])
    if origin is typing.Annotated:
        return _value_type(typing.get_args(annotation)[0])
    if origin is Literal:
        choices = list(typing.get_args(annotation))
        return type(choices[0]), choices
    if annotation in (int, float, str):
        return annotation, None
    return str, None


__all__ = ["Flags", "add_flags", "declare", "error_for", "given"]
