"""Ray Tune ``Searcher`` adapters: a controller, or a fixed list of candidates.

``ControllerSearcher`` works in any user's own ``Tuner``: ``suggest`` asks the
controller (cheap), ``on_trial_complete`` tells it, ``save``/``restore`` write the
controller's plain-data state atomically. Give it a :class:`~nas.runs.store.Store` and
it also records every trial in the run's database, with the controller state
in the same transaction — that is what ``nas search --resume`` continues from. The
stored state leaves out the controller's results (the rows already hold them), so
it stays the same size however long the run; ``save`` writes the whole state."""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from nas.core.atomic import write_atomic
from nas.core.errors import NasError
from nas.core.result import Candidate, TrialResult
from nas.runs.tune.trial import RANKED_BY, _as_result

MAX_SKIPPED_PROPOSALS = 1_000
"""Proposals in a row that need no training (already evaluated, or in flight) after which a search ends,
saying so: the controller has converged onto what it has seen (or a small space is exhausted). Without
this bound a controller that keeps re-proposing would spin instead of progressing or stopping."""


class ControllerSearcher(Searcher):
    """Ray Tune ``Searcher`` adapter: suggest → ``ask``, on_trial_complete → ``tell``, save/restore → state.

    ``resubmit`` holds ``(proposal_id, arch)`` pairs the controller already asked but never saw
    answered (trials in flight when a driver died); they are suggested first, under their old ids.
    ``on_result`` is called with ``(proposal_id, TrialResult)`` after every tell (progress display).
    """

    def __init__(self, controller: Any, *, store: Any = None, resubmit: Iterable[tuple[str, str]] = (),
                 on_result: Callable[[str, TrialResult], None] | None = None, tell_stopped: str = "partial") -> None:
        super().__init__(metric=RANKED_BY, mode="max")
        self.controller = controller
        self.store = store
        self.on_result = on_result
        self.tell_stopped = tell_stopped
        self._resubmit = deque(resubmit)
        self._live: dict[str, tuple[str, str]] = {}  # tune trial id -> (proposal id, arch)
        self.stopped_because: str | None = None
        """Why the search ended before its trials were done, when it did (one line for the user)."""
        self.fatal: NasError | None = None
        """A fault that ends the search (the store cannot be written: a full disk): no new trial is suggested,
        and :func:`~nas.runs.tune.experiment.run_experiment` raises it once Tune has stopped."""

    def __getstate__(self) -> dict[str, Any]:
        return _without_live_handles(self)

    # ------------------------------------------------------------ Searcher API

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.fatal is not None:
            return Searcher.FINISHED
        if self._resubmit:
            proposal_id, arch = self._resubmit.popleft()
        else:
            proposal = self._next_trainable_proposal()
            if proposal is None:
                self.stopped_because = (
                    f"the controller proposed only architectures already evaluated or in flight, "
                    f"{MAX_SKIPPED_PROPOSALS:,} times in a row: it has converged (or the space is exhausted) after "
                    f"{len(self.controller.results()):,} distinct architectures")
                return Searcher.FINISHED
            proposal_id, arch = proposal.id, str(proposal.arch)
            if self.store is not None and not self._stored(lambda: self.store.start_trial(
                    proposal_id, arch, controller=self.controller.name,
                    controller_state=self.controller.state_dict(results=False))):
                return Searcher.FINISHED
        self._live[trial_id] = (proposal_id, arch)
        return {"arch": arch, "proposal_id": proposal_id}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """An epoch's report: a point of the trial's learning curve in the store."""
        if trial_id in self._live and self.store is not None and result.get("status") == "stopped":
            self._stored(lambda: self.store.record_epoch(self._live[trial_id][0], int(result.get("epochs") or 0),
                                                         accuracy=result.get("accuracy"), reward=result.get("reward")))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self._live:
            return  # not ours (e.g. a trial restored by Tune itself)
        proposal_id, arch = self._live.pop(trial_id)
        outcome = _as_result(arch, result, error)
        self.controller.tell(proposal_id, self._as_told(outcome))
        if self.store is not None:
            def write() -> None:
                if outcome.status in ("ok", "stopped"):  # the last point (Tune tells a stopping result only here)
                    self.store.record_epoch(proposal_id, outcome.epochs, accuracy=outcome.accuracy,
                                            reward=outcome.reward)
                self.store.finish_trial(proposal_id, outcome, node=(result or {}).get("node"),
                                        controller_state=self.controller.state_dict(results=False))

            self._stored(write)
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

    def _stored(self, write: Callable[[], None]) -> bool:
        """Run a store write; a fault of the store (a user's to fix: disk full, read-only) ends the search
        instead of surfacing as tracebacks inside Tune. A trial whose row could not be finished stays
        ``running`` in the store, and ``--resume`` trains it again."""
        if self.fatal is not None:
            return False
        try:
            write()
        except NasError as error:
            self.fatal = error
            return False
        return True

    def _as_told(self, outcome: TrialResult) -> TrialResult:
        """A stopped trial is told as a (low-fidelity) success with its last epoch's reward, or as a failure."""
        if outcome.status != "stopped":
            return outcome
        if self.tell_stopped == "partial" and outcome.reward is not None:
            return dataclasses.replace(outcome, status="ok")
        return dataclasses.replace(outcome, status="failed", reward=None, error="stopped early by the scheduler")

    def _next_trainable_proposal(self) -> Any:
        """Ask until a proposal needs training; cached and duplicate ones cost no trial."""
        for _ in range(MAX_SKIPPED_PROPOSALS):
            proposal = self.controller.ask()
            if proposal.needs_training:
                return proposal
        return None


class ListSearcher(Searcher):
    """Suggests a fixed list of candidates once each (compound-scaling grids), recording them in a store."""

    def __init__(self, candidates: Iterable[Any], *, store: Any = None,
                 on_result: Callable[[str, TrialResult], None] | None = None) -> None:
        super().__init__(metric=RANKED_BY, mode="max")
        self.on_result = on_result
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
        return {**candidate.to_dict(), "proposal_id": candidate.label}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        candidate = self._live.pop(trial_id, None)
        if candidate is None:
            return
        outcome = _as_result(str(candidate.arch), result, error)
        self.results[candidate.label] = outcome
        if self.on_result is not None:
            self.on_result(candidate.label, outcome)
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
