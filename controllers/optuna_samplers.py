"""Optuna's samplers as controllers: TPE, the Gaussian-process sampler, NSGA-II and NSGA-III.

Each decision of the space is one categorical parameter (its option index); Optuna's ask-and-tell
interface does the rest. TPE and the GP sampler maximize the reward; NSGA-II and NSGA-III search the
accuracy/MACs front (accuracy up, MACs down). CMA-ES is not offered: it samples continuous
parameters and falls back to independent random sampling for categorical ones, which is what a
factorized space is made of.

Only the space's free decisions (those with more than one option) are Optuna parameters: a fixed one
would be a parameter with a single value, work for the sampler and nothing to learn. One sampler serves the
whole run, seeded once, as Optuna is used directly. Resume: the state is the log of asks and tells in
order; a controller loaded from it builds the same sampler and replays the log (each ask sampled again,
checked against the logged choices), so it proposes exactly what the uninterrupted one would next. The log grows with the run
(about 100 bytes a trial): these samplers are for hundreds to a few thousands of trials, not 10 000.
Optuna is an optional dependency: ``pip install 'nas[optuna]'``.
"""

from __future__ import annotations

import warnings
from typing import Any

from controllers.base import Choices, Controller
from nas.core.result import TrialResult
from nas.space import SearchSpace


def _optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        raise ValueError("the Optuna controllers need Optuna: pip install 'nas[optuna]' (or pip install optuna)") \
            from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


class OptunaController(Controller):
    """Base of the Optuna-backed controllers; a subclass names its sampler and its objectives."""

    name = "optuna"
    multi_objective = False
    def __init__(self, space: SearchSpace, *, seed: int, **options: Any) -> None:
        super().__init__(space, seed=seed, **options)
        self.optuna = _optuna()
        self._events: list[str] = []  # "a <choices>" per ask, "t <number> <values|fail>" per tell
        self._study = self._new_study()
        self._asks = 0

    def _sampler(self, seed: int) -> Any:
        raise NotImplementedError

    def _new_study(self) -> Any:
        directions = ["maximize", "minimize"] if self.multi_objective else ["maximize"]
        return self.optuna.create_study(directions=directions, sampler=self._sampler(self.seed))

    def _distributions(self) -> dict[str, Any]:
        """The free decisions, each a categorical parameter over its option indices."""
        categorical = self.optuna.distributions.CategoricalDistribution
        return {d.name: categorical(list(range(len(d)))) for d in self.space.decisions if len(d) > 1}

    def _propose(self) -> tuple[Choices, dict[str, Any]]:
        trial = self._study.ask(self._distributions())
        params = trial.params  # a copy per access: taken once
        choices = tuple(int(params.get(d.name, 0)) for d in self.space.decisions)
        self._asks += 1
        self._events.append("a " + ",".join(map(str, choices)))
        return choices, {"number": trial.number}

    def _observe(self, choices: Choices, extra: dict[str, Any], result: TrialResult) -> None:
        values = self._values(result)
        self._tell(int(extra["number"]), values)
        self._events.append(f"t {extra['number']} " + (",".join(repr(v) for v in values) if values else "fail"))

    def _values(self, result: TrialResult) -> list[float] | None:
        if not result.ok or result.reward is None:
            return None
        if self.multi_objective:
            return None if result.accuracy is None or result.macs is None else [result.accuracy, float(result.macs)]
        return [result.reward]

    def _tell(self, number: int, values: list[float] | None) -> None:
        state = self.optuna.trial.TrialState
        if values is None:
            self._study.tell(number, state=state.FAIL)
        else:
            self._study.tell(number, values if self.multi_objective else values[0])

    def _algorithm_state(self) -> dict[str, Any]:
        return {"events": self._events, "asks": self._asks, "sampler_seed": self.seed, "sampler": "one per run"}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        if state.get("sampler") != "one per run":
            raise ValueError(f"{self.name}: this run's Optuna state was written by an earlier nas, which built a "
                             "sampler per ask; it cannot be continued exactly: start a new run")
        self.seed = int(state["sampler_seed"])  # the sampler is the run's, seeded as it was
        self._study = self._new_study()
        self._events = list(state["events"])
        names, asks = [d.name for d in self.space.decisions], 0
        free = set(self._distributions())
        for event in self._events:
            kind, _, rest = event.partition(" ")
            if kind == "a":  # the same sampler, the same history: the same ask
                logged = {name: choice for name, choice in zip(names, map(int, rest.split(","))) if name in free}
                trial = self._study.ask(self._distributions())
                if trial.params != logged:
                    raise ValueError(f"{self.name}: the stored state does not replay (ask {asks} proposes other "
                                     "choices than it did); was it written by another Optuna version?")
                asks += 1
            else:
                number, _, values = rest.partition(" ")
                self._tell(int(number), None if values == "fail" else [float(v) for v in values.split(",")])
        self._asks = int(state["asks"])


class OptunaTPE(OptunaController):
    """Tree-structured Parzen estimators on the reward (Optuna's default sampler)."""

    name = "optuna-tpe"

    def _sampler(self, seed: int) -> Any:
        return self.optuna.samplers.TPESampler(seed=seed % 2**32)


class OptunaGP(OptunaController):
    """Gaussian-process Bayesian optimization on the reward (Optuna's GPSampler; categorical kernel)."""

    name = "optuna-gp"

    def _sampler(self, seed: int) -> Any:
        return self.optuna.samplers.GPSampler(seed=seed % 2**32)


class OptunaNSGA2(OptunaController):
    """Optuna's NSGA-II on (accuracy ↑, MACs ↓)."""

    name = "optuna-nsga2"
    multi_objective = True

    def __init__(self, space: SearchSpace, *, seed: int, population_size: int = 50, **options: Any) -> None:
        self.population_size = population_size
        super().__init__(space, seed=seed, **options)

    def _sampler(self, seed: int) -> Any:
        return self.optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=seed % 2**32)


class OptunaNSGA3(OptunaNSGA2):
    """Optuna's NSGA-III on (accuracy ↑, MACs ↓): reference-point niching instead of crowding distance."""

    name = "optuna-nsga3"

    def _sampler(self, seed: int) -> Any:
        return self.optuna.samplers.NSGAIIISampler(population_size=self.population_size, seed=seed % 2**32)
