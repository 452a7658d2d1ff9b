"""The search driver behind ``nas search`` and ``scripts/search.py``: one run folder, one controller, Ray Tune.

:func:`run` creates a run (:mod:`nas.runs.folder`) or reopens one, puts its controller back where it
stopped, checks the proxy data once, and runs the trials through the Ray backend (:mod:`nas.runs.tune`)
until exactly the requested number have finished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import controllers
from nas import space as spaces
from nas.core.errors import NasError
from nas.latency.table import table_for
from nas.runs import folder as run_folder
from nas.runs.progress import Progress
from nas.settings import SearchSettings
from nas.training import data
from nas.training.evaluate import Task
from nas.training.table import TableEvaluator


class SearchError(NasError):
    """A search that cannot start as asked (an unknown controller, bad options, a run folder in the way)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (preemption, ``docker stop``) during a search: nothing finished is lost, and the
    message says how to continue. ``signal`` is the number that ended it (the exit status is 128 + it)."""

    def __init__(self, message: str, signal: int) -> None:
        super().__init__(message)
        self.signal = signal


@contextlib.contextmanager
def _interruptible(run_dir: Path) -> Iterator[None]:
    """SIGINT and SIGTERM end the search the same way: as :class:`Interrupted`, raised in the driver's main
    thread. Ray Tune's own Ctrl-C handler (which ends the experiment quietly, exit 0, with advice about
    ``Tuner.restore``) is turned off; a SIGTERM no longer reaches Ray's default handler (an abort)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    message = f"interrupted; nothing finished is lost: continue with  nas search --resume {run_dir}"

    received: list[int] = []

    def stop(number: int, _frame: Any) -> None:
        received.append(number)
        raise Interrupted(message, number)

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield
    except KeyboardInterrupt:  # ours, or Tune's own re-raise of it: the signal that came decides the status
        raise Interrupted(message, received[0] if received else signal.SIGINT) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run(settings: SearchSettings | None = None, *, resume_from: str | Path | None = None,
        changes: dict[str, Any] | None = None, space: spaces.SearchSpace | None = None,
        out: TextIO | None = None) -> dict[str, Any]:
    """Run ``settings`` to ``settings.trials`` finished trials, or continue the run in ``resume_from`` with
    its stored settings (``changes`` may change the resumable ones); returns a summary."""
    from nas.runs import tune

    out = out or sys.stdout
    where = None
    if resume_from is not None:
        run = run_folder.resume(resume_from, changes)
    else:
        if settings is None:
            raise SearchError("nothing to run: give SearchSettings or a run folder to resume")
        space = space or spaces.load(settings.space)
        loaded = _check_inputs(settings, space)  # before the run folder exists: a failed start leaves nothing
        _controller(settings, space)  # an unknown controller or option, too
        tune.trackers.check(settings.tracker)  # a tracker whose package is missing
        tune.check_storage(settings.resources.tune_storage)  # Tune's storage out of reach
        where = tune.connect(settings.resources)  # and an unreachable cluster: a failed start leaves no run
        run = run_folder.create(settings, space)
    with run:
        settings, store = run.settings, run.store
        controller = _controller(settings, run.space)
        state = store.controller_state()
        if state is not None:  # its results are the store's successful rows
            controller.load_state_dict(state, results=[row.result() for row in store.trials(status="ok")])
        if resume_from is not None:
            loaded = _check_inputs(settings, run.space)
            tune.trackers.check(settings.tracker)
            tune.check_storage(settings.resources.tune_storage)
        task = Task.from_space(run.space, proxy=settings.proxy, reward=settings.reward, seed=settings.seed,
                               target_resolution=settings.cost_resolution, cost_classes=settings.cost_classes)
        finished = [row.result() for row in store.trials() if row.status != "running"]
        remaining = settings.trials - len(finished)
        progress = Progress(settings.trials, finished, interval=settings.progress_seconds, out=out)
        if loaded is not None and loaded.skipped:  # counted in the driver's load, the same files every trial reads
            run.notes.append(f"skipped {loaded.skipped} image file(s) that could not be decoded (--skip-bad-images)")
            store.set_meta({"skipped_images": loaded.skipped})
        for note in run.notes:
            print(f"[nas] {note}", file=out, flush=True)
        print(f"[nas] run {run.path} ({settings.controller} on {settings.space}, {settings.trials} trials, "
              f"{len(finished)} already done, {len(run.pending)} to re-run); "
              f"watch it with: nas dashboard {run.path}", file=out, flush=True)
        if remaining > 0:
            print(f"[nas] {where or tune.connect(settings.resources)}", file=out, flush=True)
            evaluator = None
            if settings.evaluator == "supernet":
                evaluator = _supernet(run, settings, out)
            elif settings.evaluator == "table":
                evaluator = TableEvaluator(settings.table, run.space)
                print(f"[nas] results from the table {settings.table} ({len(evaluator.check())} architectures); "
                      "nothing is trained", file=out, flush=True)
            searcher = tune.ControllerSearcher(controller, store=store, resubmit=run.pending,
                                               on_result=progress.record, tell_stopped=settings.scheduler.stopped)
            trackers, tracked = tune.trackers.callbacks(settings.tracker, run.path, uri=settings.tracker_uri,
                                                        tune_storage=settings.resources.tune_storage)
            if tracked:
                print(f"[nas] {tracked}", file=out, flush=True)
            with _interruptible(run.path):
                tune.run_experiment(searcher, task, run_dir=run.path, num_samples=remaining,
                                    resources=settings.resources,
                                    callbacks=[tune.ProgressCallback(progress), *trackers],
                                    scheduler=tune.scheduler_for(settings.scheduler, settings.proxy.epochs, store),
                                    evaluator=evaluator, time_budget=settings.time_budget,
                                    report_epochs=bool(trackers))
            if searcher.stopped_because:
                print(f"[nas] stopped early: {searcher.stopped_because}", file=out, flush=True)
        progress.maybe_print(force=True)
        counts = store.counts()
        best = store.best()
        stopped = f"{counts['stopped']} stopped early, " if counts["stopped"] else ""
        print(f"[nas] finished: {counts['ok']} ok, {stopped}{counts['failed']} failed, {counts['running']} unfinished. "
              f"Best: {best.arch if best else '-'}\n[nas] dashboard: nas dashboard {run.path}   "
              f"export: nas export {run.path} --best reward --format yaml", file=out, flush=True)
        failed = store.trials(status="failed")
        stopped = searcher.stopped_because if remaining > 0 else None
        return {"stopped_early": stopped, "run_dir": str(run.path), "counts": counts, "trials": settings.trials,
                "best": best.to_dict() if best else None, "first_error": failed[0].error if failed else None}


