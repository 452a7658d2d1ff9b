"""Training the supernet once, on the proxy's data and schedule, resumably.

Each step trains several sub-networks on the same batch and sums their gradients: the sandwich rule
(the largest, the smallest and ``random_per_step`` random architectures: every width and depth gets
signal) or ``random_per_step`` uniform ones. During the first ``warmup_fraction`` of the steps the
largest network is trained alone with a probability that falls from 1 to 0, as TuNAS force-enables
every op and filter early, so the shared weights start from a network that has learned something.
With ``targets="largest"`` the sub-networks after the largest learn its predictions on the same batch
instead of the labels (BigNAS's in-place distillation: a richer signal for the small ones).

Everything needed to continue is checkpointed atomically every ``checkpoint_every`` steps
(``checkpoint.pt``: the trainer's state — weights, optimizer, batch order and random states, the step — and
the architecture draws' random state), and
progress goes to ``progress.json`` (the dashboard shows it). A training killed at any moment resumes
from its last checkpoint and, on a CPU, ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.core.atomic import write_atomic
from nas.core.errors import NasError
from nas.network.supernet import Supernet, largest_and_smallest
from nas.settings import ProxySettings, SupernetSettings
from nas.space import SearchSpace
from nas.training import data
from nas.training.trainer import Trainer, TrainingFailed, mixed_precision, release_memory

CHECKPOINT, WEIGHTS, PROGRESS = "checkpoint.pt", "supernet.pt", "progress.json"

class SupernetError(NasError):
    """The supernet cannot be trained as asked (out of memory, a diverging loss): one line, and what to change."""


Progress = Callable[[int, int, float], None]
"""``on_progress(step, steps, loss)`` after every step."""


def supernet_for(space: SearchSpace, proxy: ProxySettings, settings: SupernetSettings, *, num_classes: int,
                 in_channels: int) -> Supernet:
    return Supernet(space, num_classes=num_classes, in_channels=in_channels, stem_stride=proxy.stem_stride,
                    drop_downsamples=proxy.drop_downsamples, kernel_sharing=settings.kernel_sharing)


def train(space: SearchSpace, proxy: ProxySettings, settings: SupernetSettings, folder: str | Path, *,
          seed: int = 0, device: str | torch.device = "cpu", on_progress: Progress | None = None) -> Path:
    """Train (or continue training) the supernet in ``folder``; returns the path of its final weights.

    The loop is :class:`~nas.training.trainer.Trainer`'s (batches, schedule, optimizer, mixed precision,
    non-finite checks); a step's gradients are the sub-networks' (:class:`SandwichStep`)."""
    folder = Path(folder)
    if (folder / WEIGHTS).exists():
        return folder / WEIGHTS
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    dataset = data.for_proxy(proxy, seed=seed, device=device)
    torch.manual_seed(seed)
    net = supernet_for(space, proxy, settings, num_classes=dataset.num_classes, in_channels=dataset.channels)
    step_loss = SandwichStep(space, settings, np.random.default_rng(seed), proxy.label_smoothing)
    trainer = Trainer(net, dataset, proxy.changed(epochs=settings.epochs), seed=seed, step_loss=step_loss)
    step_loss.steps = trainer.steps
    if (folder / CHECKPOINT).exists():
        state = torch.load(folder / CHECKPOINT, map_location=device, weights_only=True)
        trainer.load_state_dict(state["trainer"])
        step_loss.rng.bit_generator.state = json.loads(state["choices"])
    started = time.time()

    def after_step(trainer: Trainer, loss: torch.Tensor) -> None:
        if on_progress is not None:
            on_progress(trainer.step, trainer.steps, float(loss))
        if trainer.step % settings.checkpoint_every == 0 or trainer.step == trainer.steps:
            buffer = io.BytesIO()
            torch.save({"trainer": trainer.state_dict(), "choices": json.dumps(step_loss.rng.bit_generator.state)},
                       buffer)
            write_atomic(folder / CHECKPOINT, buffer.getvalue(), durable=True)
            write_atomic(folder / PROGRESS, json.dumps({"step": trainer.step, "steps": trainer.steps,
                                                        "loss": float(loss), "seconds": time.time() - started}) + "\n")

    try:
        while trainer.epoch < settings.epochs:
            trainer.run_epoch(on_step=after_step)
    except torch.OutOfMemoryError:
        release_memory(device)
        raise SupernetError(f"the supernet ran out of {device.type.upper()} memory at step {trainer.step} of "
                            f"{trainer.steps}; lower the proxy's --batch-size (its last checkpoint is kept: the "
                            "same command continues from it)") from None
    except TrainingFailed as failed:
        raise SupernetError(f"supernet training stopped: {failed.reason}; lower the proxy's --lr") from None
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    write_atomic(folder / WEIGHTS, buffer.getvalue(), durable=True)
    return folder / WEIGHTS


class SandwichStep:
    """A supernet step's gradients (a :data:`~nas.training.trainer.StepLoss`): the sub-networks of
    :func:`_sample`, drawn from ``rng`` (saved with the checkpoint), each trained on the batch."""

    def __init__(self, space: SearchSpace, settings: SupernetSettings, rng: np.random.Generator,
                 label_smoothing: float) -> None:
        self.space, self.settings, self.rng = space, settings, rng
        self.largest, self.smallest = largest_and_smallest(space)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.steps = 1

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int,
                 scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
        archs = _sample(self.space, self.settings, self.largest, self.smallest, step / self.steps, self.rng)
        teacher = self.largest if self.settings.targets == "largest" else None
        return accumulate_gradients(net, x, y, archs, self.criterion, teacher=teacher, scaler=scaler)


def accumulate_gradients(net: Supernet, x: torch.Tensor, y: torch.Tensor, archs: list[Any],
                         criterion: nn.Module, *, teacher: Any = None,
                         scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """One step's gradients: the mean of the sub-networks' losses, one backward pass each (only one graph
    alive at a time). With ``teacher`` (an architecture among ``archs``, trained on the labels), the ones
    after it learn its softmax on this batch instead of the labels. Returns the mean loss, detached and on
    the device (no host sync)."""
    total, targets = torch.zeros((), device=x.device), None
    for arch in archs:
        with mixed_precision(x.device):
            logits = net(x, net.proxy_form(arch)).float()
        loss = (criterion(logits, y) if targets is None else F.cross_entropy(logits, targets)) / len(archs)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        total += loss.detach()
        if arch is teacher:
            targets = torch.softmax(logits.detach(), dim=1)
    return total


def train_from_text(space_text: str, proxy_json: str, settings_json: str, folder: str, seed: int) -> str:
    """:func:`train` with plain-data arguments, on the best device there is (what a Ray task runs)."""
    from nas import space as spaces
    from nas.training.trainer import resolve_device

    torch.set_num_threads(max(1, torch.get_num_threads()))
    weights = train(spaces.loads(space_text), ProxySettings.model_validate_json(proxy_json),
                    SupernetSettings.model_validate_json(settings_json), folder, seed=seed, device=resolve_device("auto"))
    return str(weights)


def _sample(space: SearchSpace, settings: SupernetSettings, largest: Any, smallest: Any, progress: float,
            rng: np.random.Generator) -> list[Any]:
    """The sub-networks of one step (see the module docstring). The random draws happen in the same order
    whatever is chosen, so a resumed training draws what an uninterrupted one does."""
    warm = settings.warmup_fraction > 0 and progress < settings.warmup_fraction
    force = rng.random() < (1 - progress / settings.warmup_fraction) if warm else False
    randoms = [space.decode(space.sample_choices(rng)) for _ in range(settings.random_per_step)]
    if force:
        return [largest]
    if settings.sampling == "sandwich":
        return [largest, smallest, *randoms]
    return randoms


def progress(folder: str | Path) -> dict[str, Any] | None:
    """The last progress a training wrote (``step``, ``steps``, ``loss``, ``seconds``), or None."""
    try:
        return json.loads((Path(folder) / PROGRESS).read_text())
    except (OSError, ValueError):
        return None


__all__ = ["CHECKPOINT", "PROGRESS", "WEIGHTS", "accumulate_gradients", "progress", "supernet_for", "train",
           "train_from_text"]
