"""The trainable: one trial in a Ray worker.

The trainable runs in Ray workers: it calls :func:`nas.training.evaluate.evaluate` and
reports the :class:`~nas.core.result.TrialResult` fields; it never raises for a
trial's own fault, so a NaN, an OOM or a bad architecture is a stored failure,
not a lost trial.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from typing import Any

from ray import tune

from nas.core.arch import Architecture
from nas.core.result import TrialResult
from nas.settings import Resources

RANKED_BY = "objective"
"""The metric Tune's searchers and schedulers rank trials by: the trial's reward, NaN when it has none
(a failure). A failed trial can have reported epochs first, and Tune's schedulers do arithmetic on
whatever their metric holds; NaN is what ASHA's rung cut-offs leave out (``numpy.nanpercentile``), so a
failure neither stops nor promotes anyone. ``reward`` itself stays ``None`` for a failure, as stored."""


def _as_result(arch: str, result: dict[str, Any] | None, error: bool) -> TrialResult:
    status = (result or {}).get("status")
    if not error and status in ("ok", "failed", "stopped"):
        return TrialResult.from_dict(result)
    if error and status == "failed" and is_fatal_device_error(str(result.get("error"))):
        return TrialResult.from_dict(result)  # a worker that ended itself after a fatal CUDA error reported why
    return TrialResult.failure(arch, "the trial's worker crashed or was lost after all retries "
                                     "(see the Ray Tune log in the run folder)")


# ---------------------------------------------------------------- the trainable


def run_trial(config: dict[str, Any], task: Any = None, evaluator: Any = None, epochs_reported: bool = True,
              gpu_share: float = 0.0) -> None:
    """One Ray trial: evaluate ``config["arch"]`` on ``task`` (with ``evaluator``, by default the stand-alone
    :func:`nas.training.evaluate.evaluate`) and report the TrialResult's fields.

    ``epochs_reported``: every epoch but the last is measured and reported as a trial stopped there (what an
    early-stopping scheduler needs); without a scheduler only the end is measured. ``gpu_share``: the
    fraction of a GPU the trial was granted, which caps what its process may allocate there, so a trial
    runs out of memory by its own size, not by its neighbours'."""
    from nas.training.evaluate import evaluate  # imported in the worker, not in the driver's module import

    evaluator = evaluator or evaluate
    text = config["arch"]
    node = _node_name()
    try:
        task = on_granted_device(for_candidate(task, config))
        _cap_gpu_memory(task, gpu_share)
        report = (lambda partial: _report(partial, node)) if epochs_reported else None
        result = evaluator(Architecture.parse(text), task, on_epoch=report)
    except Exception as error:  # noqa: BLE001 - a trial's fault must be a stored failure, never a lost trial
        result = TrialResult.failure(text, f"{type(error).__name__}: {error}")
    _report(result, node)
    _release(task)
    if result.error is not None and is_fatal_device_error(result.error):
        # The CUDA context of this process is broken for good (every later trial on it would fail at once):
        # the worker ends, and Ray starts a fresh one for the next trial. The failure is stored as reported.
        os._exit(3)


FATAL_DEVICE_ERRORS = ("illegal memory access", "device-side assert", "unspecified launch failure",
                       "an illegal instruction", "misaligned address", "CUDA error: unknown error")
"""CUDA errors after which a process's context stays unusable (out of memory is not one of them)."""


def is_fatal_device_error(reason: str) -> bool:
    return any(marker in reason for marker in FATAL_DEVICE_ERRORS)


def _cap_gpu_memory(task: Any, gpu_share: float) -> None:
    if not 0 < gpu_share < 1 or not str(task.device).startswith("cuda"):
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(gpu_share * 0.95)  # a margin for the CUDA context


def _release(task: Any) -> None:
    """Hand cached GPU memory back after every trial, not only failed ones: a reused worker would otherwise
    keep its largest trial's peak reserved while its neighbours on the GPU run short."""
    if str(task.device).startswith("cuda"):
        import torch

        from nas.training.trainer import release_memory

        release_memory(torch.device("cuda"))


def _report(result: TrialResult, node: str) -> None:
    ranked = result.reward if result.reward is not None else math.nan
    tune.report({**result.to_dict(), "node": node, RANKED_BY: ranked})


def for_candidate(task: Any, config: dict[str, Any]) -> Any:
    """``task`` as a fixed candidate asks (:class:`~nas.core.result.Candidate`): its own proxy changes, seed and
    cost resolution; a search's own proposals change nothing."""
    if config.get("proxy_changes"):
        task = task.with_proxy(**config["proxy_changes"])
    changes = {k: config[k] for k in ("seed", "target_resolution") if config.get(k) is not None}
    return dataclasses.replace(task, **changes) if changes else task


def on_granted_device(task: Any) -> Any:
    """``task`` on the device Ray granted the trial. With no GPU granted, the CPU: ``auto`` would pick a GPU
    that Ray leaves visible and count nothing for it, so every "CPU" trial would share GPU 0 behind the
    scheduler's back. With a GPU granted, CUDA (Ray makes the granted GPUs the only visible ones); a worker
    where CUDA then does not work fails the trial saying so, instead of training on the CPU unnoticed.
    A device the user named is kept."""
    if task.device != "auto":
        return task
    try:
        import ray

        granted = ray.get_gpu_ids() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - outside a Ray worker
        granted = None
    if granted is None:
        return task
    return dataclasses.replace(task, device="cuda" if granted else "cpu")


def _node_name() -> str:
    try:
        import ray
        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray
        return socket.gethostname()


def trainable(task: Any, resources: Resources, evaluator: Any = None, *, epochs_reported: bool = True) -> Any:
    """The trainable with its resources; ``task`` goes to the object store once (``with_parameters``)."""
    return tune.with_resources(tune.with_parameters(run_trial, task=task, evaluator=evaluator,
                                                    epochs_reported=epochs_reported,
                                                    gpu_share=resources.gpus_per_trial),
                               {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
