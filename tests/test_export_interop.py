"""Exports checked against the outside truth: timm's own builder, a Python without nas, onnxruntime."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import space as spaces
from nas.app import export
from nas.core import cost
from nas.core.arch import ArchError, Architecture
from nas.network import builder as model
from tests.conftest import SPACES

timm = pytest.importorskip("timm")
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load_module(path: Path, name: str):  # noqa: ANN201
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expressible(space: spaces.SearchSpace, count: int, seed: int) -> list[Architecture]:
    """Random architectures of ``space`` that timm can express (it has no pooled shortcut, ...)."""
    rng, out = np.random.default_rng(seed), []
    while len(out) < count:
        arch = space.sample(rng)
        try:
            arch.timm_arch_def()
        except ArchError:
            continue
        out.append(arch)
    return out


def same_network(ours: torch.nn.Module, theirs: torch.nn.Module, resolution: int) -> None:
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    values, keys = list(ours.state_dict().values()), list(theirs.state_dict().keys())
    assert len(values) == len(keys)
    theirs.load_state_dict(dict(zip(keys, values)))  # by position: the same layers in the same order
    with torch.no_grad():
        x = torch.randn(2, 3, resolution, resolution)
        assert torch.allclose(ours.eval()(x), theirs.eval()(x), atol=1e-4, rtol=1e-4)


def residuals(net: torch.nn.Module) -> list[bool]:
    blocks = [m for m in net.modules() if hasattr(m, "has_skip") or hasattr(m, "residual")]
    return [bool(m.has_skip) if hasattr(m, "has_skip") else m.residual != "none" for m in blocks]


@pytest.mark.slow
def test_timm_builds_the_same_network_for_random_architectures(tmp_path: Path) -> None:
    """120 random architectures of the default space that timm can express, plus B0 and MnasNet-A1."""
    space = spaces.load(SPACES / "mnasnet.yaml")
    archs = [spaces.load_architecture("efficientnet_b0"), spaces.load_architecture("mnasnet_a1"),
             *expressible(space, 120, seed=12)]
    for index, arch in enumerate(archs):
        path = tmp_path / f"m{index}.py"
        path.write_text(export.timm_source(arch, num_classes=10))
        theirs = load_module(path, f"exported_{index}").model()
        torch.manual_seed(index)
        ours = model.build(arch, num_classes=10)
        assert residuals(ours) == residuals(theirs), str(arch)
        same_network(ours, theirs, resolution=32)
        assert sum(p.numel() for p in theirs.parameters()) == cost.count(arch, num_classes=10).params


@pytest.mark.slow
def test_timm_builds_fused_mbconv_stages_as_efficientnetv2() -> None:
    space = spaces.load(SPACES / "efficientnetv2.yaml")
    for index, arch in enumerate([spaces.load_architecture("efficientnetv2_s"), *expressible(space, 6, seed=3)]):
        source = export.timm_source(arch, num_classes=10)
        namespace: dict = {}
        exec(compile(source, f"v2_{index}", "exec"), namespace)  # noqa: S102 - our own generated file
        theirs = namespace["model"]()
        same_network(model.build(arch, num_classes=10), theirs, resolution=32)
    reference = timm.create_model("efficientnetv2_s", pretrained=False)
    ours = namespace  # the last one built; the V2-S count is checked against timm's own model below
    assert sum(p.numel() for p in reference.parameters()) == cost.count(spaces.load_architecture("efficientnetv2_s")).params
    del ours


@pytest.mark.parametrize("text, fragment", [
    ("stem_c32_s2,ir_r1_k3_s2_e6_c16_poolskip,head_c1280", "no pooling skip"),
    ("stem_c32_s2,cn_r1_k3_s1_c16_se0.25,head_c1280", "no squeeze-excitation"),
    ("stem_c18_s2,ir_r1_k3_s2_e6_c16,head_c1280", "rounds the expanded width 18 x 6 = 108"),
    ("stem_c32_s1,ds_r1_k3_s1_c16,head_c1280", "stem always strides 2"),
])
def test_what_timm_cannot_express_is_one_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(ArchError, match=fragment):
        export.timm_source(Architecture.parse(text))


@pytest.mark.slow
def test_the_torch_file_builds_the_same_network_without_nas(tmp_path: Path) -> None:
    space = spaces.load(SPACES / "mnasnet.yaml")
    rng = np.random.default_rng(5)
    archs = [space.sample(rng) for _ in range(8)]  # any op, pooled shortcuts included
    archs.append(spaces.load_architecture("efficientnetv2_s"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for index, arch in enumerate(archs):
        torch.manual_seed(index)
        ours = model.build(arch, num_classes=10).eval()
        (outside / f"m{index}.py").write_text(export.torch_source(arch, num_classes=10))
        torch.save(ours.state_dict(), outside / f"m{index}.pt")
        x = torch.randn(2, 3, 32, 32)
        torch.save(x, outside / f"x{index}.pt")
        with torch.no_grad():
            torch.save(ours(x), outside / f"y{index}.pt")
    check = ("import importlib, sys, torch\n"
             "assert importlib.util.find_spec('nas') is None, 'nas must not be importable here'\n"
             f"for i in range({len(archs)}):\n"
             "    m = importlib.import_module(f'm{i}').model(num_classes=10).eval()\n"
             "    m.load_state_dict(torch.load(f'm{i}.pt', weights_only=True))\n"
             "    with torch.no_grad():\n"
             "        y = m(torch.load(f'x{i}.pt', weights_only=True))\n"
             "    assert torch.allclose(y, torch.load(f'y{i}.pt', weights_only=True), atol=1e-5), i\n"
             "print('ok')\n")
    site = [p for p in sys.path if p.endswith("site-packages")]
    done = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {site!r} + ['.']\n" + check],
                          cwd=outside, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.slow
def test_onnx_and_pt2_match_pytorch(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    for index, text in enumerate(["efficientnet_b0", "stem_c16_s2,cn_r1_k3_s1_e1_c16,er_r2_k3_s2_e4_c24,"
                                  "ir_r1_k5_s2_e6_c32_se0.25_poolskip,head_c64,act_relu"]):
        arch = spaces.load_architecture(text)
        torch.manual_seed(index)
        net = model.build(arch, num_classes=10).eval()
        weights = tmp_path / f"w{index}.pt"
        torch.save(net.state_dict(), weights)
        onnx_path, pt2_path = tmp_path / f"m{index}.onnx", tmp_path / f"m{index}.pt2"
        export.export_program(export.deployable(arch, num_classes=10, in_channels=3, checkpoint=weights), onnx_path,
                              fmt="onnx", resolution=64, in_channels=3)
        export.export_program(export.deployable(arch, num_classes=10, in_channels=3, checkpoint=weights), pt2_path,
                              fmt="pt2", resolution=64, in_channels=3)
        x = torch.randn(3, 3, 64, 64)
        with torch.no_grad():
            expected = net(x).numpy()
        session = ort.InferenceSession(str(onnx_path))
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert np.allclose(got, expected, atol=1e-4), np.abs(got - expected).max()
        program = torch.export.load(pt2_path).module()
        assert torch.allclose(program(x), torch.from_numpy(expected), atol=1e-5)


@pytest.mark.slow
def test_a_checkpoint_of_another_network_is_refused(tmp_path: Path) -> None:
    small = Architecture.parse("stem_c8_s2,ds_r1_k3_s1_c8,head_c16")
    torch.save(model.build(small, num_classes=10).state_dict(), tmp_path / "w.pt")
    done = subprocess.run([sys.executable, "-m", "nas", "export", "efficientnet_b0", "--format", "onnx",
                           "--checkpoint", str(tmp_path / "w.pt"), "--out", str(tmp_path / "b0.onnx")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "is not this network's weights" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "b0.onnx").exists()


@pytest.mark.slow
def test_a_trained_folder_exports_its_trained_network(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    arch = "stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r1_k3_s2_e3_c16,head_c32,act_relu"
    trained = subprocess.run([sys.executable, "-m", "nas", "train", arch, "--data", "synthetic", "--epochs", "1",
                              "--resolution", "16", "--storage", str(tmp_path), "--name", "t"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    done = subprocess.run([sys.executable, "-m", "nas", "export", str(tmp_path / "t"), "--format", "onnx"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import onnxruntime as ort

    session = ort.InferenceSession(done.stdout.strip())
    assert session.get_inputs()[0].shape[1:] == [1, 16, 16]  # the trained network's own input
    result = json.loads((tmp_path / "t" / "result.json").read_text())
    assert session.run(None, {session.get_inputs()[0].name: np.zeros((1, 1, 16, 16), np.float32)})[0].shape == \
        (1, result["num_classes"])


@pytest.mark.slow
def test_an_int8_program_keeps_a_trained_networks_accuracy(tmp_path: Path) -> None:
    """`--format onnx-int8` of a `nas train` folder: ONNX Runtime runs int8 weights on the real test images and
    agrees with the float network, because the ranges were set on the dataset's images."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from nas.training import data

    arch = "stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r2_k3_s2_e3_c16,ir_r2_k3_s2_e3_c24,head_c64,act_relu"
    trained = subprocess.run([sys.executable, "-m", "nas", "train", arch, "--data", "fashion_mnist", "--epochs", "2",
                              "--resolution", "16", "--max-train-samples", "6000", "--storage", str(tmp_path),
                              "--name", "t"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr
    programs = {}
    for fmt in ("onnx", "onnx-int8"):
        done = subprocess.run([sys.executable, "-m", "nas", "export", str(tmp_path / "t"), "--format", fmt,
                               "--calibration-images", "128"], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0 and "random inputs" not in done.stderr, done.stderr
        programs[fmt] = done.stdout.strip()
    assert programs["onnx-int8"].endswith(".int8.onnx")
    int8_weights = [t for t in onnx.load(programs["onnx-int8"]).graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 6  # every conv's and the classifier's weights

    test = data.load("fashion_mnist", resolution=16, split="test", max_eval=2000)
    x = data.normalize(test.eval.images, test.mean, test.std).numpy()
    labels = test.eval.labels.numpy()
    predicted = {}
    for fmt, path in programs.items():
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        predicted[fmt] = np.concatenate([session.run(None, {session.get_inputs()[0].name: batch})[0].argmax(1)
                                         for batch in np.array_split(x, 20)])
    accuracy = {fmt: float((p == labels).mean()) for fmt, p in predicted.items()}
    assert accuracy["onnx"] > 0.6, accuracy  # it learned something worth keeping
    assert accuracy["onnx-int8"] > accuracy["onnx"] - 0.02, accuracy
    assert (predicted["onnx-int8"] == predicted["onnx"]).mean() > 0.9, accuracy
