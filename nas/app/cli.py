"""The ``nas`` command: thin. Each subcommand lives in ``nas/commands/<name>.py`` and exposes
``register(subparsers)``; this file only dispatches and turns a user's error (:class:`nas.core.errors.NasError`)
into one line and exit status 2. A full disk or a read-only folder is one line too (status 1)."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence

from nas.app.commands import (
    arch,
    dashboard,
    evaluate,
    export,
    latency,
    print_json,  # noqa: F401 - older imports of it from here
    proxy_check,
    report,
    reproduce,
    scale,
    search,
    space,
    train,
)
from nas.core.errors import NasError, UserError  # noqa: F401 - older imports of it from here

COMMANDS = (space, arch, evaluate, train, search, proxy_check, reproduce, export, latency, dashboard, report, scale)
"""In the order `nas --help` lists them."""

_ENVIRONMENT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
                       errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied"}


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on (escape sequences, right-to-left overrides,
    line breaks) written as its escape, so a name a user typed cannot repaint the screen or hide a line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="nas", description="Multi-objective neural architecture search.")
    subparsers = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except NasError as error:
        print(f"nas {args.command}: error: {printable(str(error))}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"nas {args.command}: error: {error.filename or error}: no such file or folder", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `nas space show X | head`
        sys.stderr.close()
        return 0
    except OSError as error:
        if error.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f" ({error.filename})" if error.filename else ""
        print(f"nas {args.command}: error: {_ENVIRONMENT_ERRNOS[error.errno]}{where}; what was finished is kept "
              "(a search continues with --resume)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(f"nas {args.command}: {interrupt or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(interrupt, "signal", 2)


if __name__ == "__main__":
    sys.exit(main())
