"""``nas scale BASE``: a scaled family's table (``--preset paper``, ``--coefficients α β γ``), no training;
or ``--grid``: the α β γ grid search on the proxy (``scripts/scale.py`` takes the same flags)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nas.cli import UserError, print_json

B0 = ("stem_c32_s2,ds_r1_k3_s1_e1_c16_se0.25,ir_r2_k3_s2_e6_c24_se0.25,ir_r2_k5_s2_e6_c40_se0.25,"
      "ir_r3_k3_s2_e6_c80_se0.25,ir_r3_k5_s1_e6_c112_se0.25,ir_r4_k5_s2_e6_c192_se0.25,"
      "ir_r1_k3_s1_e6_c320_se0.25,head_c1280,act_silu")
"""EfficientNet-B0's canonical string: the paper's Table 2 column is shown only for this base."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas.scaling_search import DEFAULT_SPACE, ScaleConfig

    d = ScaleConfig()
    a = parser.add_argument
    a("base", nargs="?", default=DEFAULT_SPACE,
      help=f"architecture string or one-point space file (default {DEFAULT_SPACE})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--preset", choices=("paper",), default=None,
                      help="the paper's B0…B7 (width, depth, resolution, dropout) table (the default mode)")
    mode.add_argument("--coefficients", nargs=3, type=float, metavar=("ALPHA", "BETA", "GAMMA"), default=None,
                      help="compound scaling: depth α^φ, width β^φ, resolution 224·γ^φ for each --phis")
    mode.add_argument("--grid", action="store_true",
                      help="grid-search α, β, γ on the proxy (trains every candidate; see docs/scaling.md)")
    a("--phis", type=int, nargs="+", default=list(d.phis), help="φ values of the family (default 1…7)")
    a("--classes", type=int, default=d.num_classes, help="classifier outputs for the cost (default 1000)")
    a("--json", action="store_true", help="print one JSON object")
    g = parser.add_argument_group("grid search (with --grid)")
    g.add_argument("--quick", action="store_true",
                   help="synthetic data, 3 candidates, 1 epoch, tiny sample caps: a CPU smoke run of the pipeline")
    g.add_argument("--space", default=None, help="space file for the proxy and reward settings "
                                                 "(default: BASE when it is a file, else the B0 file)")
    g.add_argument("--step", type=float, default=d.step, help="grid step (default %(default)s)")
    g.add_argument("--tolerance", type=float, default=d.tolerance,
                   help="relative tolerance on α·β²·γ² = 2 (default %(default)s)")
    g.add_argument("--max-value", type=float, default=None, help="largest α, β or γ (default: the constraint's)")
    g.add_argument("--max-candidates", type=int, default=None,
                   help="train only this many grid points, spread evenly (the paper's point is kept)")
    g.add_argument("--compare-phis", type=int, nargs="+", default=list(d.compare_phis),
                   help="φ values at which to train width/depth/resolution-only baselines (default 1)")
    g.add_argument("--data", default=None, help=f"proxy dataset (default {d.data}; --quick: synthetic)")
    g.add_argument("--epochs", type=int, default=None, help="proxy epochs (default: the space's)")
    g.add_argument("--proxy-resolution", type=int, default=None, help="base proxy resolution (default: the space's)")
    g.add_argument("--proxy-divisor", type=int, default=None,
                   help=f"round scaled proxy sizes to a multiple of this (default {d.proxy_divisor}; "
                        "4 lets a 16 px CPU proxy scale its resolution)")
    g.add_argument("--batch-size", type=int, default=None,
                   help="proxy batch size (default: the space's proxy.batch_size; --quick: 32)")
    g.add_argument("--concurrency", type=int, default=None, help=f"trials in flight (default {d.concurrency})")
    g.add_argument("--gpus-per-trial", type=float, default=d.gpus_per_trial, help="GPU fraction per trial")
    g.add_argument("--cpus-per-trial", type=float, default=d.cpus_per_trial, help="CPUs per trial")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of the data split and training")
    g.add_argument("--address", default=None, help="Ray cluster address (default: local / in-process)")
    g.add_argument("--max-train-samples", type=int, default=None, help="cap the proxy training set")
    g.add_argument("--max-val-samples", type=int, default=None, help="cap the validation set")
    g.add_argument("--storage", default=d.storage, help="folder of run folders (default %(default)s)")
    g.add_argument("--name", default=None, help="run name: the run folder is STORAGE/NAME (default scale-DATE)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scale", help="scaled families (B0…B7 presets, compound α β γ) and the grid search",
                                   description="Print a scaled family's width, depth, resolution, dropout, params "
                                               "and FLOPs (multiply-adds) without training, or grid-search α, β, γ.")
    add_arguments(parser)
    parser.set_defaults(run=run)


