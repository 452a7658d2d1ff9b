"""The node-local dataset cache: one decode per machine across processes, invalidated by changed data."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.training import data, node_cache

ROOT = Path(__file__).resolve().parents[1]
FMNIST = data.DEBIAN_FASHION_MNIST


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NAS_CACHE_DIR", str(folder))
    data.clear_cache()
    yield folder
    data.clear_cache()


def image_tree(root: Path, per_class: int = 3) -> Path:
    """A tiny ImageFolder tree: two classes of solid-colour PNGs (dark vs bright)."""
    for label, shade in (("dark", 30), ("bright", 220)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (12, 12), (shade, shade + i, shade)).save(root / label / f"{i}.png")
    return root


def counting_decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    original = data._read_image_folder
    monkeypatch.setattr(data, "_read_image_folder",
                        lambda folder, res, **options: calls.append(folder) or original(folder, res, **options))
    return calls


def test_a_second_process_reads_the_cache_instead_of_decoding(cache: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tree = image_tree(tmp_path / "tree")
    calls = counting_decodes(monkeypatch)
    first = data.load("imagefolder", root=tree, resolution=8, val_size=2)
    data.clear_cache()  # what a fresh worker process starts with
    second = data.load("imagefolder", root=tree, resolution=8, val_size=2)
    assert len(calls) == 1 and len(list((cache / "datasets").glob("*.npz"))) == 1
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.eval.labels, second.eval.labels)
    assert first.train.images.shape[1:] == (3, 8, 8)


def test_changed_or_added_source_files_are_decoded_again(cache: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tree = image_tree(tmp_path / "tree")
    calls = counting_decodes(monkeypatch)
    data.load("imagefolder", root=tree, resolution=8, val_size=2)
    Image.new("RGB", (12, 12), (200, 10, 10)).save(tree / "bright" / "new.png")
    data.clear_cache()
    grown = data.load("imagefolder", root=tree, resolution=8, val_size=2)
    assert len(calls) == 2 and len(grown.train) + len(grown.eval) == 7
    first = tree / "dark" / "0.png"
    Image.new("RGB", (12, 12), (0, 0, 0)).save(first)
    os.utime(first, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on coarse clocks
    data.clear_cache()
    data.load("imagefolder", root=tree, resolution=8, val_size=2)
    assert len(calls) == 3


def test_a_damaged_cache_file_is_rebuilt_not_trusted(cache: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tree = image_tree(tmp_path / "tree")
    calls = counting_decodes(monkeypatch)
    good = data.load("imagefolder", root=tree, resolution=8, val_size=2)
    [stored] = (cache / "datasets").glob("*.npz")
    stored.write_bytes(stored.read_bytes()[:100])  # truncated, e.g. by a full disk
    data.clear_cache()
    again = data.load("imagefolder", root=tree, resolution=8, val_size=2)
    assert len(calls) == 2 and torch.equal(good.train.images, again.train.images)


def test_cache_off_writes_nothing_and_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", "off")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    data.clear_cache()
    proxy = data.load("imagefolder", root=image_tree(tmp_path / "tree"), resolution=8, val_size=2)
    assert len(proxy.train) == 4 and not (tmp_path / "home").exists()
    assert node_cache.cache_dir() is None


def test_unwritable_cache_falls_back_to_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("NAS_CACHE_DIR", str(blocker))
    arrays = node_cache.load_or_build({"k": 1}, [], lambda: {"x": np.arange(3)})
    assert arrays["x"].tolist() == [0, 1, 2]


WORKER = textwrap.dedent("""
    import os, pathlib, sys, time
    from nas.training import data
    original = data._read_idx_pair
    entered = pathlib.Path(sys.argv[2])
    def slow_read(folder, prefix):
        with open(sys.argv[1], "a") as log:
            log.write(prefix + "\\n")
        deadline = time.time() + 60
        while len(list(entered.iterdir())) < 2 and time.time() < deadline:  # until the other is in load() too
            time.sleep(0.05)
        return original(folder, prefix)
    data._read_idx_pair = slow_read
    (entered / str(os.getpid())).touch()  # this process is about to load
    proxy = data.load("fashion_mnist", resolution=16)
    print(int(proxy.train.images.sum()), int(proxy.eval.labels.sum()))
""")


@pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="apt-get install dataset-fashion-mnist (scripts/test.sh does)")
def test_concurrent_processes_on_one_node_decode_fashion_mnist_once(cache: Path, tmp_path: Path) -> None:
    log = tmp_path / "decodes.log"
    env = {**os.environ, "NAS_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    entered = tmp_path / "entered"
    entered.mkdir()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(log), str(entered)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), [err for _, err in outputs]
    assert log.read_text().split() == ["train"]  # one decode for the node, the other process waited
    assert outputs[0][0] == outputs[1][0]  # and both got the same split of the same images
    local = data.load("fashion_mnist", resolution=16)
    assert outputs[0][0].split() == [str(int(local.train.images.sum())), str(int(local.eval.labels.sum()))]
