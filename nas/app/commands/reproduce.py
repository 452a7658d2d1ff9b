"""``nas reproduce``: search, retrain the best found architectures and the space's reference points with
several seeds, compare them at matched cost, compound-scale the winner, and write one report whose first
line answers: did the search find architectures that beat the references? Started again, it continues."""

from __future__ import annotations

import argparse
import sys

from nas.app.commands import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    from nas.settings import ReproduceSettings, flags

    parser = subparsers.add_parser("reproduce", help="the whole story: search, retrain, compare, scale, report",
                                   description=__doc__.replace("``", ""))
    flags.declare(parser, ReproduceSettings, skip=("retrain",))
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nas import space as spaces
    from nas.settings import DEFAULT_SPACE, flags
    from nas.studies import reproduce

    given = args.settings_flags.given(args)
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
    if given.get("retrain_train_samples"):
        retrain["max_train_samples"] = given["retrain_train_samples"]
    given["retrain"] = space.proxy.merged(retrain)
    settings = args.settings_flags.for_space(space, given)
    report = reproduce.run(settings, out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(report)
    return 0
