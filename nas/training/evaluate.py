"""``evaluate(arch, task) -> TrialResult``: the one function every trial runs.

Two resolutions, never mixed (DESIGN.md):

* **Accuracy** is measured on the proxy task: ``arch.adapted(stem_stride=…, drop_downsamples=…)``
  trained on small images (Fashion-MNIST at 32×32 by default) and scored on a validation split
  held out of the training set.
* **Cost** is the *original* architecture as deployed: ImageNet-1000 classes, 3-channel input at
  ``target_resolution`` (224 for the B0 search), from ``nas.core.cost.count`` — so MACs and params
  are the numbers the papers quote (B0: 0.39 B MACs, 5.29 M params), whatever the proxy is.

A fault in one trial (bad architecture, NaN loss, CUDA OOM, anything raised while building or
training) never escapes: it becomes ``TrialResult.failure`` with the reason. A missing or
damaged dataset is the user's to fix and fails every trial alike, so :class:`~nas.training.data.DatasetError`
*is* raised.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from nas.core import cost, reward
from nas.core.arch import Architecture
from nas.core.result import TrialResult
from nas.latency.table import load_table
from nas.network.builder import build
from nas.settings import ProxySettings, RewardSettings
from nas.training import data
from nas.training.trainer import TrainingFailed, fit, measure_step_ms, measuring, release_memory, resolve_device

LATENCY_RUNS = 20
"""Forward passes timed per trial when the reward is on latency and no count was asked for."""


@dataclass(frozen=True)
class Task:
    """Everything a trial needs besides the architecture; plain data, pickled to Ray workers.

    ``proxy`` is where accuracy is measured and how the candidate is trained there; ``reward`` how it
    is scored. Cost is counted at ``target_resolution`` for ``cost_classes`` outputs and
    ``cost_channels`` input channels: the deployed task's (ImageNet-1000 for B0), whatever the proxy is.
    ``model_dropout`` is used on the proxy when ``proxy.dropout`` is left out.
    """

    proxy: ProxySettings = field(default_factory=ProxySettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    target_resolution: int = 224
    cost_classes: int = 1000
    cost_channels: int = 3
    model_dropout: float = 0.2
    seed: int = 0
    device: str = "auto"
    latency_runs: int = 0

    def __post_init__(self) -> None:
        if self.latency_runs < 0:
            raise ValueError(f"latency_runs must be >= 0, got {self.latency_runs}")

    @classmethod
    def from_space(cls, space: Any, *, proxy: ProxySettings | None = None, reward: RewardSettings | None = None,
                   **fields: Any) -> Task:
        """The task a search space describes (its ``proxy:`` and ``reward:`` blocks, its cost convention),
        with ``proxy``/``reward`` replaced when given (a run's resolved settings)."""
        deployed = {"target_resolution": space.target_resolution, "cost_classes": space.num_classes,
                    "cost_channels": space.in_channels}
        deployed.update({k: v for k, v in fields.items() if k in deployed and v is not None})
        rest = {k: v for k, v in fields.items() if k not in deployed}
        return cls(proxy=proxy or space.proxy, reward=reward or space.reward, model_dropout=space.schema.dropout,
                   **deployed, **rest)

    def with_proxy(self, **changes: Any) -> Task:
        """Other proxy settings (:meth:`ProxySettings.override`: a new batch size scales the lr)."""
        return replace(self, proxy=self.proxy.override(**changes))

    @property
    def dropout(self) -> float:
        return self.proxy.dropout if self.proxy.dropout is not None else self.model_dropout

    def cost(self, arch: Architecture) -> cost.Cost:
        return cost.count(arch, self.target_resolution, num_classes=self.cost_classes,
                          in_channels=self.cost_channels)


EpochReport = Callable[[TrialResult], None]
"""Called after every epoch but the last with what the trial would be if it ended there (status
``stopped``): the accuracy so far, its reward, the epochs trained."""


def evaluate(arch: Architecture, task: Task, *, split: Literal["val", "test"] = "val",
             on_epoch: EpochReport | None = None) -> TrialResult:
    """Train ``arch``'s proxy form on ``task`` and score it; never raises for a trial's own fault.

    ``split="test"`` is the final evaluation only: train on the whole training set and measure on
    the test split. ``train_seconds`` runs from model build to accuracy (the dataset is loaded once
    per process and not counted).
    """
    text = str(arch)
    try:
        price = task.cost(arch)
    except Exception as error:  # noqa: BLE001 - a trial fault, whatever it is
        return TrialResult.failure(text, f"cost: {type(error).__name__}: {error}")
    metrics: dict[str, Any] = {"macs": price.macs, "params": price.params}
    try:
        device = resolve_device(task.device)
    except ValueError as error:  # a GPU granted where CUDA does not work: this worker's fault, told as such
        return TrialResult.failure(text, str(error), **metrics)
    metrics["device"] = str(device)
    proxy_data = data.for_proxy(task.proxy, seed=task.seed, split=split, device=device)
    start = time.perf_counter()
    reason: str | None = None
    epochs = 0
    step_ms = None
    report = None
    if on_epoch is not None:
        def report(epoch: int, loss: float, accuracy: float) -> None:  # noqa: ARG001 - the loss is not reported
            if epoch < task.proxy.epochs:
                on_epoch(TrialResult(arch=text, status="stopped", accuracy=accuracy, epochs=epoch,
                                     reward=partial_reward(task, arch, accuracy, price),
                                     train_seconds=time.perf_counter() - start, **metrics))
    try:
        cuda_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_ids):  # seed this trial without disturbing the caller's RNG
            torch.manual_seed(task.seed)
            net = build(arch.adapted(stem_stride=task.proxy.stem_stride, drop_downsamples=task.proxy.drop_downsamples),
                        num_classes=proxy_data.num_classes, in_channels=proxy_data.channels,
                        dropout=task.dropout, drop_connect=task.proxy.drop_connect)
            outcome = fit(net, proxy_data, task.proxy, seed=task.seed, on_epoch=report)
            if task.reward.kind == "training_aware":  # after training: it moves the weights
                step_ms = measure_step_ms(net, proxy_data, task.proxy, seed=task.seed)
            del net
        accuracy, epochs = outcome.accuracy, outcome.epochs
    except TrainingFailed as error:
        reason, epochs = error.reason, error.epochs
    except Exception as error:  # noqa: BLE001 - build/train faults fail this trial only
        reason = f"{type(error).__name__}: {error}"
    seconds = time.perf_counter() - start
    if reason is not None:
        net = None  # noqa: F841 - drop any reference before freeing
        release_memory(device)
        return TrialResult.failure(text, reason, train_seconds=seconds, epochs=epochs, **metrics)
    return scored(arch, task, device, accuracy=accuracy, price=price, step_ms=step_ms, train_seconds=seconds,
                  epochs=epochs)


