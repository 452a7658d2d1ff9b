"""``nas search`` (and ``scripts/search.py``, the same flags): run or resume a search on Ray Tune."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from nas.cli import UserError, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag defaults to None, so a resumed run can tell what was given from what was not."""
    from nas.search import DEFAULT_SPACE, SearchConfig

    d = SearchConfig()
    a = parser.add_argument
    a("--space", help=f"search-space YAML (default {DEFAULT_SPACE})")
    a("--controller", help=f"random, evolution, ppo or nsga2 (default {d.controller})")
    a("--trials", type=int, help=f"finished trials to end with (default {d.trials})")
    a("--concurrency", type=int, help=f"trials in flight (default {d.concurrency})")
    a("--gpus-per-trial", type=float,
      help=f"GPU fraction per trial, e.g. 0.25 runs four trials per GPU (default {d.gpus_per_trial})")
    a("--cpus-per-trial", type=float, help=f"CPUs per trial (default {d.cpus_per_trial})")
    a("--data", help=f"fashion_mnist, cifar10, synthetic, or a dataset folder (default {d.data})")
    a("--epochs", type=int, help="proxy epochs (default: the space's proxy.epochs)")
    a("--batch-size", type=int, help="proxy batch size (default: the space's proxy.batch_size)")
    a("--target-macs", type=float, help="reward target T in multiply-adds (default: the space's)")
    a("--w", type=float, help="reward exponent w (default: the space's)")
    a("--name", help="run name; the run folder is STORAGE/NAME (default: controller-date-time)")
    a("--storage", help=f"folder of run folders (default {d.storage})")
    a("--seed", type=int, help=f"seeds the controller and the data split (default {d.seed})")
    a("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its stored settings; only "
      "--trials, --concurrency, --gpus-per-trial, --cpus-per-trial and --address may change")
    a("--address", help="Ray cluster address; 'local' forces in-process Ray (default: the cluster running on "
      "this machine, as under `ray submit`, else in-process)")
    a("--max-train-samples", type=int, help="cap the proxy training set (quick runs)")
    a("--max-val-samples", type=int, help="cap the validation set (quick runs)")
    a("--resolution", type=int, help="proxy input resolution (default: the space's)")
    a("--progress-seconds", type=float, help=f"seconds between status lines (default {d.progress_seconds})")
    a("--option", action="append", default=[], metavar="KEY=VALUE",
      help="controller option, e.g. --option population_size=64 (JSON values)")
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
    import dataclasses
    import time

    from nas.search import SearchConfig, run as run_search

    fields = {f.name for f in dataclasses.fields(SearchConfig)} - {"controller_options"}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if given.get("trials", 1) < 1 or given.get("concurrency", 1) < 1:
        raise UserError("--trials and --concurrency must be >= 1")
    if args.resume:
        summary = run_search(resume_from=args.resume, overrides=given)
    else:
        controller = given.get("controller", SearchConfig.controller)
        given.setdefault("name", f"{controller}-{time.strftime('%Y%m%d-%H%M%S')}")
        summary = run_search(SearchConfig(**given, controller_options=_options(args.option)))
    if args.json:
        print_json(summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/search.py``: the same flags as ``nas search``."""
    from nas import cli

    return cli.main(["search", *(sys.argv[1:] if argv is None else argv)])
