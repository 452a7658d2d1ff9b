"""One proxy training run: the hot loop of the whole search, and its fault handling.

Every trial is a never-seen set of layer shapes trained for a few epochs, so the
loop avoids anything with a per-shape start-up cost that a 5-epoch run cannot
amortize: data is already on the device (``nas.training.data``), there are no DataLoader
workers, the host syncs only every ``check_every`` steps (to look for a
non-finite loss) and once per epoch. ``cudnn.benchmark`` is *off* by default: it
autotunes every new convolution shape, which a trial pays in full and may not
win back (see ``ProxySettings.cudnn_benchmark`` and ``scripts/bench_evaluator.py``).

On CUDA: bf16 autocast, channels-last, fused optimizer steps. A seed fixes the initialization,
batch order and augmentation; on the CPU that makes a run bit-for-bit repeatable, on CUDA
only up to the nondeterminism of atomics-based kernels (index backward, some cuDNN algorithms). A NaN/inf loss or
a CUDA out-of-memory error ends the run with :class:`TrainingFailed` (the
caller turns it into a failed trial); the process and the device stay usable.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.settings import ProxySettings
from nas.training.data import ProxyData, augment, normalize, stats_on

LAYOUT = torch.channels_last
"""The memory layout of every network trained or scored and of its batches: faster for these convolutions on
CUDA (tensor cores) and on a CPU alike (oneDNN; MBConv networks train ~2× and infer ~3× faster than in NCHW on
a 2-core x86). Batch-1 latency (:func:`nas.training.evaluate.measure_latency`) keeps each device's deployment layout."""


class TrainingFailed(Exception):
    """The run cannot give an accuracy (non-finite loss, out of memory): a failed trial, not a crash."""

    def __init__(self, reason: str, *, epochs: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.epochs = reason, epochs


@dataclass(frozen=True)
class FitResult:
    accuracy: float
    seconds: float
    epochs: int
    steps: int
    final_loss: float


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def half_precision(device: torch.device, *, bf16_supported: bool | None = None) -> torch.dtype | None:
    """The reduced precision forward passes run in: bf16 where the GPU computes it natively (Ampere and
    later), fp16 on older cards (T4, V100: bf16 is emulated there or fails), none on a CPU."""
    if device.type != "cuda":
        return None
    if bf16_supported is None:
        bf16_supported = _bf16_native(device.index if device.index is not None else torch.cuda.current_device())
    return torch.bfloat16 if bf16_supported else torch.float16


@functools.cache
def _bf16_native(index: int) -> bool:
    """Asked once per GPU: every forward pass of the hot loop picks its precision through here."""
    with torch.cuda.device(index):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def mixed_precision(device: torch.device) -> Any:
    """The autocast context every forward pass of training and scoring runs in (:func:`half_precision`)."""
    dtype = half_precision(device)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def loss_scaler(device: torch.device) -> torch.amp.GradScaler:
    """fp16 needs its gradients scaled (they underflow otherwise); bf16 and fp32 do not: then it is a no-op."""
    return torch.amp.GradScaler(device.type, enabled=half_precision(device) == torch.float16)


StepLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, int, torch.amp.GradScaler], torch.Tensor]
"""``step_loss(model, x, y, step, scaler)``: one step's gradients, computed by its own backward passes (forwards
under :func:`mixed_precision`, each loss through ``scaler.scale``), and the step's loss, detached. A supernet
trains several sub-networks per step."""

StepCallback = Callable[["Trainer", torch.Tensor], None]
"""``on_step(trainer, loss)`` after every optimizer step (the loss detached, still on the device)."""

EpochCallback = Callable[[int, float, float], None]
"""``on_epoch(epoch, mean training loss, accuracy on data.eval)``, after every epoch (1-based)."""


