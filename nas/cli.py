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


# Exceptions a user can cause, by module; each one's message is already the one line to print.
_USER_ERRORS = {"nas.arch": "ArchError", "nas.space": "SpaceError", "nas.data": "DatasetError",
                "nas.store": "StoreError", "nas.search": "SearchError", "nas.scaling": "ScalingError",
                "nas.scaling_search": "ScaleRunError", "controllers.base": "ConstraintError"}


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a user can cause; the CLI prints them as one line instead of a traceback.
    Only modules already imported can have raised theirs, so none is imported here (no torch at start)."""
    errors: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)
    for module, name in _USER_ERRORS.items():
        if module in sys.modules:
            errors += (getattr(sys.modules[module], name),)
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
