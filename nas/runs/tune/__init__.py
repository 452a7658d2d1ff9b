"""The Ray backend: connecting to Ray, the trainable, ``Searcher`` adapters, and one Tune experiment."""

from nas.runs.tune import trackers
from nas.runs.tune.connect import CONNECT_TIMEOUT_S, RayError, connect, run_on_cluster
from nas.runs.tune.experiment import ProgressCallback, check_storage, run_experiment, scheduler_for
from nas.runs.tune.searchers import MAX_SKIPPED_PROPOSALS, ControllerSearcher, ListSearcher
from nas.runs.tune.trial import RANKED_BY, for_candidate, run_trial, trainable

__all__ = ["CONNECT_TIMEOUT_S", "RayError", "connect", "run_on_cluster", "MAX_SKIPPED_PROPOSALS", "ControllerSearcher", "ListSearcher", "RANKED_BY", "run_trial", "for_candidate", "trainable", "scheduler_for", "run_experiment", "ProgressCallback", "check_storage",
           "trackers"]
