"""What each command runs: one settings model per command, as stored in its run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from nas.core.limits import LIMITS
from nas.settings.base import Finite, Settings, flag
from nas.settings.proxy import ProxySettings, RewardSettings
from nas.settings.run import Device, Resources, RunPlace, SchedulerSettings, SupernetSettings

DEFAULT_SPACE = "search_spaces/mnasnet.yaml"


def seed_flag(help: str = "seeds the controller, the data split and training") -> Any:
    return flag(0, help, ge=0, le=2**32 - 1)


def cost_resolution_flag() -> Any:
    return flag(None, "input size the cost (MACs, latency) is counted at: your deployment's (default: the space's "
                "target_resolution)", ge=LIMITS["resolution"][0], le=LIMITS["resolution"][1])


def cost_classes_flag() -> Any:
    return flag(None, "classifier outputs the cost is counted for: your deployment's (default: the space's "
                "num_classes)", ge=1, le=1_000_000)


class EvaluateSettings(Settings):
    """One architecture trained on a proxy and scored (``nas evaluate``)."""

    space: str | None = flag(None, "search-space YAML whose proxy: and reward: blocks to use "
                             "(default: ARCH itself when it is a YAML file, else the built-in defaults)")
    seed: int = seed_flag("seed for the split, the initialization and the batches")
    cost_resolution: int | None = cost_resolution_flag()
    cost_classes: int | None = cost_classes_flag()
    device: Device = flag("auto", "auto, cpu, cuda or cuda:N")
    latency_runs: int = flag(0, "also measure latency: median of N batch-1 forwards at the target resolution",
                             flags=("--latency",), ge=0, le=10_000)
    proxy: ProxySettings = ProxySettings()
    reward: RewardSettings = RewardSettings()


class SearchSettings(Settings):
    """One search, as stored in its run: the space (path; its text is stored beside), the controller,
    the resolved proxy and reward, and where it runs."""

    space: str = flag(DEFAULT_SPACE, "search-space YAML: a path, or the name of a shipped space")
    controller: str = flag("evolution", "the search algorithm (nas search --help lists them)")
    controller_options: dict[str, Any] = {}
    trials: int = flag(16, "finished trials to end with", ge=1, le=10_000_000)
    seed: int = seed_flag()
    cost_resolution: int | None = cost_resolution_flag()
    cost_classes: int | None = cost_classes_flag()
    progress_seconds: Finite = flag(5.0, "seconds between status lines", gt=0, le=86_400)
    time_budget: Finite | None = flag(None, "stop after this many seconds of searching (trials in flight are "
                                      "re-run by --resume)", gt=0, le=10_000_000)
    tracker: Literal["none", "mlflow", "wandb", "tensorboard"] = flag(
        "none", "also log every trial (its architecture, per-epoch metrics, final reward, accuracy and MACs) to "
        "an experiment tracker: mlflow (runs/NAME/mlflow.db unless --tracker-uri), wandb (offline unless "
        "WANDB_MODE or WANDB_API_KEY is set) or tensorboard (Tune's event files in the run folder)")
    tracker_uri: str | None = flag(None, "where --tracker mlflow logs: an MLflow tracking URI (default: "
                                   "sqlite:///RUN_DIR/mlflow.db, a store in the run folder)")
    place: RunPlace = RunPlace()
    resources: Resources = Resources()
    evaluator: Literal["standalone", "supernet", "table"] = flag(
        "standalone", "how a trial measures accuracy: train the candidate on the proxy (standalone), take it from "
        "a weight-sharing supernet trained once (supernet), or look it up in a table of known results (table)")
    table: str | None = flag(None, "with --evaluator table: a CSV or JSON file of architectures and their accuracy "
                             "(docs/controllers.md)", min_length=1, max_length=4096)
    supernet: SupernetSettings = SupernetSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    proxy: ProxySettings = ProxySettings()
    reward: RewardSettings = RewardSettings()

    @field_validator("table")
    @classmethod
    def _table_absolute(cls, table: str | None) -> str | None:
        # trials run in folders of their own, where a path relative to where it was typed means nothing
        return None if table is None else os.path.abspath(os.path.expanduser(table))

    @model_validator(mode="after")
    def _grace_within_the_proxy(self) -> SearchSettings:
        if (self.evaluator == "table") != (self.table is not None):
            raise ValueError("--evaluator table and --table FILE go together")
        if self.evaluator == "table" and self.scheduler.kind != "none":
            raise ValueError("a table answers a candidate at once: there is nothing to stop early "
                             "(leave --scheduler at none)")
        if self.evaluator == "supernet" and self.scheduler.kind != "none":
            raise ValueError("a supernet evaluates a candidate in one pass: there is nothing to stop early "
                             "(leave --scheduler at none)")
        if self.scheduler.kind != "none" and self.scheduler.grace_period >= self.proxy.epochs:
            raise ValueError(f"the scheduler's grace period ({self.scheduler.grace_period} epochs) must be shorter "
                             f"than the proxy ({self.proxy.epochs} epochs), or nothing can stop early")
        return self

    def run_dir(self) -> Path:
        return self.place.run_dir()

    @classmethod
    def for_space(cls, space: Any, given: dict[str, Any]) -> SearchSettings:
        """A new run on ``space`` with the ``given`` changes (see :func:`for_space`)."""
        return for_space(cls, space, given)


def for_space(model: type[Settings], space: Any, given: dict[str, Any]) -> Any:
    """``model`` (settings with ``proxy`` and ``reward``) for ``space``: its proxy and reward blocks with the
    ``given`` changes (a nested dict shaped like the model), validated in one step so an error names its
    full path. ``space`` may be None: the built-in proxy and reward."""
    proxy = space.proxy if space is not None else ProxySettings()
    reward = space.reward if space is not None else RewardSettings()
    data = {**given, "proxy": proxy.merged(given.get("proxy", {}))}
    if "reward" in model.model_fields:
        data["reward"] = {**reward.model_dump(), **given.get("reward", {})}
    return model.model_validate(data)


Phi = Annotated[int, Field(ge=1, le=12)]


class ProxyCheckSettings(Settings):
    """A proxy-fidelity check (``nas proxy-check``): architectures of a space, each trained with several
    seeds on ``proxy`` and, when given, on the more faithful ``against`` proxy."""

    space: str = flag(DEFAULT_SPACE, "search-space YAML whose architectures (and reference points) are checked")
    archs: int = flag(12, "architectures sampled from the space; its reference points (B0, MnasNet-A1, ...) "
                      "come on top", ge=0, le=10_000)
    seeds: int = flag(3, "trainings per architecture and proxy, with seeds 0..S-1", ge=1, le=100)
    against_seeds: int | None = flag(None, "trainings per architecture on the --against proxy (default: --seeds); "
                                     "the reference is only compared by its means", ge=1, le=100)
    seed: int = seed_flag("seeds the sampling of architectures")
    place: RunPlace = RunPlace()
    resources: Resources = Resources()
    proxy: ProxySettings = ProxySettings()
    against: ProxySettings | None = None
    reward: RewardSettings = RewardSettings()

    def seeds_for(self, role: str) -> int:
        """Trainings per architecture on the ``proxy`` or the ``against`` proxy."""
        return self.against_seeds or self.seeds if role == "against" else self.seeds


FULL_TRAINING = {"epochs": 30, "batch_size": 128, "warmup_epochs": 1.0, "drop_connect": 0.1,
                 "bn_recalibration_batches": 0}
"""How ``nas train`` changes the space's proxy recipe by default: a schedule long enough to converge
(the data: the whole training set; accuracy: the test split, once, at the end)."""


class TrainSettings(Settings):
    """Full training of one architecture (``nas train``): the space's proxy recipe, longer."""

    space: str | None = flag(None, "space file whose proxy: block is the recipe (default: ARCH itself when it "
                             "is a YAML file, else the built-in defaults)")
    seed: int = seed_flag("seed for the initialization, the batches and the augmentation")
    device: Device = flag("auto", "auto, cpu, cuda or cuda:N")
    place: RunPlace = RunPlace()
    proxy: ProxySettings = ProxySettings()


