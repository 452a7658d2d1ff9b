"""The proxy task (where accuracy is measured, and how a candidate trains there) and the reward."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from nas.core.arch import LIMITS
from nas.settings.base import Finite, Settings, flag

DATASETS = ("fashion_mnist", "cifar10", "imagefolder", "arrays", "synthetic")
"""Proxy datasets by name; ``--data`` also takes a folder or a ``.npz`` file (:func:`resolve_dataset`)."""

LR_PER_256 = {"sgd": 0.1, "rmsprop": 0.016}
"""Default learning rates per 256 images (RMSProp: the paper's 0.256 at batch 4096)."""


def _absolute(folder: str | None) -> str | None:
    """A folder as an absolute path: trials run in folders of their own (Ray Tune's), where a path relative
    to where the user typed it means nothing."""
    return None if folder is None else str(Path(folder).expanduser().absolute())


# ---------------------------------------------------------------- reward


class RewardSettings(Settings):
    """``ACC × (COST/T)^w`` (soft), MnasNet's piecewise α/β form, or a hard constraint. The cost is the
    multiply-adds (``on: macs``, the EfficientNet search) or the batch-1 latency (``on: latency``, MnasNet's;
    then ``target_ms`` is T): predicted from ``latency_table`` when one is given (the target device's, whatever
    device trains the trial), else measured on the trial's device.

    ``kind: training_aware`` is EfficientNetV2's ``A × S^w × P^v``: S the candidate's proxy training
    step time divided by that of ``step_reference`` (an architecture, measured the same way on the
    trial's device) or by a stated ``step_ms``; P the parameter count divided by ``target_params``.
    """

    kind: Literal["soft", "mnasnet", "hard", "training_aware"] = "soft"
    on: Literal["macs", "latency"] = flag("macs", "the reward's cost: multiply-adds, or batch-1 latency (predicted "
                                          "from --latency-table, else measured on the trial's device)",
                                          flags=("--reward-on",))
    target_macs: Finite = flag(400e6, "reward target T in multiply-adds (default: the space's)", gt=0, le=1e15)
    target_ms: Finite = flag(80.0, "reward target T in milliseconds, for a reward on latency (default: the space's)",
                             gt=0, le=1e6)
    latency_table: Annotated[str | None, AfterValidator(_absolute)] = flag(
        None, "a latency table (`nas latency build`): every trial's latency is predicted from it, for the device it "
              "was built on, wherever the trial runs; nothing is timed during the search",
        min_length=1, max_length=4096)
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
    """``--data``: a dataset name, a folder holding Fashion-MNIST IDX files, CIFAR-10 or an ImageFolder
    tree, or a ``.npz`` file of arrays (``images``, ``labels``); returns ``(name, folder or file or None)``."""
    if spec in DATASETS:
        return spec, None
    folder = Path(spec).expanduser().absolute()
    if folder.suffix == ".npz" and folder.is_file():
        return "arrays", str(folder)
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

    dataset: str = flag("fashion_mnist", "fashion_mnist, cifar10, synthetic, a dataset folder or a .npz file "
                        "of images and labels (default: the space's)", flags=("--data",))
    data_dir: Annotated[str | None, AfterValidator(_absolute)] = flag(
        None, "where the dataset lives (else $NAS_DATA_DIR, else the system path)")
    skip_bad_images: bool = flag(False, "skip image files that cannot be decoded (counted and reported) "
                                 "instead of stopping at the first one")
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
    bn_recalibration_batches: int = flag(8, "re-estimate batch-norm statistics on this many training batches "
                                         "before measuring accuracy (0: keep the running averages; a short "
                                         "proxy's can score a learning network below chance)", ge=0, le=10_000)
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
                             "nor a folder nor a .npz file")
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
