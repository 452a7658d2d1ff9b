"""``nas proxy-check SPACE``: train architectures of a space several times on a proxy (and on a more
faithful one with ``--against``) and report whether the proxy's ranking is signal or seed noise."""

from __future__ import annotations

import argparse
import shlex
import time

from pydantic import ValidationError

from nas.commands import print_json
from nas.errors import UserError

_FLAGS: dict = {}
_AGAINST: dict = {}


def register(subparsers: argparse._SubParsersAction) -> None:
    from nas import flags
    from nas.settings import ProxyCheckSettings

    parser = subparsers.add_parser("proxy-check", help="measure a proxy's noise and its rank agreement with a "
                                   "longer proxy", description=__doc__.replace("``", ""))
    parser.add_argument("space_file", nargs="?", metavar="SPACE", help="the same as --space")
    _FLAGS.update(flags.add_flags(parser, ProxyCheckSettings, skip=("against",)))
    parser.add_argument("--against", metavar="'PROXY FLAGS'",
                        help="the reference proxy, as changes to the proxy in the proxy flags' own words, e.g. "
                             "--against '--epochs 8' or --against '--max-train-samples 16000'")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(run=run)


def _against_flags() -> argparse.ArgumentParser:
    from nas import flags
    from nas.settings import ProxySettings

    parser = argparse.ArgumentParser(prog="--against", add_help=False, exit_on_error=False)
    _AGAINST.update(flags.add_flags(parser, ProxySettings))
    return parser


def run(args: argparse.Namespace) -> int:
    import sys

    from nas import flags, proxy_check
    from nas import space as spaces
    from nas.settings import DEFAULT_SPACE, ProxyCheckSettings, for_space

    given = flags.given(args, _FLAGS)
    if args.space_file:
        given["space"] = args.space_file
    space = spaces.load(given.get("space", DEFAULT_SPACE))
    given.setdefault("place", {}).setdefault("name", f"proxy-check-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        settings = for_space(ProxyCheckSettings, space, given)
    except ValidationError as error:
        raise flags.error_for(error, _FLAGS, source=space.source) from None
    if args.against is not None:
        parser = _against_flags()
        try:
            parsed, unknown = parser.parse_known_args(shlex.split(args.against))
        except (argparse.ArgumentError, ValueError) as error:
            raise UserError(f"--against {args.against!r}: {error}") from None
        if unknown:
            raise UserError(f"--against {args.against!r}: {' '.join(unknown)} is not a proxy flag")
        changes = flags.given(parsed, _AGAINST)
        try:
            settings = settings.changed(against=settings.proxy.merged(changes))
        except ValidationError as error:
            names = {("against", *path): flag for path, flag in _AGAINST.items()}
            raise UserError(f"--against {flags.error_for(error, names)}") from None
    report = proxy_check.run(settings, out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(report)
    return 0
