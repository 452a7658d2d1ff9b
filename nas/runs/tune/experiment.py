"""One Tune experiment: the scheduler, the run's logs, the status line."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import Searcher

from nas.core.atomic import write_atomic
from nas.core.errors import NasError
from nas.runs.progress import Progress
from nas.runs.tune.trial import RANKED_BY, trainable
from nas.settings import Resources, SchedulerSettings


def scheduler_for(settings: SchedulerSettings, max_epochs: int, store: Any = None) -> Any:
    """The early-stopping scheduler for ``settings`` (None: every trial trains to the end): Ray Tune's own,
    or MOASHA, whose rungs start with what the run in ``store`` recorded (a resumed run)."""
    if settings.kind == "none":
        return None
    if settings.kind == "moasha":
        from nas.runs.tune.moasha import MOASHAScheduler

        return MOASHAScheduler.from_store(store, max_t=max_epochs, grace_period=settings.grace_period,
                                          reduction_factor=settings.reduction_factor) if store is not None else \
            MOASHAScheduler(max_t=max_epochs, grace_period=settings.grace_period,
                            reduction_factor=settings.reduction_factor)
    from ray.tune.schedulers import AsyncHyperBandScheduler

    brackets = 1
    if settings.kind == "hyperband":  # HyperBand's bracket count, floor(log_eta(max / grace)) + 1
        brackets = int(math.log(max(1, max_epochs / settings.grace_period)) / math.log(settings.reduction_factor)
                       + 1e-9) + 1
    return AsyncHyperBandScheduler(time_attr="training_iteration", metric=RANKED_BY, mode="max", max_t=max_epochs,
                                   grace_period=settings.grace_period, reduction_factor=settings.reduction_factor,
                                   brackets=brackets)


def run_experiment(searcher: Searcher, task: Any, *, run_dir: Path, num_samples: int, resources: Resources,
                   callbacks: list | None = None, scheduler: Any = None, evaluator: Any = None,
                   time_budget: float | None = None, report_epochs: bool = False) -> None:
    """One Tune experiment whose logs go to ``tune-N`` (N counts attempts, so a resumed run keeps the old
    logs) in the run folder, or in ``resources.tune_storage`` when given (shared storage for many nodes).

    ``callbacks`` are Tune's (a tracker's logger among them). Trials report every epoch when a scheduler
    needs it or ``report_epochs`` asks (a tracker draws learning curves); otherwise only their end."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress line is the display; Tune stays quiet
    storage = resources.tune_storage or str(run_dir.resolve())
    attempt = next_attempt(run_dir)
    name = f"tune-{attempt}" if resources.tune_storage is None else f"{run_dir.name}-tune-{attempt}"
    tuner = tune.Tuner(
        trainable(task, resources, evaluator, epochs_reported=scheduler is not None or report_epochs),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=resources.concurrency, reuse_actors=True,
                                    time_budget_s=time_budget),
        run_config=tune.RunConfig(name=name, storage_path=storage,
                                  failure_config=tune.FailureConfig(max_failures=2), verbose=0,
                                  callbacks=callbacks or []),
    )
    tuner.fit()
    fatal = getattr(searcher, "fatal", None)
    if fatal is not None:
        raise fatal


STORAGE_TIMEOUT_S = 30.0
"""How long to wait for --tune-storage to answer before saying it cannot be reached (object storage clients
retry for minutes)."""


def check_storage(uri: str | None) -> None:
    """Fail in bounded time, in one line, when ``--tune-storage`` cannot be reached or written, before the
    run folder exists and before any trial starts (Tune would fail later, with a pyarrow traceback). The same
    resolution as Tune's (pyarrow's file systems); the folder is created as Tune would create it."""
    if uri is None:
        return
    import threading

    import pyarrow
    import pyarrow.fs

    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            local = "://" not in uri  # a folder, as Tune resolves one
            filesystem, path = pyarrow.fs.FileSystem.from_uri(str(Path(uri).expanduser().resolve()) if local else uri)
            filesystem.create_dir(path, recursive=True)
            if filesystem.get_file_info(path).type != pyarrow.fs.FileType.Directory:
                raise NotADirectoryError("it is not a folder")
            outcome.append(None)
        except (OSError, ValueError, NotImplementedError, pyarrow.ArrowException) as error:
            outcome.append(error)

    worker = threading.Thread(target=probe, daemon=True)  # a hung client must not hold the driver
    worker.start()
    worker.join(STORAGE_TIMEOUT_S)
    if not outcome:
        raise NasError(f"--tune-storage {uri}: no answer within {STORAGE_TIMEOUT_S:g} s; check the URI and "
                       "that this machine reaches it")
    if outcome[0] is not None:
        reason = " ".join(str(outcome[0]).split()) or type(outcome[0]).__name__
        raise NasError(f"--tune-storage {uri}: cannot use it: {reason}")


ATTEMPTS = "tune-attempts"
"""In the run folder: how many Tune experiments the run has started. Counted here, not from the experiments'
folders, which live in --tune-storage (shared or object storage) when it is given: a resumed run gets a
new experiment name there too, instead of writing into the first one's."""


def next_attempt(run_dir: Path) -> int:
    """The number of this experiment (0, 1, ...), recorded before it starts."""
    try:
        counted = int((run_dir / ATTEMPTS).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        counted = 0
    local = sum(1 for p in run_dir.glob("tune-*") if p.is_dir())  # runs from before the counter
    attempt = max(counted, local)
    write_atomic(run_dir / ATTEMPTS, f"{attempt + 1}\n")
    return attempt


class ProgressCallback(tune.Callback):
    """Keeps the running count current and prints the status line between trial completions."""

    def __init__(self, progress: Progress) -> None:
        self.progress: Progress | None = progress

    def __getstate__(self) -> dict[str, Any]:
        return {"progress": None}  # Tune snapshots its callbacks; the terminal stays with this process

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.progress is None:
            return
        self.progress.running = sum(1 for t in trials if t.status == "RUNNING")
        self.progress.maybe_print()
