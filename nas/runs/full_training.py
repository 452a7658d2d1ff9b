"""Training one architecture to the end (``nas train``): the search's proxy recipe, run long enough to
converge, on the whole training set, scored once on the test split.

A run lives in a folder: ``train.json`` (the architecture and settings, written first), ``checkpoint.pt``
(everything needed to continue, rewritten atomically after every epoch), and at the end ``weights.pt``
(the trained state dict) and ``result.json``. A driver killed at any moment resumes from its last epoch
with ``nas train --resume FOLDER``, and with the same seed on a CPU ends with the same weights as a run
that was never interrupted. One driver per folder (the lock of :mod:`nas.runs.folder`).
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import torch

from nas.core import cost
from nas.core.arch import Architecture
from nas.core.atomic import write_atomic
from nas.core.errors import NasError
from nas.network.builder import build
from nas.runs.folder import RunLock
from nas.runs.progress import clock
from nas.settings import TrainSettings
from nas.training import data
from nas.training.trainer import Trainer, TrainingFailed, measure_accuracy, resolve_device

SETTINGS_FILE, CHECKPOINT, WEIGHTS, RESULT = "train.json", "checkpoint.pt", "weights.pt", "result.json"


class TrainError(NasError):
    """A training run that cannot start or continue as asked."""


def start(arch: Architecture, settings: TrainSettings, *, model_dropout: float = 0.2, cost_classes: int = 1000,
          target_resolution: int = 224) -> Path:
    """A new training folder for ``arch`` (``settings.place``): refuses one that already holds a run."""
    folder = settings.place.run_dir()
    if (folder / SETTINGS_FILE).exists():
        raise TrainError(f"{folder} already holds a training run; continue it with --resume {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    record = {"arch": str(arch), "settings": settings.model_dump(mode="json"), "model_dropout": model_dropout,
              "cost_classes": cost_classes, "target_resolution": target_resolution}
    write_atomic(folder / SETTINGS_FILE, json.dumps(record, indent=2) + "\n", durable=True)
    return folder


def read_record(folder: Path) -> dict[str, Any]:
    """What :func:`start` wrote into ``folder``: the architecture, the settings (JSON) and the deployment."""
    try:
        record = json.loads((folder / SETTINGS_FILE).read_text())
    except (OSError, ValueError) as error:
        raise TrainError(f"{folder} holds no training run ({SETTINGS_FILE}: {error})") from None
    if not isinstance(record, dict):
        raise TrainError(f"{folder} holds no training run ({SETTINGS_FILE} is not a record)")
    return record


def run(folder: str | Path, *, out: TextIO | None = None, progress_seconds: float = 0.0) -> dict[str, Any]:
    """Train (or continue training) the run in ``folder`` to its last epoch; returns (and writes) its result."""
    out = out or sys.stdout
    folder = Path(folder)
    record = read_record(folder)
    if (folder / RESULT).exists():
        return json.loads((folder / RESULT).read_text())
    lock = RunLock.acquire(folder)
    try:
        return _train(folder, record, out=out, progress_seconds=progress_seconds)
    finally:
        lock.release()


def _train(folder: Path, record: dict[str, Any], *, out: TextIO, progress_seconds: float) -> dict[str, Any]:
    arch = Architecture.parse(record["arch"])
    settings = TrainSettings.model_validate(record["settings"])
    proxy = settings.proxy
    device = resolve_device(settings.device)
    dataset = data.for_proxy(proxy, seed=settings.seed, split="test", device=device)
    trained = arch.adapted(stem_stride=proxy.stem_stride, drop_downsamples=proxy.drop_downsamples)
    dropout = proxy.dropout if proxy.dropout is not None else record["model_dropout"]
    torch.manual_seed(settings.seed)
    net = build(trained, num_classes=dataset.num_classes, in_channels=dataset.channels, dropout=dropout,
                drop_connect=proxy.drop_connect)
    trainer = Trainer(net, dataset, proxy, seed=settings.seed)
    checkpoint = folder / CHECKPOINT
    if checkpoint.exists():
        trainer.load_state_dict(torch.load(checkpoint, map_location=device, weights_only=True))
        print(f"[train] {folder}: resuming after epoch {trainer.epoch} of {proxy.epochs}", file=out, flush=True)
    started, done_before, last_print = time.time(), trainer.epoch, 0.0
    while trainer.epoch < proxy.epochs:
        try:
            loss = trainer.run_epoch()
        except TrainingFailed as error:
            raise TrainError(f"{folder}: training failed: {error.reason}") from None
        write_atomic(checkpoint, _saved(trainer.state_dict()), durable=True)
        now = time.time()
        if now - last_print >= progress_seconds or trainer.epoch == proxy.epochs:
            last_print = now
            per_epoch = (now - started) / (trainer.epoch - done_before)
            eta = per_epoch * (proxy.epochs - trainer.epoch)
            print(f"[train] epoch {trainer.epoch}/{proxy.epochs}  {_bar(trainer.epoch, proxy.epochs)}  "
                  f"loss {loss:.4f}  {per_epoch:.1f} s/epoch  ETA {clock(eta)}", file=out, flush=True)
    accuracy = measure_accuracy(net, dataset, proxy, seed=settings.seed)
    deployed = cost.count(arch, record["target_resolution"], num_classes=record["cost_classes"])
    result = {"arch": str(arch), "trained_arch": str(trained), "test_accuracy": accuracy, "epochs": proxy.epochs,
              "seed": settings.seed, "dataset": proxy.dataset, "resolution": proxy.resolution,
              "num_classes": dataset.num_classes, "in_channels": dataset.channels,
              "train_images": len(dataset.train), "test_images": len(dataset.eval),
              "macs": deployed.macs, "params": deployed.params, "device": str(device),
              "seconds": time.time() - started}
    write_atomic(folder / WEIGHTS, _saved(net.state_dict()), durable=True)
    write_atomic(folder / RESULT, json.dumps(result, indent=2) + "\n", durable=True)
    print(f"[train] test accuracy {accuracy:.4f} ({len(dataset.eval):,} {proxy.dataset} test images, "
          f"{proxy.epochs} epochs); weights: {folder / WEIGHTS}", file=out, flush=True)
    return result


def _saved(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


__all__ = ["CHECKPOINT", "RESULT", "SETTINGS_FILE", "WEIGHTS", "TrainError", "read_record", "run", "start"]