class ReproduceSettings(Settings):
    """The whole story in one run (``nas reproduce``): a search, the best found architectures and the
    space's reference points retrained with several seeds, compared at matched cost, compound-scaled."""

    preset: Literal["cpu", "gpu"] = flag("cpu", "cpu: sized for a 2-core machine in an hour; gpu: for one GPU")
    space: str = flag(DEFAULT_SPACE, "search-space YAML")
    controller: str = flag("evolution", "the search algorithm (nas search --help lists them)")
    trials: int = flag(16, "search trials", ge=1, le=10_000_000)
    evaluator: Literal["standalone", "supernet"] = flag("standalone", "how the search measures a candidate: "
                                                        "trained on the proxy, or taken from a supernet")
    supernet: SupernetSettings = SupernetSettings()
    top_k: int = flag(2, "found architectures retrained (the best by reward)", ge=1, le=100)
    retrain_seeds: int = flag(3, "paired seeds every architecture is trained with before the comparison may stop",
                              flags=("--seeds",), ge=1, le=100)
    max_seeds: int = flag(10, "most paired seeds the comparison adds while a verdict is undecided", ge=1, le=100)
    compare_minutes: Finite | None = flag(None, "time budget of the retraining and comparison: no seed is added "
                                          "that would end past it (default: the preset's; none: --max-seeds alone)", gt=0,
                                          le=1_000_000)
    margin_points: Finite = flag(1.0, "equivalence margin: a verdict is 'matches' when the confidence interval "
                                 "of the paired difference lies within plus or minus this many accuracy points",
                                 gt=0, le=100)
    retrain_epochs: int | None = flag(None, "epochs of the comparison's training (default: the preset's)", ge=1,
                                      le=10_000)
    retrain_train_samples: int | None = flag(None, "training images of the comparison's training (default: the "
                                             "preset's)", ge=1, le=100_000_000)
    phis: tuple[Phi, ...] = flag((1, 2), "compound-scaling steps of the winner and of the reference",
                                 flags=("--scale-phis",), max_length=4)
    seed: int = seed_flag()
    device: Device = flag("auto", "where the comparison trains: auto, cpu, cuda or cuda:N")
    place: RunPlace = RunPlace()
    resources: Resources = Resources()
    proxy: ProxySettings = ProxySettings()
    retrain: ProxySettings = ProxySettings()
    reward: RewardSettings = RewardSettings()


