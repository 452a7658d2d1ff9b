"""What only a CUDA GPU can show; every test is skipped without one (conftest.py) and must hold with one.

Each guards a fault found by reading the CUDA paths: resume from a checkpoint mapped to the GPU, an
out-of-memory trial beside a healthy one, the host syncs of a training step, trials sharing one GPU under
Ray, and the supernet's steps in mixed precision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.core.arch import Architecture
from nas.network.builder import build
from nas.settings import ProxySettings
from nas.training import data
from nas.training.evaluate import Task, evaluate
from nas.training.trainer import Trainer

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[1]
TINY = Architecture.parse("stem_c16_s2,ds_r1_k3_s1_e1_c16,ir_r2_k3_s2_e4_c24_se0.25,ir_r1_k5_s2_e6_c40,head_c64,act_silu")
PROXY = ProxySettings(dataset="synthetic", resolution=16, epochs=2, max_train_samples=1024, max_val_samples=256,
                      batch_size=64, lr=0.05)


def _trainer(seed: int = 0) -> Trainer:
    dataset = data.for_proxy(PROXY, device=torch.device("cuda"))
    torch.manual_seed(seed)
    return Trainer(build(TINY, num_classes=dataset.num_classes, in_channels=dataset.channels), dataset, PROXY)


def test_a_cuda_checkpoint_resumes_when_loaded_onto_the_gpu(tmp_path: Path) -> None:
    """torch.load(map_location="cuda") puts the RNG states on the GPU; set_rng_state takes CPU bytes only."""
    first = _trainer()
    first.run_epoch()
    torch.save(first.state_dict(), tmp_path / "checkpoint.pt")
    state = torch.load(tmp_path / "checkpoint.pt", map_location="cuda", weights_only=True)
    assert state["generator"].device.type == "cuda"  # what made set_state fail before
    second = _trainer(seed=1)
    second.load_state_dict(state)
    first.run_epoch()
    second.run_epoch()
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-3)  # the same run, up to CUDA's nondeterminism


def test_an_out_of_memory_trial_fails_and_the_next_succeeds() -> None:
    huge = Architecture.parse("stem_c512_s1,ir_r8_k7_s1_e16_c2048,head_c8192,act_silu")
    task = Task(proxy=PROXY.changed(batch_size=4096, max_train_samples=8192, resolution=64), device="cuda")
    torch.cuda.set_per_process_memory_fraction(0.1)  # a small share, as a crowded GPU gives
    try:
        failed = evaluate(huge, task)
        assert failed.status == "failed" and "out of memory" in failed.error
        ok = evaluate(TINY, Task(proxy=PROXY, device="cuda"))
        assert ok.ok and ok.device.startswith("cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


def test_a_training_epoch_syncs_with_the_host_a_few_times_not_at_every_step() -> None:
    """The loop looks at the loss every check_every steps and at the epoch's end, never at every step."""
    import warnings

    trainer = _trainer()
    trainer.config = trainer.config.changed(check_every=10_000)
    trainer.run_epoch()  # warm: the first epoch's one-time work (cuDNN, allocations) is not the loop's
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            trainer.run_epoch()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in seen if "synchroniz" in str(w.message).lower()]
    assert trainer.steps_per_epoch >= 16 and len(syncs) <= 4, [str(w.message)[:80] for w in syncs]


@pytest.mark.slow
def test_four_trials_share_one_gpu_under_ray(tmp_path: Path) -> None:
    from tests.test_search import TINY_SPACE

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    done = subprocess.run([sys.executable, str(ROOT / "scripts/search.py"), "--space", str(space), "--trials", "8",
                           "--concurrency", "4", "--gpus-per-trial", "0.25", "--cpus-per-trial", "1",
                           "--data", "synthetic", "--max-train-samples", "1024", "--max-val-samples", "128",
                           "--storage", str(tmp_path), "--name", "shared", "--address", "local", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["counts"]["ok"] == 8
    import sqlite3

    devices = {row[0] for row in sqlite3.connect(tmp_path / "shared" / "trials.db").execute(
        "SELECT device FROM trials")}
    assert devices == {"cuda"} or all(d.startswith("cuda") for d in devices), devices


def test_supernet_steps_run_in_mixed_precision_and_learn(tmp_path: Path) -> None:
    from nas import space as spaces
    from nas.settings import SupernetSettings
    from nas.training import supernet_training
    from tests.test_search import TINY_SPACE

    weights = supernet_training.train(spaces.loads(TINY_SPACE), PROXY, SupernetSettings(epochs=2),
                                      tmp_path / "supernet", device="cuda")
    progress = supernet_training.progress(tmp_path / "supernet")
    assert weights.exists() and progress["step"] == progress["steps"] and progress["loss"] < 2.3
