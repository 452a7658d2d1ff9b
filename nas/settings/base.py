"""The settings' base: frozen models whose fields may be flags, and errors in the words of each view."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nas.core.errors import NasError


class SettingsError(NasError, ValueError):
    """A setting out of bounds, as one line naming it the way the user wrote it."""


def flag(default: Any, help: str, *, flags: tuple[str, ...] = (), **bounds: Any) -> Any:
    """A field that is also a command-line flag; ``flags`` overrides the name derived from the field
    (``max_train_samples`` → ``--max-train-samples``) and may add old spellings."""
    return Field(default, description=help, json_schema_extra={"flags": list(flags)}, **bounds)


Finite = float
"""A number a setting holds: NaN and the infinities are refused by every settings model (``allow_inf_nan``
below), before any bound is checked, as "Input should be a finite number"."""


class Settings(BaseModel):
    """Frozen, and an unknown key is an error (never silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN is no number to bound

    def changed(self, **changes: Any) -> Any:
        """A validated copy with ``changes`` (pydantic's ``model_copy`` would not validate them)."""
        return type(self).model_validate({**self.model_dump(), **changes})


# ---------------------------------------------------------------- errors, in the words of each view


def describe_error(error: ValidationError, *, source: str, key_name: Any = None) -> SettingsError:
    """The first problem of ``error`` as one line: ``SOURCE: KEY = VALUE: what is allowed``.

    ``key_name(loc)`` spells the key as the user wrote it (a flag, a YAML path); by default a
    dotted path. Long values are cut, so a huge input cannot make a huge message."""
    key, value, detail = error_parts(error, key_name=key_name)
    return SettingsError(error_line(source, key, value, detail))


def error_line(source: str, key: str, value: Any, allowed: str) -> str:
    """``SOURCE: KEY = VALUE: what is allowed``, each part left out when it is empty (``value`` MISSING)."""
    shown = "" if value is MISSING else f" = {short(value)}"
    where = f"{source}: {key}" if source and key else key or source
    return f"{where}{shown}: {allowed}"


class SpaceError(SettingsError):
    """A user's mistake in a search-space file, as one line: ``FILE: KEY = VALUE: what is allowed``."""

    def __init__(self, source: str, key: str, value: Any, allowed: str) -> None:
        self.source, self.key, self.value, self.allowed = source, key, value, allowed
        super().__init__(error_line(source, key, value, allowed))


def error_parts(error: ValidationError, *, key_name: Any = None) -> tuple[str, Any, str]:
    """``(key, value or MISSING, what is allowed)`` of the first problem in ``error``."""
    first = error.errors()[0]
    loc = tuple(first["loc"])
    key = key_name(loc) if key_name else yaml_key(loc)
    value = first.get("input", MISSING)
    if first["type"] == "missing":
        return key, MISSING, "required key is missing"
    if first["type"] == "extra_forbidden":
        return key, MISSING, "unknown key; allowed keys here: " + ", ".join(_fields_at(error.title, loc[:-1]))
    if isinstance(value, dict):
        value = MISSING
    return key, value, first["msg"].removeprefix("Value error, ")


MISSING = object()
"""No value to show (a missing key, a whole mapping)."""


def short(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters: an error line stays one line of bounded length."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 15] + f"... ({len(text)} chars)"


def yaml_key(loc: tuple) -> str:
    """``("blocks", 2, "kernel", 0)`` → ``blocks[2].kernel[0]`` (pydantic's tags for Annotated members dropped)."""
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    return re.sub(r"\.(list|function-after|function-before|constrained-\w+|literal|nullable|int|float|str)"
                  r"(\[.*?\])?(?=\.|\[|$)", "", key)


def _fields_at(title: str, loc: tuple) -> list[str]:
    model: Any = _models().get(title)
    if model is None:
        return []
    for part in loc:
        if isinstance(part, int) or part not in getattr(model, "model_fields", {}):
            continue
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), model)
    return list(model.model_fields)



def _models() -> dict[str, type[Settings]]:
    """Every settings model by name (a ``ValidationError``'s title), found as the subclasses it is."""
    found, todo = {}, [Settings]
    while todo:
        model = todo.pop()
        found[model.__name__] = model
        todo.extend(model.__subclasses__())
    return found
