"""Which device a trial trains on: the one Ray granted it, recorded with its result; and checkpoints that
resume wherever ``torch.load`` put their tensors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.core.arch import Architecture
from nas.settings import ProxySettings
from nas.training.evaluate import Task, evaluate

ROOT = Path(__file__).resolve().parents[1]
TINY = Architecture.parse("stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r1_k3_s2_e3_c16,head_c32,act_relu")

# A Ray node that claims two GPUs on a machine without any (Ray believes what it is told): what each
# trial's task becomes with no GPU and with one GPU granted, and what the trial then reports.
_FAKE_GPUS = """
import json, ray
from nas.runs.tune.trial import on_granted_device
from nas.settings import ProxySettings
from nas.training.evaluate import Task, evaluate
from nas.core.arch import Architecture

ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
task = Task(proxy=ProxySettings(dataset="synthetic", resolution=8, epochs=1, max_train_samples=64,
                                max_val_samples=16, batch_size=16))
arch = Architecture.parse("stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r1_k3_s2_e3_c16,head_c32,act_relu")

@ray.remote
def trial():
    granted = on_granted_device(task)
    return granted.device, evaluate(arch, granted).to_dict()

out = {}
for gpus in (0, 1):
    device, result = ray.get(trial.options(num_cpus=1, num_gpus=gpus).remote())
    out[str(gpus)] = {"device": device, "status": result["status"], "error": result["error"],
                      "recorded": result["device"]}
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="shows what a GPU-less node claiming GPUs does")
def test_a_trial_trains_where_ray_granted_it_and_says_where() -> None:
    done = subprocess.run([sys.executable, "-c", _FAKE_GPUS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    out = json.loads(done.stdout.strip().splitlines()[-1])
    # No GPU granted: the CPU, never "auto" picking a GPU outside Ray's accounting; the result says so.
    assert out["0"] == {"device": "cpu", "status": "ok", "error": None, "recorded": "cpu"}
    # A GPU granted where CUDA does not work: a failed trial saying why, not a silent CPU run.
    assert out["1"]["device"] == "cuda" and out["1"]["status"] == "failed"
    assert "CUDA is not available" in out["1"]["error"]


def test_a_device_the_user_named_is_kept() -> None:
    from nas.runs.tune.trial import on_granted_device

    assert on_granted_device(Task(device="cpu")).device == "cpu"
    assert on_granted_device(Task()).device == "auto"  # outside Ray: nothing granted, nothing changed


def test_a_result_records_its_device() -> None:
    task = Task(proxy=ProxySettings(dataset="synthetic", resolution=8, epochs=1, max_train_samples=64,
                                    max_val_samples=16, batch_size=16), device="cpu")
    assert evaluate(TINY, task).device == "cpu"


class _OnAnotherDevice:
    """A state tensor as ``torch.load(map_location="cuda")`` leaves it: usable only through ``.cpu()``
    (``torch.set_rng_state`` refuses anything but a CPU byte tensor)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self._tensor = tensor

    def cpu(self) -> torch.Tensor:
        return self._tensor


def test_a_trainer_resumes_from_random_states_mapped_to_another_device() -> None:
    from nas.network.builder import build
    from nas.training import data
    from nas.training.trainer import Trainer

    proxy = ProxySettings(dataset="synthetic", resolution=8, epochs=2, max_train_samples=64, max_val_samples=16,
                          batch_size=16)
    dataset = data.for_proxy(proxy, device=torch.device("cpu"))
    first = Trainer(build(TINY, num_classes=dataset.num_classes, in_channels=dataset.channels), dataset, proxy)
    first.run_epoch()
    state = first.state_dict()
    mapped = {**state, **{key: _OnAnotherDevice(state[key]) for key in ("generator", "torch_rng")}}
    second = Trainer(build(TINY, num_classes=dataset.num_classes, in_channels=dataset.channels), dataset, proxy)
    second.load_state_dict(mapped)
    assert second.step == first.step and torch.equal(second.generator.get_state(), first.generator.get_state())


def test_reduced_precision_is_bf16_where_native_else_fp16_with_scaling() -> None:
    from nas.training.trainer import half_precision, loss_scaler

    cuda = torch.device("cuda")
    assert half_precision(cuda, bf16_supported=True) is torch.bfloat16      # A100, H100
    assert half_precision(cuda, bf16_supported=False) is torch.float16      # T4, V100: fp16 (+ a GradScaler)
    assert half_precision(torch.device("cpu")) is None
    assert not loss_scaler(torch.device("cpu")).is_enabled()               # fp32: nothing to scale


def _run_trial_with(monkeypatch: pytest.MonkeyPatch, error: str | None, **options) -> tuple[list, list, list]:
    """run_trial with an evaluator that fails with ``error`` (or succeeds), outside Ray: what it reported,
    whether it ended its process, and the on_epoch it handed the evaluator."""
    from nas.core.result import TrialResult
    from nas.runs.tune import trial as trainable

    exits, reports, hooks = [], [], []
    monkeypatch.setattr(trainable.os, "_exit", exits.append)
    monkeypatch.setattr(trainable.tune, "report", reports.append)

    def evaluator(arch: Architecture, task: Task, on_epoch=None) -> TrialResult:
        hooks.append(on_epoch)
        if error is None:
            return TrialResult(arch=str(arch), accuracy=0.5, reward=0.5, epochs=1)
        return TrialResult.failure(str(arch), error)

    trainable.run_trial({"arch": str(TINY)}, task=Task(device="cpu"), evaluator=evaluator, **options)
    return exits, reports, hooks


def test_a_fatal_cuda_error_ends_the_worker_after_reporting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """After an illegal address or a device-side assert the process's CUDA context is broken: every later trial
    on a reused worker would fail in milliseconds. The trial's failure is reported, then the worker ends."""
    exits, reports, _ = _run_trial_with(monkeypatch, "RuntimeError: CUDA error: an illegal memory access was "
                                                     "encountered")
    assert exits == [3] and reports[-1]["status"] == "failed" and "illegal memory" in reports[-1]["error"]
    exits, reports, _ = _run_trial_with(monkeypatch, "CUDA out of memory: tried to allocate 2 GiB")
    assert exits == [] and reports[-1]["status"] == "failed"  # out of memory leaves the process usable


def test_epochs_are_measured_only_when_a_scheduler_needs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.runs.tune.experiment import run_experiment  # noqa: F401 - the caller that decides it

    _, _, hooks = _run_trial_with(monkeypatch, None, epochs_reported=False)
    assert hooks == [None]  # no validation pass after every epoch: only the end is measured
    _, _, hooks = _run_trial_with(monkeypatch, None, epochs_reported=True)
    assert callable(hooks[0])


def test_measurements_on_one_device_take_turns(tmp_path: Path) -> None:
    """Trials sharing a GPU time their latency and step one at a time (a lock per device, across processes)."""
    import threading
    import time

    from nas.training.trainer import exclusive, measuring

    lock = tmp_path / "device.lock"
    order: list[str] = []

    def measure(name: str) -> None:
        with exclusive(lock):
            order.append(f"{name} in")
            time.sleep(0.2)
            order.append(f"{name} out")

    threads = [threading.Thread(target=measure, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert order[0].endswith("in") and order[1].endswith("out") and order[1][0] == order[0][0]  # never interleaved
    with measuring(torch.device("cpu")):  # a CPU trial has its own cores: nothing to wait for
        pass
