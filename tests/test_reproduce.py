"""`nas reproduce`: the verdict comes from the data; the phases resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas import space as spaces
from nas.core.result import TrialResult
from nas.runs.store import Store
from nas.settings import ReproduceSettings, RunPlace
from nas.studies import reproduce

ROOT = Path(__file__).resolve().parents[1]


def fake_search(found: list[str]):
    def search(settings, out):  # noqa: ANN001, ANN202
        store = Store.create(settings.run_dir(), {"name": "search"})
        for i, arch in enumerate(found):
            store.start_trial(f"t{i}", arch)
            store.finish_trial(f"t{i}", TrialResult(arch=arch, accuracy=0.5, macs=1, params=1, reward=0.9 - i / 10))
        store.close()
        return {"run_dir": str(settings.run_dir()), "counts": {"ok": len(found)}, "best": {"arch": found[0]}}
    return search


def fake_train(accuracy: dict[str, float]):
    def train(arch, settings, folder, out):  # noqa: ANN001, ANN202
        base = next((v for k, v in accuracy.items() if str(arch).startswith(k)), 0.5)
        return {"test_accuracy": base + 0.001 * settings.seed}
    return train


def planted(tmp_path: Path, found: str, accuracy: float) -> dict:
    space = spaces.load("mnasnet")
    b0 = spaces.load_architecture("efficientnet_b0")
    cheap = space.decode([0] * len(space.decisions))  # cheaper than B0 (the smallest options)
    settings = ReproduceSettings(place=RunPlace(name=found, storage=str(tmp_path)), retrain_seeds=3, top_k=1, phis=())
    return reproduce.run(settings, search=fake_search([str(cheap)]), out=open(os.devnull, "w"),
                         train=fake_train({str(cheap): accuracy, str(b0): 0.80}))


def test_a_planted_winner_beats_b0_and_a_planted_loser_does_not(tmp_path: Path) -> None:
    winner = planted(tmp_path, "winner", 0.85)
    assert winner["first_line"].startswith("Yes: the search found architectures that beat the references")
    assert "found-1 beats efficientnet_b0" in winner["first_line"]
    loser = planted(tmp_path, "loser", 0.70)
    assert loser["first_line"].startswith("No:") and "found-1 loses to efficientnet_b0" in loser["first_line"]
    for name in ("winner", "loser"):
        folder = tmp_path / name
        assert (folder / "reproduction.md").read_text().splitlines()[0] == json.loads(
            (folder / "reproduction.json").read_text())["first_line"]
        assert (folder / "reproduction.png").read_bytes()[:4] == b"\x89PNG"
        assert "<h1>" in (folder / "reproduction.html").read_text()


def test_compare_counts_only_found_architectures_at_or_below_the_references_cost() -> None:
    rows = [{"name": "efficientnet_b0", "macs": 100, "mean": 0.8, "std": 0.01, "accuracies": [0.79, 0.81]},
            {"name": "found-1", "macs": 200, "mean": 0.9, "std": 0.01, "accuracies": [0.89, 0.91]},
            {"name": "found-2", "macs": 104, "mean": 0.8, "std": 0.01, "accuracies": [0.79, 0.81]}]
    result = reproduce.compare(rows, "efficientnet_b0")
    assert result["found"] == "found-2" and result["verdict"] == "matches"  # found-1 costs twice as much
    assert reproduce.compare(rows[:2], "efficientnet_b0")["found"] is None


def trials(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "trials.db") as db:
        return db.execute("SELECT trial_id, status, accuracy, finished_at FROM trials ORDER BY seq").fetchall()


@pytest.mark.slow
def test_the_phases_resume_after_sigkill(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "nas.app.cli", "reproduce", "--trials", "2", "--top-k", "1", "--seeds", "1",
               "--scale-phis", "1", "--data", "synthetic", "--max-train-samples", "256", "--max-val-samples", "64",
               "--retrain-epochs", "1", "--storage", str(tmp_path), "--name", "story", "--json"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline and "2/5 retrain" not in (line := first.stdout.readline()):
        assert line or first.poll() is None
    while time.time() < deadline and not list((tmp_path / "story" / "retrain").rglob("checkpoint.pt")):
        time.sleep(0.1)  # until phase 2 has trained something: a kill inside it, not before it
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    run = tmp_path / "story"
    searched = trials(run / "search")
    assert len(searched) == 2 and not (run / "reproduction.json").exists()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert trials(run / "search") == searched  # the search is not run again
    report = json.loads(done.stdout)
    names = {row["name"] for row in report["architectures"]}
    assert {"found-1", "efficientnet_b0", "mnasnet_a1"} <= names
    assert report["first_line"] == (run / "reproduction.md").read_text().splitlines()[0]
    assert {row["phi"] for row in report["scaling"]} == {0, 1}
    for folder in (run / "retrain").iterdir():
        assert (folder / "result.json").exists() and (folder / "weights.pt").exists()


def test_the_search_phase_uses_the_evaluator_asked_for(tmp_path: Path) -> None:
    seen = []

    def search(settings, out):  # noqa: ANN001, ANN202
        seen.append((settings.evaluator, settings.supernet.epochs))
        return fake_search([str(spaces.load_architecture("efficientnet_b0"))])(settings, out)

    settings = ReproduceSettings(place=RunPlace(name="shared", storage=str(tmp_path)), retrain_seeds=1, top_k=1,
                                 phis=(), evaluator="supernet", supernet={"epochs": 3})
    report = reproduce.run(settings, search=search, train=fake_train({}), out=open(os.devnull, "w"))
    assert seen == [("supernet", 3)]
    assert report["evaluator"] == "supernet"
    # the search found B0 itself: it is trained once and compared with itself, not dropped (or crashed on)
    assert [(c["found"], c["verdict"]) for c in report["comparisons"]][0] == ("found-1", "matches")
    assert "supernet evaluator" in (tmp_path / "shared" / "reproduction.md").read_text()
