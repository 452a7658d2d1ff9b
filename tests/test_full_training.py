"""`nas train`: full training with a checkpoint per epoch, exact resume after SIGKILL, test accuracy once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas.app import cli

ROOT = Path(__file__).resolve().parents[1]
ARCH = "stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r1_k3_s2_e3_c16,ir_r1_k3_s2_e3_c24,head_c32,act_relu"
FLAGS = ["--data", "synthetic", "--resolution", "16", "--batch-size", "64", "--lr", "0.1", "--max-train-samples",
         "3000"]


def nas_train(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.app.cli", "train", *args]


@pytest.mark.slow
def test_a_killed_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(nas_train(ARCH, *FLAGS, "--epochs", "6", "--storage", str(tmp_path), "--name", "whole"),
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    killed = subprocess.Popen(nas_train(ARCH, *FLAGS, "--epochs", "6", "--storage", str(tmp_path), "--name", "killed"),
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    deadline = time.time() + 200
    while time.time() < deadline and "epoch 3/6" not in (line := killed.stdout.readline()):
        assert line or killed.poll() is None
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    folder = tmp_path / "killed"
    assert not (folder / "result.json").exists() and (folder / "checkpoint.pt").exists()
    again = subprocess.run(nas_train("--resume", str(folder), "--json"), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming after epoch 3 of 6" in again.stderr or "resuming after epoch 4 of 6" in again.stderr
    resumed = torch.load(folder / "weights.pt", weights_only=True)
    reference = torch.load(tmp_path / "whole" / "weights.pt", weights_only=True)
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)  # the same run, interrupted or not
    result = json.loads(again.stdout)
    assert result == {**json.loads((tmp_path / "whole" / "result.json").read_text()),
                      "seconds": result["seconds"]}
    assert result["test_accuracy"] > 0.5 and result["test_images"] == 500  # the synthetic test split, not val


def test_train_refuses_a_used_folder_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", ARCH, *FLAGS, "--epochs", "1", "--storage", str(tmp_path), "--name", "once"]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(args) == 2 and "already holds a training run" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path / "once"), "--epochs", "3"]) == 2
    assert "takes no architecture and no settings" in capsys.readouterr().err
    assert cli.main(["train", ARCH, "--epochs", "0", "--storage", str(tmp_path)]) == 2
    assert "--epochs = 0" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path / "nothing-here")]) == 2
    assert "holds no training run" in capsys.readouterr().err
