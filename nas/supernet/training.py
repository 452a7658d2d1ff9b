"""Training the supernet once, on the proxy's data and schedule, resumably.

Each step trains several sub-networks on the same batch and sums their gradients: the sandwich rule
(the largest, the smallest and ``random_per_step`` random architectures: every width and depth gets
signal) or ``random_per_step`` uniform ones. During the first ``warmup_fraction`` of the steps the
largest network is trained alone with a probability that falls from 1 to 0, as TuNAS force-enables
every op and filter early, so the shared weights start from a network that has learned something.
With ``targets="largest"`` the sub-networks after the largest learn its predictions on the same batch
instead of the labels (BigNAS's in-place distillation: a richer signal for the small ones).

Everything needed to continue is checkpointed atomically every ``checkpoint_every`` steps
(``checkpoint.pt``: weights, optimizer, the batch and architecture random states, the step), and
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

from nas import data
from nas.atomic import write_atomic
from nas.data import augment, normalize, stats_on
from nas.settings import ProxySettings, SupernetSettings
from nas.space import SearchSpace
from nas.supernet.model import Supernet, largest_and_smallest
from nas.train import LAYOUT, _lr_schedule, make_optimizer

CHECKPOINT, WEIGHTS, PROGRESS = "checkpoint.pt", "supernet.pt", "progress.json"

Progress = Callable[[int, int, float], None]
"""``on_progress(step, steps, loss)`` after every step."""


def supernet_for(space: SearchSpace, proxy: ProxySettings, settings: SupernetSettings, *, num_classes: int,
                 in_channels: int) -> Supernet:
    return Supernet(space, num_classes=num_classes, in_channels=in_channels, stem_stride=proxy.stem_stride,
                    drop_downsamples=proxy.drop_downsamples, kernel_sharing=settings.kernel_sharing)


def train(space: SearchSpace, proxy: ProxySettings, settings: SupernetSettings, folder: str | Path, *,
          seed: int = 0, device: str | torch.device = "cpu", on_progress: Progress | None = None) -> Path:
    """Train (or continue training) the supernet in ``folder``; returns the path of its final weights."""
    folder = Path(folder)
    if (folder / WEIGHTS).exists():
        return folder / WEIGHTS
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    dataset = data.for_proxy(proxy, seed=seed, device=device)
    torch.manual_seed(seed)
    net = supernet_for(space, proxy, settings, num_classes=dataset.num_classes,
                       in_channels=dataset.channels).to(device, memory_format=LAYOUT)
    steps_per_epoch = max(1, len(dataset.train) // min(proxy.batch_size, len(dataset.train)))
    steps = settings.epochs * steps_per_epoch
    schedule_settings = proxy.changed(epochs=settings.epochs)
    schedule = _lr_schedule(schedule_settings, steps_per_epoch)
    optimizer = make_optimizer(net, schedule_settings)
    criterion = nn.CrossEntropyLoss(label_smoothing=proxy.label_smoothing)
    batches = torch.Generator(device).manual_seed(seed)
    choices_rng = np.random.default_rng(seed)
    largest, smallest = largest_and_smallest(space)
    step, order = 0, None
    if (folder / CHECKPOINT).exists():
        state = torch.load(folder / CHECKPOINT, map_location=device, weights_only=True)
        net.load_state_dict(state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        batches.set_state(state["batches"])
        choices_rng.bit_generator.state = json.loads(state["choices"])
        step = int(state["step"])
        if step % steps_per_epoch:  # stopped inside an epoch: its batch order goes on
            order = torch.load(io.BytesIO(state["order"]), weights_only=True).to(device)
    mean, std = stats_on(device, dataset.mean, dataset.std)
    batch = min(proxy.batch_size, len(dataset.train))
    started, loss_value = time.time(), float("nan")
    while step < steps:
        i = step % steps_per_epoch
        if i == 0:
            order = _epoch_order(dataset, batches, device)
        index = order[i * batch:(i + 1) * batch]
        x = normalize(augment(dataset.train.images[index], padding=proxy.crop_padding, flip=dataset.flip,
                              generator=batches), mean, std).contiguous(memory_format=LAYOUT)
        y = dataset.train.labels[index]
        archs = _sample(space, settings, largest, smallest, step / steps, choices_rng)
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        optimizer.zero_grad(set_to_none=True)
        loss_value = accumulate_gradients(net, x, y, archs, criterion,
                                          teacher=largest if settings.targets == "largest" else None)
        optimizer.step()
        step += 1
        if on_progress is not None:
            on_progress(step, steps, loss_value)
        if step % settings.checkpoint_every == 0 or step == steps:
            _checkpoint(folder, net, optimizer, batches, choices_rng, step, order)
            write_atomic(folder / PROGRESS, json.dumps({"step": step, "steps": steps, "loss": loss_value,
                                                        "seconds": time.time() - started}) + "\n")
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    write_atomic(folder / WEIGHTS, buffer.getvalue(), durable=True)
    return folder / WEIGHTS


def accumulate_gradients(net: Supernet, x: torch.Tensor, y: torch.Tensor, archs: list[Any],
                         criterion: nn.Module, *, teacher: Any = None) -> float:
    """One step's gradients: the mean of the sub-networks' losses, one backward pass each (only one graph
    alive at a time). With ``teacher`` (an architecture among ``archs``, trained on the labels), the ones
    after it learn its softmax on this batch instead of the labels. Returns the mean loss."""
    total, targets = 0.0, None
    for arch in archs:
        logits = net(x, net.proxy_form(arch))
        loss = (criterion(logits, y) if targets is None else F.cross_entropy(logits, targets)) / len(archs)
        loss.backward()
        total += float(loss.detach())
        if arch is teacher:
            targets = torch.softmax(logits.detach(), dim=1)
    return total


def train_from_text(space_text: str, proxy_json: str, settings_json: str, folder: str, seed: int) -> str:
    """:func:`train` with plain-data arguments, on the best device there is (what a Ray task runs)."""
    from nas import space as spaces
    from nas.train import resolve_device

    torch.set_num_threads(max(1, torch.get_num_threads()))
    weights = train(spaces.loads(space_text), ProxySettings.model_validate_json(proxy_json),
                    SupernetSettings.model_validate_json(settings_json), folder, seed=seed, device=resolve_device("auto"))
    return str(weights)


def _epoch_order(dataset: data.ProxyData, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randperm(len(dataset.train), device=device, generator=generator)


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


def _checkpoint(folder: Path, net: Supernet, optimizer: torch.optim.Optimizer, batches: torch.Generator,
                rng: np.random.Generator, step: int, order: torch.Tensor) -> None:
    order_bytes = io.BytesIO()
    torch.save(order.cpu(), order_bytes)
    buffer = io.BytesIO()
    torch.save({"weights": net.state_dict(), "optimizer": optimizer.state_dict(), "batches": batches.get_state(),
                "choices": json.dumps(rng.bit_generator.state), "step": step, "order": order_bytes.getvalue()},
               buffer)
    write_atomic(folder / CHECKPOINT, buffer.getvalue(), durable=True)


def progress(folder: str | Path) -> dict[str, Any] | None:
    """The last progress a training wrote (``step``, ``steps``, ``loss``, ``seconds``), or None."""
    try:
        return json.loads((Path(folder) / PROGRESS).read_text())
    except (OSError, ValueError):
        return None


__all__ = ["CHECKPOINT", "PROGRESS", "WEIGHTS", "accumulate_gradients", "progress", "supernet_for", "train",
           "train_from_text"]
