"""``nas search`` (and ``scripts/search.py``, the same flags): run or resume a search on Ray Tune."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from nas.cli import UserError, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas.search import DEFAULT_SPACE, SearchConfig

    d = SearchConfig()
    a = parser.add_argument
    a("--space", default=d.space, help=f"search-space YAML (default {DEFAULT_SPACE})")
    a("--controller", default=d.controller, help="random, evolution, ppo or nsga2 (default %(default)s)")
    a("--trials", type=int, default=d.trials, help="finished trials to end with (default %(default)s)")
    a("--concurrency", type=int, default=d.concurrency, help="trials in flight (default %(default)s)")
    a("--gpus-per-trial", type=float, default=d.gpus_per_trial,
      help="GPU fraction per trial, e.g. 0.25 runs four trials per GPU (default %(default)s)")
    a("--cpus-per-trial", type=float, default=d.cpus_per_trial, help="CPUs per trial (default %(default)s)")
    a("--data", default=d.data, help="fashion_mnist, cifar10, synthetic, or a dataset folder (default %(default)s)")
    a("--epochs", type=int, default=None, help="proxy epochs (default: the space's proxy.epochs)")
    a("--batch-size", type=int, default=None, help="proxy batch size (default: the space's proxy.batch_size)")
    a("--target-macs", type=float, default=None, help="reward target T in multiply-adds (default: the space's)")
    a("--w", type=float, default=None, help="reward exponent w (default: the space's)")
    a("--name", default=None, help="run name; the run folder is STORAGE/NAME (default: controller-date-time)")
    a("--storage", default=d.storage, help="folder of run folders (default %(default)s)")
    a("--seed", type=int, default=d.seed, help="seeds the controller and the data split (default %(default)s)")
    a("--resume", metavar="RUN_DIR", default=None, help="continue the run in RUN_DIR with its stored settings")
    a("--address", default=None, help="Ray cluster address; 'local' forces in-process Ray (default: the cluster running on this "
           "machine, as under `ray submit`, else in-process)")
    a("--max-train-samples", type=int, default=None, help="cap the proxy training set (quick runs)")
    a("--max-val-samples", type=int, default=None, help="cap the validation set (quick runs)")
    a("--resolution", type=int, default=None, help="proxy input resolution (default: the space's)")
    a("--progress-seconds", type=float, default=d.progress_seconds, help="seconds between status lines")
    a("--option", action="append", default=[], metavar="KEY=VALUE",
      help="controller option, e.g. --option population=64 (JSON values)")
    a("--json", action="store_true", help="print the final summary as one JSON object")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help="run (or --resume) an architecture search on Ray Tune")
    add_arguments(parser)
    parser.set_defaults(run=run)


def _options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    import time

    from nas.search import SearchConfig, run as run_search

    name = args.name or f"{args.controller}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = SearchConfig(space=args.space, controller=args.controller, trials=args.trials,
                          concurrency=args.concurrency, gpus_per_trial=args.gpus_per_trial,
                          cpus_per_trial=args.cpus_per_trial, data=args.data, epochs=args.epochs, batch_size=args.batch_size,
                          target_macs=args.target_macs, w=args.w, name=name, storage=args.storage, seed=args.seed,
                          address=args.address, max_train_samples=args.max_train_samples,
                          max_val_samples=args.max_val_samples, resolution=args.resolution,
                          progress_seconds=args.progress_seconds, controller_options=_options(args.option))
    if config.trials < 1 or config.concurrency < 1:
        raise UserError("--trials and --concurrency must be >= 1")
    summary = run_search(config, resume_from=args.resume)
    if args.json:
        print_json(summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/search.py``: the same flags as ``nas search``."""
    from nas import cli

    return cli.main(["search", *(sys.argv[1:] if argv is None else argv)])
