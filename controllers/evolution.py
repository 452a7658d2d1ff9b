"""Regularized (aging) evolution, Real et al., AAAI 2019 — asynchronous, as its workers were.

Random architectures until ``population_size`` of them are alive (told successfully
or still in flight), then: sample ``sample_size`` members uniformly, take the one
with the highest reward, mutate one decision (``space.mutate``), drawn again while the child is an
architecture already evaluated or in flight (:meth:`Controller.known`). Every successful
child joins the population and the *oldest* member leaves. Failures (and
``max_macs`` rejections) never join, so they never become parents.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from controllers.base import Choices, Controller, ranking_reward
from nas.core.result import TrialResult
from nas.space import SearchSpace


class RegularizedEvolution(Controller):
    name = "evolution"

    def __init__(self, space: SearchSpace, *, seed: int, population_size: int = 50, sample_size: int = 10,
                 **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            raise ValueError(f"need population_size >= 1 and 1 <= sample_size <= population_size, "
                             f"got {population_size} and {sample_size}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque[tuple[Choices, float]] = deque()  # oldest first
        self._random_in_flight = 0

    def _propose(self) -> tuple[Choices, dict[str, Any]]:
        if not self.population or len(self.population) + self._random_in_flight < self.population_size:
            self._random_in_flight += 1
            return self.fresh(lambda: self.space.sample_choices(self.rng)), {"random": True}
        # A child that repeats an evaluated architecture joins the population as the clone a retrained
        # duplicate would be in Real et al. (so selection keeps its pressure), but only the first of each
        # ask does, and a new tournament and mutation are drawn until a child is new: proposing the known
        # one would spin once the best's neighbourhood is explored.
        cloned = [False]
        return self.fresh(lambda: self._child(cloned)), {}

    def _child(self, cloned: list[bool]) -> Choices:
        """A tournament's winner with one decision mutated."""
        picks = self.rng.choice(len(self.population), size=min(self.sample_size, len(self.population)),
                                replace=False)
        parent = max((self.population[int(i)] for i in picks), key=lambda member: member[1])[0]
        child = self.space.encode(self.space.mutate(self.space.decode(parent), self.rng))
        known = self._results.get(str(self.space.decode(child))) if not cloned[0] else None
        if known is not None:
            cloned[0] = True
            self._join(child, ranking_reward(known))
        return child

    def _observe(self, choices: Choices, extra: dict[str, Any], result: TrialResult) -> None:
        if extra.get("random"):
            self._random_in_flight -= 1
        if result.ok:
            self._join(choices, ranking_reward(result))

    def _join(self, choices: Choices, reward: float) -> None:
        """A member joins; the oldest leaves once the population is full (the aging of regularized evolution)."""
        self.population.append((tuple(choices), reward))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def _algorithm_state(self) -> dict[str, Any]:
        return {"population": [[list(c), r] for c, r in self.population], "random_in_flight": self._random_in_flight}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        self.population = deque((tuple(c), float(r)) for c, r in state["population"])
        self._random_in_flight = int(state["random_in_flight"])
