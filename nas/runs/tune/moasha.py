"""Multi-objective asynchronous successive halving (MOASHA) as a Ray Tune scheduler.

ASHA (Li et al., 2020) stops a trial at a rung unless its one metric is in the top ``1/η`` of the
values recorded at that rung. MOASHA (Schmucker et al., 2021) keeps the rungs and the asynchrony and
replaces the scalar order with a multi-objective one; here the objectives are the search's own, accuracy
(higher is better) and MACs (lower is better), so a trial is judged by where it stands on the front of
its rung, not by a reward that folds the two into one number with a fixed exponent.

The definition, for rungs at ``ceil(grace_period × η^k)`` epochs (those below the proxy's last epoch):

- A trial is judged once per rung, when it first reports at or past the rung (asynchronously: it does
  not wait for others to get there). Its ``(accuracy, macs)`` joins the rung's record.
- The record is sorted by non-domination (front 0 = no recorded trial dominates it), and inside each
  front by crowding distance, larger first (a front's two ends have infinite distance).
- The trial continues when fewer than ``max(1, floor(n / η))`` recorded trials (``n`` counting itself)
  are strictly ahead of it in that order, and stops otherwise. Ties are kept: a trial is never stopped
  by one that is merely as good.
- A report with no finite accuracy or MACs (a failed epoch) is neither recorded nor promoted: it stops.

Cost: a decision sorts the trials at the rung that the new one does not dominate, quadratic in their number;
on a shared 2-core CPU it took a median of 0.01 s with 500 trials at the rung, 0.16 s with 2 000 and 0.8 s
with 5 000 (random points), in the driver, once per trial and rung.

Kept on ``nas search --resume``: a resumed run starts a new Tune experiment, with a new scheduler, which
:meth:`MOASHAScheduler.from_store` fills from the run's store. The store keeps every reported epoch
(``epochs`` table) and each finished trial's MACs, so the rebuilt rungs hold every finished or stopped
trial as it was recorded. Trials that were in flight when the driver stopped have no MACs in the store
yet: their records are left out, and they train again and are recorded again. Tune's own experiment
checkpoints go through :meth:`~MOASHAScheduler.save` / :meth:`~MOASHAScheduler.restore` (JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from controllers.nsga2 import crowding_distances, nondominated_ranks
from nas.core.atomic import write_atomic

Record = tuple[str, int, float, float]
"""One rung record: (trial key, rung epoch, accuracy, MACs)."""


def rung_epochs(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The rungs, in epochs: ``ceil(grace_period × reduction_factor^k)`` below ``max_t`` (a decision at the
    last epoch would save nothing)."""
    rungs, k = [], 0
    while (epoch := math.ceil(grace_period * reduction_factor ** k - 1e-9)) < max_t:
        if not rungs or epoch > rungs[-1]:
            rungs.append(epoch)
        k += 1
    return rungs


def promoted(recorded: dict[str, tuple[float, float]], key: str, reduction_factor: float) -> bool:
    """Whether ``key`` (one of ``recorded``: key → (accuracy, MACs)) is in the top ``1/reduction_factor`` of
    its rung by non-dominated sorting, ties inside a front broken by crowding distance.

    Exact, on fewer trials than the rung holds: every trial that dominates ``key`` is in an earlier front,
    so ``keep`` of them decide at once; and the trials ``key`` dominates can neither be ahead of it nor
    change the front or the crowding distance of any trial that is (a trial dominating one of them is
    dominated by ``key`` too), so they are left out of the sort."""
    keep = max(1, math.floor(len(recorded) / reduction_factor))
    points = np.array(list(recorded.values()), dtype=float)
    acc, macs = recorded[key]
    better = (points[:, 0] >= acc) & (points[:, 1] <= macs)
    strictly = (points[:, 0] > acc) | (points[:, 1] < macs)
    if np.sum(better & strictly) >= keep:
        return False
    worse = (points[:, 0] <= acc) & (points[:, 1] >= macs) & ((points[:, 0] < acc) | (points[:, 1] > macs))
    keys = list(recorded)
    i = keys.index(key)
    kept = ~worse
    objectives = points[kept] * [-1.0, 1.0]  # both minimized
    i = int(np.sum(kept[:i]))
    ranks = nondominated_ranks(objectives)
    crowding = crowding_distances(objectives, ranks)
    ahead = int(np.sum((ranks < ranks[i]) | ((ranks == ranks[i]) & (crowding > crowding[i]))))
    return ahead < keep


