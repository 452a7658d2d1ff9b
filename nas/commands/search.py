"""``nas search`` (and ``scripts/search.py``, the same flags): run or resume a search on Ray Tune.

The flags are the settings tree's (:class:`nas.settings.SearchSettings`); a flag left out takes the
space file's value (proxy, reward) or the setting's default.
"""

from __future__ import annotations

import argparse
import json
import time

from pydantic import ValidationError

from nas.commands import print_json
from nas.errors import UserError

_FLAGS: dict = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas import flags
    from nas.settings import SearchSettings

    _FLAGS.update(flags.add_flags(parser, SearchSettings))
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its stored settings; "
                        "only --trials, --progress-seconds, --time-budget and where it runs (--concurrency, "
                        "--cpus-per-trial, --gpus-per-trial, --address, --tune-storage) may change")
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
    from nas import flags
    from nas import space as spaces
    from nas.settings import DEFAULT_SPACE, SearchSettings

    given = flags.given(args, _FLAGS)
    if args.option:
        given["controller_options"] = _options(args.option)
    if args.resume:
        from nas.search import run as run_search  # torch and Ray load only once the flags are known good

        summary = run_search(resume_from=args.resume, changes=given)
    else:
        space = spaces.load(given.get("space", DEFAULT_SPACE))
        place = given.setdefault("place", {})
        place.setdefault("name", f"{given.get('controller', 'evolution')}-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            settings = SearchSettings.for_space(space, given)
        except ValidationError as error:
            raise flags.error_for(error, _FLAGS, source=space.source) from None
        from nas.search import run as run_search

        summary = run_search(settings, space=space)
    if args.json:
        print_json(summary)
    return 0
