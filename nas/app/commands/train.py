"""``nas train ARCH``: train one architecture to the end — the space's proxy recipe with a longer schedule
(30 epochs unless --epochs says otherwise), the whole training set, test accuracy once at the end.
A checkpoint after every epoch; ``nas train --resume FOLDER`` continues a run that was stopped."""

from __future__ import annotations

import argparse
import time
from typing import Any

from nas.app.commands import print_json
from nas.core.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from nas.settings import TrainSettings, flags

    parser = subparsers.add_parser("train", help="train one architecture to the end; checkpoints, resume",
                                   description=__doc__.replace("``", ""))
    parser.add_argument("arch", nargs="?", help="an architecture string, or a one-point space file "
                        "(efficientnet_b0, search_spaces/mnasnet_a1.yaml, an exported YAML)")
    flags.declare(parser, TrainSettings)
    parser.add_argument("--resume", metavar="FOLDER", help="continue the training run in FOLDER")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    result = execute(args, out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(result)
    return 0


def execute(args: argparse.Namespace, *, out: Any) -> dict[str, Any]:
    """Train (or resume) as the parsed flags say, the progress lines to ``out``; the result's summary."""
    from nas import space as spaces
    from nas.runs import full_training
    from nas.settings import FULL_TRAINING

    given = args.settings_flags.given(args)
    if args.resume:
        if args.arch or any(k != "place" for k in given):
            raise UserError("--resume FOLDER takes no architecture and no settings: the run has its own")
        return full_training.run(args.resume, out=out)
    if not args.arch:
        raise UserError("give an architecture to train (or --resume FOLDER)")
    arch = spaces.load_architecture(args.arch)
    settings_file = given.get("space") or (args.arch if spaces.find_space_file(args.arch).is_file() else None)
    space = spaces.load(settings_file) if settings_file else None
    given["proxy"] = {**FULL_TRAINING, **given.get("proxy", {})}
    given.setdefault("place", {}).setdefault("name", f"train-{arch.digest}-{time.strftime('%Y%m%d-%H%M%S')}")
    settings = args.settings_flags.for_space(space, given)
    folder = full_training.start(arch, settings, model_dropout=space.schema.dropout if space else 0.2,
                                 cost_classes=space.num_classes if space else 1000,
                                 target_resolution=space.target_resolution if space else 224)
    print(f"[train] {arch} -> {folder}", file=out, flush=True)
    return full_training.run(folder, out=out)
