"""A trial's accuracy from the supernet: the architecture's weights taken from it, batch-norm statistics
re-estimated on a few training batches, accuracy on the validation split — a fraction of a second where
training it would take minutes. Cost and reward exactly as a stand-alone trial's (:func:`nas.training.evaluate.scored`).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch

from nas.core.arch import Architecture
from nas.core.result import TrialResult
from nas.network.supernet import Supernet
from nas.settings import SupernetSettings
from nas.space import SearchSpace
from nas.training import data
from nas.training.evaluate import Task, scored
from nas.training.supernet_training import WEIGHTS, supernet_for
from nas.training.trainer import (
    LAYOUT,
    evaluate_accuracy,
    measure_step_ms,
    recalibrate_batchnorm,
    release_memory,
    resolve_device,
)


@functools.lru_cache(maxsize=2)
def _loaded(folder: str, stamp: float, space_text: str, settings_json: str, task_proxy_json: str,
            device: str) -> Supernet:
    """The trained supernet, loaded once per process (the arguments are its identity)."""
    from nas import space as spaces
    from nas.settings import ProxySettings

    space = spaces.loads(space_text)
    proxy = ProxySettings.model_validate_json(task_proxy_json)
    settings = SupernetSettings.model_validate_json(settings_json)
    dataset = data.for_proxy(proxy, device=device)
    net = supernet_for(space, proxy, settings, num_classes=dataset.num_classes, in_channels=dataset.channels)
    net.load_state_dict(torch.load(Path(folder) / WEIGHTS, map_location=device, weights_only=True))
    return net.to(device).eval()


def load(folder: str | Path, space: SearchSpace, task: Task, settings: SupernetSettings,
         device: torch.device) -> Supernet:
    path = Path(folder) / WEIGHTS
    return _loaded(str(folder), path.stat().st_mtime, space.text or "", settings.model_dump_json(),
                   task.proxy.model_dump_json(), str(device))


def evaluate_from_supernet(arch: Architecture, task: Task, space: SearchSpace, settings: SupernetSettings,
                           folder: str | Path) -> TrialResult:
    """Like :func:`nas.training.evaluate.evaluate`, with the accuracy taken from the supernet in ``folder``; a trial's
    own fault becomes a failed result, never an exception."""
    text = str(arch)
    try:
        price = task.cost(arch)
    except Exception as error:  # noqa: BLE001 - a trial fault, whatever it is
        return TrialResult.failure(text, f"cost: {type(error).__name__}: {error}")
    device = resolve_device(task.device)
    dataset = data.for_proxy(task.proxy, seed=task.seed, device=device)
    start = time.perf_counter()
    step_ms = None
    try:
        net = load(folder, space, task, settings, device).extract(arch).to(device, memory_format=LAYOUT)
        recalibrate_batchnorm(net, dataset, batches=settings.bn_batches, batch_size=task.proxy.batch_size,
                              seed=task.seed)
        accuracy = evaluate_accuracy(net, dataset, batch_size=task.proxy.eval_batch_size)
        if task.reward.kind == "training_aware":
            step_ms = measure_step_ms(net, dataset, task.proxy, seed=task.seed)
        del net
    except Exception as error:  # noqa: BLE001 - this architecture's fault only
        release_memory(device)
        return TrialResult.failure(text, f"{type(error).__name__}: {error}", macs=price.macs, params=price.params,
                                   evaluator="supernet")
    return scored(arch, task, device, accuracy=accuracy, price=price, step_ms=step_ms,
                  train_seconds=time.perf_counter() - start, epochs=0, evaluator="supernet")


class SupernetEvaluator:
    """What a trial calls instead of :func:`nas.training.evaluate.evaluate`: picklable, so Ray ships it to workers."""

    def __init__(self, space_text: str, settings: SupernetSettings, folder: str | Path) -> None:
        self.space_text, self.settings, self.folder = space_text, settings, str(folder)

    def __call__(self, arch: Architecture, task: Task, **_: object) -> TrialResult:
        from nas import space as spaces

        return evaluate_from_supernet(arch, task, spaces.loads(self.space_text), self.settings, self.folder)


__all__ = ["SupernetEvaluator", "evaluate_from_supernet", "load"]
