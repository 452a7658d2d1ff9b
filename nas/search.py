"""The search driver behind ``scripts/search.py`` and ``nas search``: one run folder, one store, Ray Tune.

A run lives in ``STORAGE/NAME`` and holds ``trials.db`` (every trial, the
controller's state, the run's settings) and Tune's own logs. ``--resume`` reads
the settings and state back, re-runs only the trials that were in flight, and
stops at exactly the requested number of finished trials.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ray import tune

import controllers
from nas import reward as rewards
from nas import space as spaces
from nas.result import Candidate, TrialResult
from nas.store import Store, StoreError

DEFAULT_SPACE = "search_spaces/mnasnet.yaml"


class SearchError(Exception):
    """A search that cannot start as asked (bad flags, a run folder in the way, no Ray cluster)."""


@dataclass(frozen=True)
class SearchConfig:
    """Everything a run needs; stored in the run's database so ``--resume`` can rebuild it."""

    space: str = DEFAULT_SPACE
    controller: str = "evolution"
    trials: int = 16
    concurrency: int = 2
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    data: str = "fashion_mnist"
    epochs: int | None = None
    batch_size: int | None = None
    target_macs: float | None = None
    w: float | None = None
    name: str | None = None
    storage: str = "runs"
    seed: int = 0
    address: str | None = None
    max_train_samples: int | None = None
    max_val_samples: int | None = None
    resolution: int | None = None
    progress_seconds: float = 5.0
    controller_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def run_dir(self) -> Path:
        return Path(self.storage) / (self.name or "default")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# Flags a resumed run may change: where and how wide it runs, and how many trials it ends with.
RESUMABLE_OVERRIDES = ("trials", "concurrency", "gpus_per_trial", "cpus_per_trial", "address", "progress_seconds")


def make_task(space: spaces.SearchSpace, config: SearchConfig) -> Any:
    """The evaluator's task for this run (overrides of the space's proxy and reward blocks)."""
    from nas.evaluate import Task

    dataset, data_dir = resolve_data(config.data)
    overrides = {"dataset": dataset, "data_dir": data_dir, "epochs": config.epochs, "batch_size": config.batch_size,
                 "reward_target": config.target_macs, "w": config.w, "seed": config.seed,
                 "max_train_samples": config.max_train_samples, "max_val_samples": config.max_val_samples,
                 "resolution": config.resolution}
    return Task.from_space(space, **{k: v for k, v in overrides.items() if v is not None})


def check_data(task: Any) -> None:
    """Load the proxy data once in the driver: a missing or broken dataset stops the search here with one
    clear message, instead of failing every trial alike (trials never raise)."""
    from nas import data

    data.load(task.dataset, root=task.data_dir, resolution=task.resolution, val_size=task.val_size,
              seed=task.seed, max_train=task.max_train_samples, max_eval=task.max_val_samples)


def resolve_data(spec: str) -> tuple[str, str | None]:
    """``--data``: a dataset name, or a folder holding Fashion-MNIST IDX files, CIFAR-10 or an ImageFolder tree."""
    from nas.data import DATASETS, DatasetError

    if spec in DATASETS:
        return spec, None
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"--data {spec!r} is neither a dataset name ({', '.join(DATASETS)}) nor a folder")
    if any(folder.glob("train-images-idx3-ubyte*")):
        return "fashion_mnist", str(folder)
    if (folder / "cifar-10-batches-py").is_dir() or (folder / "data_batch_1").is_file():
        return "cifar10", str(folder)
    return "imagefolder", str(folder)


def start(config: SearchConfig, space: spaces.SearchSpace) -> tuple[SearchConfig, Store, Any, list[tuple[str, str]]]:
    """Create the run: its store and controller (nothing to re-run yet)."""
    run_dir = config.run_dir()
    if (run_dir / "trials.db").exists():
        raise SearchError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
                          "or pick another --name")
    controller = _controller(config, space)
    store = Store.create(run_dir, {"config": config.to_dict(), "name": config.name, "controller": config.controller,
                                   "space": config.space, "trials": config.trials, "seed": config.seed,
                                   **_reward_meta(space, config)})
    return config, store, controller, []


