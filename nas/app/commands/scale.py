"""``nas scale BASE``: a scaled family's table (``--preset paper``, ``--coefficients α β γ``), no training;
or ``--grid``: the α β γ grid search on the proxy (``scripts/scale.py`` takes the same flags)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nas.app.commands import print_json
from nas.core.errors import UserError

B0 = ("stem_c32_s2,ds_r1_k3_s1_e1_c16_se0.25,ir_r2_k3_s2_e6_c24_se0.25,ir_r2_k5_s2_e6_c40_se0.25,"
      "ir_r3_k3_s2_e6_c80_se0.25,ir_r3_k5_s1_e6_c112_se0.25,ir_r4_k5_s2_e6_c192_se0.25,"
      "ir_r1_k3_s1_e6_c320_se0.25,head_c1280,act_silu")
"""EfficientNet-B0's canonical string: the paper's Table 2 column is shown only for this base."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas.settings import DEFAULT_SCALING_BASE, ScaleSettings, flags

    parser.add_argument("base", nargs="?", default=DEFAULT_SCALING_BASE,
                        help=f"architecture string or one-point space file (default {DEFAULT_SCALING_BASE})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--preset", choices=("paper",), default=None,
                      help="the paper's B0…B7 (width, depth, resolution, dropout) table (the default mode)")
    mode.add_argument("--coefficients", nargs=3, type=float, metavar=("ALPHA", "BETA", "GAMMA"), default=None,
                      help="compound scaling: depth α^φ, width β^φ, resolution 224·γ^φ for each --phis")
    mode.add_argument("--grid", action="store_true",
                      help="grid-search α, β, γ on the proxy (trains every candidate; see docs/scaling.md)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="grid search on synthetic data, 3 candidates, "
                        "1 epoch, tiny sample caps: a CPU smoke run of the pipeline")
    flags.declare(parser, ScaleSettings, group=parser.add_argument_group(
        "grid search (with --grid; --phis and --classes also for the tables)"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scale", help="scaled families (B0…B7 presets, compound α β γ) and the grid search",
                                   description="Print a scaled family's width, depth, resolution, dropout, params "
                                               "and FLOPs (multiply-adds) without training, or grid-search α, β, γ.")
    add_arguments(parser)
    parser.set_defaults(run=run)


def family_rows(args: argparse.Namespace) -> list[dict]:
    from nas.core import scaling
    from nas.space import load_architecture

    settings = _settings(args, grid=False)
    arch = load_architecture(args.base)
    if args.coefficients:
        alpha, beta, gamma = args.coefficients
        members = scaling.compound_family(arch, alpha=alpha, beta=beta, gamma=gamma, phis=settings.phis)
    else:
        members = scaling.family(arch, scaling.PAPER_PRESETS)
    rows = [member.row(settings.num_classes) for member in members]
    if not args.coefficients and str(arch) == B0 and settings.num_classes == 1000:
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


def _settings(args: argparse.Namespace, *, grid: bool) -> Any:
    """The flags (and --quick's defaults under them) as validated :class:`ScaleSettings`."""
    import time

    from nas.settings import ScaleSettings, flags
    from nas.studies.scaling_search import QUICK, settings_for

    given = args.settings_flags.given(args)
    given["base"] = args.base
    if args.quick:
        given = flags.merged(QUICK, given)
    if grid:
        given.setdefault("place", {}).setdefault("name", f"scale-{time.strftime('%Y%m%d-%H%M%S')}")
    return args.settings_flags.validate(lambda: settings_for(given) if grid else ScaleSettings.model_validate(
        {k: v for k, v in given.items() if k not in ("proxy", "reward")}))


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
    from nas.studies.scaling_search import run as run_search

    config = _settings(args, grid=True)
    if (config.run_dir() / "scaling" / "summary.json").exists():
        raise UserError(f"{config.run_dir()} already holds a scaling run; pick another --name")
    summary = run_search(config, out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json(summary)
    return 0
