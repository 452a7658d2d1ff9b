"""Bayesian linear regression on the choices, with Thompson sampling over local moves.

Why this shape: in a factorized space most of an architecture's reward is the sum of what each
decision contributes (an op, a kernel, a width), so a linear model on the one-hot choices learns the
landscape from a few dozen results, where a population method needs hundreds. Its posterior says how
sure it is of each option, so drawing a model from the posterior (Thompson sampling) and taking the
best candidate under it balances trying and exploiting with no tuning — and two asks in a row draw
different models, so many proposals can be in flight at once (asynchronous by construction).

In a small space — where the pairs of free decisions have at most ``interactions`` (1,000)
combinations of options in all, as in the tabular benchmarks — the model also has a column for each
combination of two decisions' options: there a cell's edges or a macro space's layers matter together
(in NAS-Bench-201 an edge only helps if the path through it is not cut), which a sum of single choices
cannot say. A large space (the MnasNet space: about 7,000 such columns) stays additive.

Candidates are the neighbours of the best results so far (one to three decisions changed) plus a few
random architectures; every proposal is new (not told, not in flight).

The model is a pure function of the results told so far: ``XᵀX`` and ``Xᵀy`` are summed in integer
units (features and rewards rounded to 1e-6), so it is rebuilt exactly, in any order, from the stored
results on resume; the state holds only the random generator and the counters. Failures (and
``max_macs`` rejections) teach it nothing and are never parents.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controllers.base import Choices, Controller, ranking_reward
from nas.core import cost
from nas.core.arch import Architecture
from nas.core.result import TrialResult
from nas.space import SearchSpace

_UNIT = 1_000_000  # features and rewards in integer units of 1e-6: exact, order-independent sums


class BayesianLinear(Controller):
    name = "bayes"

    def __init__(self, space: SearchSpace, *, seed: int, initial: int = 8, parents: int = 4, neighbours: int = 24,
                 randoms: int = 16, prior: float = 1.0, exploration: float = 0.05, cost_features: bool = True,
                 interactions: int = 1000, **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        if initial < 1 or parents < 1 or neighbours < 0 or randoms < 0 or neighbours + randoms < 1:
            raise ValueError("need initial >= 1, parents >= 1, neighbours >= 0, randoms >= 0 and at least one "
                             f"candidate per ask; got {initial}, {parents}, {neighbours}, {randoms}")
        if prior <= 0 or exploration < 0:
            raise ValueError(f"need prior > 0 and exploration >= 0; got {prior}, {exploration}")
        self.initial, self.parents, self.neighbours, self.randoms = initial, parents, neighbours, randoms
        self.prior, self.exploration, self.cost_features = prior, exploration, cost_features
        self.sizes = np.array([len(d) for d in space.decisions])
        self._free = np.array(self.free, dtype=np.intp)  # the model has columns for the free decisions only
        free_sizes = self.sizes[self._free]
        self.offsets = np.concatenate([[1], 1 + np.cumsum(free_sizes)[:-1]]).astype(np.intp)  # 0: the intercept
        self._extra = 2 if cost_features else 0  # log(MACs/T) and its square, from the analytic cost
        pairs = [(i, j) for i in range(len(self._free)) for j in range(i + 1, len(self._free))]
        pair_sizes = [int(free_sizes[i] * free_sizes[j]) for i, j in pairs]
        if sum(pair_sizes) > interactions:
            pairs, pair_sizes = [], []
        self._pairs = np.array(pairs, dtype=np.intp).reshape(-1, 2)
        self._pair_width = free_sizes[self._pairs[:, 1]] if pairs else np.zeros(0, dtype=np.intp)
        self._pair_offsets = (1 + int(free_sizes.sum()) + np.concatenate([[0], np.cumsum(pair_sizes)[:-1]])
                              ).astype(np.intp) if pairs else np.zeros(0, dtype=np.intp)
        dims = 1 + int(free_sizes.sum()) + int(sum(pair_sizes)) + self._extra
        self._counts = np.zeros((dims, dims), dtype=np.int64)
        self._sums = np.zeros(dims, dtype=np.int64)
        self._sum_squares = 0                      # Σ y² in units², a Python int
        self._counted: dict[Choices, float] = {}   # choices -> reward, each result once
        self._pending_choices: set[Choices] = set()
        self._best: list[tuple[Choices, float]] = []  # the `parents` best results, best first
        self._cost_cache: dict[Choices, np.ndarray] = {}
        self._posterior: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------ proposals

    def _propose(self) -> tuple[Choices, dict[str, Any]]:
        if len(self._counted) + len(self._pending_choices) < self.initial or not self._counted:
            choices = self._fresh(lambda: [self.space.sample_choices(self.rng)])
        else:
            weights = self._draw_model()
            choices = self._fresh(lambda: self._candidates(), score=lambda pool: self._features(pool) @ weights)
        self._pending_choices.add(choices)
        return choices, {}

    def _fresh(self, make: Any, score: Any = None) -> Choices:
        """The best-scoring candidate that is neither told nor in flight (drawn again if all are)."""
        for _ in range(50):
            pool = [tuple(int(c) for c in candidate) for candidate in make()]
            if score is not None:
                order = np.argsort(-score(pool), kind="stable")
                pool = [pool[i] for i in order]
            for choices in pool:
                if choices not in self._counted and choices not in self._pending_choices:
                    return choices
        return tuple(self.space.sample_choices(self.rng))

    def _candidates(self) -> list[np.ndarray]:
        best = self._best
        out = []
        for i in range(self.neighbours):
            child = np.array(best[i % len(best)][0])
            for position in self.rng.choice(self._free, size=min(len(self._free), 1 + i % 3), replace=False):
                size = int(self.sizes[position])
                child[position] = (child[position] + 1 + int(self.rng.integers(size - 1))) % size
            out.append(child)
        out += list(self.rng.integers(0, self.sizes, size=(self.randoms, self.sizes.size)))  # uniform samples
        return out

    def _features(self, pool: list[Choices]) -> np.ndarray:
        rows = np.zeros((len(pool), self._sums.size))
        rows[:, 0] = 1.0
        for r, choices in enumerate(pool):
            free = np.asarray(choices)[self._free]
            rows[r, self.offsets + free] = 1.0
            if self._pairs.size:
                rows[r, self._pair_offsets + free[self._pairs[:, 0]] * self._pair_width + free[self._pairs[:, 1]]] = 1.0
            if self._extra:
                rows[r, -2:] = self._cost_features(choices)
        return rows

    def _cost_features(self, choices: Choices) -> np.ndarray:
        """Capacity: most of what separates architectures is how much they compute; the analytic MACs
        (cached, a fraction of a millisecond) give the linear model that axis directly."""
        features = self._cost_cache.get(choices)
        if features is None:
            macs = cost.count(self.space.decode(choices), self.space.target_resolution).macs
            level = np.log(macs / self.space.reward.target_macs)
            features = np.array([level, level * level])
            if len(self._cost_cache) >= 1 << 16:
                self._cost_cache.clear()
            self._cost_cache[choices] = features
        return features

    # ------------------------------------------------------------ the model

    def _draw_model(self) -> np.ndarray:
        """One model from the posterior (Thompson sampling); the posterior is refit after each new result."""
        if self._posterior is None:
            self._posterior = self._fit()
        mean, factor = self._posterior
        return mean + factor @ self.rng.standard_normal(mean.size)

    def _fit(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of the weights for a Gaussian prior N(0, σ²/prior · I) and noise σ² estimated from the
        spread of the rewards: mean A⁻¹Xᵀy and a factor L with LLᵀ = σ²A⁻¹ (A = XᵀX + prior·I)."""
        u2 = float(_UNIT) ** 2
        n = self._counts[0, 0] / u2
        centre = self._sums[0] / u2 / n
        spread = self._sum_squares / u2 / n - centre * centre  # the rewards' variance
        a = self._counts / u2 + self.prior * np.eye(self._sums.size)
        xty = self._sums / u2 - centre * (self._counts[0] / u2)  # Xᵀ(y - centre); row 0 of XᵀX is Σ x
        mean = np.linalg.solve(a, xty)
        mean[0] += centre
        variance = max(spread, 1e-8) * self.exploration ** 2
        inverse_factor = np.linalg.cholesky(a)  # A = CCᵀ, so L = σ C⁻ᵀ gives LLᵀ = σ²A⁻¹
        factor = np.sqrt(variance) * np.linalg.inv(inverse_factor).T
        return mean, factor

    def _observe(self, choices: Choices, extra: dict[str, Any], result: TrialResult) -> None:
        choices = tuple(int(c) for c in choices)
        self._pending_choices.discard(choices)
        if result.ok and choices not in self._counted:
            self._count(choices, ranking_reward(result))

    def _count(self, choices: Choices, value: float) -> None:
        x = np.round(self._features([choices])[0] * _UNIT).astype(np.int64)
        units = int(round(value * _UNIT))
        self._counts += np.outer(x, x)
        self._sums += x * units
        self._sum_squares += units * units
        self._counted[choices] = value
        self._best = sorted([*self._best, (choices, value)], key=lambda item: -item[1])[:self.parents]
        self._posterior = None

    # ------------------------------------------------------------ state (the model is rebuilt from the results)

    def _algorithm_state(self) -> dict[str, Any]:
        return {"pending": sorted(list(c) for c in self._pending_choices)}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        self._counts[:] = 0
        self._sums[:] = 0
        self._sum_squares, self._counted, self._best = 0, {}, []
        for result in self._results.values():
            self._count(self.space.encode(Architecture.parse(result.arch)), ranking_reward(result))
        self._pending_choices = {tuple(c) for c in state["pending"]}
