"""The controller interface: ``ask`` a proposal, ``tell`` its result, save and load plain state.

Asynchronous by construction: any number of proposals may be in flight, tells
arrive in any order, and a failed :class:`~nas.core.result.TrialResult` is a failure.
The bookkeeping every search shares lives here, once — ids, the in-flight map,
duplicate lookup, the ``max_macs`` pre-filter, counters, the numpy ``Generator``
and its state — so each algorithm is only ``_propose`` + ``_observe``.

Duplicates (``reevaluate=False``, the default). An architecture is never trained twice:

* already evaluated successfully → ``ask()`` returns ``Proposal(cached=result)``;
  the controller has already learned from that result; do not train it, do not tell it.
* still in flight under another id → ``Proposal(duplicate_of=that_id)``; when that
  id is told, the controller learns the same result for this one too; do not tell it.

Only ``proposal.needs_training`` proposals are trained and told. Re-proposals are avoided where an
algorithm can draw again: random search, evolution, NSGA-II, PPO and bayes draw up to
:data:`FRESH_TRIES` times for an architecture that is not :meth:`Controller.known` (what each does with
the known ones it drew: ``docs/controllers.md``). A failed
architecture is not cached (failures such as OOM may be transient) and may be
proposed again. With ``reevaluate=True`` every proposal needs training.

One thread: ``ask`` and ``tell`` run with every BLAS and OpenMP pool of the process (numpy's, torch's)
limited to one thread, through ``threadpoolctl``. A controller runs in the search's driver while
trainings hold the cores; there a second BLAS thread waits for a core instead of helping: with both
cores training, PPO's and bayes's ask+tell took 2–2.6× longer than on one thread
(``docs/controllers.md``).

``max_macs``: a proposal whose analytic MACs (``nas.core.cost.count`` at the space's
``target_resolution``) exceed it is rejected inside ``ask()`` — never returned —
told to the algorithm as a failure, counted in ``stats["rejected"]``, and drawn again.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from nas.core import cost
from nas.core.arch import Architecture
from nas.core.errors import NasError
from nas.core.result import TrialResult
from nas.space import SearchSpace

Choices = tuple[int, ...]


@dataclass(frozen=True)
class Proposal:
    """One architecture to evaluate. ``cached``/``duplicate_of`` mark ones that need no training."""

    id: str
    arch: Architecture
    choices: Choices = ()
    """One option index per decision of the space (``space.decisions`` order): ``space.decode(choices) == arch``."""
    cached: TrialResult | None = None
    duplicate_of: str | None = None

    @property
    def needs_training(self) -> bool:
        return self.cached is None and self.duplicate_of is None


FRESH_TRIES = 100
"""Draws an algorithm makes for an architecture that is not :meth:`Controller.known` before it proposes a
known one anyway (then answered from the cache, as the module docstring says)."""


class ConstraintError(NasError, RuntimeError):
    """``max_macs`` rejected every draw: the constraint looks impossible for this space."""


class Controller(abc.ABC):
    """Base of every search algorithm; subclasses implement ``_propose`` and ``_observe``."""

    name = "controller"

    def __init__(self, space: SearchSpace, *, seed: int, max_macs: float | None = None,
                 reevaluate: bool = False, max_attempts: int = 1000) -> None:
        if max_macs is not None and max_macs <= 0:
            raise ValueError(f"max_macs must be positive, got {max_macs}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.space = space
        self.seed = int(seed)
        self.max_macs = max_macs
        self.reevaluate = reevaluate
        self.max_attempts = max_attempts
        self.rng = np.random.default_rng(self.seed)
        self.free = tuple(i for i, d in enumerate(space.decisions) if len(d) > 1)
        """The positions of the space's free decisions (more than one option): the only ones an algorithm
        models; a fixed decision is always option 0 (:meth:`expand`)."""
        self._next_id = 0
        self._pending: dict[str, dict[str, Any]] = {}   # id -> ticket {choices, extra, arch, waiters}
        self._in_flight: dict[str, str] = {}            # arch string -> id being trained
        self._results: dict[str, TrialResult] = {}      # arch string -> ok result (the duplicate cache)
        self.stats = {"asked": 0, "told": 0, "failed": 0, "rejected": 0, "cached": 0, "waited": 0}
        self._threadpools: ThreadpoolController | None = None  # found at the first ask or tell (~1 ms)

    # ------------------------------------------------------------ what an algorithm implements

    @abc.abstractmethod
    def _propose(self) -> tuple[Choices, dict[str, Any]]:
        """Next choices, plus JSON-able data to keep with them until told (e.g. PPO's log-prob)."""

    @abc.abstractmethod
    def _observe(self, choices: Choices, extra: dict[str, Any], result: TrialResult) -> None:
        """Learn from one outcome; ``result.ok`` is False for failures and rejections."""

    def _algorithm_state(self) -> dict[str, Any]:
        return {}

    def _load_algorithm_state(self, state: dict[str, Any]) -> None:
        pass

    # ------------------------------------------------------------ the interface

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (Ray Tune pickles its searcher, controller included); the pools are found again."""
        return {**self.__dict__, "_threadpools": None}

    def _one_thread(self) -> Any:
        """A context in which every thread pool loaded in the process runs one thread (module docstring)."""
        if self._threadpools is None:
            self._threadpools = ThreadpoolController()
        return self._threadpools.limit(limits=1)

    def ask(self) -> Proposal:
        """Propose an architecture; see the module docstring for cached and duplicate proposals."""
        with self._one_thread():
            for _ in range(self.max_attempts):
                choices, extra = self._propose()
                arch = self.space.decode(choices)
                key = str(arch)
                if self.max_macs is not None:
                    macs = cost.count(arch, self.space.target_resolution).macs
                    if macs > self.max_macs:
                        self.stats["rejected"] += 1
                        self._observe(choices, extra, TrialResult.failure(
                            key, f"rejected: {macs} MACs > max_macs {self.max_macs:g}", macs=macs))
                        continue
                proposal_id = f"{self.name}-{self._next_id}"
                self._next_id += 1
                self.stats["asked"] += 1
                if not self.reevaluate and key in self._results:
                    self.stats["cached"] += 1
                    self._observe(choices, extra, self._results[key])
                    return Proposal(proposal_id, arch, choices, cached=self._results[key])
                if not self.reevaluate and key in self._in_flight:
                    original = self._in_flight[key]
                    self.stats["waited"] += 1
                    self._pending[original]["waiters"].append({"choices": list(choices), "extra": extra})
                    return Proposal(proposal_id, arch, choices, duplicate_of=original)
                self._pending[proposal_id] = {"choices": list(choices), "extra": extra, "arch": key, "waiters": []}
                self._in_flight.setdefault(key, proposal_id)
                return Proposal(proposal_id, arch, choices)
            raise ConstraintError(
                f"max_macs = {self.max_macs:g}: {self.max_attempts} proposals in a row were over it; "
                f"the constraint looks impossible for space {self.space.name!r} (raise max_macs)")

    def tell(self, proposal_id: str, result: TrialResult) -> None:
        """Report the outcome of a proposal that needed training; a failed result is a failure."""
        with self._one_thread():
            ticket = self._pending.pop(proposal_id, None)
            if ticket is None:
                raise ValueError(f"proposal {proposal_id!r} is not in flight "
                                 "(never asked, already told, or answered from the cache / a duplicate)")
            if result.arch != ticket["arch"]:
                self._pending[proposal_id] = ticket
                raise ValueError(f"result for proposal {proposal_id!r} is for architecture {result.arch!r}, "
                                 f"but the proposal was {ticket['arch']!r}")
            if self._in_flight.get(ticket["arch"]) == proposal_id:
                del self._in_flight[ticket["arch"]]
            self.stats["told"] += 1
            if result.ok:
                self._results[ticket["arch"]] = result
            else:
                self.stats["failed"] += 1
            for entry in ({"choices": ticket["choices"], "extra": ticket["extra"]}, *ticket["waiters"]):
                self._observe(tuple(entry["choices"]), entry["extra"], result)

    def known(self, choices: Choices | list[int]) -> bool:
        """Whether ``choices`` are a re-proposal: an architecture already evaluated successfully or in flight.
        An algorithm that can draw again asks this first (up to :data:`FRESH_TRIES` times), so a search
        spends its asks on new architectures instead of spinning on known ones."""
        if self.reevaluate:
            return False
        key = str(self.space.decode(choices))
        return key in self._results or key in self._in_flight

    def fresh(self, draw: Callable[[], Choices]) -> Choices:
        """``draw()`` again while it is :meth:`known`, up to :data:`FRESH_TRIES` times (then the last draw)."""
        for _ in range(FRESH_TRIES):
            choices = tuple(int(c) for c in draw())
            if not self.known(choices):
                break
        return choices

    def expand(self, free_choices: Choices | list[int]) -> Choices:
        """Choices of the free decisions (:attr:`free` order) as choices of every decision."""
        full = [0] * len(self.space.decisions)
        for position, choice in zip(self.free, free_choices, strict=True):
            full[position] = int(choice)
        return tuple(full)

    def restrict(self, choices: Choices | list[int]) -> Choices:
        """Choices of every decision as choices of the free ones (:meth:`expand` read backwards)."""
        return tuple(int(choices[position]) for position in self.free)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def results(self) -> dict[str, TrialResult]:
        """Every successful result so far, by canonical architecture string."""
        return dict(self._results)

    # ------------------------------------------------------------ resume

    def state_dict(self, *, results: bool = True) -> dict[str, Any]:
        """Everything needed to continue exactly, as plain JSON-able data.

        ``results=False`` leaves out the duplicate cache — every successful result so far, the one
        part that grows with the run — for a caller that keeps those results anyway (the run store
        does, one row per trial) and hands them back to :meth:`load_state_dict`. Saving the whole
        cache at every ask and tell would make a long search write O(trials²) bytes."""
        state = {"controller": self.name, "seed": self.seed, "rng": self.rng.bit_generator.state,
                 "next_id": self._next_id, "pending": self._pending, "in_flight": self._in_flight,
                 "stats": dict(self.stats), "algorithm": self._algorithm_state()}
        if results:
            state["results"] = [r.to_dict() for r in self._results.values()]
        return state

    def load_state_dict(self, state: dict[str, Any], *, results: Iterable[TrialResult] | None = None) -> None:
        """Continue from ``state``; a state saved with ``results=False`` needs its results passed here."""
        if state.get("controller") != self.name:
            raise ValueError(f"state is for controller {state.get('controller')!r}, not {self.name!r}")
        if "results" in state:
            told = [TrialResult.from_dict(r) for r in state["results"]]
        elif results is not None:
            told = [r for r in results if r.ok]
        else:
            raise ValueError("this state was saved without its results (state_dict(results=False)); "
                             "pass them: load_state_dict(state, results=...)")
        self.rng.bit_generator.state = state["rng"]
        self._next_id = int(state["next_id"])
        self._pending = {k: dict(v) for k, v in state["pending"].items()}
        self._in_flight = dict(state["in_flight"])
        self._results = {r.arch: r for r in told}
        self.stats = dict(state["stats"])
        self._load_algorithm_state(state["algorithm"])


def ranking_reward(result: TrialResult) -> float:
    """The scalar a single-objective controller ranks by; a successful result must carry one."""
    if result.reward is None:
        raise ValueError(f"a successful TrialResult needs a reward to rank by (architecture {result.arch!r})")
    return float(result.reward)
