"""``nas space show FILE``: a search space's decisions, option counts and size."""

from __future__ import annotations

import argparse

from nas import space as spaces
from nas.app.commands import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("space", help="inspect a search space")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="decisions, choice counts and size of a space file")
    show.add_argument("file", help="search-space YAML, e.g. search_spaces/mnasnet.yaml")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace) -> int:
    space = spaces.load(args.file)
    info = space.describe()
    if args.json:
        print_json(info)
        return 0
    print(f"space {space.name} ({space.source}): {len(space.decisions)} decisions, "
          f"{space.size:,} architectures ({spaces.approx(space.size)})")
    r = space.reward
    formula = (f"ACC x (S / S[{r.step_reference or f'{r.step_ms:g} ms'}]) ^ {r.w} x (params / {r.target_params:.3g}) "
               f"^ {r.v}, S the proxy's training step time" if r.kind == "training_aware" else
               f"ACC x ({'latency' if r.on == 'latency' else 'MACs'} / {r.target:.3g}) ^ {r.w}")
    print(f"cost at {space.target_resolution}x{space.target_resolution}; reward {r.kind}: {formula}")
    width = max(len(d.name) for d in space.decisions)
    for decision in space.decisions:
        options = ", ".join(f"{o:g}" if isinstance(o, float) else str(o) for o in decision.options)
        print(f"  {decision.name:<{width}}  {len(decision):>2}  {options}")
    return 0