def scored(arch: Architecture, task: Task, device: torch.device, *, accuracy: float, price: cost.Cost,
           step_ms: float | None = None, train_seconds: float = 0.0, epochs: int = 0,
           evaluator: str = "standalone") -> TrialResult:
    """The trial's result once its accuracy is known (however it was measured): the batch-1 latency when
    asked for, and the reward. A fault measuring either fails the trial with its reason."""
    text = str(arch)
    metrics: dict[str, Any] = {"macs": price.macs, "params": price.params, "train_seconds": train_seconds,
                               "epochs": epochs, "evaluator": evaluator, "device": str(device)}
    latency = None
    if task.reward.latency_table is not None:
        try:
            latency = load_table(task.reward.latency_table).predict(arch)
        except Exception as error:  # noqa: BLE001 - checked at the start; a table changed since fails the trial
            return TrialResult.failure(text, f"latency table: {error}", accuracy=accuracy, **metrics)
    elif task.latency_runs > 0 or task.reward.on == "latency":
        try:
            latency = measure_latency(arch, device=device, resolution=task.target_resolution,
                                      runs=task.latency_runs or LATENCY_RUNS, num_classes=task.cost_classes,
                                      in_channels=task.cost_channels)
        except Exception as error:  # noqa: BLE001
            release_memory(device)
            return TrialResult.failure(text, f"latency: {type(error).__name__}: {error}", accuracy=accuracy,
                                       **metrics)
    if step_ms is not None:
        try:
            reference = task.reward.step_ms or reference_step_ms(task.reward.step_reference, task, str(device))
            value = reward.training_aware(accuracy, step_ms / reference, price.params / task.reward.target_params,
                                          w=task.reward.w, v=task.reward.v)
        except Exception as error:  # noqa: BLE001
            release_memory(device)
            return TrialResult.failure(text, f"step time: {type(error).__name__}: {error}", accuracy=accuracy,
                                       **metrics)
    else:
        objective = latency if task.reward.on == "latency" else price.macs
        value = reward.compute(task.reward.kind, accuracy, objective, target=task.reward.target,
                               w=task.reward.w, alpha=task.reward.alpha, beta=task.reward.beta)
    return TrialResult(arch=text, accuracy=accuracy, reward=value, latency_ms=latency, step_ms=step_ms, **metrics)