def resume(run_dir: str | Path, overrides: dict[str, Any]) -> tuple[SearchConfig, Store, Any, list[tuple[str, str]]]:
    """Reopen a run folder: stored settings (plus allowed overrides), controller state, in-flight trials."""
    try:
        store = Store.open(run_dir)
    except StoreError as error:
        raise SearchError(str(error)) from None
    meta = store.meta()
    stored = meta.get("config")
    if stored is None:
        raise SearchError(f"{run_dir} has no stored search settings; it was not made by `nas search`")
    run_dir = Path(run_dir)
    previous = SearchConfig.from_dict(stored)
    for key, value in overrides.items():
        if key not in RESUMABLE_OVERRIDES and key not in ("name", "storage") and value is not None \
                and value != getattr(previous, key):
            raise SearchError(f"--{key.replace('_', '-')} cannot change when resuming (the run has "
                              f"{getattr(previous, key)!r}); resumable: "
                              + ", ".join(f"--{k.replace('_', '-')}" for k in RESUMABLE_OVERRIDES))
    allowed = {k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES and v is not None}
    config = dataclasses.replace(previous, name=run_dir.name, storage=str(run_dir.parent), **allowed)
    space = spaces.load(config.space)
    controller = _controller(config, space)
    if "controller_state" in meta:  # its results are the store's successful rows
        told = [row.result() for row in store.trials(status="ok")]
        controller.load_state_dict(meta["controller_state"], results=told)
    pending = [(row.trial_id, row.arch) for row in store.trials(status="running")]
    store.set_meta({"config": config.to_dict(), "trials": config.trials, "resumed_at": time.time()})
    return config, store, controller, pending


def _controller(config: SearchConfig, space: spaces.SearchSpace) -> Any:
    try:
        return controllers.create(config.controller, space, seed=config.seed, **config.controller_options)
    except ValueError as error:
        raise SearchError(str(error)) from None


def _reward_meta(space: spaces.SearchSpace, config: SearchConfig) -> dict[str, Any]:
    return {"reward_kind": space.reward.kind,
            "target_macs": config.target_macs if config.target_macs is not None else space.reward.target_macs,
            "w": config.w if config.w is not None else space.reward.w}