DEFAULT_SCALING_BASE = "search_spaces/efficientnet_b0.yaml"
class ScaleSettings(Settings):
    """A compound-scaling grid search (``nas scale --grid``): the grid, the family, and the proxy its
    candidates train on (the space file's, with the flags' changes)."""

    base: str = DEFAULT_SCALING_BASE
    space: str | None = flag(None, "space file for the proxy and reward settings (default: BASE when it is a "
                             "file, else the B0 file)")
    step: Finite = flag(0.05, "grid step", gt=0, le=1)
    tolerance: Finite = flag(0.05, "relative tolerance on alpha*beta^2*gamma^2 = 2", gt=0, le=1)
    max_value: Finite | None = flag(None, "largest alpha, beta or gamma (default: the constraint's)", gt=1, le=4)
    max_candidates: int | None = flag(None, "train only this many grid points, spread evenly (the paper's point "
                                      "is kept)", ge=1, le=100_000)
    phis: tuple[Phi, ...] = flag((1, 2, 3, 4, 5, 6, 7), "phi values of the family", min_length=1, max_length=12)
    compare_phis: tuple[Phi, ...] = flag((1,), "phi values at which to train width/depth/resolution-only "
                                         "baselines", min_length=1, max_length=12)
    proxy_divisor: int = flag(8, "round scaled proxy sizes to a multiple of this (4 lets a 16 px CPU proxy "
                              "scale its resolution)", ge=1, le=64)
    num_classes: int = flag(1000, "classifier outputs for the cost", flags=("--classes",), ge=1, le=1_000_000)
    seed: int = seed_flag("seed of the data split and training")
    place: RunPlace = RunPlace()
    resources: Resources = Resources()
    proxy: ProxySettings = ProxySettings()
    reward: RewardSettings = RewardSettings()

    def space_path(self) -> str:
        """Proxy and reward settings: ``space``, else the base file when it is one, else the B0 file."""
        if self.space:
            return self.space
        return self.base if self.base.endswith((".yaml", ".yml")) or Path(self.base).is_file() \
            else DEFAULT_SCALING_BASE

    def run_dir(self) -> Path:
        return self.place.run_dir()
