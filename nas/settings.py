"""Every setting of nas, defined once: one tree of pydantic models, three views of it.

* **The YAML file** of a search space is :class:`SpaceSchema`; its ``proxy:`` and ``reward:``
  blocks are :class:`ProxySettings` and :class:`RewardSettings`.
* **The command line**: ``nas search``, ``nas evaluate`` and ``nas scale`` derive their flags from
  the fields marked with :func:`flag` here (:mod:`nas.flags`); a flag's help is the field's text.
* **A run's stored settings** are :class:`SearchSettings` (or :class:`ScaleSettings`) as JSON,
  with the proxy and reward *resolved* (the space's blocks plus the flags), beside a copy of the
  space file's text, so a resumed run never re-reads files that may have changed.

A value is validated here and nowhere else: bounds are the fields' own (they appear in the
errors), and the error of any view names the key as that view spells it (:func:`describe_error`).
This module imports no torch and no Ray.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError,
                      model_validator)

from nas import ops
from nas.arch import ACTIVATIONS, LIMITS
from nas.errors import NasError

DATASETS = ("fashion_mnist", "cifar10", "imagefolder", "synthetic")
"""Proxy datasets by name; ``--data`` also takes a folder (:func:`resolve_dataset`)."""
DEFAULT_SPACE = "search_spaces/mnasnet.yaml"
CONTROLLERS_HELP = "random, evolution, ppo, nsga2 (and any other registered controller)"

LR_PER_256 = {"sgd": 0.1, "rmsprop": 0.016}
"""Default learning rates per 256 images (RMSProp: the paper's 0.256 at batch 4096)."""


class SettingsError(NasError, ValueError):
    """A setting out of bounds, as one line naming it the way the user wrote it."""


def flag(default: Any, help: str, *, flags: tuple[str, ...] = (), **bounds: Any) -> Any:
    """A field that is also a command-line flag; ``flags`` overrides the name derived from the field
    (``max_train_samples`` → ``--max-train-samples``) and may add old spellings."""
    return Field(default, description=help, json_schema_extra={"flags": list(flags)}, **bounds)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Finite = Annotated[float, AfterValidator(_finite)]


class Settings(BaseModel):
    """Frozen, and an unknown key is an error (never silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def changed(self, **changes: Any) -> Any:
        """A validated copy with ``changes`` (pydantic's ``model_copy`` would not validate them)."""
        return type(self).model_validate({**self.model_dump(), **changes})


# ---------------------------------------------------------------- reward


class RewardSettings(Settings):
    """``ACC × (COST/T)^w`` (soft), MnasNet's piecewise α/β form, or a hard constraint. The cost is the
    multiply-adds (``on: macs``, the EfficientNet search) or the measured batch-1 latency on the trial's
    device (``on: latency``, MnasNet's; then ``target_ms`` is T).

    ``kind: training_aware`` is EfficientNetV2's ``A × S^w × P^v``: S the candidate's proxy training
    step time divided by that of ``step_reference`` (an architecture, measured the same way on the
    trial's device) or by a stated ``step_ms``; P the parameter count divided by ``target_params``.
    """

    kind: Literal["soft", "mnasnet", "hard", "training_aware"] = "soft"
    on: Literal["macs", "latency"] = "macs"
    target_macs: Finite = flag(400e6, "reward target T in multiply-adds (default: the space's)", gt=0, le=1e15)
    target_ms: Finite = Field(80.0, gt=0, le=1e6)
    w: Finite = flag(-0.07, "reward exponent w, in [-1, 0] (default: the space's)", ge=-1, le=0)
    alpha: Finite | None = Field(None, ge=-1, le=0)
    beta: Finite | None = Field(None, ge=-1, le=0)
    v: Finite = Field(-0.05, ge=-1, le=0)
    target_params: Finite = Field(22e6, gt=0, le=1e13)
    step_reference: str | None = Field(None, min_length=1, max_length=4000)
    step_ms: Finite | None = Field(None, gt=0, le=1e7)

    @model_validator(mode="after")
    def _step_normalizer(self) -> RewardSettings:
        if self.kind == "training_aware" and (self.step_reference is None) == (self.step_ms is None):
            raise ValueError("a training_aware reward needs exactly one of step_reference (an architecture "
                             "whose step time is measured the same way) and step_ms (a stated time)")
        return self

    @property
    def target(self) -> float:
        """T in the units of the cost the reward is on."""
        return self.target_ms if self.on == "latency" else self.target_macs


# ---------------------------------------------------------------- proxy task and its training


def resolve_dataset(spec: str) -> tuple[str, str | None]:
    """``--data``: a dataset name, or a folder holding Fashion-MNIST IDX files, CIFAR-10 or an ImageFolder
    tree; returns ``(name, folder or None)``."""
    if spec in DATASETS:
        return spec, None
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise ValueError(f"is neither a dataset name ({', '.join(DATASETS)}) nor a folder")
    if any(folder.glob("train-images-idx3-ubyte*")):
        return "fashion_mnist", str(folder)
    if (folder / "cifar-10-batches-py").is_dir() or (folder / "data_batch_1").is_file():
        return "cifar10", str(folder)
    return "imagefolder", str(folder)


class ProxySettings(Settings):
    """Where accuracy is measured during search, and how each candidate is trained there: a small
    dataset, a small resolution, a few epochs (the ``proxy:`` block of a space file).

    ``lr`` is for ``batch_size``; left out, it is 0.1 per 256 images for SGD and the paper's 0.016 per
    256 for RMSProp. Changing the batch size through :meth:`override` scales a given lr linearly
    (Goyal et al. 2017), so ``--batch-size 32`` on a CPU does not train at 8× the intended rate.
    """

    dataset: str = flag("fashion_mnist", "fashion_mnist, cifar10, synthetic, or a dataset folder "
                        "(default: the space's)", flags=("--data",))
    data_dir: str | None = flag(None, "where the dataset lives (else $NAS_DATA_DIR, else the system path)")
    resolution: int = flag(32, "proxy input resolution (default: the space's)", flags=("--resolution",
                           "--proxy-resolution"), ge=LIMITS["resolution"][0], le=1024)
    epochs: int = flag(5, "proxy epochs (default: the space's)", ge=1, le=10_000)
    batch_size: int = flag(256, "proxy batch size; the lr follows it linearly (default: the space's)",
                           ge=2, le=65_536)
    val_size: int | None = Field(None, ge=1, le=100_000_000)
    max_train_samples: int | None = flag(None, "cap the proxy training set (quick runs)",
                                         flags=("--max-train-samples", "--max-train"), ge=2, le=1_000_000_000)
    max_val_samples: int | None = flag(None, "cap the validation set (quick runs)",
                                       flags=("--max-val-samples", "--max-val"), ge=1, le=1_000_000_000)
    stem_stride: Literal[1, 2] = 1
    drop_downsamples: int = Field(1, ge=0, le=8)
    optimizer: Literal["sgd", "rmsprop"] = "sgd"
    lr: Finite | None = flag(None, "learning rate at --batch-size (default 0.1 per 256 images for SGD)", gt=0, le=10)
    momentum: Finite = Field(0.9, ge=0, lt=1)
    weight_decay: Finite = Field(5e-5, ge=0, le=1)
    warmup_epochs: Finite = Field(0.5, ge=0, le=1000)
    label_smoothing: Finite = Field(0.1, ge=0, lt=1)
    dropout: Finite | None = Field(None, ge=0, lt=1)
    """Dropout before the classifier while training on the proxy; left out, the model's (top-level ``dropout``)."""
    drop_connect: Finite = Field(0.0, ge=0, lt=1)
    """Stochastic depth on the proxy: off by default, a few epochs cannot afford it."""
    bn_recalibration_batches: int = flag(0, "re-estimate batch-norm statistics on this many training batches "
                                         "before measuring accuracy (0: none)", ge=0, le=10_000)
    crop_padding: int = Field(4, ge=0, le=64)
    eval_batch_size: int = Field(1024, ge=1, le=65_536)
    cudnn_benchmark: bool = False
    check_every: int = Field(25, ge=1, le=1_000_000)

    @model_validator(mode="before")
    @classmethod
    def _dataset_folder(cls, data: Any) -> Any:
        """A folder given as the dataset becomes its kind plus ``data_dir``."""
        if isinstance(data, dict) and isinstance(data.get("dataset"), str) and data["dataset"] not in DATASETS:
            try:
                name, folder = resolve_dataset(data["dataset"])
            except ValueError:
                return data  # the Literal check below names the allowed values
            data = {**data, "dataset": name, "data_dir": data.get("data_dir") or folder}
        return data

    @model_validator(mode="after")
    def _known_dataset(self) -> ProxySettings:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset {self.dataset!r} is neither a dataset name ({', '.join(DATASETS)}) "
                             "nor a folder")
        return self

    @property
    def learning_rate(self) -> float:
        """The lr actually used: the given one, else the optimizer's default per 256 images."""
        return self.lr if self.lr is not None else LR_PER_256[self.optimizer] * self.batch_size / 256

    def override(self, **changes: Any) -> ProxySettings:
        """These settings with ``changes`` (``None`` values ignored), validated (see :meth:`merged`)."""
        return type(self).model_validate(self.merged(changes))

    def merged(self, changes: dict[str, Any]) -> dict[str, Any]:
        """These settings with ``changes`` as plain data, not yet validated. A new batch size without an
        lr scales a given lr linearly; a new dataset without a ``val_size`` drops this one's (it was
        for the other dataset)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "batch_size" in changes and "lr" not in changes and self.lr is not None \
                and isinstance(changes["batch_size"], int) and changes["batch_size"] > 0:
            changes["lr"] = self.lr * changes["batch_size"] / self.batch_size
        if "dataset" in changes and "val_size" not in changes and changes["dataset"] != self.dataset:
            changes["val_size"] = None
            changes.setdefault("data_dir", None)
        return {**self.model_dump(), **changes}


# ---------------------------------------------------------------- where trials run


class Resources(Settings):
    """How wide a run is and where its trials run; a resumed run may change these."""

    concurrency: int = flag(2, "trials in flight", ge=1, le=4096)
    cpus_per_trial: Finite = flag(1.0, "CPUs per trial", gt=0, le=4096)
    gpus_per_trial: Finite = flag(0.0, "GPU fraction per trial, e.g. 0.25 runs four trials per GPU", ge=0, le=64)
    address: str | None = flag(None, "Ray cluster to join: host:port, or 'auto' for the one this machine "
                               "belongs to (default: $RAY_ADDRESS if set, else Ray started in-process)")
    tune_storage: str | None = flag(None, "where Ray Tune writes its trial logs: a folder every node sees, or a "
                                    "cloud URI, for a multi-node run (default: the run folder)")


# ---------------------------------------------------------------- the search-space file

Int = Annotated[int, Strict()]


def _as_list(value: Any) -> Any:
    """A scalar is a one-choice list: ``kernel: 3`` means ``kernel: [3]``."""
    return value if isinstance(value, list) else [value]


def _choices(item: Any) -> Any:
    return Annotated[list[item], BeforeValidator(_as_list), Field(min_length=1, max_length=64)]


def _check_op(value: str) -> str:
    """An op name as written (``mb1``, ``fmb4``) to its canonical name (``ds``, ``fmb4``): see :mod:`nas.ops`."""
    code, expand = ops.from_yaml(value)
    return ops.OPS[code].yaml_name(expand)


def _check_kernel(kernel: int) -> int:
    if kernel % 2 == 0:
        raise ValueError("kernel must be odd (3, 5, 7, ...)")
    return kernel


Op = Annotated[str, Strict(), AfterValidator(_check_op)]
Kernel = Annotated[int, Strict(), Field(ge=1, le=LIMITS["kernel"][1]), AfterValidator(_check_kernel)]
Channels = Annotated[int, Strict(), Field(ge=1, le=LIMITS["channels"][1])]
Layers = Annotated[int, Strict(), Field(ge=1, le=LIMITS["repeats"][1])]
SeRatio = Annotated[float, Field(ge=0, lt=1)]
Skip = Literal["none", "identity", "pool"]
FilterRatio = Annotated[float, Field(gt=0, le=16)]
LayerDelta = Annotated[int, Strict(), Field(ge=-LIMITS["repeats"][1], le=LIMITS["repeats"][1])]


class ChoiceDefaults(Settings):
    """Choices every block gets unless the block overrides them."""

    op: _choices(Op) = ["mb6"]
    kernel: _choices(Kernel) = [3]
    se: _choices(SeRatio) = [0.0]
    skip: _choices(Skip) = ["identity"]
    filter_ratios: _choices(FilterRatio) = [1.0]
    layer_deltas: _choices(LayerDelta) = [0]


class BlockSpec(Settings):
    """One block of the factorized space: MobileNetV2-style base filters/layers, plus its choices."""

    filters: Channels
    layers: Layers
    stride: Literal[1, 2]
    extra_filters: Annotated[list[Channels], BeforeValidator(_as_list), Field(max_length=64)] = []
    op: _choices(Op) | None = None
    kernel: _choices(Kernel) | None = None
    se: _choices(SeRatio) | None = None
    skip: _choices(Skip) | None = None
    filter_ratios: _choices(FilterRatio) | None = None
    layer_deltas: _choices(LayerDelta) | None = None


class StemSpec(Settings):
    channels: Channels = 32
    stride: Literal[1, 2] = 2


class HeadSpec(Settings):
    channels: Annotated[int, Strict(), Field(ge=0, le=LIMITS["channels"][1])] = 1280


class SpaceSchema(Settings):
    """A search-space file. ``num_classes``/``in_channels`` are the deployed task's (the cost is counted
    for them, as the papers count B0 for ImageNet); ``dropout``/``drop_connect`` are the model's for
    full training and export (the proxy has its own, see :class:`ProxySettings`)."""

    name: Annotated[str, Strict(), Field(min_length=1, max_length=200)]
    target_resolution: Annotated[int, Strict(), Field(ge=LIMITS["resolution"][0], le=LIMITS["resolution"][1])] = 224
    num_classes: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 1000
    in_channels: Annotated[int, Strict(), Field(ge=1, le=64)] = 3
    activation: _choices(Literal[ACTIVATIONS]) = ["silu"]  # type: ignore[valid-type]
    stem: StemSpec = StemSpec()
    head: HeadSpec = HeadSpec()
    dropout: Finite = Field(0.2, ge=0, lt=1)
    drop_connect: Finite = Field(0.2, ge=0, lt=1)
    reward: RewardSettings = RewardSettings()
    proxy: ProxySettings = ProxySettings()
    choices: ChoiceDefaults = ChoiceDefaults()
    blocks: Annotated[list[BlockSpec], Field(min_length=1, max_length=LIMITS["stages"][1])]


# ---------------------------------------------------------------- a run

_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _check_run_name(name: str | None) -> str | None:
    """A run name is one folder name: ``--name ../../x`` must not write outside ``--storage``."""
    if name is not None and (not _RUN_NAME.fullmatch(name) or name in (".", "..")):
        raise ValueError("must be a single folder name: letters, digits, '.', '_' and '-', starting with a "
                         "letter or digit, at most 128 characters")
    return name


RunName = Annotated[str | None, AfterValidator(_check_run_name)]


class RunPlace(Settings):
    """Where a run folder is: ``STORAGE/NAME``."""

    name: RunName = flag(None, "run name; the run folder is STORAGE/NAME (default: the command and the time, "
                         "e.g. evolution-20261123-101500)")
    storage: str = flag("runs", "folder of run folders", min_length=1)

    def run_dir(self) -> Path:
        return Path(self.storage) / (self.name or "default")


def _check_device(name: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d{1,2})?", name):
        raise ValueError("must be auto, cpu, cuda or cuda:N")
    return name


Device = Annotated[str, AfterValidator(_check_device)]


class SchedulerSettings(Settings):
    """Early stopping by one of Ray Tune's schedulers: trials report accuracy after every epoch, and the
    weak ones stop after ``grace_period`` epochs while the promising ones train to the proxy's epochs.

    ``asha`` is Tune's ``ASHAScheduler`` (one bracket); ``hyperband`` is Tune's asynchronous HyperBand
    (``AsyncHyperBandScheduler`` with HyperBand's several brackets): the synchronous
    ``HyperBandScheduler`` pauses trials to resume them later, and a proxy trial of a few epochs keeps
    no checkpoint to resume from. ``stopped`` says what the controller is told of a stopped trial: its
    last epoch's reward (``partial``, a low-fidelity result it may learn from) or a failure."""

    kind: Literal["none", "asha", "hyperband"] = flag("none", "early stopping (Ray Tune): none, asha or hyperband",
                                                       flags=("--scheduler",))
    grace_period: int = flag(1, "epochs every trial trains before it may be stopped", ge=1, le=10_000)
    reduction_factor: Finite = flag(3.0, "keep 1 in this many trials at each rung", gt=1, le=100)
    stopped: Literal["partial", "failure"] = flag("partial", "what a controller is told of a stopped trial: "
                                                  "its last epoch's reward (partial) or a failure",
                                                  flags=("--tell-stopped",))


class SupernetSettings(Settings):
    """``--evaluator supernet``: one weight-sharing network trained once over the whole space, from which
    each trial takes its architecture's weights (see docs/supernet.md)."""

    epochs: int = flag(10, "epochs of supernet training over the proxy's data", flags=("--supernet-epochs",),
                       ge=1, le=10_000)
    sampling: Literal["sandwich", "uniform"] = flag("sandwich", "sub-networks per step: the largest, the smallest "
                                                    "and random ones (sandwich), or random ones (uniform)",
                                                    flags=("--supernet-sampling",))
    targets: Literal["labels", "largest"] = flag("labels", "what the sandwich rule's other sub-networks learn "
                                                 "from: the labels, or the largest network's predictions on the "
                                                 "same batch (in-place distillation, BigNAS)",
                                                 flags=("--supernet-targets",))
    random_per_step: int = Field(2, ge=1, le=64)
    warmup_fraction: Finite = Field(0.2, ge=0, lt=1)
    """The first part of training in which the largest network is trained with a probability falling from 1
    to 0 (TuNAS's warm-up: every op and filter force-enabled early)."""
    kernel_sharing: Literal["crop", "separate"] = flag("crop", "kernels share weights (centre crop of the "
                                                       "largest) or keep their own", flags=("--kernel-sharing",))
    bn_batches: int = flag(8, "training batches on which each candidate's batch-norm statistics are re-estimated "
                           "(a network taken from the supernet has none of its own)",
                           flags=("--supernet-bn-batches",), ge=1, le=1000)
    checkpoint_every: int = Field(50, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _distillation_needs_a_teacher(self) -> SupernetSettings:
        if self.targets == "largest" and self.sampling != "sandwich":
            raise ValueError("targets 'largest' distils from the sandwich rule's largest network: it needs "
                             "sampling 'sandwich'")
        return self


def seed_flag(help: str = "seeds the controller, the data split and training") -> Any:
    return flag(0, help, ge=0, le=2**32 - 1)


class EvaluateSettings(Settings):
    """One architecture trained on a proxy and scored (``nas evaluate``)."""

    space: str | None = flag(None, "search-space YAML whose proxy: and reward: blocks to use "
                             "(default: ARCH itself when it is a YAML file, else the built-in defaults)")
    seed: int = seed_flag("seed for the split, the initialization and the batches")
    device: Device = flag("auto", "auto, cpu, cuda or cuda:N")
    latency_runs: int = flag(0, "also measure latency: median of N batch-1 forwards at the target resolution",
                             flags=("--latency",), ge=0, le=10_000)
    proxy: ProxySettings = ProxySettings()
    reward: RewardSettings = RewardSettings()


class SearchSettings(Settings):
    """One search, as stored in its run: the space (path; its text is stored beside), the controller,
    the resolved proxy and reward, and where it runs."""

    space: str = flag(DEFAULT_SPACE, "search-space YAML: a path, or the name of a shipped space")
    controller: str = flag("evolution", f"the search algorithm: {CONTROLLERS_HELP}")
    controller_options: dict[str, Any] = {}
    trials: int = flag(16, "finished trials to end with", ge=1, le=10_000_000)
    seed: int = seed_flag()
    progress_seconds: Finite = flag(5.0, "seconds between status lines", gt=0, le=86_400)
    time_budget: Finite | None = flag(None, "stop after this many seconds of searching (trials in flight are "
                                      "re-run by --resume)", gt=0, le=10_000_000)
    place: RunPlace = RunPlace()
    resources: Resources = Resources()
    evaluator: Literal["standalone", "supernet"] = flag("standalone", "how a trial measures accuracy: train the "
                                                        "candidate on the proxy (standalone) or take it from a "
                                                        "weight-sharing supernet trained once (supernet)")
    supernet: SupernetSettings = SupernetSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    proxy: ProxySettings = ProxySettings()
    reward: RewardSettings = RewardSettings()

    @model_validator(mode="after")
    def _grace_within_the_proxy(self) -> SearchSettings:
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
    controller: str = flag("evolution", f"the search algorithm: {CONTROLLERS_HELP}")
    trials: int = flag(16, "search trials", ge=1, le=10_000_000)
    evaluator: Literal["standalone", "supernet"] = flag("standalone", "how the search measures a candidate: "
                                                        "trained on the proxy, or taken from a supernet")
    supernet: SupernetSettings = SupernetSettings()
    top_k: int = flag(2, "found architectures retrained (the best by reward)", ge=1, le=100)
    retrain_seeds: int = flag(2, "trainings per architecture in the comparison", flags=("--seeds",), ge=1, le=20)
    retrain_epochs: int | None = flag(None, "epochs of the comparison's training (default: the preset's)", ge=1,
                                      le=10_000)
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


RESUMABLE = ("trials", "progress_seconds", "time_budget", "resources")
"""What a resumed run may change: how many trials it ends with, how often it reports, and where and how
wide it runs. Everything else is the run's identity."""


# ---------------------------------------------------------------- errors, in the words of each view


def describe_error(error: ValidationError, *, source: str, key_name: Any = None) -> SettingsError:
    """The first problem of ``error`` as one line: ``SOURCE: KEY = VALUE: what is allowed``.

    ``key_name(loc)`` spells the key as the user wrote it (a flag, a YAML path); by default a
    dotted path. Long values are cut, so a huge input cannot make a huge message."""
    key, value, detail = error_parts(error, key_name=key_name)
    shown = "" if value is MISSING else f" = {short(value)}"
    where = f"{source}: {key}" if source and key else key or source
    return SettingsError(f"{where}{shown}: {detail}")


def error_parts(error: ValidationError, *, key_name: Any = None) -> tuple[str, Any, str]:
    """``(key, value or MISSING, what is allowed)`` of the first problem in ``error``."""
    first = error.errors()[0]
    loc = tuple(first["loc"])
    key = key_name(loc) if key_name else yaml_key(loc)
    value = first.get("input", MISSING)
    if first["type"] == "missing":
        return key, MISSING, "required key is missing"
    if first["type"] == "extra_forbidden":
        return key, MISSING, "unknown key; allowed keys here: " + ", ".join(_fields_at(error.title, loc[:-1]))
    if isinstance(value, dict):
        value = MISSING
    return key, value, first["msg"].removeprefix("Value error, ")


MISSING = object()
"""No value to show (a missing key, a whole mapping)."""


def short(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters: an error line stays one line of bounded length."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 15] + f"... ({len(text)} chars)"


def yaml_key(loc: tuple) -> str:
    """``("blocks", 2, "kernel", 0)`` → ``blocks[2].kernel[0]`` (pydantic's tags for Annotated members dropped)."""
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    return re.sub(r"\.(list|function-after|function-before|constrained-\w+|literal|nullable|int|float|str)"
                  r"(\[.*?\])?(?=\.|\[|$)", "", key)


def _fields_at(title: str, loc: tuple) -> list[str]:
    model: Any = {m.__name__: m for m in _MODELS}.get(title, SpaceSchema)
    for part in loc:
        if isinstance(part, int) or part not in getattr(model, "model_fields", {}):
            continue
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), model)
    return list(model.model_fields)


_MODELS = (SpaceSchema, ReproduceSettings, SearchSettings, SchedulerSettings, SupernetSettings, TrainSettings, EvaluateSettings, ScaleSettings, ProxyCheckSettings, ProxySettings, RewardSettings, Resources, RunPlace)

__all__ = ["CONTROLLERS_HELP", "DATASETS", "DEFAULT_SPACE", "LR_PER_256", "RESUMABLE", "BlockSpec", "EvaluateSettings",
           "ChoiceDefaults", "HeadSpec", "ProxyCheckSettings", "ProxySettings", "Resources", "RewardSettings", "RunPlace",
           "ReproduceSettings", "ScaleSettings", "SchedulerSettings", "SearchSettings", "SupernetSettings", "TrainSettings", "FULL_TRAINING", "Settings", "SettingsError", "SpaceSchema", "StemSpec", "MISSING", "describe_error", "error_parts", "flag",
           "for_space", "resolve_dataset", "seed_flag", "short", "yaml_key"]
