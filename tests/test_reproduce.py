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
    assert "found-1 beats efficientnet_b0" in winner["first_line"] and "3 paired seeds" in winner["first_line"]
    assert winner["first_line"].endswith("test images; a small-image proxy, not ImageNet.")
    loser = planted(tmp_path, "loser", 0.70)
    assert loser["first_line"].startswith("No:") and "found-1 loses to efficientnet_b0" in loser["first_line"]
    for name in ("winner", "loser"):
        folder = tmp_path / name
        assert (folder / "reproduction.md").read_text().splitlines()[0] == json.loads(
            (folder / "reproduction.json").read_text())["first_line"]
        assert (folder / "reproduction.png").read_bytes()[:4] == b"\x89PNG"
        assert "<h1>" in (folder / "reproduction.html").read_text()


def test_the_matched_contender_is_the_best_by_reward_among_those_at_or_below_the_references_cost() -> None:
    macs = {"efficientnet_b0": 100, "found-1": 200, "found-2": 104, "found-3": 90}
    names = ["found-1", "found-2", "found-3", "efficientnet_b0"]
    assert reproduce.matched(names, macs, "efficientnet_b0") == "found-2"  # found-1 costs twice as much
    assert reproduce.matched(names[:1] + names[3:], macs, "efficientnet_b0") is None


# ---------------------------------------------------------------- the paired comparison's statistics

FOUND = [0.812, 0.795, 0.841, 0.803, 0.826, 0.779]
REFERENCE = [0.781, 0.802, 0.799, 0.770, 0.815, 0.760]


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_the_paired_interval_is_scipys_paired_t_interval(confidence: float) -> None:
    from scipy import stats

    mean, low, high = reproduce.paired_interval([f - r for f, r in zip(FOUND, REFERENCE, strict=True)], confidence)
    expected = stats.ttest_rel(FOUND, REFERENCE).confidence_interval(confidence)
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert mean == pytest.approx(sum(FOUND) / 6 - sum(REFERENCE) / 6, abs=1e-12)
    assert reproduce.paired_interval([0.03], confidence)[1:] == (None, None)  # no interval from one seed


def test_verdict_words() -> None:
    margin = 0.01
    assert reproduce.verdict(0.002, 0.03, margin) == "beats"           # excludes zero, above
    assert reproduce.verdict(-0.04, -0.001, margin) == "loses to"      # excludes zero, below
    assert reproduce.verdict(-0.006, 0.008, margin) == "matches"       # within ±1 point
    assert reproduce.verdict(-0.006, 0.02, margin) == "undecided"      # straddles zero, wider than the margin
    assert reproduce.verdict(None, None, margin) == "undecided"


def test_the_seeds_needed_are_the_first_count_whose_interval_would_decide() -> None:
    from scipy import stats

    differences = [0.04, -0.01, 0.03, -0.02]  # mean +1.0 point, wide: undecided
    mean = sum(differences) / 4
    spread = stats.tstd(differences)
    needed = reproduce.seeds_needed(differences, 0.01)
    assert needed is not None and needed > 4

    def half(n: int) -> float:  # scipy's interval around the observed mean with n seeds of the observed spread
        low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=spread / n ** 0.5)
        return (high - low) / 2

    assert half(needed) < abs(mean) <= half(needed - 1)


def first_line_of(found: list[float], reference: list[float], margin: float = 0.01) -> str:
    runs = lambda values: [{"test_accuracy": v} for v in values]  # noqa: E731
    comparison = reproduce.paired_comparison("efficientnet_b0", "found-1", runs(found), runs(reference),
                                             {"found-1": 80, "efficientnet_b0": 100}, margin)
    return reproduce.answer([comparison], recipe="fashion_mnist 16 px, 6 epochs")


