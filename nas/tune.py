"""The Ray backend: connecting to Ray, the trainable, ``Searcher`` adapters, and one Tune experiment.

A search owns its Ray: with no address it starts Ray in-process (never joining another user's Ray on
the same machine by accident); it joins a cluster only when told (``--address``, or ``RAY_ADDRESS``
as ``ray submit`` under ``cluster.yaml`` sets it), says which at start, refuses a per-trial resource
request no node can meet (unless an autoscaler may add one), and gives up on an unreachable address
after a bounded wait.

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

import contextlib
import dataclasses
import json
import math
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import Searcher

from nas.arch import Architecture
from nas.atomic import write_atomic
from nas.errors import NasError
from nas.progress import Progress
from nas.result import Candidate, TrialResult
from nas.settings import Resources, SchedulerSettings

RANKED_BY = "objective"
"""The metric Tune's searchers and schedulers rank trials by: the trial's reward, NaN when it has none
(a failure). A failed trial can have reported epochs first, and Tune's schedulers do arithmetic on
whatever their metric holds; NaN is what ASHA's rung cut-offs leave out (``numpy.nanpercentile``), so a
failure neither stops nor promotes anyone. ``reward`` itself stays ``None`` for a failure, as stored."""

CONNECT_TIMEOUT_S = 15.0
"""How long to wait for a cluster's address to answer before saying it cannot be reached."""


class RayError(NasError):
    """Ray cannot run the trials as asked: an unreachable cluster, resources no node has."""

# How many cached/duplicate proposals in a row ``suggest`` skips before it concludes the space is exhausted.
MAX_SKIPPED_PROPOSALS = 10_000


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

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """An epoch's report: a point of the trial's learning curve in the store."""
        if trial_id in self._live and self.store is not None and result.get("status") == "stopped":
            self.store.record_epoch(self._live[trial_id][0], int(result.get("epochs") or 0),
                                    accuracy=result.get("accuracy"), reward=result.get("reward"))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self._live:
            return  # not ours (e.g. a trial restored by Tune itself)
        proposal_id, arch = self._live.pop(trial_id)
        outcome = _as_result(arch, result, error)
        self.controller.tell(proposal_id, self._as_told(outcome))
        if self.store is not None:
            if outcome.status in ("ok", "stopped"):  # the last point (Tune tells a stopping result only here)
                self.store.record_epoch(proposal_id, outcome.epochs, accuracy=outcome.accuracy, reward=outcome.reward)
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


def _as_result(arch: str, result: dict[str, Any] | None, error: bool) -> TrialResult:
    if not error and result and result.get("status") in ("ok", "failed", "stopped"):
        return TrialResult.from_dict(result)
    return TrialResult.failure(arch, "the trial's worker crashed or was lost after all retries "
                                     "(see the Ray Tune log in the run folder)")


# ---------------------------------------------------------------- the trainable


def run_trial(config: dict[str, Any], task: Any = None, evaluator: Any = None) -> None:
    """One Ray trial: evaluate ``config["arch"]`` on ``task`` (with ``evaluator``, by default the stand-alone
    :func:`nas.evaluate.evaluate`) and report the TrialResult's fields."""
    from nas.evaluate import evaluate  # imported in the worker, not in the driver's module import

    evaluator = evaluator or evaluate
    text = config["arch"]
    node = _node_name()
    try:
        task = for_candidate(task, config)
        # every epoch but the last is reported as a trial stopped there: what an early-stopping scheduler
        # sees, and what the trial is if the scheduler does stop it
        result = evaluator(Architecture.parse(text), task, on_epoch=lambda partial: _report(partial, node))
    except Exception as error:  # noqa: BLE001 - a trial's fault must be a stored failure, never a lost trial
        result = TrialResult.failure(text, f"{type(error).__name__}: {error}")
    _report(result, node)


def _report(result: TrialResult, node: str) -> None:
    ranked = result.reward if result.reward is not None else math.nan
    tune.report({**result.to_dict(), "node": node, RANKED_BY: ranked})


def for_candidate(task: Any, config: dict[str, Any]) -> Any:
    """``task`` as a fixed candidate asks (:class:`~nas.result.Candidate`): its own proxy changes, seed and
    cost resolution; a search's own proposals change nothing."""
    if config.get("proxy_changes"):
        task = task.with_proxy(**config["proxy_changes"])
    changes = {k: config[k] for k in ("seed", "target_resolution") if config.get(k) is not None}
    return dataclasses.replace(task, **changes) if changes else task


def _node_name() -> str:
    try:
        import ray
        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray
        return socket.gethostname()


def trainable(task: Any, resources: Resources, evaluator: Any = None) -> Any:
    """The trainable with its resources; ``task`` goes to the object store once (``with_parameters``)."""
    return tune.with_resources(tune.with_parameters(run_trial, task=task, evaluator=evaluator),
                               {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})


# ---------------------------------------------------------------- Ray itself


