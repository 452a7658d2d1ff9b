"""Images and labels given from Python (arrays, a torchvision dataset, a Hugging Face dataset) as a
``.npz`` file the proxy reads like any other dataset.

Trials run in Ray worker processes, possibly on other machines, and a run must resume after its driver
is gone: so the data is converted once, in the caller's process, to uint8 images (N×C×H×W) and int64
labels, checked, and written into the run folder as ``data.npz`` (``--data FILE.npz``). The run's stored
settings then hold a path, as for any dataset folder, and stay plain JSON; every worker reads the file
through the node's dataset cache; ``--resume`` and the dashboard need nothing else. (An object in Ray's
object store would live only as long as the driver that put it there.)

A file holds ``images`` and ``labels`` (the training part), optionally ``val_images``/``val_labels``
(searches measure there instead of holding images out of training) and ``test_images``/``test_labels``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.atomic import write_atomic
from nas.core.errors import UserError

PARTS = {"train": ("images", "labels"), "val": ("val_images", "val_labels"), "test": ("test_images", "test_labels")}
"""Each part's two arrays in a file."""

_PART_NAMES = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}
"""Keys a dict of parts may use (Hugging Face's ``DatasetDict`` says ``validation``)."""


class DataError(UserError):
    """Data given as arrays or a Python dataset that cannot be a classification proxy: says what is wrong."""


Arrays = dict[str, np.ndarray]


# ---------------------------------------------------------------- checking


