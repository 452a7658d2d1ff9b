"""Experiment trackers (``--tracker mlflow|wandb|tensorboard``): every trial as a tracker run.

Ray Tune's own logger callbacks do the work (``MLflowLoggerCallback``, ``WandbLoggerCallback``,
``TBXLoggerCallback``): they already turn each trial into one tracker run, log its config (the ``arch``
string) as parameters and every result it reports as a metric at its ``training_iteration`` (one step per
epoch), and they run on the driver, so no worker needs credentials or network access. Writing the same
again here would only add code that drifts from Tune's. The trackers' packages are optional extras,
imported only when asked for: a missing one is one line saying what to install.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from nas.core.errors import NasError

PACKAGES = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb"), "tensorboard": ("tensorboardX", "tensorboard")}
"""tracker -> (the module it needs, the ``nas[...]`` extra that installs it)."""


class TrackerError(NasError):
    """A tracker that cannot be used as asked (its package is not installed)."""


def check(tracker: str) -> None:
    """Fail before anything starts when ``tracker``'s package is missing (one line, what to install)."""
    if tracker == "none":
        return
    module, extra = PACKAGES[tracker]
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise TrackerError(f"--tracker {tracker} needs the {module} package ({error}): "
                           f"pip install 'nas[{extra}]'") from None


def default_mlflow_uri(run_dir: Path) -> str:
    """MLflow's own local store inside the run folder: an SQLite file (MLflow refuses its older file store by
    default and recommends this one), readable by ``MlflowClient`` and ``mlflow ui``."""
    return f"sqlite:///{run_dir.resolve() / 'mlflow.db'}"


def callbacks(tracker: str, run_dir: Path, *, uri: str | None = None,
              tune_storage: str | None = None) -> tuple[list[Any], str | None]:
    """Tune's logger callback for ``tracker`` and one line telling the user where to look (None: no tracker)."""
    if tracker == "none":
        return [], None
    check(tracker)
    name = run_dir.name
    if tracker == "mlflow":
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        uri = uri or default_mlflow_uri(run_dir)
        return ([MLflowLoggerCallback(tracking_uri=uri, experiment_name=name, tags={"nas.run": str(run_dir)})],
                f"MLflow: experiment {name!r} at {uri} (mlflow ui --backend-store-uri {uri})")
    if tracker == "wandb":
        from ray.air.integrations.wandb import WandbLoggerCallback

        online = bool(os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"))
        mode = os.environ.get("WANDB_MODE") or ("online" if online else "offline")
        # Nothing leaves the machine unless the user asked for it: Tune's callback reads WANDB_MODE on the
        # driver to decide whether it needs an API key, and passes ``mode`` to each trial's wandb.init.
        os.environ.setdefault("WANDB_MODE", mode)
        project = os.environ.get("WANDB_PROJECT", "nas")
        where = run_dir.resolve()
        line = (f"wandb: project {project!r}, group {name!r}, mode {mode}" +
                ("" if online else f" (offline: `wandb sync {where / 'wandb'}/offline-run-*` uploads it; "
                 "set WANDB_MODE=online or WANDB_API_KEY to log live)"))
        return [WandbLoggerCallback(project=project, group=name, mode=mode, dir=str(where))], line
    from ray.tune.logger import TBXLoggerCallback

    # Tune adds this logger on its own whenever tensorboardX imports; naming it keeps it on even where
    # TUNE_DISABLE_AUTO_CALLBACK_LOGGERS turns the automatic loggers off.
    logs = tune_storage or str(run_dir)
    return [TBXLoggerCallback()], f"TensorBoard: tensorboard --logdir {logs} (one event file per trial, tune-N/)"
