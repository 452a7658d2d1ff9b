"""Your data: searches and evaluations on images given from Python (tensors, torchvision and Hugging Face
datasets), and image folders with files that cannot be decoded."""

from __future__ import annotations

import gzip
import json
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas.core.errors import UserError
from nas.runs.store import Store
from nas.training import arrays, data
from tests.test_search import TINY_SPACE

ARCH = "stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r1_k3_s2_e3_c16,head_c32,act_relu"
QUICK = {"resolution": 16, "epochs": 2, "batch_size": 32, "device": "cpu", "seed": 0}


def bright_or_dark(n: int, *, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Float images in [0, 1] whose label is a function of the image: 1 when it is bright, 0 when dark."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.rand((n, size, size), generator=g) * 0.4 + 0.6 * labels[:, None, None]
    return images, labels


def write_mnist(root: Path, images: np.ndarray, labels: np.ndarray, *, prefix: str) -> None:
    """IDX files as the MNIST site ships them (big-endian header, uint8 data), where torchvision reads them."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    header = b"\0\0\x08\x03" + np.array([n, h, w], ">u4").tobytes()
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.astype(np.uint8).tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + np.array([n], ">u4").tobytes()
                                                     + labels.astype(np.uint8).tobytes())


@pytest.fixture()
def mnist_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MNIST-format files whose label is whether the digit-sized image is bright (1) or dark (0)."""
    monkeypatch.setenv("NAS_CACHE_DIR", "off")
    for prefix, n, seed in (("train", 300, 0), ("t10k", 100, 1)):
        images, labels = bright_or_dark(n, size=12, seed=seed)
        write_mnist(tmp_path, (images * 255).round().numpy(), labels.numpy(), prefix=prefix)
    return tmp_path


# ---------------------------------------------------------------- searches and evaluations


@pytest.mark.slow
def test_a_search_on_tensors_stores_its_data_in_the_run_and_resumes(tmp_path: Path, one_torch_thread: None) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    images, labels = bright_or_dark(320)
    summary = nas.search(str(space), data=(images, labels), trials=2, epochs=2, max_val_samples=64, concurrency=2,
                         address="local", storage=str(tmp_path / "runs"), name="tensors")
    run_dir = Path(summary["run_dir"])
    stored = np.load(run_dir / "data.npz")
    assert np.array_equal(stored["images"][:, 0], (images * 255).round().numpy())  # what the trials read
    more = nas.search(resume=run_dir, trials=3)  # a resume reads the data from the run folder, not from memory
    assert more["counts"]["ok"] == 3
    run = nas.load_run(run_dir)
    assert len(run.trials) == 3 and set(run.trials["status"]) == {"ok"}
    assert run.settings["proxy"]["dataset"] == "arrays"
    assert run.trials["accuracy"].max() > 0.8  # two classes: chance is 0.5


def test_evaluate_on_a_torchvision_dataset_read_from_mnist_files(mnist_format: Path, one_torch_thread: None) -> None:
    from torchvision.datasets import MNIST

    train = MNIST(str(mnist_format), train=True, download=False)
    test = MNIST(str(mnist_format), train=False, download=False)
    result = nas.evaluate(ARCH, data={"train": train, "val": test}, **QUICK)
    assert result.ok and result.accuracy > 0.8  # measured on torchvision's own test split: chance is 0.5


def test_a_torchvision_dataset_becomes_the_images_it_gives() -> None:
    from torchvision.datasets import FakeData
    from torchvision.transforms import ToTensor

    pil = FakeData(size=24, image_size=(3, 10, 12), num_classes=4, random_offset=5)
    converted = arrays.from_python(pil)
    assert converted["images"].shape == (24, 3, 10, 12)
    for i in (0, 23):
        image, label = pil[i]
        assert np.array_equal(converted["images"][i].transpose(1, 2, 0), np.asarray(image))
        assert converted["labels"][i] == label
    tensors = arrays.from_python(FakeData(size=24, image_size=(3, 10, 12), num_classes=4, random_offset=5,
                                          transform=ToTensor()))  # C x H x W floats in [0, 1]
    assert np.array_equal(tensors["images"], converted["images"]) and np.array_equal(tensors["labels"],
                                                                                     converted["labels"])


def test_evaluate_on_a_hugging_face_dataset(one_torch_thread: None) -> None:
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    images, labels = bright_or_dark(300, seed=2)
    pictures = [Image.fromarray((image * 255).round().byte().numpy(), mode="L") for image in images]
    features = datasets.Features({"picture": datasets.Image(), "kind": datasets.ClassLabel(names=["dark", "bright"])})
    table = datasets.Dataset.from_dict({"picture": pictures, "kind": labels.tolist()}, features=features)
    converted = arrays.from_python(table, image_column="picture", label_column="kind")
    assert np.array_equal(converted["images"][7, 0], np.asarray(table[7]["picture"]))
    assert converted["labels"].tolist() == table["kind"][:]
    result = nas.evaluate(ARCH, data=table, image_column="picture", label_column="kind", **QUICK)
    assert result.ok and result.accuracy > 0.8
    with pytest.raises(UserError, match="no image column 'image' \\(columns: picture, kind\\)"):
        nas.evaluate(ARCH, data=table, **QUICK)
    named = table.cast_column("kind", datasets.Value("string"))
    with pytest.raises(UserError, match="class_encode_column"):
        nas.evaluate(ARCH, data=named, image_column="picture", label_column="kind", **QUICK)


# ---------------------------------------------------------------- bad data: one line, before anything runs

_X, _Y = bright_or_dark(40)


@pytest.mark.parametrize(("given", "message"), [
    ((_X[:, None, None], _Y), r"^data: images have shape \(40, 1, 1, 16, 16\); expected N x H x W or N x C x H x W"),
    ((_X[:, :, :, None].expand(40, 16, 16, 5), _Y), r"images have shape \(40, 16, 16, 5\)"),
    ((_X, _Y[:-1]), r"^data: 40 images but 39 labels$"),
    ((_X, _Y.float()), r"^data: labels are float32; expected integers"),
    ((_X, torch.zeros(40, dtype=torch.long)), r"^data: every label is 0; a classification proxy needs at least two"),
    ((_X[:1], _Y[:1]), r"^data: 1 image\(s\); a proxy needs at least 2$"),
    ((_X * 2 - 1, _Y), r"^data: float images range over \[-1, 1\]; expected \[0, 1\]"),
    ((_X, _Y - 1), r"^data: label -1 is negative"),
    ({"train": (_X, _Y), "val": (_X[:4], _Y[:4] + 2)}, r"^data\['val'\]: label 3, but the training labels go up to 1$"),
    ({"training": (_X, _Y)}, r"^data: a dict of parts needs 'train'"),
    (42, r"^data: a int is not data"),
])
def test_bad_data_is_one_line_naming_the_fault(tmp_path: Path, given: object, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        nas.search(data=given, storage=str(tmp_path / "runs"), name="bad")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "runs").exists()  # refused before a run folder exists


def test_a_search_that_fails_to_start_leaves_no_data_behind(tmp_path: Path) -> None:
    from nas.core.errors import NasError

    with pytest.raises(NasError, match="no-such-controller"):
        nas.search(data=(_X, _Y), controller="no-such-controller", storage=str(tmp_path / "runs"), name="x")
    assert not (tmp_path / "runs" / "x").exists()


def test_a_bad_npz_on_the_command_line_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nas.app.cli import main

    file = tmp_path / "one-class.npz"
    np.savez(file, images=np.zeros((10, 8, 8), np.uint8), labels=np.zeros(10, np.int64))
    assert main(["evaluate", ARCH, "--data", str(file), "--resolution", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{file} [train]: every label is 0; a classification proxy needs at least two classes")
    assert "\n" not in err and "Traceback" not in err


# ---------------------------------------------------------------- image files that cannot be decoded


def _image_folder(root: Path, *, bad_in: str = "bright", all_bad: bool = False, count: int = 4) -> list[Path]:
    """Two classes of ``count`` PNGs each, plus a corrupt PNG and a truncated JPEG in ``bad_in`` (all its files
    when ``all_bad``): the broken files, written with PIL and then cut short."""
    from PIL import Image

    for label, shade in (("dark", 30), ("bright", 220)):
        (root / label).mkdir(parents=True)
        if all_bad and label == bad_in:
            continue
        for i in range(count):
            Image.new("RGB", (12, 12), (shade, shade, i)).save(root / label / f"{i}.png")
    png, jpeg = BytesIO(), BytesIO()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(png, format="PNG")
    Image.effect_noise((64, 64), 60).convert("RGB").save(jpeg, format="JPEG", quality=90)
    bad = [root / bad_in / "corrupt.png", root / bad_in / "truncated.jpg"]
    bad[0].write_bytes(png.getvalue()[:len(png.getvalue()) // 2])
    bad[1].write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    return bad


def test_bad_image_files_stop_the_load_unless_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))  # a strict and a skipping load are cached apart
    bad = _image_folder(tmp_path / "images")
    for path in bad:  # PIL itself cannot decode them
        with pytest.raises(OSError), Image.open(path) as image:
            image.load()
    with pytest.raises(data.DatasetError, match="cannot decode the image") as caught:
        data.load("imagefolder", root=tmp_path / "images", resolution=8, val_size=2)
    assert str(caught.value).startswith(str(bad[0]))
    for _ in range(2):  # the second load comes from the node's cache, with its count
        data.clear_cache()
        loaded = data.load("imagefolder", root=tmp_path / "images", resolution=8, val_size=2, skip_bad_images=True)
        assert loaded.skipped == 2 and len(loaded.train) + len(loaded.eval) == 8
        assert sorted(torch.cat([loaded.train.labels, loaded.eval.labels]).tolist()) == [0] * 4 + [1] * 4


def test_evaluate_skips_bad_images_and_says_how_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture, one_torch_thread: None) -> None:
    from nas.app.cli import main

    monkeypatch.setenv("NAS_CACHE_DIR", "off")
    _image_folder(tmp_path, count=10)
    assert main(["evaluate", ARCH, "--data", str(tmp_path), "--skip-bad-images", "--resolution", "8", "--epochs", "1",
                 "--batch-size", "4", "--device", "cpu", "--json"]) == 0
    captured = capsys.readouterr()
    assert "skipped 2 image file(s) that could not be decoded" in captured.err
    assert json.loads(captured.out)["status"] == "ok"


def test_a_class_whose_every_file_is_bad_is_still_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", "off")
    _image_folder(tmp_path, bad_in="bright", all_bad=True)
    with pytest.raises(data.DatasetError, match=r"no image of class bright could be decoded \(2 bad file\(s\) "
                                                r"skipped\); every class needs at least one readable image"):
        data.load("imagefolder", root=tmp_path, resolution=8, val_size=2, skip_bad_images=True)


@pytest.mark.slow
def test_a_search_skips_bad_images_and_reports_the_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    from nas.app.cli import main

    monkeypatch.setenv("NAS_CACHE_DIR", "off")
    bad = _image_folder(tmp_path / "images", count=10)  # a tenth of the readable 20 is held out: 2
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    common = ["search", "--space", str(space), "--data", str(tmp_path / "images"), "--trials", "2", "--concurrency",
              "2", "--address", "local", "--storage", str(tmp_path / "runs"), "--batch-size", "2"]
    assert main([*common, "--name", "strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{bad[0]}: cannot decode the image" in err and "\n" not in err  # the first bad file stops it
    assert not (tmp_path / "runs" / "strict").exists()
    assert main([*common, "--name", "skip", "--skip-bad-images"]) == 0
    out = capsys.readouterr().out
    assert "[nas] skipped 2 image file(s) that could not be decoded (--skip-bad-images)" in out
    with Store.open_readonly(tmp_path / "runs" / "skip") as store:
        assert store.meta()["skipped_images"] == 2 and store.meta()["settings"]["proxy"]["skip_bad_images"] is True
        assert [row.status for row in store.trials()] == ["ok", "ok"]


def test_a_gzip_file_is_not_an_npz(tmp_path: Path) -> None:
    file = tmp_path / "data.npz"
    file.write_bytes(gzip.compress(b"not a zip"))
    with pytest.raises(UserError, match=f"^{file}: cannot read it as a .npz file of arrays"):
        data.load("arrays", root=file, resolution=8)