class MOASHAScheduler(FIFOScheduler):
    """Multi-objective ASHA: see the module's docstring for the definition and what survives a resume.

    ``accuracy`` and ``cost`` name the result's fields (maximized and minimized); ``time_attr`` counts
    the epochs, as in Tune's ``ASHAScheduler``. Trials are keyed by ``config["proposal_id"]`` when the
    searcher gives one (a trial trained again after a resume keeps its key), else by Tune's trial id.
    """

    def __init__(self, *, max_t: int, grace_period: int = 1, reduction_factor: float = 3.0,
                 time_attr: str = "training_iteration", accuracy: str = "accuracy", cost: str = "macs",
                 records: Iterable[Record] = ()) -> None:
        super().__init__()
        if grace_period < 1 or reduction_factor <= 1 or max_t <= grace_period:
            raise ValueError(f"MOASHA needs grace_period >= 1, reduction_factor > 1 and max_t > grace_period; got "
                             f"{grace_period}, {reduction_factor}, {max_t}")
        self.max_t, self.grace_period, self.reduction_factor = max_t, grace_period, reduction_factor
        self.time_attr, self.accuracy, self.cost = time_attr, accuracy, cost
        self.rungs: dict[int, dict[str, tuple[float, float]]] = {
            epoch: {} for epoch in rung_epochs(grace_period, reduction_factor, max_t)}
        for key, epoch, acc, macs in records:
            self._record(key, epoch, acc, macs)

    # ------------------------------------------------------------ Tune's TrialScheduler API

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        return self.decide(trial_key(trial), result.get(self.time_attr), result.get(self.accuracy),
                           result.get(self.cost))

    def save(self, checkpoint_path: str) -> None:
        write_atomic(checkpoint_path, json.dumps(self.state_dict()), durable=True)

    def restore(self, checkpoint_path: str) -> None:
        self.load_state_dict(json.loads(Path(checkpoint_path).read_text()))

    def debug_string(self) -> str:
        return "MOASHA: " + " | ".join(f"epoch {e}: {len(r)} recorded" for e, r in self.rungs.items())

    # ------------------------------------------------------------ the decision

    def decide(self, key: str, iteration: Any, accuracy: Any, macs: Any) -> str:
        """``TrialScheduler.CONTINUE`` or ``STOP`` for one report of trial ``key``."""
        rung = self._rung_for(key, iteration)
        if rung is None:
            return TrialScheduler.CONTINUE
        if not self._record(key, rung, accuracy, macs):
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE if promoted(self.rungs[rung], key, self.reduction_factor) \
            else TrialScheduler.STOP

    def _rung_for(self, key: str, iteration: Any) -> int | None:
        """The highest rung the report reaches that has not judged this trial yet (as ASHA's brackets)."""
        try:
            done = float(iteration)
        except (TypeError, ValueError):
            return None
        reached = [epoch for epoch in self.rungs if epoch <= done]
        if not reached or key in self.rungs[reached[-1]]:
            return None
        return reached[-1]

    def _record(self, key: str, epoch: int, accuracy: Any, macs: Any) -> bool:
        try:
            acc, cost = float(accuracy), float(macs)
        except (TypeError, ValueError):
            return False
        if epoch not in self.rungs or not (math.isfinite(acc) and math.isfinite(cost)):
            return False
        self.rungs[epoch][key] = (acc, cost)
        return True

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {"grace_period": self.grace_period, "reduction_factor": self.reduction_factor, "max_t": self.max_t,
                "records": [[key, epoch, acc, macs] for epoch, rung in self.rungs.items()
                            for key, (acc, macs) in rung.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for rung in self.rungs.values():
            rung.clear()
        for key, epoch, acc, macs in state["records"]:
            self._record(str(key), int(epoch), acc, macs)

    @classmethod
    def from_store(cls, store: Any, **settings: Any) -> MOASHAScheduler:
        """A scheduler whose rungs hold what the run in ``store`` recorded (see the module's docstring)."""
        return cls(records=store_records(store), **settings)


def store_records(store: Any) -> list[Record]:
    """Every reported epoch of the store's finished trials whose MACs it knows, as rung records."""
    macs = {row.trial_id: row.macs for row in store.trials() if row.macs}  # none until a trial finishes
    return [(trial_id, epoch, accuracy, macs[trial_id])
            for trial_id, points in store.curves(list(macs)).items()
            for epoch, accuracy in points if accuracy is not None]


def trial_key(trial: Any) -> str:
    config = getattr(trial, "config", None) or {}
    return str(config.get("proposal_id") or trial.trial_id)