def connect(resources: Resources) -> str:
    """Start or join Ray as ``resources.address`` says, check that a trial fits, and return one line
    saying where trials run. No address: ``$RAY_ADDRESS`` when set, else Ray started in-process."""
    import ray

    in_process = False
    if ray.is_initialized():
        where = "Ray already running in this process"
    else:
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        address, source = resources.address, "--address"
        if address is None and os.environ.get("RAY_ADDRESS"):
            address, source = os.environ["RAY_ADDRESS"], "$RAY_ADDRESS"
        if address in (None, "local"):
            with _without_env("RAY_ADDRESS"):
                ray.init(address="local", include_dashboard=False, log_to_driver=False)
            in_process = True
            where = "Ray started in-process (join a cluster with --address auto or $RAY_ADDRESS)"
        else:
            if address != "auto":
                _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise RayError(f"cannot reach the Ray cluster at {address} ({source}): "
                               f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
            where = f"joined the Ray cluster at {address} ({source})"
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    total_cpu = sum(n.get("CPU", 0) for n in nodes)
    total_gpu = sum(n.get("GPU", 0) for n in nodes)
    _check_fits(resources, nodes, autoscaler=not in_process and _has_autoscaler())
    return f"{where}: {len(nodes)} node(s), {total_cpu:g} CPUs, {total_gpu:g} GPUs"


def run_on_cluster(function: Any, *args: Any, resources: Resources, whole_node: bool = True, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` as one Ray task (a GPU if trials get one; the CPUs of ``concurrency``
    trials, at most a node's), waited for; where a supernet is trained."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = max((n.get("CPU", 1) for n in nodes), default=1)
    cpus = min(largest, resources.cpus_per_trial * (resources.concurrency if whole_node else 1))
    gpus = 1 if resources.gpus_per_trial > 0 else 0
    return ray.get(ray.remote(num_cpus=cpus, num_gpus=gpus)(function).remote(*args, **kwargs))


def _check_fits(resources: Resources, nodes: list[dict[str, float]], *, autoscaler: bool) -> None:
    """A trial runs on one node: some node must have its CPUs and GPUs, or no trial would ever start."""
    need = {"CPU": resources.cpus_per_trial, "GPU": resources.gpus_per_trial}
    if any(all(node.get(k, 0) >= v for k, v in need.items() if v > 0) for node in nodes) or autoscaler:
        return
    largest = {k: max((node.get(k, 0) for node in nodes), default=0) for k in need}
    raise RayError(f"a trial asks for {need['CPU']:g} CPUs and {need['GPU']:g} GPUs, but the largest node has "
                   f"{largest['CPU']:g} CPUs and {largest['GPU']:g} GPUs and no autoscaler can add one: "
                   "lower --cpus-per-trial / --gpus-per-trial")


def _has_autoscaler() -> bool:
    """Whether an autoscaler with node types reports for this cluster (``ray up``): then a node that fits
    may yet be added. Every Ray head publishes a status; only a configured autoscaler adds its report."""
    try:
        from ray._private import ray_constants
        from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_initialized

        status = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS) if _internal_kv_initialized() else None
        return bool(status) and "autoscaler_report" in json.loads(status)
    except Exception:  # noqa: BLE001 - private API moved: assume none
        return False


def _check_reachable(address: str) -> None:
    """Fail in bounded time when ``host:port`` does not answer (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayError(f"--address {address!r} is not host:port, 'auto' or 'local'")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise RayError(f"cannot reach the Ray cluster at {address}: {error.strerror or error} "
                       f"(waited at most {CONNECT_TIMEOUT_S:g} s)") from None


@contextlib.contextmanager
def _without_env(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def scheduler_for(settings: SchedulerSettings, max_epochs: int) -> Any:
    """Ray Tune's own early-stopping scheduler for ``settings`` (None: every trial trains to the end)."""
    if settings.kind == "none":
        return None
    from ray.tune.schedulers import AsyncHyperBandScheduler

    brackets = 1
    if settings.kind == "hyperband":  # HyperBand's bracket count, floor(log_eta(max / grace)) + 1
        brackets = int(math.log(max(1, max_epochs / settings.grace_period)) / math.log(settings.reduction_factor)
                       + 1e-9) + 1
    return AsyncHyperBandScheduler(time_attr="training_iteration", metric=RANKED_BY, mode="max", max_t=max_epochs,
                                   grace_period=settings.grace_period, reduction_factor=settings.reduction_factor,
                                   brackets=brackets)


def run_experiment(searcher: Searcher, task: Any, *, run_dir: Path, num_samples: int, resources: Resources,
                   callbacks: list | None = None, scheduler: Any = None, evaluator: Any = None,
                   time_budget: float | None = None) -> None:
    """One Tune experiment whose logs go to ``tune-N`` (N counts attempts, so a resumed run keeps the old
    logs) in the run folder, or in ``resources.tune_storage`` when given (shared storage for many nodes)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress line is the display; Tune stays quiet
    storage = resources.tune_storage or str(run_dir.resolve())
    attempt = sum(1 for p in run_dir.glob("tune-*") if p.is_dir())
    name = f"tune-{attempt}" if resources.tune_storage is None else f"{run_dir.name}-tune-{attempt}"
    tuner = tune.Tuner(
        trainable(task, resources, evaluator),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=resources.concurrency, reuse_actors=True,
                                    time_budget_s=time_budget),
        run_config=tune.RunConfig(name=name, storage_path=storage,
                                  failure_config=tune.FailureConfig(max_failures=2), verbose=0,
                                  callbacks=callbacks or []),
    )
    tuner.fit()


class ProgressCallback(tune.Callback):
    """Keeps the running count current and prints the status line between trial completions."""

    def __init__(self, progress: Progress) -> None:
        self.progress: Progress | None = progress

    def __getstate__(self) -> dict[str, Any]:
        return {"progress": None}  # Tune snapshots its callbacks; the terminal stays with this process

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.progress is None:
            return
        self.progress.running = sum(1 for t in trials if t.status == "RUNNING")
        self.progress.maybe_print()
