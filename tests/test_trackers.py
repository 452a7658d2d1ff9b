"""`nas search --tracker`: every trial a tracker run, read back with the tracker's own reader."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_search import TINY_SPACE

ROOT = Path(__file__).resolve().parents[1]
TINY_SEARCH = ["--trials", "2", "--epochs", "2", "--data", "synthetic", "--max-train-samples", "128",
               "--max-val-samples", "64", "--concurrency", "2", "--progress-seconds", "30"]


def search(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    return subprocess.run([sys.executable, "-m", "nas.app.cli", "search", "--space", str(space), *TINY_SEARCH,
                           "--storage", str(tmp_path / "runs"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.mark.slow
def test_mlflow_holds_one_run_per_trial_with_its_arch_and_a_learning_curve(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from nas.runs import folder

    done = search(tmp_path, "--name", "tracked", "--tracker", "mlflow")
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tracked"
    uri = f"sqlite:///{run_dir.resolve() / 'mlflow.db'}"
    assert f"MLflow: experiment 'tracked' at {uri}" in done.stdout
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    settings, _ = folder.stored(run_dir)
    with folder.Store.open_readonly(run_dir) as store:
        rows = {row.arch: row for row in store.trials()}
    assert settings.tracker == "mlflow"  # stored with the run: a resume keeps logging there
    assert len(runs) == 2 and {r.data.params["arch"] for r in runs} == set(rows)
    for run in runs:
        assert run.info.status == "FINISHED"
        curve = client.get_metric_history(run.info.run_id, "accuracy")
        assert sorted(m.step for m in curve) == [1, 2]  # one point per epoch
        row = rows[run.data.params["arch"]]
        assert run.data.metrics["reward"] == pytest.approx(row.reward)  # the final values, as stored
        assert run.data.metrics["accuracy"] == pytest.approx(row.accuracy)
        assert run.data.metrics["macs"] == row.macs


def _scalar_tags(path: Path) -> dict[str, list[int]]:
    """Scalar tags and their steps in a TensorBoard event file, read with the TFRecord framing and
    tensorboardX's own Event protocol buffer."""
    from tensorboardX.proto.event_pb2 import Event

    tags: dict[str, list[int]] = {}
    data = path.read_bytes()
    at = 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        event = Event.FromString(data[at + 12:at + 12 + length])
        at += 12 + length + 4
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append(event.step)
    return tags


@pytest.mark.slow
def test_tensorboard_writes_tunes_event_files_even_with_tunes_own_loggers_off(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")
    # With Tune's automatic loggers off, only the tracker can have written these files.
    done = search(tmp_path, "--name", "tb", "--tracker", "tensorboard",
                  env={"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tb"
    assert f"TensorBoard: tensorboard --logdir {run_dir}" in done.stdout
    events = sorted(run_dir.glob("tune-0/*/events.out.tfevents.*"))
    assert len(events) == 2, list(run_dir.rglob("*"))
    for path in events:
        tags = _scalar_tags(path)
        assert sorted(tags["ray/tune/accuracy"]) == [1, 2] and "ray/tune/reward" in tags


@pytest.mark.parametrize("tracker, module, extra", [("mlflow", "mlflow", "mlflow"), ("wandb", "wandb", "wandb"),
                                                    ("tensorboard", "tensorboardX", "tensorboard")])
def test_a_missing_tracker_package_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str], tracker: str,
                                                                module: str, extra: str) -> None:
    from nas.app import cli

    monkeypatch.setitem(sys.modules, module, None)  # what Python does for a package that is not installed
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    code = cli.main(["search", "--space", str(space), "--trials", "1", "--data", "synthetic",
                     "--storage", str(tmp_path / "runs"), "--name", "never", "--tracker", tracker])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--tracker {tracker} needs the {module} package" in err and f"pip install 'nas[{extra}]'" in err
    assert not (tmp_path / "runs" / "never").exists()


def test_the_tracker_is_a_setting_the_python_api_takes() -> None:
    from nas.app.api import _parsed

    args = _parsed("search", [], {"tracker": "mlflow", "tracker_uri": "http://127.0.0.1:5000"})
    given = args.settings_flags.given(args)
    assert given["tracker"] == "mlflow" and given["tracker_uri"] == "http://127.0.0.1:5000"
    from nas.core.errors import UserError

    with pytest.raises(UserError, match="invalid choice: 'comet'"):
        _parsed("search", [], {"tracker": "comet"})


def test_wandb_stays_offline_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    from nas.runs.tune import trackers

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    [callback], line = trackers.callbacks("wandb", tmp_path / "run")
    assert callback.kwargs["mode"] == "offline" and os.environ["WANDB_MODE"] == "offline" and "offline" in line
    monkeypatch.setenv("WANDB_MODE", "online")
    [callback], _ = trackers.callbacks("wandb", tmp_path / "run")
    assert callback.kwargs["mode"] == "online"
