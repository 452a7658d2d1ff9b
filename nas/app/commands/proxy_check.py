"""``nas proxy-check SPACE``: train architectures of a space several times on a proxy (and on a more
faithful one with ``--against``) and report whether the proxy's ranking is signal or seed noise."""

from __future__ import annotations

import argparse
import shlex
import time

from pydantic import ValidationError

from nas.app.commands import print_json
from nas.core.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from nas.settings import ProxyCheckSettings, flags

    parser = subparsers.add_parser("proxy-check", help="measure a proxy's noise and its rank agreement with a "
                                   "longer proxy", description=__doc__.replace("``", ""))
    parser.add_argument("space_file", nargs="?", metavar="SPACE", help="the same as --space")
    flags.declare(parser, ProxyCheckSettings, skip=("against",))
    parser.add_argument("--against", metavar="'PROXY FLAGS'",
                        help="the reference proxy, as changes to the proxy in the proxy flags' own words, e.g. "
                             "--against '--epochs 8' or --against '--max-train-samples 16000'")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(run=run)


def _against_flags() -> tuple[argparse.ArgumentParser, dict]:
    """A parser of the proxy flags alone, for ``--against``, and its field path → flag names."""
    from nas.settings import ProxySettings, flags

    parser = argparse.ArgumentParser(prog="--against", add_help=False, exit_on_error=False)
    return parser, flags.add_flags(parser, ProxySettings)


def run(args: argparse.Namespace) -> int:
    import sys

    from nas import space as spaces
    from nas.settings import DEFAULT_SPACE, flags
    from nas.studies import proxy_check

    given = args.settings_flags.given(args)
    if args.space_file:
        given["space"] = args.space_file
    space = spaces.load(given.get("space", DEFAULT_SPACE))
    given.setdefault("place", {}).setdefault("name", f"proxy-check-{time.strftime('%Y%m%d-%H%M%S')}")
    settings = args.settings_flags.for_space(space, given)
    if args.against is not None:
        parser, against = _against_flags()
        try:
            parsed, unknown = parser.parse_known_args(shlex.split(args.against))
        except (argparse.ArgumentError, ValueError) as error:
            raise UserError(f"--against {args.against!r}: {error}") from None
        if unknown:
            raise UserError(f"--against {args.against!r}: {' '.join(unknown)} is not a proxy flag")
        changes = flags.given(parsed, against)
        try:
            settings = settings.changed(against=settings.proxy.merged(changes))
        except ValidationError as error:
            names = {("against", *path): flag for path, flag in against.items()}
            raise UserError(f"--against {flags.error_for(error, names)}") from None
    report = proxy_check.run(settings, out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(report)
    return 0
