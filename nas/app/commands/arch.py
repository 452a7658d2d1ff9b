"""``nas arch show FILE|STRING``: an architecture's stage table, parameters and multiply-adds."""

from __future__ import annotations

import argparse

from nas.app.commands import CLASSES, RESOLUTION, print_json
from nas.core import cost
from nas.space import load_architecture


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("arch", help="inspect an architecture")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="stage table, params and FLOPs (multiply-adds)")
    show.add_argument("arch", help="an architecture string, or a one-point space file (search_spaces/efficientnet_b0.yaml)")
    show.add_argument("--resolution", type=RESOLUTION, default=None,
                      help="input resolution for the cost (default: the file's target_resolution, else 224)")
    show.add_argument("--classes", type=CLASSES, default=1000, help="classifier outputs (default 1000)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--timm", action="store_true",
                      help="print a Python file that builds this network with timm alone (see nas export)")
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace) -> int:
    from nas.space import find_space_file, load

    arch = load_architecture(args.arch)
    if args.timm:
        from nas.app.export import timm_source

        print(timm_source(arch, num_classes=args.classes), end="")
        return 0
    if args.resolution is None:
        path = find_space_file(args.arch)
        args.resolution = load(path).target_resolution if path.is_file() else 224
    if not 1 <= args.resolution <= 4096:
        from nas.core.errors import UserError

        raise UserError(f"--resolution = {args.resolution}: must be in 1..4096")
    total = cost.count(arch, args.resolution, num_classes=args.classes)
    stages = [{"op": s.op, "repeats": s.repeats, "kernel": s.kernel, "stride": s.stride, "expand": s.expand,
               "channels": s.channels, "se": s.se, "skip": s.skip, "groups": s.groups, "act": s.act or arch.act, "block": s.block_string()}
              for s in arch.stages]
    if args.json:
        print_json({"arch": str(arch), "digest": arch.digest, "params": total.params, "macs": total.macs,
                    "resolution": args.resolution, "feature_mix": arch.feature_mix, "se_style": arch.se_style,
                    "stages": stages})
        return 0
    print(str(arch))
    grouped = any(s["groups"] > 1 for s in stages)
    mixed = any(s.act for s in arch.stages)
    print(f"{'#':>2} {'op':<3} {'rep':>3} {'k':>2} {'s':>2} {'exp':>4} {'ch':>5} {'se':>5} {'skip':<8}"
          + (" groups" if grouped else "") + (" act" if mixed else ""))
    print(f"   stem            {arch.stem_stride:>2}      {arch.stem:>5}")
    for i, s in enumerate(stages, start=1):
        print(f"{i:>2} {s['op']:<3} {s['repeats']:>3} {s['kernel']:>2} {s['stride']:>2} {s['expand']:>4g} "
              f"{s['channels']:>5} {s['se']:>5g} {s['skip']:<8}" + (f" {s['groups']:>6}" if grouped else "")
              + (f" {s['act']}" if mixed else ""))
    mix = f"   feature mix {arch.feature_mix}" if arch.feature_mix else ""
    style = f"   SE {arch.se_style}" if arch.se_style != "efficientnet" else ""
    print(f"   head                  {arch.head:>5}   act {arch.act}{mix}{style}")
    print(f"params {total.params:,} ({total.mparams:.2f} M)   "
          f"FLOPs (multiply-adds) at {args.resolution}x{args.resolution}: {total.macs:,} ({total.gmacs:.3f} B)")
    return 0
