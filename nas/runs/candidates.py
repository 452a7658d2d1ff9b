"""Train a fixed list of candidates through Ray into one run folder (the compound-scaling grid and
its baselines): the search's machinery — run folder, store, Ray backend, resume — without a controller.
Rows are keyed by each candidate's label, so calling again on the same folder runs only what is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from nas import space as spaces
from nas.core.errors import NasError
from nas.core.result import Candidate, TrialResult
from nas.runs import folder as run_folder
from nas.runs.progress import Progress
from nas.settings import DEFAULT_SPACE, ProxySettings, Resources, RewardSettings, RunPlace, SearchSettings
from nas.training import data
from nas.training.evaluate import Task


class CandidatesError(NasError):
    """A candidate list that cannot be trained as given (labels that repeat)."""


def evaluate_many(candidates: list[Candidate], *, run_dir: str | Path, space_path: str = DEFAULT_SPACE,
                  proxy: ProxySettings | None = None, reward: RewardSettings | None = None,
                  resources: Resources | None = None, seed: int = 0, progress_seconds: float = 30.0,
                  out: TextIO | None = None) -> list[TrialResult]:
    """Train a fixed list of candidates through Ray into one run folder; results in the candidates' order.

    Rows are keyed by ``label``: calling again on the same folder re-runs only unfinished candidates.
    ``proxy``/``reward`` default to the space's blocks.
    """
    from nas.runs import tune  # Ray loads only when there is something to train

    out = out or sys.stdout

    labels = [c.label for c in candidates]
    if len(set(labels)) != len(labels):
        raise CandidatesError("candidate labels must be unique (they are the trial ids)")
    run_dir = Path(run_dir)
    space = spaces.load(space_path)
    settings = SearchSettings(space=space_path, controller="list", trials=len(candidates), seed=seed,
                              place=RunPlace(name=run_dir.name, storage=str(run_dir.parent)),
                              resources=resources or Resources(), proxy=proxy or space.proxy,
                              reward=reward or space.reward)
    data.check(settings.proxy, seed=seed)
    run = run_folder.resume(run_dir) if (run_dir / "trials.db").exists() else \
        run_folder.create(settings, space, kind="list")
    with run:
        store = run.store
        done = {row.trial_id: row.result() for row in store.trials() if row.status != "running"}
        todo = [c for c in candidates if c.label not in done]
        if todo:
            task = Task.from_space(run.space, proxy=run.settings.proxy, reward=run.settings.reward, seed=seed)
            print(f"[nas] {tune.connect(settings.resources)}", file=out, flush=True)
            ours = [done[label] for label in labels if label in done]  # the folder may hold other lists' rows
            progress = Progress(len(candidates), ours, interval=progress_seconds, out=out)
            searcher = tune.ListSearcher(todo, store=store, on_result=progress.record)
            tune.run_experiment(searcher, task, run_dir=run.path, num_samples=len(todo), resources=settings.resources,
                                callbacks=[tune.ProgressCallback(progress)])
            progress.maybe_print(force=True)
            done.update(searcher.results)
        return [done.get(c.label) or TrialResult.failure(str(c.arch), "never finished") for c in candidates]


__all__ = ["CandidatesError", "evaluate_many"]
