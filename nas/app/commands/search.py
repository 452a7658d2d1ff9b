"""``nas search`` (and ``scripts/search.py``, the same flags): run or resume a search on Ray Tune.

The flags are the settings tree's (:class:`nas.settings.SearchSettings`); a flag left out takes the
space file's value (proxy, reward) or the setting's default.
"""

from __future__ import annotations

import argparse
import json
import time

from nas.app.commands import print_json
from nas.core.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import controllers
    from nas.settings import RESUMABLE, SearchSettings, flags

    declared = flags.declare(parser, SearchSettings)
    for action in parser._actions:
        if action.dest == "controller":  # the registry names them; the settings only hold the name
            action.help = f"the search algorithm: {', '.join(controllers.available())}"
    resumable = [flag for path, flag in declared.names.items() if path[0] in RESUMABLE]
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its stored settings; "
                        f"only {', '.join(resumable)} may change")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="controller option, e.g. --option population_size=64 (JSON values)")
    parser.add_argument("--json", action="store_true", help="print the final summary as one JSON object")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help="run (or --resume) an architecture search on Ray Tune")
    add_arguments(parser)
    parser.set_defaults(run=run)


def _options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    summary = execute(args)
    if args.json:
        print_json(summary)
    counts = summary["counts"]
    if counts["ok"] == 0 and counts["failed"] > 0:  # a search where every trial failed did not work
        raise SearchFailed(f"no trial succeeded ({counts['failed']} failed); the first failure: "
                           f"{summary['first_error']}")
    return 0


def execute(args: argparse.Namespace) -> dict:
    """The search (or the resumed one) the parsed flags describe; its summary."""
    from nas import space as spaces
    from nas.settings import DEFAULT_SPACE

    given = args.settings_flags.given(args)
    if args.option:
        given["controller_options"] = _options(args.option)
    if args.resume:
        from nas.runs.search import run as run_search  # torch and Ray load only once the flags are known good

        summary = run_search(resume_from=args.resume, changes=given)
    else:
        space = spaces.load(given.get("space", DEFAULT_SPACE))
        place = given.setdefault("place", {})
        place.setdefault("name", f"{given.get('controller', 'evolution')}-{time.strftime('%Y%m%d-%H%M%S')}")
        settings = args.settings_flags.for_space(space, given)
        from nas.runs.search import run as run_search

        summary = run_search(settings, space=space)
    return summary


class SearchFailed(UserError):
    """Every trial of a search failed: almost always one cause (the data, the device, the settings)."""
