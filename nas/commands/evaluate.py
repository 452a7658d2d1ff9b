"""``nas evaluate ARCH|FILE``: train one architecture on the proxy task and print its TrialResult.

Settings come from ``--space FILE`` (its ``proxy:`` and ``reward:`` blocks), else from ARCH itself
when it is a YAML file, else the defaults; flags override them. Exit status 0 when the trial
succeeded, 1 when it failed (the reason is printed), 2 for a user error (e.g. a missing dataset).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nas import space as spaces
from nas.cli import UserError, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="train one architecture on the proxy task, print its result",
                                   description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None)
    parser.add_argument("arch", help="an architecture string, or a one-point space file "
                        "(search_spaces/efficientnet_b0.yaml)")
    parser.add_argument("--space", help="search-space YAML whose proxy: and reward: blocks to use")
    parser.add_argument("--data", help="proxy dataset: fashion_mnist, cifar10, imagefolder or synthetic")
    parser.add_argument("--data-dir", help="where the dataset lives (else $NAS_DATA_DIR, else the system path)")
    parser.add_argument("--epochs", type=int, help="proxy training epochs")
    parser.add_argument("--batch-size", type=int, help="training batch size")
    parser.add_argument("--resolution", type=int, help="proxy input resolution (default: the space's)")
    # the same names as `nas search` (the short forms are kept for old scripts)
    parser.add_argument("--max-train-samples", "--max-train", dest="max_train", type=int,
                        help="use only this many training images (quick runs)")
    parser.add_argument("--max-val-samples", "--max-val", dest="max_val", type=int,
                        help="use only this many validation images (quick runs)")
    parser.add_argument("--latency", type=int, default=0, metavar="N",
                        help="also measure latency: median of N batch-1 forwards at the target resolution")
    parser.add_argument("--test", action="store_true",
                        help="final evaluation: train on the whole training set, score on the TEST split")
    parser.add_argument("--seed", type=int, help="seed for the split, the initialization and the batches")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nas.evaluate import Task, evaluate  # torch loads only when this command runs
    from nas.train import resolve_device

    arch = spaces.load_architecture(args.arch)
    settings_file = args.space or (args.arch if args.arch.endswith((".yaml", ".yml")) else None)
    space = spaces.load(Path(settings_file)) if settings_file else None
    overrides = {key: value for key, value in (
        ("dataset", args.data), ("data_dir", args.data_dir), ("epochs", args.epochs),
        ("batch_size", args.batch_size), ("resolution", args.resolution), ("max_train_samples", args.max_train),
        ("max_val_samples", args.max_val), ("seed", args.seed), ("device", args.device),
    ) if value is not None}
    if args.latency:
        overrides["latency_runs"] = args.latency
    try:
        if space is not None:
            task = Task.from_space(space, **overrides)
        else:
            train = {k: overrides.pop(k) for k in ("epochs", "batch_size") if k in overrides}
            task = Task(**overrides)
            task = task.with_train(**train) if train else task
        resolve_device(task.device)  # "cuda" on a machine without one is the user's to fix
    except ValueError as error:
        raise UserError(str(error)) from None
    result = evaluate(arch, task, split="test" if args.test else "val")
    if args.json:
        print_json(result.to_dict())
        return 0 if result.ok else 1
    split = "test" if args.test else "val"
    print(result.arch)
    if result.ok:
        print(f"{split} accuracy {result.accuracy:.4f}   reward {result.reward:.4f}   "
              f"({task.dataset} {task.resolution}px, {result.epochs} epochs, {result.train_seconds:.1f} s)")
    else:
        print(f"FAILED after {result.epochs} epoch(s), {result.train_seconds:.1f} s: {result.error}")
    print(f"params {result.params:,}   FLOPs (multiply-adds) at {task.target_resolution}x{task.target_resolution}, "
          f"1000 classes: {result.macs:,}")
    if result.latency_ms is not None:
        print(f"latency {result.latency_ms:.2f} ms (median of {task.latency_runs}, batch 1)")
    return 0 if result.ok else 1
