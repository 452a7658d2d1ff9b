"""Turn NAS-Bench-Macro's published results into a table for ``--evaluator table``.

NAS-Bench-Macro (Su et al., CVPR 2021; Apache-2.0) publishes ``nas-bench-macro_cifar10.json``: for each of
its 6,561 architectures, keyed by eight digits (each layer's choice: 0 identity, 1 MB3-K3, 2 MB6-K5), the
CIFAR-10 test accuracy of three trainings, their mean, the parameters and the FLOPs. This writes one row
per architecture with the space's decision columns (``search_spaces/nas_bench_macro.yaml``, whose
variants are in the benchmark's order), the mean accuracy in [0, 1], and the benchmark's own costs.

    python scripts/table_from_nas_bench_macro.py nas-bench-macro_cifar10.json nas-bench-macro.csv
    nas search --space nas_bench_macro --evaluator table --table nas-bench-macro.csv --controller evolution
"""

from __future__ import annotations

import argparse
import json
import sys

from nas import space as spaces
from nas.training.table import ResultTable


def rows(benchmark: dict) -> list[dict]:
    space = spaces.load("nas_bench_macro")
    variants = [d for d in space.decisions if d.name.endswith(".variant")]
    out = []
    for key, entry in benchmark.items():
        if len(key) != len(variants) or set(key) - set("012"):
            raise ValueError(f"key {key!r}: expected {len(variants)} digits 0, 1 or 2")
        row = {d.name: d.options[int(digit)] for d, digit in zip(variants, key)}
        row.update(accuracy=entry["mean_acc"] / 100, macs=entry["flops"], params=entry["params"], key=key)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", help="nas-bench-macro_cifar10.json, as published")
    parser.add_argument("out", help="the table to write (.csv)")
    args = parser.parse_args(argv)
    try:
        with open(args.benchmark, encoding="utf-8") as handle:
            table = rows(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"error: {args.benchmark}: {error}", file=sys.stderr)
        return 2
    ResultTable.write(args.out, table)
    print(f"wrote {len(table)} architectures to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
