"""``nas reproduce``: search, retrain the best found architectures and the space's reference points with
several seeds, compare them at matched cost, compound-scale the winner, and write one report whose first
line answers: did the search find architectures that beat the references? Started again, it continues."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from nas.commands import print_json

_FLAGS: dict = {}


def register(subparsers: argparse._SubParsersAction) -> None:
    from nas import flags
    from nas.settings import ReproduceSettings

    parser = subparsers.add_parser("reproduce", help="the whole story: search, retrain, compare, scale, report",
                                   description=__doc__.replace("``", ""))
    _FLAGS.update(flags.add_flags(parser, ReproduceSettings, skip=("retrain",)))
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nas import flags, reproduce
    from nas import space as spaces
    from nas.settings import DEFAULT_SPACE, ReproduceSettings, for_space

    given = flags.given(args, _FLAGS)
    preset = given.get("preset", "cpu")
    given = flags.merged(reproduce.PRESETS[preset], given)
    space = spaces.load(given.get("space", DEFAULT_SPACE))
    given.setdefault("place", {}).setdefault("name", f"reproduce-{preset}")
    retrain = dict(given.pop("retrain", {}))
    for key in ("dataset", "data_dir"):  # one dataset for the whole story
        if key in given.get("proxy", {}):
            retrain[key] = given["proxy"][key]
    if given.get("retrain_epochs"):
        retrain["epochs"] = given["retrain_epochs"]
    given["retrain"] = space.proxy.merged(retrain)
    try:
        settings = for_space(ReproduceSettings, space, given)
    except ValidationError as error:
        raise flags.error_for(error, _FLAGS, source=space.source) from None
    report = reproduce.run(settings, out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(report)
    return 0
