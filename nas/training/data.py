"""Proxy datasets, resident on the training device as uint8, with on-device augmentation.

A trial trains for a few epochs on tens of thousands of small images, so the
input pipeline must cost nothing: every image is decoded and resized to the proxy
resolution *once per node* (a disk cache under a file lock, :mod:`nas.training.node_cache`),
split once per process (cached by its parameters, so a Ray worker loads once
however many trials it runs), kept on the device as uint8
(Fashion-MNIST at 32×32 is 61 MB), and each batch is cropped, flipped and
normalized there. No DataLoader workers, no host→device copies in the hot loop.

The validation split is held out of the *training* set with a seeded, class-
stratified draw; the test split is read only when a caller asks for
``split="test"`` (a final evaluation), never during search.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from nas.core.errors import NasError
from nas.settings import DATASETS, ProxySettings
from nas.training import arrays as user_arrays
from nas.training import node_cache

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
Split = Literal["val", "test"]


class DatasetError(NasError):
    """A dataset the user pointed at (or did not) cannot be read: says where we looked and how to fix it."""


@dataclass(frozen=True)
class Images:
    """Images (N×C×H×W uint8) and their labels (N int64), on one device."""

    images: torch.Tensor
    labels: torch.Tensor
    skipped: int = 0
    """Image files that could not be decoded and were left out (``skip_bad_images``)."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> Images:
        return Images(self.images.to(device), self.labels.to(device), self.skipped)

    def head(self, n: int | None) -> Images:
        return self if n is None or n >= len(self) else Images(self.images[:n], self.labels[:n], self.skipped)


@dataclass(frozen=True)
class ProxyData:
    """A training set and the set accuracy is measured on (``eval_split``: the held-out val, or test)."""

    name: str
    train: Images
    eval: Images
    eval_split: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    skipped: int = 0
    """Unreadable image files left out of the training and evaluation parts (``skip_bad_images``)."""

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.train.images.device


# ---------------------------------------------------------------- public entry point