def fit(model: nn.Module, data: ProxyData, config: ProxySettings, *, seed: int = 0,
        on_epoch: EpochCallback | None = None) -> FitResult:
    """Train ``model`` on ``data.train`` (on ``data.device``) and return accuracy on ``data.eval``, measured
    after re-estimating batch-norm statistics when ``config.bn_recalibration_batches`` asks for it.
    With ``on_epoch``, accuracy is measured after every epoch too (learning curves, early stopping).

    Raises :class:`TrainingFailed` for a non-finite loss or CUDA OOM; memory is released first.
    """
    start = time.perf_counter()
    progress = [0]  # epochs completed, readable after an exception
    oom: str | None = None
    measured: dict[int, float] = {}

    def epoch_done(epoch: int, loss: float) -> None:
        if on_epoch is not None:
            measured[epoch] = measure_accuracy(model, data, config, seed=seed)
            on_epoch(epoch, loss, measured[epoch])

    try:
        with _cudnn_benchmark(config.cudnn_benchmark):
            steps, loss = _train(model, data, config, seed=seed, on_epoch=epoch_done, progress=progress)
            accuracy = measured.get(config.epochs)
            if accuracy is None:
                accuracy = measure_accuracy(model, data, config, seed=seed)
    except torch.OutOfMemoryError as error:
        # Keep only the text: the exception's traceback holds the frames that hold the activations.
        oom = str(error).splitlines()[0] if str(error) else "out of memory"
    if oom is not None:
        release_memory(data.device)
        raise TrainingFailed(f"CUDA out of memory: {oom}", epochs=progress[0])
    return FitResult(accuracy=accuracy, seconds=time.perf_counter() - start, epochs=config.epochs, steps=steps,
                     final_loss=loss)


class Trainer:
    """The training loop, one epoch at a time, with its whole state (weights, optimizer, batch-order and
    augmentation RNG, step, the epoch's batch order) saveable, so a run can resume exactly where a checkpoint
    left it, between epochs or inside one. ``step_loss`` replaces the plain forward and backward of a step
    (:data:`StepLoss`); everything else (batches, schedule, optimizer, checks) stays this loop's."""

    def __init__(self, model: nn.Module, data: ProxyData, config: ProxySettings, *, seed: int = 0,
                 step_loss: StepLoss | None = None) -> None:
        self.model, self.data, self.config, self.step_loss = model, data, config, step_loss
        device = data.device
        self.cuda = device.type == "cuda"
        model.to(device, memory_format=LAYOUT)
        model.train()
        self.optimizer = make_optimizer(model, config, fused=self.cuda)
        self.scaler = loss_scaler(device)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.generator = torch.Generator(device).manual_seed(seed)
        self.batch = min(config.batch_size, len(data.train))
        self.steps_per_epoch = max(1, len(data.train) // self.batch)  # drop the ragged last batch: fixed shapes
        self.schedule = lr_schedule(config, self.steps_per_epoch)
        self.mean, self.std = stats_on(device, data.mean, data.std)
        self.epoch, self.step = 0, 0
        self.order: torch.Tensor | None = None  # this epoch's batch order

    @property
    def steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    def run_epoch(self, on_step: StepCallback | None = None) -> float:
        """Train the rest of this epoch (all of it, unless resumed inside it); returns the mean loss of the
        steps it ran. Raises :class:`TrainingFailed` on a non-finite loss."""
        model, data, config = self.model, self.data, self.config
        device, cuda, batch = data.device, self.cuda, self.batch
        images, labels = data.train.images, data.train.labels
        check_every = 1 if not cuda else config.check_every
        bad = torch.zeros((), dtype=torch.bool, device=device)
        model.train()
        first = self.step % self.steps_per_epoch
        if first == 0 or self.order is None:
            self.order = torch.randperm(len(data.train), device=device, generator=self.generator)
        loss_sum = torch.zeros((), device=device)
        for i in range(first, self.steps_per_epoch):
            index = self.order[i * batch:(i + 1) * batch]
            x = augment(images[index], padding=config.crop_padding, flip=data.flip, generator=self.generator)
            x = normalize(x.contiguous(memory_format=LAYOUT), self.mean, self.std)
            for group in self.optimizer.param_groups:
                group["lr"] = self.schedule(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            if self.step_loss is None:
                with mixed_precision(device):
                    logits = model(x)
                loss = self.criterion(logits.float(), labels[index])
                self.scaler.scale(loss).backward()
                detached = loss.detach()
            else:
                detached = self.step_loss(model, x, labels[index], self.step, self.scaler)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            bad |= ~torch.isfinite(detached)
            loss_sum += detached
            self.step += 1
            if self.step % check_every == 0 or i == self.steps_per_epoch - 1:
                if bool(bad):
                    raise TrainingFailed(f"non-finite loss ({detached.item()}) in epoch {self.epoch + 1}, "
                                         f"at or before step {self.step}", epochs=self.epoch)
            if on_step is not None:
                on_step(self, detached)
        self.epoch += 1
        return loss_sum.item() / max(1, self.steps_per_epoch - first)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and numbers only: ``torch.load(..., weights_only=True)`` reads it back."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": self.generator.get_state(), "epoch": self.epoch, "step": self.step,
                 "torch_rng": torch.get_rng_state()}  # dropout and stochastic depth draw from it
        if self.cuda:
            state["cuda_rng"] = torch.cuda.get_rng_state(self.data.device)
        if self.step % self.steps_per_epoch and self.order is not None:  # inside an epoch: its order goes on
            state["order"] = self.order.cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``, wherever ``torch.load`` put its tensors: random-number states are byte
        tensors that only a CPU tensor can set (``map_location="cuda"`` would move them to the GPU)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.cuda and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.data.device)
        self.order = state["order"].to(self.data.device) if "order" in state else None


