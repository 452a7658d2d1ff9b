"""nas from Python: the same driver, store and resume as the command line, results as pandas."""

from __future__ import annotations

from pathlib import Path

import pytest

import nas
from nas.core.errors import UserError
from tests.test_search import TINY_SPACE


@pytest.mark.slow
def test_search_load_and_resume_from_python(tmp_path: Path) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    options = {"data": "synthetic", "max_train_samples": 512, "max_val_samples": 64, "epochs": 1,
               "concurrency": 2, "address": "local", "storage": str(tmp_path / "runs"), "name": "api"}
    summary = nas.search(str(space), trials=3, **options)
    assert summary["counts"]["ok"] == 3 and Path(summary["run_dir"]) == tmp_path / "runs" / "api"
    more = nas.search(resume=summary["run_dir"], trials=5)  # the same resume as --resume
    assert more["counts"]["ok"] == 5
    run = nas.load_run(summary["run_dir"])
    assert len(run.trials) == 5 and set(run.trials["status"]) == {"ok"}
    assert {"arch", "accuracy", "macs", "reward", "device"} <= set(run.trials.columns)
    assert run.best["reward"] == run.trials["reward"].max()
    front = run.front()
    assert 1 <= len(front) <= 5 and run.settings["trials"] == 5
    best_accuracy = front["accuracy"].max()
    assert best_accuracy == run.trials["accuracy"].max()  # the most accurate trial is always on the front


def test_evaluate_from_python_returns_the_trial_result() -> None:
    result = nas.evaluate("stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r1_k3_s2_e3_c16,head_c32,act_relu", data="synthetic",
                          resolution=8, epochs=1, max_train_samples=128, max_val_samples=32, batch_size=32,
                          device="cpu")
    assert result.ok and 0 <= result.accuracy <= 1 and result.device == "cpu"


def test_train_from_python_writes_its_folder_and_resumes(tmp_path: Path) -> None:
    arch = "stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r1_k3_s2_e3_c16,head_c32,act_relu"
    result = nas.train(arch, data="synthetic", resolution=8, epochs=1, max_train_samples=128, max_val_samples=32,
                       batch_size=32, device="cpu", storage=str(tmp_path), name="api-train")
    folder = tmp_path / "api-train"
    assert result["arch"] == arch and result["epochs"] == 1 and 0 <= result["test_accuracy"] <= 1
    assert (folder / "weights.pt").is_file()
    again = nas.train(resume=folder)  # already at its last epoch: the same result, nothing trained again
    assert again["test_accuracy"] == result["test_accuracy"]
    with pytest.raises(UserError, match="takes no architecture"):
        nas.train(arch, resume=folder)


def test_a_bad_option_is_one_line() -> None:
    with pytest.raises(UserError, match="--epochs"):
        nas.search(epochs="many")
    with pytest.raises(UserError, match="unrecognized arguments: --no-such-flag"):
        nas.search(no_such_flag=1)
