"""NSGA-II (Deb et al., 2002), steady state: maximize accuracy, minimize MACs.

For users who want the Pareto front rather than one scalar reward. Asynchronous:
each successful tell inserts one member into a population of ``population_size``
and, if it overflows, removes the worst by (non-domination rank, crowding
distance) — the (μ+1) form of NSGA-II's survivor selection. Each ask fills the
population with random architectures first, then breeds a child: two binary
tournaments on (rank ↓, crowding ↑), uniform crossover with probability
``crossover_prob``, and per-decision mutation with probability ``1 / decisions``
(at least one decision changes, so a child never equals its first parent).
Failures never enter the population. MACs are the result's, else ``nas.core.cost``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controllers.base import Choices, Controller
from nas.core import cost
from nas.core.result import TrialResult
from nas.space import SearchSpace


def nondominated_ranks(objectives: np.ndarray) -> np.ndarray:
    """Front index (0 = non-dominated) of each row; every column is minimized."""
    le = (objectives[:, None, :] <= objectives[None, :, :]).all(-1)
    lt = (objectives[:, None, :] < objectives[None, :, :]).any(-1)
    dominates = le & lt                      # dominates[i, j]: i dominates j
    dominated_by = dominates.sum(0)
    ranks = np.full(len(objectives), -1)
    front, rank = np.flatnonzero(dominated_by == 0), 0
    while front.size:
        ranks[front] = rank
        dominated_by = dominated_by - dominates[front].sum(0)
        dominated_by[ranks >= 0] = -1
        front, rank = np.flatnonzero(dominated_by == 0), rank + 1
    return ranks


def crowding_distances(objectives: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Per front: sum over objectives of the normalized gap between neighbours; ends get infinity."""
    distance = np.zeros(len(objectives))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        for column in objectives[members].T:
            order = members[np.argsort(column, kind="stable")]
            sorted_values = np.sort(column, kind="stable")
            span = sorted_values[-1] - sorted_values[0]
            distance[order[0]] = distance[order[-1]] = np.inf
            if span > 0 and len(order) > 2:
                distance[order[1:-1]] += (sorted_values[2:] - sorted_values[:-2]) / span
    return distance


class NSGA2(Controller):
    name = "nsga2"

    def __init__(self, space: SearchSpace, *, seed: int, population_size: int = 50, crossover_prob: float = 0.9,
                 **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if not 0 <= crossover_prob <= 1:
            raise ValueError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        self.population_size = population_size
        self.crossover_prob = crossover_prob
        self.population: list[tuple[Choices, float, float]] = []  # (choices, accuracy, macs)
        self._random_in_flight = 0
        self._free = list(self.free)

    def _propose(self) -> tuple[Choices, dict[str, Any]]:
        if len(self.population) < 2 or len(self.population) + self._random_in_flight < self.population_size:
            self._random_in_flight += 1
            return self.fresh(lambda: self.space.sample_choices(self.rng)), {"random": True}
        ranks, crowding = self._ranking()
        return self.fresh(lambda: self._child(ranks, crowding)), {}  # a known child: another one instead

    def _child(self, ranks: np.ndarray, crowding: np.ndarray) -> Choices:
        """Two tournament winners, uniform crossover, per-decision mutation (at least one decision)."""
        first, second = self._tournament(ranks, crowding), self._tournament(ranks, crowding)
        child = np.array(first)
        if self.rng.random() < self.crossover_prob:
            take = self.rng.random(len(child)) < 0.5
            child[take] = np.array(second)[take]
        sizes = [len(d) for d in self.space.decisions]
        flips = [i for i in self._free if self.rng.random() < 1 / len(self._free)]
        if not flips or tuple(child) == first:
            flips.append(self._free[int(self.rng.integers(len(self._free)))])
        for i in flips:
            child[i] = (child[i] + 1 + int(self.rng.integers(sizes[i] - 1))) % sizes[i]
        return tuple(int(c) for c in child)

    def _tournament(self, ranks: np.ndarray, crowding: np.ndarray) -> Choices:
        a, b = (int(i) for i in self.rng.choice(len(self.population), size=2, replace=False))
        better = a if (ranks[a], -crowding[a]) <= (ranks[b], -crowding[b]) else b
        return self.population[better][0]

    def _ranking(self) -> tuple[np.ndarray, np.ndarray]:
        objectives = np.array([(-acc, macs) for _, acc, macs in self.population], dtype=float)
        ranks = nondominated_ranks(objectives)
        return ranks, crowding_distances(objectives, ranks)

    def _observe(self, choices: Choices, extra: dict[str, Any], result: TrialResult) -> None:
        if extra.get("random"):
            self._random_in_flight -= 1
        if not result.ok:
            return
        if result.accuracy is None:
            raise ValueError(f"nsga2 needs the accuracy of a successful result (architecture {result.arch!r})")
        macs = result.macs if result.macs is not None else cost.count(
            self.space.decode(choices), self.space.target_resolution).macs
        self.population.append((tuple(choices), float(result.accuracy), float(macs)))
        if len(self.population) > self.population_size:
            ranks, crowding = self._ranking()
            worst = max(range(len(self.population)), key=lambda i: (ranks[i], -crowding[i], -i))
            del self.population[worst]

    def _algorithm_state(self) -> dict[str, Any]:
        return {"population": [[list(c), a, m] for c, a, m in self.population],
                "random_in_flight": self._random_in_flight}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        self.population = [(tuple(c), float(a), float(m)) for c, a, m in state["population"]]
        self._random_in_flight = int(state["random_in_flight"])
