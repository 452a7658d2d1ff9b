"""Proxy data: the real Fashion-MNIST (Debian's dataset-fashion-mnist), splits, augmentation, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.training import data

FMNIST = data.DEBIAN_FASHION_MNIST
needs_fmnist = pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(),
                                  reason="apt-get install dataset-fashion-mnist (scripts/test.sh does)")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rows(images: torch.Tensor) -> np.ndarray:
    """Each image as one sortable byte string, for multiset comparisons."""
    flat = np.ascontiguousarray(images.reshape(len(images), -1).numpy())
    return np.sort(flat.view(np.dtype((np.void, flat.shape[1]))).ravel())


@needs_fmnist
def test_fashion_mnist_shapes_balance_and_split_sizes() -> None:
    proxy = data.load("fashion_mnist")  # the search default: 32 px, 10 000 held out
    assert proxy.train.images.shape == (50_000, 1, 32, 32) and proxy.train.images.dtype == torch.uint8
    assert proxy.eval.images.shape == (10_000, 1, 32, 32) and proxy.eval_split == "val"
    assert proxy.num_classes == 10 and proxy.flip
    # 6 000 training images per class, held out in proportion: exactly 1 000 / 5 000 each
    assert torch.bincount(proxy.eval.labels, minlength=10).tolist() == [1_000] * 10
    assert torch.bincount(proxy.train.labels, minlength=10).tolist() == [5_000] * 10
    # resized once (28 → 32) with real content, and the normalization measured on the training set
    assert 60 < proxy.train.images.float().mean() < 90 and proxy.train.images.max() >= 250
    assert 0.2 < proxy.mean[0] < 0.4 and 0.25 < proxy.std[0] < 0.45
    assert data.load("fashion_mnist") is proxy  # cached per process: a Ray worker loads once


@needs_fmnist
def test_val_split_is_held_out_of_train_and_test_is_separate() -> None:
    search = data.load("fashion_mnist")
    final = data.load("fashion_mnist", split="test")
    assert final.eval_split == "test" and len(final.train) == 60_000 and len(final.eval) == 10_000
    assert torch.bincount(final.eval.labels).tolist() == [1_000] * 10
    # train ∪ val is exactly the training set as a multiset: no image in both, none lost
    together = torch.cat([search.train.images, search.eval.images])
    assert np.array_equal(rows(together), rows(final.train.images))
    # and the validation images are not the test images
    assert not np.array_equal(rows(search.eval.images), rows(final.eval.images))


@needs_fmnist
def test_seeded_split_is_reproducible_and_seed_dependent() -> None:
    a = data.load("fashion_mnist", seed=0, max_eval=2_000)
    data.clear_cache()
    again = data.load("fashion_mnist", seed=0, max_eval=2_000)
    other = data.load("fashion_mnist", seed=1, max_eval=2_000)
    assert again is not a
    assert torch.equal(a.eval.images, again.eval.images) and torch.equal(a.train.labels, again.train.labels)
    assert not torch.equal(a.eval.images, other.eval.images)
    assert len(a.eval) == 2_000 and len(a.train) == 50_000


@pytest.mark.slow
@needs_fmnist
def test_search_never_reads_the_test_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))  # an empty node cache: every part is decoded here
    read: list[str] = []
    original = data._read_idx_pair
    monkeypatch.setattr(data, "_read_idx_pair", lambda folder, prefix: read.append(prefix) or original(folder, prefix))
    data.clear_cache()
    data.load("fashion_mnist", max_train=100)
    assert read == ["train"]
    data.load("fashion_mnist", split="test", max_train=100)
    assert read == ["train", "t10k"]


@needs_fmnist
def test_nas_data_dir_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in data._FMNIST_FILES:
        (folder / name).symlink_to(FMNIST / name)
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    assert data._find_fashion_mnist(None) == folder
    labels = data.read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10_000,) and labels.max() == 9


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(data.DatasetError) as info:
        data.load("fashion_mnist")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert "apt-get install dataset-fashion-mnist" in message and "NAS_DATA_DIR" in message
    monkeypatch.delenv("NAS_DATA_DIR")
    assert data.fashion_mnist_candidates() == [Path("/usr/share/datasets/fashion-mnist")]
    with pytest.raises(data.DatasetError, match=str(tmp_path / "given")):
        data.load("fashion_mnist", root=tmp_path / "given")
    with pytest.raises(data.DatasetError, match="unknown dataset 'mnist'"):
        data.load("mnist")


def test_damaged_idx_file_is_a_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "x-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"\0\0\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100)
    with pytest.raises(data.DatasetError, match="truncated"):
        data.read_idx(path)
    path.write_bytes(b"not gzip")
    with pytest.raises(data.DatasetError, match="cannot read"):
        data.read_idx(path)


def test_random_crop_is_a_shift_of_the_padded_image() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (16, 3, 8, 8), dtype=torch.uint8)  # no zeros: padding is recognisable
    out = data.augment(images, padding=2, flip=False, generator=g)
    assert out.shape == images.shape and out.is_contiguous(memory_format=torch.channels_last)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    shifts = set()
    for i in range(len(images)):
        match = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 3  # offsets really are random


def test_flip_mirrors_about_half_the_batch() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (200, 1, 6, 6), dtype=torch.uint8)
    out = data.augment(images, padding=0, flip=True, generator=g)
    same = [torch.equal(o, i) for o, i in zip(out, images)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 60 < sum(mirrored) < 140
    unflipped = data.augment(images, padding=0, flip=False, generator=g)
    assert torch.equal(unflipped, images)


def test_normalize_standardizes_per_channel() -> None:
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    out = data.normalize(x, (0.5,), (0.25,))
    assert out.dtype == torch.float32 and out.flatten().tolist() == pytest.approx([-2.0, 2.0])


def test_synthetic_dataset_is_seeded_and_class_dependent() -> None:
    a, b = data.synthetic(200, resolution=16, seed=3), data.synthetic(200, resolution=16, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    means = torch.stack([a.images[a.labels == c].float().mean(0) for c in range(10)])
    assert (means[0] - means[1]).abs().max() > 50  # classes differ by a visible pattern
    proxy = data.load("synthetic", resolution=16)
    assert len(proxy.train) == 2_500 and len(proxy.eval) == 500 and not proxy.flip


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and whose image data is missing."""
    import struct
    import zlib

    body = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + body
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(body)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "zero bytes", "decompression bomb"])
def test_an_image_that_cannot_be_decoded_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              damage: str) -> None:
    from io import BytesIO

    from PIL import Image

    monkeypatch.setenv("NAS_CACHE_DIR", "off")
    for label, shade in (("dark", 20), ("bright", 230)):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (12, 12), (shade, shade, shade)).save(tmp_path / label / f"{i}.png")
    good = BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, format="PNG")
    bad = tmp_path / "bright" / "bad.png"
    bad.write_bytes({"random bytes": np.random.default_rng(0).bytes(500), "truncated": good.getvalue()[:60],
                     "zero bytes": b"", "decompression bomb": _png_header(16_000, 16_000)}[damage])
    with pytest.raises(data.DatasetError) as caught:
        data.load("imagefolder", root=tmp_path, resolution=8, val_size=2)
    message = str(caught.value)
    assert str(bad) in message and "\n" not in message


