"""``evaluate(arch, task) -> TrialResult``: the one function every trial runs.

Two resolutions, never mixed (DESIGN.md):

* **Accuracy** is measured on the proxy task: ``arch.adapted(stem_stride=…, drop_downsamples=…)``
  trained on small images (Fashion-MNIST at 32×32 by default) and scored on a validation split
  held out of the training set.
* **Cost** is the *original* architecture as deployed: ImageNet-1000 classes, 3-channel input at
  ``target_resolution`` (224 for the B0 search), from ``nas.cost.count`` — so MACs and params
  are the numbers the papers quote (B0: 0.39 B MACs, 5.29 M params), whatever the proxy is.

A fault in one trial (bad architecture, NaN loss, CUDA OOM, anything raised while building or
training) never escapes: it becomes ``TrialResult.failure`` with the reason. A missing or
damaged dataset is the user's to fix and fails every trial alike, so :class:`~nas.data.DatasetError`
*is* raised.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import torch

from nas import cost, data, reward
from nas.arch import Architecture
from nas.model import build
from nas.result import TrialResult
from nas.train import TrainConfig, TrainingFailed, fit, release_memory, resolve_device

COST_CLASSES = 1000
"""Cost convention: MACs and params are counted for the ImageNet-1000 head, whatever the proxy's classes."""


