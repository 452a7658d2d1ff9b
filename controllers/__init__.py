"""Search controllers behind one ask/tell interface, created by name: ``create("evolution", space, seed=0)``."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from controllers.base import ConstraintError, Controller, Proposal
from nas.space import SearchSpace

# name -> "module:Class", imported on first use (``random`` and ``evolution`` need no torch).
_REGISTRY = {"random": "controllers.random_search:RandomSearch",
             "evolution": "controllers.evolution:RegularizedEvolution",
             "ppo": "controllers.ppo:PPO",
             "nsga2": "controllers.nsga2:NSGA2",
             "bayes": "controllers.bayes:BayesianLinear",
             "optuna-tpe": "controllers.optuna_samplers:OptunaTPE",
             "optuna-gp": "controllers.optuna_samplers:OptunaGP",
             "optuna-nsga2": "controllers.optuna_samplers:OptunaNSGA2",
             "optuna-nsga3": "controllers.optuna_samplers:OptunaNSGA3"}


def available() -> list[str]:
    return list(_REGISTRY)


def create(name: str, space: SearchSpace, *, seed: int, **options: Any) -> Controller:
    """A seeded controller by name; unknown names or options raise ``ValueError`` saying what is allowed."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown controller {name!r}; allowed: {', '.join(_REGISTRY)}")
    module, _, attribute = _REGISTRY[name].partition(":")
    cls = getattr(importlib.import_module(module), attribute)
    allowed = _options(cls)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"controller {name!r}: unknown option(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed)}")
    return cls(space, seed=seed, **options)


def _options(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            names += [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "seed" and p.name not in names]
    return names


__all__ = ["ConstraintError", "Controller", "Proposal", "available", "create"]