def test_a_one_class_image_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("NAS_CACHE_DIR", "off")
    (tmp_path / "only").mkdir()
    for i in range(4):
        Image.new("RGB", (12, 12), (i, i, i)).save(tmp_path / "only" / f"{i}.png")
    with pytest.raises(data.DatasetError, match="1 class folder"):
        data.load("imagefolder", root=tmp_path, resolution=8, val_size=2)


def test_an_image_folder_with_train_and_val_trees_measures_on_val(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's own val/ beside train/ is where a search measures (it used to be ignored and a tenth of
    train held out instead); its class folders must be train's."""
    from PIL import Image

    monkeypatch.setenv("NAS_CACHE_DIR", "off")
    for part, count in (("train", 6), ("val", 3)):
        for label, shade in (("a", 30), ("b", 220)):
            (tmp_path / part / label).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (10, 10), (shade, shade, i)).save(tmp_path / part / label / f"{i}.png")
    loaded = data.load("imagefolder", root=tmp_path / "train", resolution=8)
    assert len(loaded.train) == 12 and len(loaded.eval) == 6 and loaded.num_classes == 2
    (tmp_path / "val" / "c").mkdir()
    data.clear_cache()
    with pytest.raises(data.DatasetError, match="needs the same class folders"):
        data.load("imagefolder", root=tmp_path / "train", resolution=8)