def load(name: str, *, root: str | Path | None = None, resolution: int = 32, val_size: int | None = None,
         seed: int = 0, split: Split = "val", max_train: int | None = None, max_eval: int | None = None,
         device: torch.device | str = "cpu", skip_bad_images: bool = False) -> ProxyData:
    """The proxy data for ``name``, resident on ``device``; cached per process by these arguments.

    ``split="val"`` (search): train on the training set minus ``val_size`` held-out images, measure on
    those. ``split="test"`` (final evaluation only): train on the whole training set, measure on test.
    ``max_train``/``max_eval`` keep the first images of each (already shuffled) set, for quick runs.
    ``skip_bad_images`` leaves out image files that cannot be decoded (counted in ``skipped``) instead of
    stopping at the first.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in ("val", "test"):
        raise DatasetError(f"split must be 'val' or 'test', got {split!r}")
    if resolution < 8:
        raise DatasetError(f"proxy resolution must be >= 8 pixels, got {resolution}")
    root = root if root is not None else os.environ.get("NAS_DATA_DIR") or None  # part of the cache key
    root_key = None if root is None else str(Path(root).expanduser().resolve())
    return _load_cached(name, root_key, resolution, val_size, seed, split, max_train, max_eval,
                        str(torch.device(device)), skip_bad_images)


def for_proxy(proxy: ProxySettings, *, seed: int = 0, split: Split = "val",
              device: torch.device | str = "cpu") -> ProxyData:
    """The data a proxy trains and measures on (:func:`load` with the proxy's dataset, size and caps)."""
    return load(proxy.dataset, root=proxy.data_dir, resolution=proxy.resolution, val_size=proxy.val_size, seed=seed,
                split=split, max_train=proxy.max_train_samples, max_eval=proxy.max_val_samples, device=device,
                skip_bad_images=proxy.skip_bad_images)


def check(proxy: ProxySettings, *, seed: int = 0) -> ProxyData:
    """Load the proxy data once in the driver: a missing or broken dataset stops a search there with one
    clear message, instead of failing every trial alike (trials never raise)."""
    return for_proxy(proxy, seed=seed)


def num_classes(name: str, root: str | Path | None = None) -> int:
    """Classes of a dataset without loading its images (an ImageFolder tree is listed)."""
    if name in ("fashion_mnist", "cifar10", "synthetic"):
        return 10
    if name == "imagefolder":
        return len(_image_folder_classes(_image_folder_root(root or os.environ.get("NAS_DATA_DIR") or None)))
    if name == "arrays":
        return int(_read_arrays(_arrays_file(root), "train").labels.max()) + 1
    raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def clear_cache() -> None:
    """Forget every loaded dataset (frees device memory held by the cache)."""
    _load_cached.cache_clear()
    _decoded.cache_clear()


# ---------------------------------------------------------------- augmentation and batches


def augment(images: torch.Tensor, *, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding) and optional horizontal flip of a uint8 batch, on its own device.

    Returns an N×C×H×W view whose memory is channels-last (N×H×W×C contiguous): what the CUDA
    convolutions want, at no extra copy.
    """
    n, c, h, w = images.shape
    device = images.device
    x = images.permute(0, 2, 3, 1)  # NHWC
    if padding > 0:
        x = F.pad(x, (0, 0, padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
        rows = dy + torch.arange(h, device=device)
        cols = dx + torch.arange(w, device=device)
        if flip:
            flipped = torch.rand((n, 1), device=device, generator=generator) < 0.5
            cols = torch.where(flipped, cols.flip(1), cols)
        x = x[torch.arange(n, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    elif flip:
        flipped = torch.rand((n, 1, 1, 1), device=device, generator=generator) < 0.5
        x = torch.where(flipped, x.flip(2), x)
    return x.permute(0, 3, 1, 2)


def normalize(images: torch.Tensor, mean: tuple[float, ...] | torch.Tensor,
              std: tuple[float, ...] | torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32, standardized per channel (keeps the input's memory format).

    Pass ``mean``/``std`` as device tensors (:func:`stats_on`) in a loop: building them from
    tuples is a host→device copy, which on CUDA synchronizes every step."""
    if not isinstance(mean, torch.Tensor):
        mean, std = stats_on(images.device, mean, std)
    return (images.float() - mean) / std


def stats_on(device: torch.device, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, ...]:
    """Per-channel mean and std in [0, 255] units, shaped 1×C×1×1, on ``device``: made once per run."""
    return tuple(torch.tensor(v, device=device, dtype=torch.float32).view(1, -1, 1, 1) * 255 for v in (mean, std))


# ---------------------------------------------------------------- cache layers


@lru_cache(maxsize=4)
def _load_cached(name: str, root: str | None, resolution: int, val_size: int | None, seed: int, split: Split,
                 max_train: int | None, max_eval: int | None, device: str, skip_bad: bool = False) -> ProxyData:
    train = _decoded(name, root, resolution, seed if name == "synthetic" else 0, "train", skip_bad)
    classes = 10 if name in ("fashion_mnist", "cifar10", "synthetic") else int(train.labels.max()) + 1
    skipped = train.skipped
    if split == "test":
        test = _decoded(name, root, resolution, seed if name == "synthetic" else 0, "test", skip_bad)
        if test is None:
            raise DatasetError(f"dataset {name!r} at {root or 'its default place'} has no test split")
        order = _permutation(len(train), seed)
        fit, held = Images(train.images[order], train.labels[order]), test
        skipped += test.skipped
    elif name in ("imagefolder", "arrays") and (val := _decoded(name, root, resolution, 0, "val", skip_bad)) is not None:
        order = _permutation(len(train), seed)
        fit, held = Images(train.images[order], train.labels[order]), val  # the user's own validation part
        skipped += val.skipped
    else:
        size = _DEFAULT_VAL.get(name, len(train) // 10) if val_size is None else val_size
        if not 0 < size < len(train):
            raise DatasetError(f"val_size must be between 1 and {len(train) - 1} for {name!r}, got {size}")
        fit, held = _stratified_split(train, size, seed, classes)
    fit, held = fit.head(max_train), held.head(max_eval)
    stats = fit.images[: 20_000].float() / 255
    mean = tuple(stats.mean(dim=(0, 2, 3)).tolist())
    std = tuple(stats.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    return ProxyData(name=name, train=fit.to(device), eval=held.to(device), eval_split=split,
                     num_classes=classes, mean=mean, std=std, flip=_FLIP[name], skipped=skipped)


_DEFAULT_VAL = {"fashion_mnist": 10_000, "cifar10": 5_000, "synthetic": 500}  # ImageFolder: a tenth


@lru_cache(maxsize=4)
def _decoded(name: str, root: str | None, resolution: int, seed: int, part: str,
             skip_bad: bool = False) -> Images | None:
    """One part (``train`` or ``test``; None if the dataset has none) at ``resolution``, on the CPU:
    the expensive, shared step, done once per node (:mod:`nas.training.node_cache`) and once per process here.
    The test part is decoded only when a final evaluation asks for it."""
    if name == "synthetic":
        return synthetic(3_000 if part == "train" else 500, resolution=resolution,
                         seed=seed if part == "train" else seed + 1)
    sources = _sources(name, root, part)
    if sources is None:
        return None
    if name == "arrays":  # already decoded, uint8 in one file: a cached copy would only duplicate it
        return _decode(name, root, resolution, part)

    skip_bad = skip_bad and name == "imagefolder"  # the only dataset made of separate image files

    def decode() -> dict[str, np.ndarray]:
        images = _decode(name, root, resolution, part, skip_bad)
        return {"images": images.images.numpy(), "labels": images.labels.numpy(),
                "skipped": np.array(images.skipped, dtype=np.int64)}

    key = {"dataset": name, "resolution": resolution, "part": part, "format": 1}
    if skip_bad:  # a skipping decode succeeds where a strict one stops: the two are cached apart
        key["skip_bad_images"] = True
    arrays = node_cache.load_or_build(key, sources, decode)
    skipped = int(arrays["skipped"]) if "skipped" in arrays else 0
    return Images(torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]), skipped)


def _sources(name: str, root: str | None, part: str) -> list[Path] | None:
    """The files a part is decoded from (its cache key), or None when the dataset has no such part."""
    if name == "fashion_mnist":
        folder, prefix = _find_fashion_mnist(root), "train" if part == "train" else "t10k"
        return [folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"]
    if name == "cifar10":
        return [_cifar10_folder(root)]
    if name == "imagefolder":
        folder = _image_folder_part(root, part)
        return None if folder is None else [folder]
    if name == "arrays":
        file = _arrays_file(root)
        return [file] if part == "train" or user_arrays.has_part(file, part) else None
    raise DatasetError(f"unknown dataset {name!r}")


def _decode(name: str, root: str | None, resolution: int, part: str, skip_bad: bool = False) -> Images:
    if name == "fashion_mnist":
        return _resize(_read_idx_pair(_find_fashion_mnist(root), "train" if part == "train" else "t10k"),
                       resolution)
    if name == "cifar10":
        return _resize(_read_cifar10(root, train=part == "train"), resolution)
    if name == "arrays":
        return _resize(_read_arrays(_arrays_file(root), part), resolution)
    folder = _image_folder_part(root, part)
    assert folder is not None  # _sources said this part exists
    return _read_image_folder(folder, resolution, skip_bad=skip_bad)


_FLIP = {"fashion_mnist": True, "cifar10": True, "imagefolder": True, "arrays": False, "synthetic": False}
"""Whether a horizontal flip keeps the label: garments and natural images, yes; the synthetic
templates are not mirror-symmetric, and nothing is known of a user's arrays (digits, text, or labels
that depend on left and right)."""


def _permutation(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).permutation(n))


def _stratified_split(data: Images, size: int, seed: int, classes: int) -> tuple[Images, Images]:
    """Hold out ``size`` images with each class in proportion (largest remainder), then shuffle both sets."""
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    counts = np.bincount(labels, minlength=classes)
    exact = size * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    for c in np.argsort(-(exact - quota), kind="stable")[: size - quota.sum()]:
        quota[c] += 1
    held = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: quota[c]] for c in range(classes)])
    keep = np.setdiff1d(np.arange(len(labels)), held, assume_unique=True)
    held, keep = rng.permutation(held), rng.permutation(keep)
    pick = lambda idx: Images(data.images[torch.from_numpy(idx)], data.labels[torch.from_numpy(idx)])  # noqa: E731
    return pick(keep), pick(held)