def _supernet(run: run_folder.Run, settings: SearchSettings, out: TextIO) -> Any:
    """Train the run's supernet (once: resumed if a checkpoint is there) as a Ray task, showing its progress
    in the status line and the dashboard; returns the evaluator trials use instead of training."""
    import threading

    import ray

    from nas.runs import tune
    from nas.training import supernet_training as training
    from nas.training.supernet_evaluator import SupernetEvaluator

    folder = (run.path / "supernet").resolve()  # absolute: Tune runs each trial in a folder of its own
    done = threading.Event()

    def watch() -> None:
        while not done.wait(max(1.0, settings.progress_seconds)):
            state = training.progress(folder)
            if state:
                run.store.set_meta({"supernet": state})  # the dashboard shows it
                print(f"[nas] supernet: step {state['step']}/{state['steps']}, loss {state['loss']:.3f}, "
                      f"{state['seconds']:.0f} s", file=out, flush=True)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        tune.run_on_cluster(training.train_from_text, run.space.text, settings.proxy.model_dump_json(),
                            settings.supernet.model_dump_json(), str(folder), settings.seed,
                            resources=settings.resources)
    except ray.exceptions.RayTaskError as error:
        raise SearchError(f"training the supernet failed: {str(error.cause).splitlines()[0]}") from None
    finally:
        done.set()
    state = training.progress(folder)
    if state:
        run.store.set_meta({"supernet": state})
    return SupernetEvaluator(run.space.text or "", settings.supernet, folder)


def _check_inputs(settings: SearchSettings, space: spaces.SearchSpace) -> Any:
    """Read what trials will read, once, so a fault is one line before anything runs: the table of results
    with ``--evaluator table`` (nothing is trained: no data), else the proxy data (returned); and the latency
    table, when the reward has one."""
    if settings.reward.latency_table is not None:
        table_for(settings.reward.latency_table, space, resolution=settings.cost_resolution,
                  num_classes=settings.cost_classes)
    if settings.evaluator == "table":
        TableEvaluator(settings.table, space).check()
        return None
    if settings.evaluator == "supernet":
        from nas.network.supernet import unsupported

        reason = unsupported(space)
        if reason:
            raise SearchError(reason)
    return data.check(settings.proxy, seed=settings.seed)


def _controller(settings: SearchSettings, space: spaces.SearchSpace) -> Any:
    try:
        return controllers.create(settings.controller, space, seed=settings.seed, **settings.controller_options)
    except (ValueError, TypeError) as error:
        raise SearchError(str(error)) from None


__all__ = ["SearchError", "run"]