def test_the_first_line_says_beats_loses_matches_or_undecided_with_the_interval_and_the_seeds() -> None:
    beats = first_line_of(FOUND, REFERENCE)
    assert beats.startswith("Yes: ") and "found-1 beats efficientnet_b0 at 0.80x its MACs" in beats
    assert "6 paired seeds" in beats and "95% interval +0.29 to +4.01" in beats  # scipy: (0.002895, 0.040105)
    assert "fashion_mnist 16 px, 6 epochs; a small-image proxy, not ImageNet." in beats
    loses = first_line_of(REFERENCE, FOUND)
    assert loses.startswith("No: ") and "found-1 loses to efficientnet_b0" in loses
    matches = first_line_of([0.800, 0.810, 0.805, 0.803], [0.801, 0.808, 0.806, 0.801])
    assert matches.startswith("Partly: ") and "found-1 matches efficientnet_b0" in matches and "±1 point" in matches
    undecided = first_line_of([0.84, 0.79, 0.83, 0.78], [0.80, 0.80, 0.80, 0.80])
    assert undecided.startswith("Undecided: ") and "undecided" in undecided
    assert f"about {reproduce.seeds_needed([0.04, -0.01, 0.03, -0.02], 0.01)} seeds would decide it" in undecided


# ---------------------------------------------------------------- the sequential rule


def scripted(accuracies: dict[str, list[float]], calls: list[tuple[str, int]]):
    def trainer(name: str, seed: int) -> dict:
        calls.append((name, seed))
        return {"test_accuracy": accuracies[name][seed]}
    return trainer


def test_the_rule_adds_paired_seeds_while_the_interval_straddles_zero_and_stops_when_it_excludes_it() -> None:
    from scipy import stats

    found = [0.80, 0.84, 0.79, 0.83, 0.82, 0.83, 0.82, 0.83, 0.84, 0.82]
    reference = [0.81, 0.80, 0.80, 0.80, 0.80, 0.81, 0.80, 0.80, 0.81, 0.80]
    # scipy's paired interval first excludes zero at this many seeds: the rule must stop exactly there
    expected = next(n for n in range(3, 11) if stats.ttest_rel(found[:n], reference[:n]).confidence_interval().low > 0)
    assert expected > 3
    calls: list[tuple[str, int]] = []
    comparisons, results, stopped = reproduce.compare_sequentially(
        ["found-1", "efficientnet_b0"], ["efficientnet_b0"], {"found-1": 90, "efficientnet_b0": 100},
        scripted({"found-1": found, "efficientnet_b0": reference}, calls), first_seeds=3, max_seeds=10,
        budget_seconds=None, margin=0.01)
    assert calls == [(name, seed) for seed in range(expected) for name in ("found-1", "efficientnet_b0")]
    assert comparisons[0]["verdict"] == "beats" and comparisons[0]["seeds"] == expected
    assert stopped == "every verdict decided"


def test_the_rule_stops_when_the_next_seed_would_pass_the_budget_or_the_most_seeds() -> None:
    noisy = {"found-1": [0.85, 0.75] * 5, "efficientnet_b0": [0.80] * 10}  # straddles zero at every count
    calls: list[tuple[str, int]] = []
    comparisons, _, stopped = reproduce.compare_sequentially(
        ["found-1", "efficientnet_b0"], ["efficientnet_b0"], {"found-1": 90, "efficientnet_b0": 100},
        scripted(noisy, calls), first_seeds=3, max_seeds=10, budget_seconds=850, margin=0.01,
        spent=lambda: 100.0 * len(calls), estimate=lambda name, seed: 100.0)
    assert len(calls) == 8  # 3 seeds (600 s), a 4th (800 s); a 5th would end at 1 000 s > 850 s
    assert comparisons[0]["verdict"] == "undecided" and comparisons[0]["seeds"] == 4 and "time budget" in stopped
    calls.clear()
    _, _, stopped = reproduce.compare_sequentially(
        ["found-1", "efficientnet_b0"], ["efficientnet_b0"], {"found-1": 90, "efficientnet_b0": 100},
        scripted(noisy, calls), first_seeds=3, max_seeds=5, budget_seconds=None, margin=0.01)
    assert len(calls) == 10 and "most seeds" in stopped


