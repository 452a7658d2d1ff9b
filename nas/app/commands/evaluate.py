"""``nas evaluate ARCH|FILE``: train one architecture on the proxy task and print its TrialResult.

Settings come from ``--space FILE`` (its ``proxy:`` and ``reward:`` blocks), else from ARCH itself
when it is a YAML file, else the defaults; flags override them. Exit status 0 when the trial
succeeded, 1 when it failed (the reason is printed), 2 for a user error (e.g. a missing dataset).
"""

from __future__ import annotations

import argparse
from typing import Any

from nas import space as spaces
from nas.app.commands import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    from nas.settings import EvaluateSettings, flags

    parser = subparsers.add_parser("evaluate", help="train one architecture on the proxy task, print its result",
                                   description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None)
    parser.add_argument("arch", help="an architecture string, or a one-point space file "
                        "(search_spaces/efficientnet_b0.yaml)")
    flags.declare(parser, EvaluateSettings)
    parser.add_argument("--test", action="store_true",
                        help="final evaluation: train on the whole training set, score on the TEST split")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result, task, split = _evaluated(args)
    if args.json:
        print_json(result.to_dict())
        return 0 if result.ok else 1
    print(result.arch)
    if result.ok:
        print(f"{split} accuracy {result.accuracy:.4f}   reward {result.reward:.4f}   "
              f"({task.proxy.dataset} {task.proxy.resolution}px, {result.epochs} epochs, "
              f"{result.train_seconds:.1f} s)")
    else:
        print(f"FAILED after {result.epochs} epoch(s), {result.train_seconds:.1f} s: {result.error}")
    print(f"params {result.params:,}   FLOPs (multiply-adds) at {task.target_resolution}x{task.target_resolution}, "
          f"{task.cost_classes} classes: {result.macs:,}")
    if result.latency_ms is not None:
        from nas.training.evaluate import LATENCY_RUNS

        how = f"predicted by {task.reward.latency_table}" if task.reward.latency_table else \
            f"median of {task.latency_runs or LATENCY_RUNS} runs on {result.device}"
        print(f"latency {result.latency_ms:.2f} ms (batch 1, {how})")
    return 0 if result.ok else 1


def execute(args: argparse.Namespace) -> Any:
    """The TrialResult of the evaluation the parsed flags describe."""
    return _evaluated(args)[0]


def _evaluated(args: argparse.Namespace) -> tuple[Any, Any, str]:
    from nas.training.evaluate import Task, evaluate  # torch loads only when this command runs
    from nas.training.trainer import resolve_device

    arch = spaces.load_architecture(args.arch)
    given = args.settings_flags.given(args)
    settings_file = given.get("space") or (args.arch if args.arch.endswith((".yaml", ".yml")) else None)
    space = spaces.load(settings_file) if settings_file else None
    settings = args.settings_flags.for_space(space, given)
    fields = {"seed": settings.seed, "device": settings.device, "latency_runs": settings.latency_runs}
    deployed = {k: v for k, v in {"target_resolution": settings.cost_resolution,
                                  "cost_classes": settings.cost_classes}.items() if v is not None}
    task = Task.from_space(space, proxy=settings.proxy, reward=settings.reward, **fields, **deployed) if space else \
        Task(proxy=settings.proxy, reward=settings.reward, **fields, **deployed)
    try:
        resolve_device(task.device)  # "cuda" on a machine without one is the user's to fix
    except ValueError as error:
        from nas.core.errors import UserError

        raise UserError(str(error)) from None
    split = "test" if args.test else "val"
    if task.proxy.skip_bad_images:  # said before the training, on stderr: --json keeps stdout one object
        import sys

        from nas.training import data

        skipped = data.for_proxy(task.proxy, seed=task.seed, split=split).skipped
        if skipped:
            print(f"[nas] skipped {skipped} image file(s) that could not be decoded (--skip-bad-images)",
                  file=sys.stderr, flush=True)
    return evaluate(arch, task, split=split), task, split