def _resize(data: Images, resolution: int) -> Images:
    """Resize once, up front (bilinear, antialiased), in chunks to bound memory."""
    if data.images.shape[-1] == resolution and data.images.shape[-2] == resolution:
        return data
    out = [F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear", antialias=True,
                         align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
           for chunk in data.images.split(8192)]
    return Images(torch.cat(out), data.labels, data.skipped)


# ---------------------------------------------------------------- Fashion-MNIST (IDX .gz)

_FMNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def fashion_mnist_candidates(root: str | Path | None = None) -> list[Path]:
    """Where Fashion-MNIST is looked for, in order: ``root``, else ``$NAS_DATA_DIR``, else Debian's path."""
    if root is not None:
        bases = [Path(root)]
    elif os.environ.get("NAS_DATA_DIR"):
        bases = [Path(os.environ["NAS_DATA_DIR"])]
    else:
        return [DEBIAN_FASHION_MNIST]
    base = bases[0].expanduser()
    return [base, base / "fashion-mnist", base / "fashion_mnist", base / "FashionMNIST" / "raw"]


def _find_fashion_mnist(root: str | None) -> Path:
    candidates = fashion_mnist_candidates(root)
    for folder in candidates:
        if all((folder / f).is_file() for f in _FMNIST_FILES):
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetError(f"Fashion-MNIST not found (looked for {_FMNIST_FILES[0]} and the other 3 IDX .gz files "
                       f"in {looked}); install it with 'apt-get install dataset-fashion-mnist' or point "
                       "NAS_DATA_DIR (or --data-dir) at a folder holding the four .gz files")


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped) as a uint8 array; a damaged file is a :class:`DatasetError`."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise DatasetError(f"cannot read {path}: {error}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    dims = raw[3]
    shape = struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: header says {shape}, found {data.size} bytes of data")
    return data.reshape(shape)


