"""The weight-sharing supernet: extraction is exact, training resumes, a search can use it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import space as spaces
from nas.core import cost
from nas.network.supernet import Supernet
from nas.settings import SupernetSettings
from tests.test_search import TINY_SPACE, local_ray, tiny_space  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
@pytest.mark.parametrize("sharing", ["crop", "separate"])
@pytest.mark.parametrize("space_name", ["mnasnet", "efficientnetv2"])
def test_an_extracted_network_is_the_stand_alone_network_with_the_shared_weights(space_name: str,
                                                                                  sharing: str) -> None:
    space = spaces.load(space_name)
    torch.manual_seed(0)
    supernet = Supernet(space, num_classes=10, in_channels=1, stem_stride=1, drop_downsamples=1,
                        kernel_sharing=sharing)
    rng = np.random.default_rng(3)
    for _ in range(4):
        arch = space.sample(rng)
        net = supernet.extract(arch)
        form = supernet.proxy_form(arch)
        assert sum(p.numel() for p in net.parameters()) == cost.count(form, 16, num_classes=10, in_channels=1).params
        x = torch.randn(3, 1, 16, 16)
        with torch.no_grad():
            assert torch.equal(net.train()(x), supernet(x, form))  # batch statistics on both sides


def test_kernels_share_a_centre_crop_or_keep_their_own() -> None:
    space = spaces.loads(TINY_SPACE)
    crop = Supernet(space, num_classes=10, in_channels=1, kernel_sharing="crop")
    separate = Supernet(space, num_classes=10, in_channels=1, kernel_sharing="separate")
    assert sum(p.numel() for p in separate.parameters()) > sum(p.numel() for p in crop.parameters())
    wide = crop.weights["s1/l0/ir/conv1/k5/weight"]
    assert torch.equal(crop.conv_weight("s1.l0.ir.conv1", __import__("nas.core.ops").core.ops.Conv(8, 8, 3, 1, groups=8)),
                       wide[:8, :, 1:4, 1:4])


def test_in_place_distillation_trains_the_others_on_the_largest_networks_predictions() -> None:
    from nas.network.supernet import largest_and_smallest
    from nas.training.supernet_training import accumulate_gradients

    space = spaces.loads(TINY_SPACE)
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10, in_channels=1)
    largest, smallest = largest_and_smallest(space)
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def gradients(teacher) -> dict[str, torch.Tensor]:
        net.zero_grad(set_to_none=True)
        accumulate_gradients(net, x, y, [largest, smallest], criterion, teacher=teacher)
        return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}

    distilled, labelled = gradients(largest), gradients(None)
    net.zero_grad(set_to_none=True)  # the same step written out: the smallest learns the largest's softmax
    big = net(x, net.proxy_form(largest))
    small = net(x, net.proxy_form(smallest))
    ((criterion(big, y) + torch.nn.functional.cross_entropy(small, torch.softmax(big.detach(), 1))) / 2).backward()
    expected = {k: p.grad for k, p in net.named_parameters() if p.grad is not None}
    assert distilled.keys() == expected.keys()
    assert all(torch.allclose(distilled[k], expected[k], atol=1e-6) for k in expected)
    assert any(not torch.allclose(labelled[k], expected[k], atol=1e-6) for k in expected)


def test_distillation_needs_the_sandwich_rules_largest_network() -> None:
    from pydantic import ValidationError

    assert SupernetSettings(targets="largest").sampling == "sandwich"
    with pytest.raises(ValidationError, match="needs sampling 'sandwich'"):
        SupernetSettings(targets="largest", sampling="uniform")


TRAIN = """
import sys, torch
torch.set_num_threads(1)
from nas import space as spaces
from nas.settings import ProxySettings, SupernetSettings
from nas.training.supernet_training import train
from tests.test_search import TINY_SPACE, local_ray, tiny_space  # noqa: F401 - fixtures
proxy = ProxySettings(dataset="synthetic", resolution=16, epochs=1, batch_size=32, max_train_samples=256,
                      max_val_samples=64, stem_stride=1, drop_downsamples=0, lr=0.05)
train(spaces.loads(TINY_SPACE), proxy, SupernetSettings(epochs=6, checkpoint_every=5), sys.argv[1],
      on_progress=lambda step, steps, loss: print(step, flush=True))
"""


@pytest.mark.slow
def test_supernet_training_resumes_after_sigkill_to_the_same_weights(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / "whole")], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    killed = subprocess.Popen([sys.executable, "-c", TRAIN, str(tmp_path / "killed")], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 200
    while time.time() < deadline and int(killed.stdout.readline() or 0) < 23:
        pass
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert (tmp_path / "killed" / "checkpoint.pt").exists() and not (tmp_path / "killed" / "supernet.pt").exists()
    again = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / "killed")], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert int(again.stdout.split()[0]) > 1  # it went on from a checkpoint, not from step 1
    a = torch.load(tmp_path / "whole" / "supernet.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "supernet.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_search_with_the_supernet_evaluator(tmp_path: Path, tiny_space: Path, local_ray,  # noqa: F811 - fixtures
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.runs import search
    from nas.runs.store import Store
    from tests.test_search import rows, tiny_config

    # A relative --storage, as users type it: Tune runs each trial in its own folder, so the trials must
    # find the supernet by an absolute path.
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, tiny_space.resolve(), trials=12, evaluator="supernet",
                         place={"name": "shared", "storage": "runs"}, supernet={"epochs": 2, "checkpoint_every": 5})
    summary = search.run(config)
    run_dir = tmp_path / summary["run_dir"]
    stored = rows(run_dir)
    assert len(stored) == 12 and all(r["status"] == "ok" and r["evaluator"] == "supernet" for r in stored)
    assert (run_dir / "supernet" / "supernet.pt").exists()
    meta = Store.open_readonly(run_dir).meta()
    assert meta["evaluator"] == "supernet" and meta["supernet"]["step"] == meta["supernet"]["steps"]
