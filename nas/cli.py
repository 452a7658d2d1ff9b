"""The ``nas`` command: thin. Each subcommand lives in ``nas/commands/<name>.py`` and exposes
``register(subparsers)``; this file only dispatches and turns user errors into one line, exit 2."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

# Subcommand modules under nas.commands, in the order `nas --help` lists them.
COMMANDS = ("space", "arch", "evaluate", "search", "export", "dashboard", "report", "scale")


class UserError(Exception):
    """Something the user can fix (a bad path, flag or value): printed as one line, exit status 2."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a user can cause; the CLI prints them as one line instead of a traceback."""
    from nas.arch import ArchError
    from nas.space import SpaceError
    errors: tuple[type[BaseException], ...] = (UserError, SpaceError, ArchError, FileNotFoundError)
    if "nas.data" in sys.modules:  # only then can a DatasetError exist; avoids importing torch here
        errors += (sys.modules["nas.data"].DatasetError,)
    return errors


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=None, sort_keys=True, default=str))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="nas", description="Multi-objective neural architecture search.")
    subparsers = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nas.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"nas.commands.{name}":
                continue  # not built yet
            raise
        module.register(subparsers)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except user_errors() as error:
        print(f"nas {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `nas space show X | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # `python -m nas.cli`: run the imported module so its classes are the ones raised
    from nas.cli import main as _main
    sys.exit(_main())