@dataclass(frozen=True)
class Task:
    """Everything a trial needs besides the architecture; plain data, pickled to Ray workers.

    ``num_classes`` is the *proxy dataset's* (10 for Fashion-MNIST); it is filled in from the
    dataset when left ``None``. ``reward_target`` is in MACs, or in milliseconds when
    ``reward_on="latency"`` (MnasNet's form; then ``latency_runs`` must be > 0).
    """

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    resolution: int = 32
    val_size: int | None = None
    stem_stride: int = 1
    drop_downsamples: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)
    reward_kind: Literal["soft", "mnasnet", "hard"] = "soft"
    reward_target: float = reward.T_EFFICIENTNET
    w: float = reward.W_EFFICIENTNET
    alpha: float | None = None
    beta: float | None = None
    reward_on: Literal["macs", "latency"] = "macs"
    target_resolution: int = 224
    num_classes: int | None = None
    seed: int = 0
    device: str = "auto"
    max_train_samples: int | None = None
    max_val_samples: int | None = None
    latency_runs: int = 0

    def __post_init__(self) -> None:
        if self.dataset not in data.DATASETS:
            raise data.DatasetError(f"unknown dataset {self.dataset!r}; expected one of {', '.join(data.DATASETS)}")
        checks = (
            (self.resolution >= 8, f"resolution must be >= 8, got {self.resolution}"),
            (self.stem_stride in (1, 2), f"stem_stride must be 1 or 2, got {self.stem_stride}"),
            (self.drop_downsamples >= 0, f"drop_downsamples must be >= 0, got {self.drop_downsamples}"),
            (self.reward_kind in ("soft", "mnasnet", "hard"),
             f"reward_kind must be soft, mnasnet or hard, got {self.reward_kind!r}"),
            (self.reward_target > 0, f"reward_target must be > 0, got {self.reward_target}"),
            (self.reward_on in ("macs", "latency"), f"reward_on must be macs or latency, got {self.reward_on!r}"),
            (self.reward_on == "macs" or self.latency_runs > 0,
             "reward_on='latency' needs latency_runs > 0 (the latency must be measured)"),
            (self.target_resolution >= 1, f"target_resolution must be >= 1, got {self.target_resolution}"),
            (self.latency_runs >= 0, f"latency_runs must be >= 0, got {self.latency_runs}"),
            (self.max_train_samples is None or self.max_train_samples >= 2, "max_train_samples must be >= 2"),
            (self.max_val_samples is None or self.max_val_samples >= 1, "max_val_samples must be >= 1"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.num_classes is None:
            object.__setattr__(self, "num_classes", data.num_classes(self.dataset, self.data_dir))

    @classmethod
    def from_space(cls, space: Any, **overrides: Any) -> Task:
        """A task from a search space's ``proxy:`` and ``reward:`` blocks; ``overrides`` may name any
        ``Task`` field or any ``TrainConfig`` field (``epochs=1`` changes ``task.train.epochs``)."""
        proxy, rew = space.proxy, space.reward
        train_names = {f.name for f in fields(TrainConfig)}
        train_overrides = {k: overrides.pop(k) for k in list(overrides) if k in train_names}
        values: dict[str, Any] = {
            "dataset": proxy.dataset, "resolution": proxy.resolution, "val_size": proxy.val_size,
            "stem_stride": proxy.stem_stride, "drop_downsamples": proxy.drop_downsamples,
            "train": TrainConfig.from_proxy(proxy, dropout=space.schema.dropout, **train_overrides),
            "reward_kind": rew.kind, "reward_target": rew.target_macs, "w": rew.w, "alpha": rew.alpha,
            "beta": rew.beta, "target_resolution": space.target_resolution,
        }
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown Task setting(s): {', '.join(sorted(unknown))}")
        values.update(overrides)
        if "dataset" in overrides and "val_size" not in overrides and overrides["dataset"] != proxy.dataset:
            values["val_size"] = None  # the YAML's val_size was for its own dataset
        return cls(**values)

    def with_train(self, **changes: Any) -> Task:
        """Other training settings; a new ``batch_size`` without an ``lr`` scales the lr linearly."""
        train = self.train
        if "batch_size" in changes and "lr" not in changes:
            train = train.with_batch_size(changes.pop("batch_size"))
        return replace(self, train=replace(train, **changes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(arch: Architecture, task: Task, *, split: Literal["val", "test"] = "val") -> TrialResult:
    """Train ``arch``'s proxy form on ``task`` and score it; never raises for a trial's own fault.

    ``split="test"`` is the final evaluation only: train on the whole training set and measure on
    the test split. ``train_seconds`` runs from model build to accuracy (the dataset is loaded once
    per process and not counted).
    """
    text = str(arch)
    try:
        price = cost.count(arch, task.target_resolution, num_classes=COST_CLASSES)
    except Exception as error:  # noqa: BLE001 - a trial fault, whatever it is
        return TrialResult.failure(text, f"cost: {type(error).__name__}: {error}")
    metrics: dict[str, Any] = {"macs": price.macs, "params": price.params}
    device = resolve_device(task.device)
    proxy_data = data.load(task.dataset, root=task.data_dir, resolution=task.resolution, val_size=task.val_size,
                           seed=task.seed, split=split, max_train=task.max_train_samples,
                           max_eval=task.max_val_samples, device=device)
    start = time.perf_counter()
    reason: str | None = None
    epochs = 0
    try:
        cuda_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_ids):  # seed this trial without disturbing the caller's RNG
            torch.manual_seed(task.seed)
            net = build(arch.adapted(stem_stride=task.stem_stride, drop_downsamples=task.drop_downsamples),
                        num_classes=task.num_classes, in_channels=proxy_data.channels,
                        dropout=task.train.dropout, drop_connect=task.train.drop_connect)
            outcome = fit(net, proxy_data, task.train, seed=task.seed)
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
    latency = None
    if task.latency_runs > 0:
        try:
            latency = measure_latency(arch, device=device, resolution=task.target_resolution,
                                      runs=task.latency_runs)
        except Exception as error:  # noqa: BLE001
            release_memory(device)
            return TrialResult.failure(text, f"latency: {type(error).__name__}: {error}", accuracy=accuracy,
                                       train_seconds=seconds, epochs=epochs, **metrics)
    objective = latency if task.reward_on == "latency" else price.macs
    value = reward.compute(task.reward_kind, accuracy, objective, target=task.reward_target, w=task.w,
                           alpha=task.alpha, beta=task.beta)
    return TrialResult(arch=text, accuracy=accuracy, reward=value, latency_ms=latency, train_seconds=seconds,
                       epochs=epochs, **metrics)


def measure_latency(arch: Architecture, *, device: torch.device, resolution: int = 224, runs: int = 20,
                    warmup: int = 3) -> float:
    """Median wall time (ms) of ``runs`` batch-1 forward passes of the deployed model (1000 classes,
    3 channels, ``resolution``²) on ``device``: MnasNet's latency objective, measured where it runs."""
    net = build(arch, num_classes=COST_CLASSES).to(device).eval()
    x = torch.randn(1, 3, resolution, resolution, device=device)
    cuda = device.type == "cuda"
    if cuda:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
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
