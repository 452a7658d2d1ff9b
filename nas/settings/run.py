"""Where and how a run runs: its folder, the resources per trial, early stopping, the supernet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from nas.settings.base import Finite, Settings, flag

# ---------------------------------------------------------------- where trials run


class Resources(Settings):
    """How wide a run is and where its trials run; a resumed run may change these."""

    concurrency: int = flag(2, "trials in flight", ge=1, le=4096)
    cpus_per_trial: Finite = flag(1.0, "CPUs per trial", gt=0, le=4096)
    gpus_per_trial: Finite = flag(0.0, "GPU fraction per trial, e.g. 0.25 runs four trials per GPU", ge=0, le=64)
    address: str | None = flag(None, "Ray cluster to join: host:port, or 'auto' for the one this machine "
                               "belongs to (default: $RAY_ADDRESS if set, else Ray started in-process)")
    tune_storage: str | None = flag(None, "where Ray Tune writes its trial logs: a folder every node sees, or a "
                                    "cloud URI, for a multi-node run (default: the run folder)")


# ---------------------------------------------------------------- a run

_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _check_run_name(name: str | None) -> str | None:
    """A run name is one folder name: ``--name ../../x`` must not write outside ``--storage``."""
    if name is not None and (not _RUN_NAME.fullmatch(name) or name in (".", "..")):
        raise ValueError("must be a single folder name: letters, digits, '.', '_' and '-', starting with a "
                         "letter or digit, at most 128 characters")
    return name


RunName = Annotated[str | None, AfterValidator(_check_run_name)]


class RunPlace(Settings):
    """Where a run folder is: ``STORAGE/NAME``."""

    name: RunName = flag(None, "run name; the run folder is STORAGE/NAME (default: the command and the time, "
                         "e.g. evolution-20261123-101500)")
    storage: str = flag("runs", "folder of run folders", min_length=1)

    def run_dir(self) -> Path:
        return Path(self.storage) / (self.name or "default")


def _check_device(name: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d{1,2})?", name):
        raise ValueError("must be auto, cpu, cuda or cuda:N")
    return name


Device = Annotated[str, AfterValidator(_check_device)]


class SchedulerSettings(Settings):
    """Early stopping by one of Ray Tune's schedulers: trials report accuracy after every epoch, and the
    weak ones stop after ``grace_period`` epochs while the promising ones train to the proxy's epochs.

    ``asha`` is Tune's ``ASHAScheduler`` (one bracket), which ranks trials by their reward; ``moasha`` is
    multi-objective ASHA (:mod:`nas.runs.tune.moasha`), which ranks them at each rung by non-dominated
    sorting on (accuracy, MACs) with crowding distance; ``hyperband`` is Tune's asynchronous HyperBand
    (``AsyncHyperBandScheduler`` with HyperBand's several brackets): the synchronous
    ``HyperBandScheduler`` pauses trials to resume them later, and a proxy trial of a few epochs keeps
    no checkpoint to resume from. ``stopped`` says what the controller is told of a stopped trial: its
    last epoch's reward (``partial``, a low-fidelity result it may learn from) or a failure."""

    kind: Literal["none", "asha", "moasha", "hyperband"] = flag(
        "none", "early stopping (Ray Tune): none, asha, moasha (multi-objective asha) or hyperband",
        flags=("--scheduler",))
    grace_period: int = flag(1, "epochs every trial trains before it may be stopped", ge=1, le=10_000)
    reduction_factor: Finite = flag(3.0, "keep 1 in this many trials at each rung", gt=1, le=100)
    stopped: Literal["partial", "failure"] = flag("partial", "what a controller is told of a stopped trial: "
                                                  "its last epoch's reward (partial) or a failure",
                                                  flags=("--tell-stopped",))


class SupernetSettings(Settings):
    """``--evaluator supernet``: one weight-sharing network trained once over the whole space, from which
    each trial takes its architecture's weights (see docs/supernet.md)."""

    epochs: int = flag(10, "epochs of supernet training over the proxy's data", flags=("--supernet-epochs",),
                       ge=1, le=10_000)
    sampling: Literal["sandwich", "uniform"] = flag("sandwich", "sub-networks per step: the largest, the smallest "
                                                    "and random ones (sandwich), or random ones (uniform)",
                                                    flags=("--supernet-sampling",))
    targets: Literal["labels", "largest"] = flag("labels", "what the sandwich rule's other sub-networks learn "
                                                 "from: the labels, or the largest network's predictions on the "
                                                 "same batch (in-place distillation, BigNAS)",
                                                 flags=("--supernet-targets",))
    random_per_step: int = Field(2, ge=1, le=64)
    warmup_fraction: Finite = Field(0.2, ge=0, lt=1)
    """The first part of training in which the largest network is trained with a probability falling from 1
    to 0 (TuNAS's warm-up: every op and filter force-enabled early)."""
    kernel_sharing: Literal["crop", "separate"] = flag("crop", "kernels share weights (centre crop of the "
                                                       "largest) or keep their own", flags=("--kernel-sharing",))
    bn_batches: int = flag(8, "training batches on which each candidate's batch-norm statistics are re-estimated "
                           "(a network taken from the supernet has none of its own)",
                           flags=("--supernet-bn-batches",), ge=1, le=1000)
    checkpoint_every: int = Field(50, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _distillation_needs_a_teacher(self) -> SupernetSettings:
        if self.targets == "largest" and self.sampling != "sandwich":
            raise ValueError("targets 'largest' distils from the sandwich rule's largest network: it needs "
                             "sampling 'sandwich'")
        return self


RESUMABLE = ("trials", "progress_seconds", "time_budget", "resources", "tracker", "tracker_uri")
"""What a resumed run may change: how many trials it ends with, how often and where it reports (the tracker),
and where and how wide it runs. Everything else is the run's identity."""