def partial_reward(task: Task, arch: Architecture, accuracy: float, price: cost.Cost) -> float:
    """The reward of an epoch's accuracy, with the costs known before training ends: exact for a reward on
    MACs or on latency from a table; for one on measured latency or training step time (measured at the end),
    the measured part is taken as at its target (so trials at one epoch are ranked as the full reward would
    rank equal costs)."""
    r = task.reward
    if r.kind == "training_aware":
        return reward.training_aware(accuracy, 1.0, price.params / r.target_params, w=r.w, v=r.v)
    if r.on == "latency":
        if r.latency_table is None:
            return accuracy
        return reward.compute(r.kind, accuracy, load_table(r.latency_table).predict(arch), target=r.target, w=r.w,
                              alpha=r.alpha, beta=r.beta)
    return reward.compute(r.kind, accuracy, price.macs, target=r.target, w=r.w, alpha=r.alpha, beta=r.beta)


@functools.lru_cache(maxsize=8)
def _reference_step_ms(arch_text: str, proxy_json: str, dropout: float, device: str, seed: int) -> float:
    proxy = ProxySettings.model_validate_json(proxy_json)
    arch = Architecture.parse(arch_text)
    proxy_data = data.for_proxy(proxy, seed=seed, device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build(arch.adapted(stem_stride=proxy.stem_stride, drop_downsamples=proxy.drop_downsamples),
                    num_classes=proxy_data.num_classes, in_channels=proxy_data.channels, dropout=dropout)
    return measure_step_ms(net, proxy_data, proxy, seed=seed)


def reference_step_ms(reference: str | None, task: Task, device: str) -> float:
    """The training step time of the reward's reference architecture (a shipped architecture's name, a
    one-point space file or an architecture string), measured as a trial's is, once per process and device."""
    from nas.space import find_space_file, load_architecture

    if reference is None:
        raise ValueError("no step-time reference")
    path = find_space_file(reference)
    arch = load_architecture(str(path)) if path.is_file() else Architecture.parse(reference)
    return _reference_step_ms(str(arch), task.proxy.model_dump_json(), task.dropout, device, task.seed)


def measure_latency(arch: Architecture, *, device: torch.device, resolution: int = 224, runs: int = 20,
                    warmup: int = 3, num_classes: int = 1000, in_channels: int = 3) -> float:
    """Median wall time (ms) of ``runs`` batch-1 forward passes of the deployed model (``num_classes``,
    ``in_channels``, ``resolution``²) on ``device``: MnasNet's latency objective, measured where it runs."""
    net = build(arch, num_classes=num_classes, in_channels=in_channels).to(device).eval()
    x = torch.randn(1, in_channels, resolution, resolution, device=device)
    cuda = device.type == "cuda"
    if cuda:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with measuring(device), torch.inference_mode():  # trials sharing the GPU take turns to measure
        for i in range(warmup + runs):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            net(x)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
