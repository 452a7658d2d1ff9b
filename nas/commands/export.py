"""``nas export RUN_DIR --best reward|pareto --format yaml|timm|torch``: a run's chosen architectures as files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.arch import Architecture
from nas.errors import UserError
from nas.reward import pareto_front
from nas.settings import RewardSettings
from nas.space import architecture_yaml
from nas.store import Store, StoreError, TrialRow

SUFFIX = {"yaml": ".yaml", "timm": ".timm.json", "torch": ".py"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write a run's best (or Pareto-optimal) architectures")
    parser.add_argument("run_dir", help="a run folder (runs/NAME)")
    parser.add_argument("--best", choices=("reward", "pareto"), default="reward",
                        help="the single best reward, or every trial on the accuracy/MACs Pareto front")
    parser.add_argument("--format", choices=tuple(SUFFIX), default="yaml",
                        help="yaml: a one-point space file; timm: timm arch_def + kwargs; torch: a Python file "
                             "whose model() returns the nn.Module")
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/export)")
    parser.set_defaults(run=run)


def chosen(store: Store, best: str) -> list[TrialRow]:
    ok = [row for row in store.trials(status="ok") if row.reward is not None]
    if not ok:
        return []
    if best == "reward":
        return [max(ok, key=lambda row: row.reward)]
    usable = [row for row in ok if row.accuracy is not None and row.macs]
    return [usable[i] for i in pareto_front([(row.accuracy, row.macs) for row in usable])]


def render(row: TrialRow, fmt: str, meta: dict) -> str:
    arch = Architecture.parse(row.arch)
    summary = (f"trial {row.trial_id}: proxy accuracy {row.accuracy:.4f}, {row.macs:,} multiply-adds, "
               f"{row.params:,} params, reward {row.reward:.4f}")
    if fmt == "yaml":
        reward = RewardSettings(kind=meta.get("reward_kind", "soft"), target_macs=meta.get("target_macs", 400e6),
                            w=meta.get("w", -0.07))
        return architecture_yaml(arch, name=f"{meta.get('name') or 'run'}-{row.trial_id}", reward=reward,
                                 comment=f"Exported by `nas export` from {meta.get('name')}\n{summary}\n{arch}")
    if fmt == "timm":
        act = {"silu": "swish", "relu": "relu"}[arch.act]
        return json.dumps({"arch": str(arch), "arch_def": arch.timm_arch_def(), "stem_size": arch.stem,
                           "num_features": arch.head, "act_layer": act, "note": summary}, indent=2) + "\n"
    return (f'"""{summary}\n\nRun this file to print the model; import it and call model() to get the module."""\n\n'
            "from nas.arch import Architecture\nfrom nas.model import build\n\n"
            f"ARCH = Architecture.parse({str(arch)!r})\n\n\n"
            "def model(num_classes: int = 1000, **kwargs):\n    return build(ARCH, num_classes, **kwargs)\n\n\n"
            'if __name__ == "__main__":\n    net = model()\n'
            '    print(net)\n    print(sum(p.numel() for p in net.parameters()), "parameters")\n')


def run(args: argparse.Namespace) -> int:
    try:
        store = Store.open_readonly(args.run_dir)
    except StoreError as error:
        raise UserError(str(error)) from None
    with store:
        rows = chosen(store, args.best)
        meta = store.meta()
    if not rows:
        raise UserError(f"{args.run_dir} has no successful trial to export yet")
    if args.format == "timm":
        for row in rows:
            Architecture.parse(row.arch).timm_arch_def()  # fail before writing anything
    out = Path(args.out or Path(args.run_dir) / "export")
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        path = out / f"{row.trial_id}{SUFFIX[args.format]}"
        path.write_text(render(row, args.format, meta))
        print(path)
    return 0