def family_rows(args: argparse.Namespace) -> list[dict]:
    from nas import scaling
    from nas.space import load_architecture

    arch = load_architecture(args.base)
    if args.coefficients:
        alpha, beta, gamma = args.coefficients
        members = scaling.compound_family(arch, alpha=alpha, beta=beta, gamma=gamma, phis=args.phis)
    else:
        members = scaling.family(arch, scaling.PAPER_PRESETS)
    rows = [member.row(args.classes) for member in members]
    if not args.coefficients and str(arch) == B0 and args.classes == 1000:
        for row in rows:
            row["paper_macs"] = int(scaling.PAPER_TABLE2_GMACS[row["member"]] * 1e9)
    return rows


def print_table(rows: list[dict]) -> None:
    paper = "paper_macs" in rows[0]
    print(f"{'member':<7} {'width':>6} {'depth':>6} {'res':>5} {'dropout':>7} {'params':>12} "
          f"{'FLOPs (mult-adds)':>18}" + ("   paper Table 2" if paper else ""))
    for r in rows:
        line = (f"{r['member']:<7} {r['width']:>6.3f} {r['depth']:>6.3f} {r['resolution']:>5} {r['dropout']:>7g} "
                f"{r['params']:>12,} {r['macs'] / 1e9:>16.3f} B")
        if paper:
            line += f"   {r['paper_macs'] / 1e9:g} B ({r['macs'] / r['paper_macs'] - 1:+.1%})"
        print(line)


def grid_config(args: argparse.Namespace):  # -> ScaleConfig
    import time

    from nas.scaling_search import QUICK, ScaleConfig

    quick = dict(QUICK) if args.quick else {}
    given = {"space": args.space, "step": args.step, "tolerance": args.tolerance, "max_value": args.max_value,
             "phis": tuple(args.phis), "data": args.data, "epochs": args.epochs,
             "proxy_resolution": args.proxy_resolution, "proxy_divisor": args.proxy_divisor,
             "concurrency": args.concurrency,
             "gpus_per_trial": args.gpus_per_trial, "cpus_per_trial": args.cpus_per_trial, "seed": args.seed,
             "address": args.address, "max_train_samples": args.max_train_samples,
             "max_val_samples": args.max_val_samples, "storage": args.storage, "name": args.name,
             "max_candidates": args.max_candidates, "num_classes": args.classes,
             "compare_phis": tuple(args.compare_phis)}
    settings = {**quick, **{k: v for k, v in given.items() if v is not None}}
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
        settings["proxy_overrides"] = {**settings.get("proxy_overrides", {}), "batch_size": args.batch_size}
    settings.setdefault("name", f"scale-{time.strftime('%Y%m%d-%H%M%S')}")
    return ScaleConfig(base=args.base, **settings)


def run(args: argparse.Namespace) -> int:
    if args.quick and (args.preset or args.coefficients):
        raise UserError("--quick is a grid-search option; it cannot go with --preset or --coefficients")
    if args.grid or args.quick:
        return run_grid(args)
    rows = family_rows(args)
    if args.json:
        print_json({"base": args.base, "mode": "coefficients" if args.coefficients else "paper",
                    "members": rows})
    else:
        print_table(rows)
    return 0


def run_grid(args: argparse.Namespace) -> int:
    from nas.scaling_search import run as run_search

    config = grid_config(args)
    if config.concurrency < 1 or (config.max_candidates is not None and config.max_candidates < 1):
        raise UserError("--concurrency and --max-candidates must be >= 1")
    if config.proxy_divisor < 1:
        raise UserError(f"--proxy-divisor must be >= 1, got {config.proxy_divisor}")
    if (config.run_dir() / "scaling" / "summary.json").exists():
        raise UserError(f"{config.run_dir()} already holds a scaling run; pick another --name")
    summary = run_search(config, out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/scale.py``: ``nas scale --grid`` with the same flags."""
    from nas import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--grid" not in argv and not any(flag in argv for flag in ("--preset", "--coefficients", "-h", "--help")):
        argv.append("--grid")
    return cli.main(["scale", *argv])