def _train(model: nn.Module, data: ProxyData, config: ProxySettings, *, seed: int,
           on_epoch: Callable[[int, float], None], progress: list[int]) -> tuple[int, float]:
    trainer = Trainer(model, data, config, seed=seed)
    last = float("nan")
    for _ in range(config.epochs):
        last = trainer.run_epoch()
        progress[0] = trainer.epoch
        on_epoch(trainer.epoch, last)
    return trainer.step, last


def lr_schedule(config: ProxySettings, steps_per_epoch: int) -> Callable[[int], float]:
    """Linear warm-up to the lr over ``warmup_epochs``, then cosine decay to 0 at the last step."""
    total = config.epochs * steps_per_epoch
    warm = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    peak = config.learning_rate

    def lr(step: int) -> float:
        if step < warm:
            return peak * (step + 1) / warm
        return 0.5 * peak * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return lr


def make_optimizer(model: nn.Module, config: ProxySettings, *, fused: bool = False) -> torch.optim.Optimizer:
    """SGD (Nesterov) or RMSProp; weight decay on conv/linear weights only, not on BN or biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        kind, options = torch.optim.SGD, {"momentum": config.momentum, "nesterov": config.momentum > 0}
    else:
        kind, options = torch.optim.RMSprop, {"alpha": 0.9, "eps": 1e-3, "momentum": config.momentum}
    if fused:
        try:
            return kind(groups, lr=config.learning_rate, fused=True, **options)
        except (TypeError, RuntimeError):  # this optimizer or build has no fused kernel
            return kind(groups, lr=config.learning_rate, foreach=True, **options)
    return kind(groups, lr=config.learning_rate, **options)


def measure_step_ms(model: nn.Module, data: ProxyData, config: ProxySettings, *, steps: int = 20, warmup: int = 5,
                    seed: int = 0) -> float:
    """Median wall time (ms) of one training step (forward, backward, optimizer step) at the proxy's batch size,
    after ``warmup`` steps: the S of EfficientNetV2's training-aware reward. Synchronizes after every step,
    so it is a measurement, not the training loop; it changes the model's weights."""
    device = data.device
    cuda = device.type == "cuda"
    model.to(device, memory_format=LAYOUT).train()
    optimizer = make_optimizer(model, config, fused=cuda)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    generator = torch.Generator(device).manual_seed(seed)
    mean, std = stats_on(device, data.mean, data.std)
    n = len(data.train)
    batch = min(config.batch_size, n)
    times = []
    with measuring(device):  # trials sharing the GPU take turns to measure
        for step in range(warmup + steps):
            index = torch.randint(0, n, (batch,), device=device, generator=generator)
            x = normalize(augment(data.train.images[index], padding=config.crop_padding, flip=data.flip,
                                  generator=generator), mean, std).contiguous(memory_format=LAYOUT)
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with mixed_precision(device):
                loss = criterion(model(x).float(), data.train.labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if cuda:
                torch.cuda.synchronize(device)
            if step >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure_accuracy(model: nn.Module, data: ProxyData, config: ProxySettings, *, seed: int = 0) -> float:
    """Accuracy on ``data.eval`` as a proxy reports it: batch-norm statistics first re-estimated on
    ``config.bn_recalibration_batches`` training batches when that is > 0."""
    if config.bn_recalibration_batches > 0:
        recalibrate_batchnorm(model, data, batches=config.bn_recalibration_batches, batch_size=config.batch_size,
                              seed=seed)
    return evaluate_accuracy(model, data, batch_size=config.eval_batch_size)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: ProxyData, *, batches: int, batch_size: int, seed: int = 0) -> None:
    """Re-estimate every batch-norm layer's running mean and variance on ``batches`` training batches
    (a cumulative average, no gradient, no augmentation), as Once-for-All and TuNAS do before measuring
    a network. A short run's running averages (momentum 0.1 over a few dozen steps) still remember the
    first, untrained steps; evaluation with them can score a learning network below chance."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m, m.momentum) for m in norms]
    was_training = model.training
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
        norm.train()
    device = data.device
    mean, std = stats_on(device, data.mean, data.std)
    generator = torch.Generator(device).manual_seed(seed + 1)
    n = len(data.train)
    batch = min(batch_size, n)
    order = torch.randperm(n, device=device, generator=generator)
    try:
        for i in range(min(batches, max(1, n // batch))):
            index = order[i * batch:(i + 1) * batch]
            images = data.train.images[index]
            x = normalize(images.contiguous(memory_format=LAYOUT), mean, std)
            with mixed_precision(device):
                model(x)
    finally:
        for norm, momentum in saved:
            norm.momentum = momentum
        model.train(was_training)


@torch.inference_mode()
def evaluate_accuracy(model: nn.Module, data: ProxyData, *, batch_size: int = 1024) -> float:
    """Top-1 accuracy on ``data.eval`` (no augmentation)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=data.device)
    mean, std = stats_on(data.device, data.mean, data.std)
    for images, labels in zip(data.eval.images.split(batch_size), data.eval.labels.split(batch_size)):
        x = normalize(images.contiguous(memory_format=LAYOUT), mean, std)
        with mixed_precision(data.device):
            logits = model(x)
        correct += (logits.argmax(1) == labels).sum()
    return correct.item() / max(1, len(data.eval))


@contextlib.contextmanager
def measuring(device: torch.device) -> Iterator[None]:
    """Exclusive use of ``device`` for a timing (batch-1 latency, a training step's time): trials sharing a
    GPU (``--gpus-per-trial 0.25``) take turns, so no two measurements overlap. The other trials' training
    still runs beside a measurement; a latency to rank networks by belongs on a dedicated device.
    A no-op on a CPU, where each trial has its own cores."""
    if device.type != "cuda":
        yield
        return
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", index))
    with exclusive(Path(tempfile.gettempdir()) / f"nas-measure-{uuid}.lock"):
        yield


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the block (waits for the holder; released if its process dies)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def release_memory(device: torch.device) -> None:
    """Collect garbage and hand cached CUDA blocks back, so the next trial starts clean."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def _cudnn_benchmark(enabled: bool) -> Iterator[None]:
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
