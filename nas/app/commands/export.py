"""``nas export SOURCE``: architectures as files that stand on their own.

SOURCE is a search's run folder (its best reward, or every trial on its Pareto front of accuracy and MACs,
or latency for a run rewarded on latency),
a ``nas train`` folder (the trained network and its weights), or an architecture (a string or a
one-point space file). Formats: ``yaml`` (a one-point space file), ``timm`` (a Python file building the
same network with timm alone), ``torch`` (a Python file building it with plain torch + torchvision),
``onnx`` and ``pt2`` (``torch.export``): deployable programs, with trained weights when there are any;
``onnx-int8``: the ONNX program quantized to int8 by ONNX Runtime, as an ``onnxruntime-int8`` latency table
times it, calibrated on training images of the source's dataset (random inputs for a bare architecture).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nas.app.commands import CLASSES, IN_CHANNELS, RESOLUTION, bounded
from nas.core.arch import Architecture
from nas.core.errors import UserError
from nas.core.reward import pareto_front
from nas.runs.store import Store, TrialRow

SUFFIX = {"yaml": ".yaml", "timm": ".timm.py", "torch": ".py", "onnx": ".onnx", "onnx-int8": ".int8.onnx",
          "pt2": ".pt2", "csv": ".csv", "parquet": ".parquet"}
TABLES = ("csv", "parquet")
"""Formats of a run's whole trials table (one row per trial, the store's columns), not of an architecture."""
PROGRAMS = ("onnx", "onnx-int8", "pt2")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write architectures (or trained networks) as standalone files",
                                   description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None)
    parser.add_argument("source", help="a run folder (runs/NAME), a `nas train` folder, or an architecture")
    parser.add_argument("--best", choices=("reward", "pareto"), default="reward",
                        help="from a run folder: the single best reward, or every trial on the Pareto front")
    parser.add_argument("--format", choices=tuple(SUFFIX), default="yaml",
                        help="yaml, timm (.timm.py), torch (.py), onnx, onnx-int8 (.int8.onnx) or pt2 (torch.export); "
                             "csv or parquet: a run folder's whole trials table")
    parser.add_argument("--checkpoint", help="weights to put in an onnx/pt2 program (a state dict file; "
                        "a `nas train` folder brings its own)")
    parser.add_argument("--classes", type=CLASSES, default=None, help="classifier outputs (default: the source's, "
                        "else 1000)")
    parser.add_argument("--in-channels", type=IN_CHANNELS, default=None, help="input channels (default: the source's, "
                        "else 3)")
    parser.add_argument("--resolution", type=RESOLUTION, default=None,
                        help="input size an onnx/pt2 program is traced at (default: the source's, else 224)")
    parser.add_argument("--calibration-images", type=bounded(1, 100_000), default=256,
                        help="onnx-int8: training images of the source's dataset the int8 ranges are set on "
                             "(default: 256)")
    parser.add_argument("--out", default=None, help="output folder (a run folder: RUN_DIR/export), or a file for "
                        "a single architecture")
    parser.set_defaults(run=run)


def chosen(store: Store, best: str) -> list[TrialRow]:
    """The full-fidelity trials to export: the best reward, or the Pareto front of accuracy and the run's
    cost (MACs, or latency for a run rewarded on latency)."""
    ok = [row for row in store.trials(status="ok") if row.reward is not None]
    if not ok:
        return []
    if best == "reward":
        return [max(ok, key=lambda row: row.reward)]
    cost = "latency_ms" if store.meta().get("reward_on") == "latency" else "macs"
    usable = [row for row in ok if row.accuracy is not None and getattr(row, cost)]
    return [usable[i] for i in pareto_front([(row.accuracy, getattr(row, cost)) for row in usable])]


def _targets(args: argparse.Namespace) -> tuple[list[dict[str, Any]], Path]:
    """What to write: ``[{name, arch, note, classes, channels, resolution, checkpoint, reward}]`` and where."""
    from nas import space as spaces
    from nas.settings import RewardSettings

    source = Path(args.source)
    if (source / "trials.db").is_file():
        with Store.open_readonly(source) as store:
            rows, meta = chosen(store, args.best), store.meta()
        if not rows:
            raise UserError(f"{source} has no successful trial to export yet")
        reward = RewardSettings(kind=meta.get("reward_kind", "soft"), target_macs=meta.get("target_macs", 400e6),
                                w=meta.get("w", -0.07), on=meta.get("reward_on", "macs"),
                                target_ms=meta.get("target_ms", 80.0)) \
            if meta.get("reward_kind") != "training_aware" else None
        proxy = _proxy(meta.get("settings", {}).get("proxy"))
        targets = [{"name": row.trial_id, "arch": Architecture.parse(row.arch), "reward": reward, "proxy": proxy,
                    "note": f"trial {row.trial_id} of {meta.get('name')}: proxy accuracy {row.accuracy:.4f}, "
                            f"{row.macs:,} multiply-adds, {row.params:,} params, reward {row.reward:.4f}"}
                   for row in rows]
        return targets, Path(args.out) if args.out else source / "export"
    if (source / "result.json").is_file() and (source / "weights.pt").is_file():
        result = json.loads((source / "result.json").read_text())
        target = {"name": source.name, "arch": Architecture.parse(result["trained_arch"]),
                  "classes": result["num_classes"], "channels": result["in_channels"],
                  "resolution": result["resolution"], "checkpoint": source / "weights.pt",
                  "proxy": _proxy(_train_settings(source).get("proxy")),
                  "note": f"{result['arch']} trained by `nas train` ({result['epochs']} epochs, test accuracy "
                          f"{result['test_accuracy']:.4f} on {result['dataset']} at {result['resolution']} px)"}
        return [target], Path(args.out) if args.out else source / "export"
    if source.is_dir():
        raise UserError(f"{source} holds neither a run (trials.db) nor a trained network (result.json, weights.pt)")
    if "/" in args.source and not source.exists():
        raise UserError(f"{source} does not exist")
    arch = spaces.load_architecture(args.source)
    out = Path(args.out) if args.out else Path.cwd()
    return [{"name": arch.digest, "arch": arch, "note": str(arch)}], out


def _proxy(settings: Any) -> Any:
    """The proxy settings a run or a training recorded (for its dataset), or None where there are none."""
    from pydantic import ValidationError

    from nas.settings import ProxySettings

    try:
        return ProxySettings.model_validate(settings) if isinstance(settings, dict) else None
    except ValidationError:
        return None


def _train_settings(folder: Path) -> dict[str, Any]:
    """The settings a `nas train` folder recorded (empty where its record cannot be read)."""
    from nas.runs.full_training import TrainError, read_record

    try:
        settings = read_record(folder).get("settings")
    except TrainError:
        return {}
    return settings if isinstance(settings, dict) else {}


def render(target: dict[str, Any], fmt: str, args: argparse.Namespace) -> str:
    from nas.app import export
    from nas.space import architecture_yaml

    arch, note = target["arch"], target["note"]
    classes = args.classes or target.get("classes", 1000)
    channels = args.in_channels or target.get("channels", 3)
    if fmt == "yaml":
        return architecture_yaml(arch, name=target["name"], reward=target.get("reward"),
                                 comment=f"Exported by `nas export`\n{note}\n{arch}")
    if fmt == "timm":
        return export.timm_source(arch, num_classes=classes, in_channels=channels, title=note)
    return export.torch_source(arch, num_classes=classes, in_channels=channels, title=note)


def run(args: argparse.Namespace) -> int:
    from nas.app import export

    if args.format in TABLES:
        return _write_table(args)
    targets, out = _targets(args)
    if args.format == "timm":
        for target in targets:
            target["arch"].timm_arch_def()  # fail before writing anything
    single = len(targets) == 1 and out.name.endswith(SUFFIX[args.format])
    folder = out.parent if single else out
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write to {folder}: {error.strerror or error}") from None
    for target in targets:
        path = out if single else folder / f"{target['name']}{SUFFIX[args.format]}"
        try:
            if args.format in PROGRAMS:
                net = export.deployable(target["arch"], num_classes=args.classes or target.get("classes", 1000),
                                        in_channels=args.in_channels or target.get("channels", 3),
                                        checkpoint=args.checkpoint or target.get("checkpoint"))
                resolution = args.resolution or target.get("resolution", 224)
                channels = args.in_channels or target.get("channels", 3)
                if args.format == "onnx-int8":
                    export.export_int8(net, path, resolution=resolution, in_channels=channels,
                                       calibration=_calibration(target, args, resolution, channels))
                else:
                    export.export_program(net, path, fmt=args.format, resolution=resolution, in_channels=channels)
            else:
                from nas.core.atomic import write_atomic

                write_atomic(path, render(target, args.format, args))
        except OSError as error:
            raise UserError(f"cannot write {path}: {error.strerror or error}") from None
        print(path)
    return 0


def _calibration(target: dict[str, Any], args: argparse.Namespace, resolution: int, channels: int) -> list[Any]:
    """What an int8 program's ranges are set on: the source's training images where it names a dataset with
    these channels, else random inputs (said on stderr: fine for timing, not for accuracy)."""
    from nas.app import export
    from nas.latency.int8 import random_inputs
    from nas.training.data import DatasetError

    proxy, why = target.get("proxy"), "no dataset is named"
    if proxy is not None:
        try:
            batches = export.calibration_images(proxy, count=args.calibration_images, resolution=resolution)
        except DatasetError as error:
            why = f"its dataset cannot be read: {error}"
        else:
            if batches and batches[0].shape[1] == channels:
                return batches
            why = f"its dataset has {batches[0].shape[1]} channels, not {channels}" if batches else \
                "its dataset has no training images"
    print(f"[export] {target['name']}: int8 ranges calibrated on random inputs, as {why} (the program times "
          "right; its accuracy needs a trained network's folder and its dataset)", file=sys.stderr)
    return random_inputs((1, channels, resolution, resolution), count=8)


def _write_table(args: argparse.Namespace) -> int:
    """``--format csv|parquet``: every trial of a run folder, as pandas and spreadsheets read it."""
    import io

    from nas.core.atomic import write_atomic
    from nas.runs.results import load_run

    if not (Path(args.source) / "trials.db").is_file():
        raise UserError(f"{args.source}: --format {args.format} exports a run folder's trials (no trials.db here)")
    table = load_run(args.source).trials
    out = Path(args.out) if args.out else Path(args.source) / "export" / f"trials{SUFFIX[args.format]}"
    if out.is_dir():
        out = out / f"trials{SUFFIX[args.format]}"
    if args.format == "csv":
        write_atomic(out, table.to_csv(index=False))
    else:
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        write_atomic(out, buffer.getvalue())
    print(out)
    return 0
