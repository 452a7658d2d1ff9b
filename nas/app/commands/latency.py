"""``nas latency build SPACE`` and ``nas latency check TABLE``: a latency table of this machine, and how well it
predicts whole networks.

``build`` times every distinct layer the space can produce at its input size, the stem and the head, on
ONNX Runtime (float or int8, or torch) with the given threads at batch 1, in several passes, then calibrates
their sum on whole networks; it writes the table as it goes and resumes when run again. ``check`` samples
architectures the calibration never saw, times them whole the same way and reports how many the table predicts within
±5 % and ±10 %, with a scatter plot. A search then scores latency from the table with
``--latency-table TABLE --reward-on latency`` wherever its trials run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas.app.commands import RESOLUTION, bounded, output_file, print_json
from nas.core.errors import UserError
from nas.latency.table import RUNTIMES

THREADS = bounded(1, 256)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("latency", help="build and check a latency table of this machine",
                                   description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="time every part a space can produce on this machine",
                               description="Time every distinct layer (and the stem and head) of SPACE at batch 1 "
                                           "on this machine, then calibrate on whole networks. Resumable.")
    build.add_argument("space", metavar="SPACE", help="a search-space YAML file or a shipped space's name")
    build.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime", help="what times the networks: "
                       "onnxruntime (CPU, float; the default), onnxruntime-int8 (the int8 program `nas export --format "
                       "onnx-int8` writes) or torch (eager)")
    build.add_argument("--threads", type=THREADS, default=1, help="intra-op threads (default: 1)")
    build.add_argument("--resolution", type=RESOLUTION, default=None, help="input size (default: the space's "
                       "target resolution)")
    build.add_argument("--rounds", type=bounded(1, 100), default=8, help="rounds each part is timed in, the median "
                       "kept (default: 8)")
    build.add_argument("--networks", type=bounded(0, 1000), default=32, help="whole networks the sum of parts is "
                       "calibrated on (default: 32)")
    build.add_argument("--out", required=True, help="the table file to write (JSON; resumed when it exists)")
    build.set_defaults(run=run_build)
    check = actions.add_parser("check", help="predicted against measured latency of random architectures",
                               description="Sample architectures of the table's space, predict them from TABLE, "
                                           "time them whole on the table's runtime and compare.")
    check.add_argument("table", metavar="TABLE", help="a table `nas latency build` wrote")
    check.add_argument("--space", default=None, help="the space to sample (default: the one the table was built for)")
    check.add_argument("--runtime", choices=RUNTIMES, default=None, help="must be the table's (default: it is)")
    check.add_argument("--threads", type=THREADS, default=None, help="must be the table's (default: it is)")
    check.add_argument("--archs", type=bounded(1, 100_000), default=100, help="architectures to check (default: 100)")
    check.add_argument("--rounds", type=bounded(1, 100), default=8, help="rounds each network is timed in, the "
                       "median kept (default: 8)")
    check.add_argument("--arch", action="append", default=None, help="check this architecture (a string or a "
                       "one-point space file) instead of sampled ones; may be repeated")
    check.add_argument("--seed", type=bounded(0, 2**31), default=None, help="which architectures (default: a seed "
                       "the calibration does not use)")
    check.add_argument("--plot", default=None, help="the scatter plot (PNG; default: TABLE with .check.png)")
    check.add_argument("--json", action="store_true", help="print the report as one JSON object (every "
                       "architecture, predicted and measured)")
    check.set_defaults(run=run_check)


def run_build(args: argparse.Namespace) -> int:
    from nas import space as spaces
    from nas.latency.build import build_table

    space = spaces.load(args.space)
    out = output_file("--out", args.out, ".json")
    source = args.space if not Path(args.space).is_file() else str(Path(args.space).absolute())
    build_table(space, space_file=source, runtime=args.runtime, threads=args.threads,
                resolution=args.resolution or space.target_resolution, out=out, rounds=args.rounds,
                networks=args.networks, say=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from nas import space as spaces
    from nas.latency.check import SEED, check_table, write_plot
    from nas.latency.parts import space_parts
    from nas.latency.table import LatencyTable

    table = LatencyTable.load(args.table)
    for flag, given, have in (("--runtime", args.runtime, table.runtime), ("--threads", args.threads, table.threads)):
        if given is not None and given != have:
            raise UserError(f"{flag} {given}: the table {args.table} was measured with {have}; a check times "
                            "networks as the table's parts were timed")
    space_file = args.space or table.space_file or table.space
    space = spaces.load(space_file)
    table.check_deployment(space.name, resolution=table.resolution, num_classes=space.num_classes,
                           in_channels=space.in_channels,
                           keys=set(space_parts(space, resolution=table.resolution, num_classes=space.num_classes,
                                                in_channels=space.in_channels)))
    plot = Path(args.plot) if args.plot else Path(args.table).with_suffix(".check.png")
    given = [_architecture(text) for text in args.arch or []]
    report = check_table(table, space, archs=args.archs, rounds=args.rounds, given=given,
                         seed=SEED if args.seed is None else args.seed,
                         say=lambda line: print(line, file=sys.stderr, flush=True))
    write_plot(report, plot)
    summary = report.summary()
    if args.json:
        print_json({**report.to_json(), "plot": str(plot)})
        return 0
    print(f"{summary['architectures']} architectures of {space.name} on {table.runtime} ({table.threads} thread(s), "
          f"batch 1, {table.resolution} px), measured {summary['measured_ms_range'][0]:.2f}–"
          f"{summary['measured_ms_range'][1]:.2f} ms:")
    print(f"  within ±5 %: {100 * summary['within_5pct']:.0f} %   within ±10 %: {100 * summary['within_10pct']:.0f} %")
    print(f"  RMSE {summary['rmse_ms']:.2f} ms ({summary['rmse_pct']:.1f} %), mean error {summary['mean_error_pct']:+.1f} %, "
          f"worst {summary['worst_error_pct']:.1f} %")
    print(f"  prediction {summary['predict_us']:.1f} µs per architecture; the check took {summary['seconds'] / 60:.1f} min")
    print(f"  plot: {plot}")
    return 0


def _architecture(text: str) -> object:
    """``--arch``: an architecture string or a one-point space file (its parts must be in the table)."""
    from nas import space as spaces
    from nas.core.arch import ArchError, Architecture

    try:
        return spaces.load_architecture(text) if Path(text).is_file() else Architecture.parse(text)
    except ArchError as error:
        raise UserError(f"--arch {text[:80]!r}: {error}") from None


__all__ = ["register"]
