"""Ray Tune glue: a ``Searcher`` around any :class:`~controllers.Controller`, and the trainable.

``ControllerSearcher`` works in any user's own ``Tuner``: ``suggest`` asks the
controller (cheap), ``on_trial_complete`` tells it, ``save``/``restore`` write the
controller's plain-data state atomically. Give it a :class:`~nas.store.Store` and
it also records every trial in the run's database, with the controller state
in the same transaction — that is what ``nas search --resume`` continues from. The
stored state leaves out the controller's results (the rows already hold them), so
it stays the same size however long the run; ``save`` writes the whole state.

The trainable runs in Ray workers: it calls :func:`nas.evaluate.evaluate` and
reports the :class:`~nas.result.TrialResult` fields; it never raises for a
trial's own fault, so a NaN, an OOM or a bad architecture is a stored failure,
not a lost trial.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import Searcher

from nas.arch import Architecture
from nas.atomic import write_atomic
from nas.result import Candidate, TrialResult

# How many cached/duplicate proposals in a row ``suggest`` skips before it concludes the space is exhausted.
MAX_SKIPPED_PROPOSALS = 10_000


class ControllerSearcher(Searcher):
    """Ray Tune ``Searcher`` adapter: suggest → ``ask``, on_trial_complete → ``tell``, save/restore → state.

    ``resubmit`` holds ``(proposal_id, arch)`` pairs the controller already asked but never saw
    answered (trials in flight when a driver died); they are suggested first, under their old ids.
    ``on_result`` is called with ``(proposal_id, TrialResult)`` after every tell (progress display).
    """

    def __init__(self, controller: Any, *, metric: str = "reward", mode: str = "max", store: Any = None,
                 resubmit: Iterable[tuple[str, str]] = (),
                 on_result: Callable[[str, TrialResult], None] | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.controller = controller
        self.store = store
        self.on_result = on_result
        self._resubmit = deque(resubmit)
        self._live: dict[str, tuple[str, str]] = {}  # tune trial id -> (proposal id, arch)
        self.exhausted = False

    def __getstate__(self) -> dict[str, Any]:
        return _without_live_handles(self)

    # ------------------------------------------------------------ Searcher API

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._resubmit:
            proposal_id, arch = self._resubmit.popleft()
        else:
            proposal = self._next_trainable_proposal()
            if proposal is None:
                return Searcher.FINISHED
            proposal_id, arch = proposal.id, str(proposal.arch)
            if self.store is not None:
                self.store.start_trial(proposal_id, arch, controller=self.controller.name,
                                       controller_state=self.controller.state_dict(results=False))
        self._live[trial_id] = (proposal_id, arch)
        return {"arch": arch, "proposal_id": proposal_id}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self._live:
            return  # not ours (e.g. a trial restored by Tune itself)
        proposal_id, arch = self._live.pop(trial_id)
        outcome = _as_result(arch, result, error)
        self.controller.tell(proposal_id, outcome)
        if self.store is not None:
            self.store.finish_trial(proposal_id, outcome, node=(result or {}).get("node"),
                                    controller_state=self.controller.state_dict(results=False))
        if self.on_result is not None:
            self.on_result(proposal_id, outcome)

    def save(self, checkpoint_path: str) -> None:
        """Write plain JSON state atomically (temp file + ``os.replace``)."""
        state = {"controller": self.controller.state_dict(), "live": self._live,
                 "resubmit": list(self._resubmit)}
        write_atomic(checkpoint_path, json.dumps(state), durable=True)

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        self.controller.load_state_dict(state["controller"])
        # Trials that were live when the checkpoint was taken are suggested again under their ids.
        self._resubmit = deque([*map(tuple, state["live"].values()), *map(tuple, state["resubmit"])])
        self._live = {}

    # ------------------------------------------------------------ helpers

    def _next_trainable_proposal(self) -> Any:
        """Ask until a proposal needs training; cached and duplicate ones cost no trial."""
        for _ in range(MAX_SKIPPED_PROPOSALS):
            proposal = self.controller.ask()
            if proposal.needs_training:
                return proposal
        self.exhausted = True
        return None


class ListSearcher(Searcher):
    """Suggests a fixed list of candidates once each (compound-scaling grids), recording them in a store."""

    def __init__(self, candidates: Iterable[Any], *, store: Any = None, metric: str = "reward",
                 mode: str = "max") -> None:
        super().__init__(metric=metric, mode=mode)
        self._queue = deque(candidates)
        self._live: dict[str, Any] = {}
        self.store = store
        self.results: dict[str, TrialResult] = {}

    def __getstate__(self) -> dict[str, Any]:
        return _without_live_handles(self)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self._queue:
            return Searcher.FINISHED
        candidate = self._queue.popleft()
        self._live[trial_id] = candidate
        if self.store is not None:
            self.store.start_trial(candidate.label, str(candidate.arch), controller="list")
        return {"arch": str(candidate.arch), "proposal_id": candidate.label,
                "resolution": candidate.proxy_resolution, "target_resolution": candidate.target_resolution}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        candidate = self._live.pop(trial_id, None)
        if candidate is None:
            return
        outcome = _as_result(str(candidate.arch), result, error)
        self.results[candidate.label] = outcome
        if self.store is not None:
            self.store.finish_trial(candidate.label, outcome, node=(result or {}).get("node"))

    def save(self, checkpoint_path: str) -> None:
        """Candidates still to run (those in flight first) and the results so far, as JSON."""
        state = {"queue": [c.to_dict() for c in (*self._live.values(), *self._queue)],
                 "results": {label: r.to_dict() for label, r in self.results.items()}}
        write_atomic(checkpoint_path, json.dumps(state), durable=True)

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        self._queue = deque(Candidate.from_dict(c) for c in state["queue"])
        self._live = {}
        self.results = {label: TrialResult.from_dict(r) for label, r in state["results"].items()}


def _without_live_handles(searcher: Searcher) -> dict[str, Any]:
    """Tune pickles its searcher into the experiment folder; the store's connection and the progress
    callback belong to this driver process and are not part of that snapshot."""
    state = dict(searcher.__dict__)
    state["store"] = None
    if "on_result" in state:
        state["on_result"] = None
    return state


def _as_result(arch: str, result: dict[str, Any] | None, error: bool) -> TrialResult:
    if not error and result and result.get("status") in ("ok", "failed"):
        return TrialResult.from_dict(result)
    return TrialResult.failure(arch, "the trial's worker crashed or was lost after all retries "
                                     "(see the Ray Tune log in the run folder)")


# ---------------------------------------------------------------- the trainable


def run_trial(config: dict[str, Any], task: Any = None) -> None:
    """One Ray trial: evaluate ``config["arch"]`` on ``task`` and report the TrialResult's fields."""
    from nas.evaluate import evaluate  # imported in the worker, not in the driver's module import

    text = config["arch"]
    started = time.time()
    try:
        resolutions = {k: config[k] for k in ("resolution", "target_resolution") if config.get(k)}
        if resolutions:  # a scaled candidate trains and is priced at its own resolutions
            task = dataclasses.replace(task, **resolutions)
        result = evaluate(Architecture.parse(text), task)
    except Exception as error:  # noqa: BLE001 - a trial's fault must be a stored failure, never a lost trial
        result = TrialResult.failure(text, f"{type(error).__name__}: {error}")
    tune.report({**result.to_dict(), "node": _node_name(), "wall_seconds": time.time() - started})


def _node_name() -> str:
    try:
        import ray
        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray
        return socket.gethostname()


def trainable(task: Any, *, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0) -> Any:
    """The trainable with its resources; ``task`` goes to the object store once (``with_parameters``)."""
    return tune.with_resources(tune.with_parameters(run_trial, task=task),
                               {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
