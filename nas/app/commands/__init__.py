"""The ``nas`` subcommands, one module each; :mod:`nas.app.cli` dispatches to them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.core.errors import UserError
from nas.core.limits import LIMITS


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=None, sort_keys=True, default=str))


def bounded(low: int, high: int) -> Any:
    """An argparse ``type``: an integer in ``low..high`` (a flag's nonsense is refused before any work)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


CLASSES = bounded(1, 1_000_000)
RESOLUTION = bounded(*LIMITS["resolution"])
IN_CHANNELS = bounded(1, 64)


def output_file(flag: str, path: str, suffix: str) -> Path:
    """A file to write: a folder or a missing parent is refused, and a name without ``suffix`` gets it."""
    out = Path(path)
    if out.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name (e.g. {out / ('report' + suffix)})")
    if not out.parent.is_dir():
        raise UserError(f"{flag} {path}: the folder {out.parent} does not exist")
    return out if out.suffix == suffix else out.with_name(out.name + suffix)