def _read_idx_pair(folder: Path, prefix: str) -> Images:
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    if len(images) != len(labels):
        raise DatasetError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels")
    return Images(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


# ---------------------------------------------------------------- CIFAR-10, ImageFolder


def _cifar10_folder(root: str | None) -> Path:
    base = Path(root) if root else Path(os.environ.get("NAS_DATA_DIR", "."))
    return base if base.name == "cifar-10-batches-py" else base / "cifar-10-batches-py"


def _read_cifar10(root: str | None, *, train: bool) -> Images:
    """torchvision's on-disk format (``cifar-10-batches-py``); never downloads."""
    from torchvision.datasets import CIFAR10

    folder = _cifar10_folder(root)
    try:
        cifar = CIFAR10(str(folder.parent), train=train, download=False)
    except RuntimeError as error:
        raise DatasetError(f"CIFAR-10 not found or damaged in {folder} ({error}); "
                           "pass --data-dir (or NAS_DATA_DIR) pointing at the folder that holds "
                           "cifar-10-batches-py (torchvision's format)") from None
    return Images(torch.from_numpy(cifar.data).permute(0, 3, 1, 2).contiguous(),
                  torch.tensor(cifar.targets, dtype=torch.int64))


def _image_folder_root(root: str | Path | None) -> Path:
    if root is None:
        raise DatasetError("dataset 'imagefolder' needs a folder: pass --data-dir (one subfolder per class, "
                           "or train/ with val/ and test/ beside it, each holding one subfolder per class)")
    path = Path(root)
    if not path.is_dir():
        raise DatasetError(f"image folder {path} does not exist")
    return path / "train" if (path / "train").is_dir() else path


def _image_folder_classes(path: Path) -> list[str]:
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"image folder {path} has no class subfolders")
    return classes