class Progress:
    """One status line at most every ``interval`` seconds: done/running/failed, best, front size, ETA."""

    def __init__(self, total: int, finished: list[TrialResult], *, interval: float, out: TextIO | None = None) -> None:
        self.total, self.interval, self.out = total, interval, out or sys.stdout
        self.results = list(finished)
        self.resumed_with = len(finished)
        self.running = 0
        self.started = time.time()
        self._last = 0.0
        self._best_shown: str | None = None

    def record(self, _proposal_id: str, result: TrialResult) -> None:
        self.results.append(result)
        self.maybe_print()

    def maybe_print(self, *, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last >= self.interval:
            self._last = now
            print(self.line(), file=self.out, flush=True)

    def line(self) -> str:
        done = len(self.results)
        failed = sum(not r.ok for r in self.results)
        ok = [r for r in self.results if r.ok and r.reward is not None]
        elapsed = time.time() - self.started
        new = done - self.resumed_with
        eta = (elapsed / new * (self.total - done)) if new else float("nan")
        best = max(ok, key=lambda r: r.reward, default=None)
        front = len(rewards.pareto_front([(r.accuracy, r.macs) for r in ok if r.accuracy is not None and r.macs]))
        best_text = "best -"
        if best is not None:
            best_text = f"best reward {best.reward:.4f} (acc {best.accuracy:.4f}, {best.macs / 1e6:.0f} M MACs)"
            if best.arch != self._best_shown:  # the long string only when the best changes
                self._best_shown = best.arch
                best_text += f" {best.arch}"
        return (f"[nas] {done}/{self.total} done, {self.running} running, {failed} failed | {best_text} | "
                f"front {front} | {_clock(elapsed)} elapsed, ETA {_clock(eta)}")


def _clock(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def connect(address: str | None) -> None:
    """Where trials run. ``None``: the Ray cluster running on this machine if there is one (the head node
    under ``ray submit``), else Ray started in-process (the embedded default). ``"local"``: always
    in-process. Anything else: that cluster's address."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if address and address != "local":
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as error:
            raise SearchError(f"cannot reach the Ray cluster at {address}: {error}") from None
        return
    if address is None:
        try:
            ray.init(address="auto", log_to_driver=False)
            return
        except ConnectionError:
            pass
    ray.init(log_to_driver=False, include_dashboard=False)


def run(config: SearchConfig | None = None, *, resume_from: str | Path | None = None,
        overrides: dict[str, Any] | None = None, out: TextIO | None = None) -> dict[str, Any]:
    """Run ``config`` to ``config.trials`` finished trials, or continue the run in ``resume_from`` with its
    stored settings (``overrides`` may change the resumable ones); returns a summary."""
    out = out or sys.stdout
    from nas.tune import ControllerSearcher

    if resume_from is not None:
        config, store, controller, pending = resume(resume_from, overrides or {})
        task = make_task(controller.space, config)
    else:
        if config is None:
            raise SearchError("nothing to run: give a SearchConfig or a run folder to resume")
        space = spaces.load(config.space)
        task = make_task(space, config)
        check_data(task)  # before the run folder exists: a failed start leaves nothing behind
        config, store, controller, pending = start(config, space)
    run_dir = store.path.parent
    try:
        if resume_from is not None:
            check_data(task)
        finished = [row.result() for row in store.trials() if row.status != "running"]
        remaining = config.trials - len(finished)
        progress = Progress(config.trials, finished, interval=config.progress_seconds, out=out)
        print(f"[nas] run {run_dir} ({config.controller} on {config.space}, {config.trials} trials, "
              f"{len(finished)} already done, {len(pending)} to re-run); "
              f"watch it with: nas dashboard {run_dir}", file=out, flush=True)
        if remaining > 0:
            searcher = ControllerSearcher(controller, store=store, resubmit=pending, on_result=progress.record)
            fit(searcher, task, run_dir=run_dir, num_samples=remaining, concurrency=config.concurrency,
                cpus_per_trial=config.cpus_per_trial, gpus_per_trial=config.gpus_per_trial,
                address=config.address, callbacks=[_ProgressCallback(progress)])
        progress.maybe_print(force=True)
        counts = store.counts()
        best = store.best()
        summary = {"run_dir": str(run_dir), "counts": counts, "trials": config.trials,
                   "best": best.to_dict() if best else None}
        print(f"[nas] finished: {counts['ok']} ok, {counts['failed']} failed, {counts['running']} unfinished. "
              f"Best: {best.arch if best else '-'}\n[nas] dashboard: nas dashboard {run_dir}   "
              f"export: nas export {run_dir} --best reward --format yaml", file=out, flush=True)
        return summary
    finally:
        store.close()


def fit(searcher: Any, task: Any, *, run_dir: Path, num_samples: int, concurrency: int, cpus_per_trial: float,
        gpus_per_trial: float, address: str | None, callbacks: list | None = None) -> None:
    """One Tune experiment in ``run_dir/tune-N`` (N counts attempts, so a resumed run keeps the old logs)."""
    from nas.tune import trainable

    connect(address)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress line is the display; Tune stays quiet
    attempt = sum(1 for p in run_dir.glob("tune-*") if p.is_dir())
    tuner = tune.Tuner(
        trainable(task, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=num_samples,
                                    max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name=f"tune-{attempt}", storage_path=str(run_dir.resolve()),
                                  failure_config=tune.FailureConfig(max_failures=2), verbose=0,
                                  callbacks=callbacks or []),
    )
    tuner.fit()


def evaluate_many(candidates: list[Candidate], *, run_dir: str | Path, space_path: str = DEFAULT_SPACE,
                  data: str = "fashion_mnist", epochs: int | None = None, concurrency: int = 2,
                  gpus_per_trial: float = 0.0, cpus_per_trial: float = 1.0, seed: int = 0,
                  address: str | None = None, max_train_samples: int | None = None,
                  max_val_samples: int | None = None) -> list[TrialResult]:
    """Train a fixed list of candidates through Ray into one run folder; results in the candidates' order.

    Rows are keyed by ``label``: calling again on the same folder re-runs only unfinished candidates.
    """
    from nas.tune import ListSearcher

    labels = [c.label for c in candidates]
    if len(set(labels)) != len(labels):
        raise SearchError("candidate labels must be unique (they are the trial ids)")
    run_dir = Path(run_dir)
    config = SearchConfig(space=space_path, controller="list", trials=len(candidates), concurrency=concurrency,
                          gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial, data=data, epochs=epochs,
                          name=run_dir.name, storage=str(run_dir.parent), seed=seed, address=address,
                          max_train_samples=max_train_samples, max_val_samples=max_val_samples)
    space = spaces.load(space_path)
    task = make_task(space, config)
    check_data(task)
    if (run_dir / "trials.db").exists():
        store = Store.open(run_dir)
    else:
        store = Store.create(run_dir, {"config": config.to_dict(), "name": run_dir.name, "controller": "list",
                                       "space": space_path, "trials": len(candidates), "seed": seed,
                                       **_reward_meta(space, config)})
    try:
        done = {row.trial_id: row.result() for row in store.trials() if row.status != "running"}
        todo = [c for c in candidates if c.label not in done]
        if todo:
            searcher = ListSearcher(todo, store=store)
            fit(searcher, task, run_dir=run_dir, num_samples=len(todo),
                concurrency=concurrency, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                address=address)
            done.update(searcher.results)
        return [done.get(c.label) or TrialResult.failure(str(c.arch), "never finished") for c in candidates]
    finally:
        store.close()


class _ProgressCallback(tune.Callback):
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