def checked(images: Any, labels: Any, what: str, *, classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``images`` as N×C×H×W uint8 and ``labels`` as N int64, or a :class:`DataError` naming ``what`` and
    the fault. N×H×W is one channel; N×H×W×C (C of 1 or 3, as numpy and PIL lay images out) is moved to
    N×C×H×W. Float images are read as [0, 1] (what ``ToTensor`` gives), integer ones as [0, 255].
    ``classes``: the training part's class count, which another part's labels must stay below."""
    try:
        x, y = _numpy(images), _numpy(labels)
    except (ValueError, TypeError) as error:  # ragged lists
        raise DataError(f"{what}: the images or labels are not one array each ({error})") from None
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or 0 in x.shape[2:]:
        raise DataError(f"{what}: images have shape {tuple(_numpy(images).shape)}; expected N x H x W or "
                        "N x C x H x W with 1 or 3 channels")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what}: labels have shape {tuple(y.shape)}; expected one integer label per image")
    if len(x) != len(y):
        raise DataError(f"{what}: {len(x)} images but {len(y)} labels")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels are {y.dtype}; expected integers (class indices 0, 1, ...)")
    if len(y) and y.min() < 0:
        raise DataError(f"{what}: label {int(y.min())} is negative; expected class indices 0, 1, ...")
    if classes is None:
        if len(x) < 2:
            raise DataError(f"{what}: {len(x)} image(s); a proxy needs at least 2")
        if len(np.unique(y)) < 2:
            raise DataError(f"{what}: every label is {int(y[0])}; a classification proxy needs at least two classes")
    else:
        if len(x) < 1:
            raise DataError(f"{what}: no images")
        if y.max() >= classes:
            raise DataError(f"{what}: label {int(y.max())}, but the training labels go up to {classes - 1}")
    return np.ascontiguousarray(_uint8(x, what)), y.astype(np.int64)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, on whatever device
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _uint8(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        low, high = float(x.min()), float(x.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
            raise DataError(f"{what}: float images range over [{low:.3g}, {high:.3g}]; expected [0, 1] (as ToTensor "
                            "gives; pass images before normalizing them) or uint8 in [0, 255]")
        return np.rint(x * 255).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer) and x.dtype != np.bool_:
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise DataError(f"{what}: integer images range over [{low}, {high}]; expected [0, 255]")
        return x.astype(np.uint8)
    raise DataError(f"{what}: images are {x.dtype}; expected uint8, integers in [0, 255] or floats in [0, 1]")


# ---------------------------------------------------------------- Python objects to arrays


def from_python(data: Any, *, image_column: str = "image", label_column: str = "label") -> Arrays:
    """``data`` as the arrays of a file (:data:`PARTS`), checked: an ``(images, labels)`` pair of tensors or
    arrays, a dict of such parts (``train`` and optionally ``val``/``validation`` and ``test``), a
    torchvision-style dataset (indexable, giving ``(PIL image or tensor, label)``), or a Hugging Face
    ``datasets.Dataset`` (its ``image_column`` and ``label_column``)."""
    if isinstance(data, Mapping):
        unknown = [str(k) for k in data if k not in _PART_NAMES]
        if unknown or "train" not in data:
            raise DataError(f"data: a dict of parts needs 'train' and may have 'val' and 'test'; got keys "
                            f"{', '.join(map(repr, map(str, data))) or 'none'}")
        parts = {_PART_NAMES[k]: v for k, v in data.items()}
    else:
        parts = {"train": data}
    out: Arrays = {}
    classes = None
    for part in ("train", "val", "test"):
        if part not in parts:
            continue
        what = "data" if part == "train" and len(parts) == 1 else f"data[{part!r}]"
        x, y = _pair(parts[part], what, image_column, label_column)
        x, y = checked(x, y, what, classes=classes)
        if classes is None:
            classes = int(y.max()) + 1
        elif x.shape[1] != out["images"].shape[1]:
            raise DataError(f"{what}: {x.shape[1]}-channel images, but the training images have "
                            f"{out['images'].shape[1]}")
        out[PARTS[part][0]], out[PARTS[part][1]] = x, y
    return out


def _pair(data: Any, what: str, image_column: str, label_column: str) -> tuple[Any, Any]:
    """One part's images and labels, not yet checked."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], tuple):
        return data[0], data[1]
    if _is_hugging_face(data):
        return _hugging_face(data, what, image_column, label_column)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return _indexable(data, what)
    raise DataError(f"{what}: a {type(data).__name__} is not data; give (images, labels), a dict of such parts, "
                    "a torchvision dataset or a Hugging Face datasets.Dataset")


def _is_hugging_face(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "datasets" and hasattr(data, "column_names")


def _hugging_face(data: Any, what: str, image_column: str, label_column: str) -> tuple[Any, Any]:
    columns = list(data.column_names)
    for name, kind in ((image_column, "image"), (label_column, "label")):
        if name not in columns:
            raise DataError(f"{what}: no {kind} column {name!r} (columns: {', '.join(columns)}); name it with "
                            f"{kind}_column=")
    labels = np.asarray(data[label_column])
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{what}: column {label_column!r} holds {labels.dtype} values, not class indices; "
                        f"dataset.class_encode_column({label_column!r}) turns names into integers")
    images = _stacked((row[image_column] for row in data.select_columns([image_column])), len(labels), what)
    return images, labels


def _indexable(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A torchvision-style dataset, read item by item."""
    n = len(data)
    labels: list[Any] = []

    def images() -> Iterator[Any]:
        for i in range(n):
            try:
                image, label = data[i][:2]
            except (TypeError, ValueError, IndexError):
                raise DataError(f"{what}: item {i} is not an (image, label) pair") from None
            labels.append(_numpy(label).item() if np.ndim(_numpy(label)) == 0 else label)
            yield image

    stacked = _stacked(images(), n, what)
    bad = next((label for label in labels if not isinstance(label, (int, np.integer)) or isinstance(label, bool)),
               None)
    if bad is not None:
        raise DataError(f"{what}: label {bad!r} ({type(bad).__name__}) is not a class index; expected integers")
    return stacked, np.asarray(labels, dtype=np.int64)


def _stacked(images: Iterator[Any], n: int, what: str) -> np.ndarray:
    """Images of one part as N×H×W×C uint8; PIL images of other sizes than the first are resized to it,
    a grayscale image among colour ones becomes RGB."""
    from PIL import Image

    arrays = []
    for i, image in enumerate(images):
        if isinstance(image, Image.Image):
            image = image.convert("L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
            array = np.asarray(image)
        else:
            array = _numpy(image)
            if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
                array = array.transpose(1, 2, 0)  # a tensor's C×H×W
            array = checked(array[None], np.zeros(1, dtype=np.int64), f"{what}: image {i}",
                            classes=1)[0][0].transpose(1, 2, 0)
        arrays.append(array if array.ndim == 3 else array[:, :, None])
    if len(arrays) != n:
        raise DataError(f"{what}: its length says {n} images, but {len(arrays)} were read")
    if not arrays:
        raise DataError(f"{what}: 0 images; a proxy needs at least 2")
    channels = max(a.shape[2] for a in arrays)
    height, width = arrays[0].shape[:2]
    for i, a in enumerate(arrays):
        if a.shape[:2] != (height, width):
            a = np.asarray(Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).resize((width, height)))
            a = a if a.ndim == 3 else a[:, :, None]
        arrays[i] = np.repeat(a, 3, axis=2) if a.shape[2] < channels else a
    return np.stack(arrays)


# ---------------------------------------------------------------- the file


def write(arrays: Arrays, path: str | Path) -> Path:
    """The arrays as an uncompressed ``.npz`` at ``path``, written whole or not at all."""
    path = Path(path)
    write_atomic(path, lambda handle: np.savez(handle, **arrays))
    return path


def has_part(path: str | Path, part: str) -> bool:
    """Whether the file holds ``part``'s images (its arrays are not read)."""
    try:
        with np.load(path, allow_pickle=False) as file:
            return PARTS[part][0] in file.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False  # reading the training part says what is wrong with the file


def read(path: str | Path, part: str) -> tuple[np.ndarray, np.ndarray] | None:
    """One part of a file, checked (None when the file has no such part)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as file:
            names = set(file.files)
            images_key, labels_key = PARTS[part]
            if part == "train" and not {images_key, labels_key} <= names:
                raise DataError(f"{path}: holds {', '.join(sorted(names)) or 'nothing'}; expected arrays named "
                                "'images' and 'labels' (and optionally val_images, val_labels, test_images, test_labels)")
            if images_key not in names:
                return None
            if labels_key not in names:
                raise DataError(f"{path}: has {images_key} but no {labels_key}")
            x, y = file[images_key], file[labels_key]
            classes = None if part == "train" else int(file["labels"].max()) + 1
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: cannot read it as a .npz file of arrays ({reason})") from None
    return checked(x, y, f"{path} [{part}]", classes=classes)


__all__ = ["PARTS", "Arrays", "DataError", "checked", "from_python", "has_part", "read", "write"]