def _image_folder_part(root: str | None, part: str) -> Path | None:
    """The tree of one part: the root (or its ``train/``) for training; a sibling ``val/`` (searches measure
    there instead of holding images out of training) or ``test/`` (the final evaluation) if present. Their
    class folders must be the training tree's, or the labels would mean other classes."""
    train_dir = _image_folder_root(root)
    if part == "train":
        return train_dir
    other = train_dir.parent / part if train_dir.name == "train" else None
    if other is None or not other.is_dir():
        return None
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    theirs = sorted(p.name for p in other.iterdir() if p.is_dir())
    if theirs != classes:
        raise DatasetError(f"{other} has class folders {theirs[:8]}, but {train_dir} has {classes[:8]}: the "
                           f"{part} tree needs the same class folders")
    return other


def _read_image_folder(folder: Path, resolution: int, *, skip_bad: bool = False) -> Images:
    """An ImageFolder tree (RGB), each image resized to ``resolution``² once. ``skip_bad``: a file that cannot
    be decoded is left out and counted instead of stopping the run; a class left without images is still
    an error, as an empty class folder is."""
    from torchvision.datasets import ImageFolder

    try:
        tree = ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as error:
        raise DatasetError(f"image folder {folder}: {error}") from None
    if len(tree.classes) < 2:
        raise DatasetError(f"image folder {folder} has {len(tree.classes)} class folder(s); a classification "
                           "proxy needs at least two (one subfolder of images per class)")
    images, labels, skipped = [], [], 0
    for path, label in tree.samples:
        try:
            images.append(_decode_image(Path(path), resolution))
            labels.append(label)
        except DatasetError:
            if not skip_bad:
                raise
            skipped += 1
    if skipped:
        empty = sorted(set(range(len(tree.classes))) - set(labels))
        if empty:
            names = ", ".join(tree.classes[c] for c in empty[:8])
            raise DatasetError(f"image folder {folder}: no image of class {names} could be decoded ({skipped} "
                               "bad file(s) skipped); every class needs at least one readable image")
    return Images(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
                  torch.tensor(labels, dtype=torch.int64), skipped)


MAX_IMAGE_PIXELS = 64_000_000
"""The largest image decoded (8000 × 8000): larger is a mistake or a decompression bomb, refused before decoding."""


def _decode_image(path: Path, resolution: int) -> np.ndarray:
    """One image as ``resolution``² RGB; an image that cannot be decoded is one line naming its file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DatasetError(f"{path}: {width} x {height} pixels is too large to decode (at most "
                                   f"{MAX_IMAGE_PIXELS:,}); resize it or remove it")
            return np.asarray(image.convert("RGB").resize((resolution, resolution)))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatasetError(f"{path}: cannot decode the image ({reason}); fix or remove it") from None


# ---------------------------------------------------------------- arrays (.npz)


def _arrays_file(root: str | Path | None) -> Path:
    if root is None:
        raise DatasetError("dataset 'arrays' needs a file: pass --data FILE.npz (arrays named images and labels)")
    path = Path(root)
    if not path.is_file():
        raise DatasetError(f"arrays file {path} does not exist")
    return path


def _read_arrays(file: Path, part: str) -> Images:
    pair = user_arrays.read(file, part)
    assert pair is not None  # _sources said this part exists
    return Images(torch.from_numpy(pair[0]), torch.from_numpy(pair[1]))


# ---------------------------------------------------------------- synthetic (tests only)


def synthetic(n: int, *, resolution: int = 32, classes: int = 10, channels: int = 1, seed: int = 0) -> Images:
    """Noisy class templates (a fixed random 4×4 pattern per class, upsampled, plus noise): learnable
    by a tiny model in seconds. For fast tests only; says nothing about real accuracy."""
    g = torch.Generator().manual_seed(1234)  # the templates are the same for every seed: one task
    templates = F.interpolate((torch.rand(classes, channels, 4, 4, generator=g) > 0.5).float(),
                              size=(resolution, resolution), mode="nearest")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=g)]
    images = 0.6 * templates[labels] + 0.4 * torch.rand((n, channels, resolution, resolution), generator=g)
    return Images((images * 255).round().to(torch.uint8), labels.to(torch.int64))
