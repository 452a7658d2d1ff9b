"""``nas train ARCH``: train one architecture to the end — the space's proxy recipe with a longer schedule
(30 epochs unless --epochs says otherwise), the whole training set, test accuracy once at the end.
A checkpoint after every epoch; ``nas train --resume FOLDER`` continues a run that was stopped."""

from __future__ import annotations

import argparse
import time

from pydantic import ValidationError

from nas.commands import print_json
from nas.errors import UserError

_FLAGS: dict = {}


def register(subparsers: argparse._SubParsersAction) -> None:
    from nas import flags
    from nas.settings import TrainSettings

    parser = subparsers.add_parser("train", help="train one architecture to the end; checkpoints, resume",
                                   description=__doc__.replace("``", ""))
    parser.add_argument("arch", nargs="?", help="an architecture string, or a one-point space file "
                        "(efficientnet_b0, search_spaces/mnasnet_a1.yaml, an exported YAML)")
    _FLAGS.update(flags.add_flags(parser, TrainSettings))
    parser.add_argument("--resume", metavar="FOLDER", help="continue the training run in FOLDER")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from nas import flags, full_training
    from nas import space as spaces
    from nas.settings import FULL_TRAINING, TrainSettings, for_space

    out = sys.stderr if args.json else sys.stdout
    given = flags.given(args, _FLAGS)
    if args.resume:
        if args.arch or any(k != "place" for k in given):
            raise UserError("--resume FOLDER takes no architecture and no settings: the run has its own")
        result = full_training.run(args.resume, out=out)
    else:
        if not args.arch:
            raise UserError("give an architecture to train (or --resume FOLDER)")
        arch = spaces.load_architecture(args.arch)
        settings_file = given.get("space") or (args.arch if spaces.find_space_file(args.arch).is_file() else None)
        space = spaces.load(settings_file) if settings_file else None
        given["proxy"] = {**FULL_TRAINING, **given.get("proxy", {})}
        given.setdefault("place", {}).setdefault("name", f"train-{arch.digest}-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            settings = for_space(TrainSettings, space, given)
        except ValidationError as error:
            raise flags.error_for(error, _FLAGS) from None
        folder = full_training.start(arch, settings, model_dropout=space.schema.dropout if space else 0.2,
                                     cost_classes=space.num_classes if space else 1000,
                                     target_resolution=space.target_resolution if space else 224)
        print(f"[train] {arch} -> {folder}", file=out, flush=True)
        result = full_training.run(folder, out=out)
    if args.json:
        print_json(result)
    return 0
