"""Which decisions a trained supernet has learned: its largest network with one decision changed at a time.

For the supernet of a finished ``nas search --evaluator supernet`` run, prints the validation accuracy
(BN re-estimated, as a trial measures it) of

* the sandwich rule's largest and smallest networks (trained at every step),
* the largest network with each single decision set to each of its options, the others unchanged,
* ``--random`` architectures drawn uniformly from the space, as a search's candidates are.

A supernet that ranks its space scores the one-decision changes near the largest network and spreads
the random architectures over a range; one that has only learned the two ends scores the changes that
alter the network's structure (op, shortcut, depth) far below it and the random ones near chance.

    python scripts/supernet_decisions.py runs/supernet-search --random 24
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from nas.network.supernet import largest_and_smallest
from nas.runs import folder as run_folder
from nas.training.evaluate import Task
from nas.training.supernet_evaluator import evaluate_from_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished `nas search --evaluator supernet` run folder")
    parser.add_argument("--random", type=int, default=24, help="random architectures to score")
    parser.add_argument("--val-images", type=int, default=512, help="validation images per architecture")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    settings, space = run_folder.stored(args.run)  # the space the supernet was trained on, as stored in the run
    task = Task.from_space(space, proxy=settings.proxy.changed(max_val_samples=args.val_images), device="cpu")

    def accuracy(choices: list[int]) -> float:
        result = evaluate_from_supernet(space.decode(choices), task, space, settings.supernet, args.run / "supernet")
        return result.accuracy if result.ok else float("nan")

    largest, smallest = (list(space.encode(a)) for a in largest_and_smallest(space))
    print(f"largest {accuracy(largest):.3f}   smallest {accuracy(smallest):.3f}   "
          f"({args.val_images} validation images, {settings.supernet.bn_batches} BN batches)")
    print("\n| decision | accuracy with each option (the largest network's option marked *) |\n| --- | --- |")
    for position, decision in enumerate(space.decisions):
        cells = []
        for index, option in enumerate(decision.options):
            changed = [*largest[:position], index, *largest[position + 1:]]
            mark = "*" if index == largest[position] else ""
            cells.append(f"{option}{mark} {accuracy(changed):.2f}")
        print(f"| {decision.name} | {' · '.join(cells)} |", flush=True)
    rng = np.random.default_rng(args.seed)
    scores = sorted(accuracy(list(space.sample_choices(rng))) for _ in range(args.random))
    print(f"\n{args.random} random architectures: median {statistics.median(scores):.3f}, "
          f"range {scores[0]:.3f}–{scores[-1]:.3f}")


if __name__ == "__main__":
    main()