def test_a_matching_pair_stops_and_only_undecided_pairs_get_more_seeds() -> None:
    accuracies = {"found-1": [0.80, 0.82, 0.81, 0.83, 0.80, 0.82, 0.81, 0.80],
                  "mnasnet_a1": [0.801, 0.819, 0.811, 0.829, 0.80, 0.82, 0.81, 0.80],  # within ±1 point: matches
                  "efficientnet_b0": [0.70, 0.90, 0.75, 0.88, 0.80, 0.81, 0.80, 0.79]}  # straddles
    calls: list[tuple[str, int]] = []
    comparisons, results, _ = reproduce.compare_sequentially(
        list(accuracies), ["mnasnet_a1", "efficientnet_b0"], {"found-1": 90, "mnasnet_a1": 95, "efficientnet_b0": 100},
        scripted(accuracies, calls), first_seeds=3, max_seeds=5, budget_seconds=None, margin=0.01)
    verdicts = {c["reference"]: c["verdict"] for c in comparisons}
    assert verdicts["mnasnet_a1"] == "matches" and len(results["mnasnet_a1"]) == 3
    assert [seed for name, seed in calls if name == "efficientnet_b0"] == [0, 1, 2, 3, 4]
    assert [seed for name, seed in calls if name == "found-1"] == [0, 1, 2, 3, 4]


def test_both_networks_of_a_pair_train_with_the_same_seed_and_recipe(tmp_path: Path) -> None:
    space = spaces.load("mnasnet")
    cheap = space.decode([0] * len(space.decisions))
    b0, a1 = spaces.load_architecture("efficientnet_b0"), spaces.load_architecture("mnasnet_a1")
    calls: list[tuple[str, int, dict, Path]] = []
    clock = [0.0]

    def train(arch, settings, folder, out):  # noqa: ANN001, ANN202
        calls.append((str(arch), settings.seed, settings.proxy.model_dump(), folder))
        clock[0] += 60  # a minute a training
        wobble = 0.05 if settings.seed % 2 else -0.05  # the found network's seeds straddle B0's
        return {"test_accuracy": 0.8 + (wobble if arch == cheap else 0.0)}

    settings = ReproduceSettings(place=RunPlace(name="paired", storage=str(tmp_path)), retrain_seeds=3, max_seeds=10,
                                 compare_minutes=12, top_k=1, phis=())
    report = reproduce.run(settings, search=fake_search([str(cheap)]), train=train, out=open(os.devnull, "w"),
                           clock=lambda: clock[0])
    by_seed: dict[int, list] = {}
    for arch, seed, recipe, folder in calls:
        by_seed.setdefault(seed, []).append((arch, recipe, folder))
    for trained in by_seed.values():
        assert {arch for arch, _, _ in trained} >= {str(cheap), str(b0)}
        assert all(recipe == trained[0][1] for _, recipe, _ in trained)  # same data, same order: same seed + recipe
        assert len({folder for _, _, folder in trained}) == len(trained)
    # 3 seeds x 3 networks take 9 minutes, a 4th seed ends at 12 (the budget), a 5th would pass it
    assert sorted(by_seed) == [0, 1, 2, 3] and "time budget" in report["stopped"]
    assert str(a1) in {arch for arch, _, _ in by_seed[0]}
    b0_row = next(c for c in report["comparisons"] if c["reference"] == "efficientnet_b0")
    assert b0_row["verdict"] == "undecided" and b0_row["seeds"] == 4


def trials(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "trials.db") as db:
        return db.execute("SELECT trial_id, status, accuracy, finished_at FROM trials ORDER BY seq").fetchall()


@pytest.mark.slow
def test_the_phases_resume_after_sigkill(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "nas.app.cli", "reproduce", "--trials", "2", "--top-k", "1", "--seeds", "1",
               "--max-seeds", "1", "--scale-phis", "1", "--data", "synthetic", "--max-train-samples", "256", "--max-val-samples", "64",
               "--retrain-epochs", "1", "--retrain-train-samples", "256", "--storage", str(tmp_path), "--name", "story", "--json"]
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
