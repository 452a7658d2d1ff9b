"""Turn NAS-Bench-201's results (NATS-Bench's topology search space) into a table and a choice space for
comparing controllers (``scripts/bench_controllers.py --table``, ``nas search --evaluator table``).

NAS-Bench-201 (Dong & Yang, ICLR 2020; NATS-Bench, TPAMI 2021; MIT licence) trained all 15,625 cells of a
fixed 3-stage network on CIFAR-10, CIFAR-100 and ImageNet16-120. A cell is 6 edges, each one of 5 ops
(``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``). It is not an MBConv
network, so it is not a space nas builds: this writes a *choice space* of 6 decisions of 5 options (one
per edge) whose only use is to look the table up, and the table, keyed by those decisions. Nothing is
trained; searching the choice space without ``--evaluator table`` would train stand-in networks.

Input: a CSV with one row per architecture, its cell string (``|nor_conv_3x3~0|+|...|``) and its test
accuracy in percent, as NATS-Bench's API gives them::

    from nats_bench import create          # pip install nats_bench; its benchmark file, fast mode
    api = create(None, "tss", fast_mode=True)
    rows = [(api.arch(i), api.get_more_info(i, "cifar10", hp=200)["test-accuracy"]) for i in range(len(api))]

    python scripts/table_from_nas_bench_201.py nb201-cifar10.csv nas-bench-201.csv \\
        --arch-column arch --accuracy-column accuracy
    python scripts/bench_controllers.py --space nas-bench-201.space.yaml --table nas-bench-201.csv --budgets 400

The table's ``macs`` and ``params`` are NAS-Bench-201's own counts of its network (its FLOPs count the
multiply-adds of convs and the classifier, with its bias; its parameters include batch norms), computed
here from the cell: 7.78 M multiply-adds and 73,306 parameters for the empty cell, 220.12 M and 1,531,546
for the all-3x3 cell, as the benchmark reports them.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from nas.training.table import ResultTable

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""NAS-Bench-201's ops, in its order."""
STAND_IN = ("identity", "ds_k1", "conv_k1", "conv_k3", "ds_k3")
"""The choice space's option for each op, in the same order (names only: the networks are never trained)."""
EDGES = ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
"""The cell's edges, in the order of its string."""

CHANNELS, CELLS_PER_STAGE, CLASSES, RESOLUTION = (16, 32, 64), 5, 10, 32


def edge_ops(cell: str) -> tuple[str, ...]:
    """``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|`` as its 6 ops, in edge order; ``ValueError`` if not
    a NAS-Bench-201 cell."""
    ops = []
    for node, text in enumerate(cell.strip().split("+"), start=1):
        inputs = [part for part in text.split("|") if part]
        if len(inputs) != node:
            raise ValueError(f"cell {cell!r}: node {node} has {len(inputs)} inputs, expected {node}")
        for source, part in enumerate(inputs):
            op, _, index = part.partition("~")
            if op not in OPS or index != str(source):
                raise ValueError(f"cell {cell!r}: cannot read {part!r} (expected one of {', '.join(OPS)}~{source})")
            ops.append(op)
    if len(ops) != len(EDGES):
        raise ValueError(f"cell {cell!r}: {len(ops)} edges, expected {len(EDGES)}")
    return tuple(ops)


def cost(ops: tuple[str, ...]) -> tuple[int, int]:
    """(multiply-adds, parameters) of NAS-Bench-201's CIFAR-10 network with this cell, counted as the
    benchmark counts them: convs and the classifier (its bias included) for FLOPs, every weight for params."""
    macs = params = 0

    def conv(c_in: int, c_out: int, kernel: int, size: int, bn: bool = True) -> None:
        nonlocal macs, params
        macs += kernel * kernel * c_in * c_out * size * size
        params += kernel * kernel * c_in * c_out + (2 * c_out if bn else 0)

    size = RESOLUTION
    conv(3, CHANNELS[0], 3, size)                                    # stem: conv + BN
    for stage, channels in enumerate(CHANNELS):
        if stage:                                                    # residual reduction block
            size //= 2
            conv(CHANNELS[stage - 1], channels, 3, size)             # ReLU-conv(stride 2)-BN
            conv(channels, channels, 3, size)                        # ReLU-conv-BN
            conv(CHANNELS[stage - 1], channels, 1, size, bn=False)   # avg-pool + 1x1 conv shortcut
        for op in ops * CELLS_PER_STAGE:
            if op in ("nor_conv_1x1", "nor_conv_3x3"):
                conv(channels, channels, 1 if op == "nor_conv_1x1" else 3, size)
    params += 2 * CHANNELS[-1]                                       # the last BN
    macs += CHANNELS[-1] * CLASSES + CLASSES                         # classifier, with its bias
    params += CHANNELS[-1] * CLASSES + CLASSES
    return macs, params


def space_yaml(name: str) -> str:
    blocks = "\n".join(f"  - {{filters: 16, layers: 1, stride: 1}}   # edge {edge}" for edge in EDGES)
    mapping = ", ".join(f"{op} = {stand_in}" for op, stand_in in zip(OPS, STAND_IN))
    return f"""# NAS-Bench-201's cell as a choice space: one decision per edge, its 5 ops as 5 options
# ({mapping}).
# Only for looking up its table (--evaluator table --table): these are not NAS-Bench-201's networks.
name: {name}
target_resolution: 32
num_classes: 10
activation: relu
stem: {{channels: 16, stride: 1}}
head: {{channels: 0}}
reward: {{kind: soft, target_macs: 100e6, w: 0}}   # accuracy alone: the benchmark ranks by it
choices:
  variants: [{", ".join(STAND_IN)}]
  skip: none
blocks:
{blocks}
"""


def rows(records: list[dict], arch_column: str, accuracy_column: str) -> list[dict]:
    out = []
    for number, record in enumerate(records, start=2):
        try:
            cell, accuracy = record[arch_column], float(record[accuracy_column])
            ops = edge_ops(cell)
        except KeyError as missing:
            raise ValueError(f"line {number}: no column {missing}") from None
        except ValueError as error:
            raise ValueError(f"line {number}: {error}") from None
        if not 0 <= accuracy <= 100:
            raise ValueError(f"line {number}: accuracy {accuracy} is not a percentage")
        row = {f"block{edge}.variant": STAND_IN[OPS.index(op)] for edge, op in enumerate(ops, start=1)}
        macs, params = cost(ops)
        row.update(accuracy=accuracy / 100, macs=macs, params=params, cell=cell)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="CSV: a cell string and a test accuracy in percent per architecture")
    parser.add_argument("out", help="the table to write (.csv); its choice space is written beside it "
                                    "(OUT with .space.yaml)")
    parser.add_argument("--arch-column", default="arch", help="the column of cell strings (default: arch)")
    parser.add_argument("--accuracy-column", default="accuracy", help="the column of accuracies in percent "
                                                                      "(default: accuracy)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        with open(args.results, newline="", encoding="utf-8") as handle:
            table = rows(list(csv.DictReader(handle)), args.arch_column, args.accuracy_column)
    except (OSError, ValueError, csv.Error) as error:
        print(f"error: {args.results}: {error}", file=sys.stderr)
        return 2
    if not table:
        print(f"error: {args.results}: no architectures", file=sys.stderr)
        return 2
    space_file = out.with_name(out.name.removesuffix(".csv") + ".space.yaml")
    space_file.write_text(space_yaml(space_file.name.removesuffix(".space.yaml").replace("-", "_")),
                          encoding="utf-8")
    ResultTable.write(out, table)
    print(f"wrote {len(table)} architectures to {out} and their choice space to {space_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
