"""`nas proxy-check` end to end on real Ray with a tiny space and synthetic data: report, files, resume."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from nas import space as spaces  # noqa: E402
from nas.app import cli  # noqa: E402
from nas.settings import ProxyCheckSettings, for_space  # noqa: E402
from nas.studies import proxy_check  # noqa: E402
from tests.test_search import TINY_SPACE, local_ray  # noqa: E402, F401 - the module's Ray


def trials(run_dir: Path) -> dict[str, tuple]:
    with sqlite3.connect(run_dir / "trials.db") as db:
        return {row[0]: row[1:] for row in db.execute("SELECT trial_id, status, accuracy, finished_at FROM trials")}


@pytest.mark.slow
def test_proxy_check_reports_noise_and_rank_agreement_and_resumes(local_ray, tmp_path: Path,  # noqa: F811
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    space_path = tmp_path / "tiny.yaml"
    space_path.write_text(TINY_SPACE)
    args = ["proxy-check", str(space_path), "--archs", "3", "--seeds", "2", "--data", "synthetic",
            "--max-train-samples", "256", "--max-val-samples", "64", "--storage", str(tmp_path), "--name", "check",
            "--against", "--epochs 2", "--json"]
    assert cli.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    run_dir = tmp_path / "check"
    first = trials(run_dir)
    assert len(first) == 3 * 2 * 2 and all(status == "ok" for status, _, _ in first.values())
    stats = report["statistics"]
    assert stats["architectures"] == 3 and stats["seeds"] == 2 and stats["kendall_tau"] is not None
    assert report["against"]["epochs"] == 2 and report["proxy"]["epochs"] == 1
    for row in report["architectures"]:
        assert len(row["proxy"]["accuracies"]) == 2 and len(row["against"]["accuracies"]) == 2
    for suffix in ("json", "md", "png"):
        assert (run_dir / f"proxy-check.{suffix}").stat().st_size > 0
    # the same check again trains nothing; a check of another proxy reuses the against trials (the
    # against proxy is the proxy with its changes: pinned here so that it stays the same)
    assert cli.main(args) == 0
    assert trials(run_dir) == first
    variant = [*args[:-3], "--against", "--epochs 2 --bn-recalibration-batches 8", "--bn-recalibration-batches", "2"]
    capsys.readouterr()
    assert cli.main(variant) == 0
    counts = re.findall(r"\[nas\] (\d+)/(\d+) done", capsys.readouterr().out)
    assert counts and all(int(done) <= int(total) == 12 for done, total in counts)  # this list's, not the folder's
    third = trials(run_dir)
    assert len(third) == len(first) + 3 * 2 and all(third[k] == v for k, v in first.items())
    # one seed on the reference proxy: a subset of what is there, so nothing new is trained
    capsys.readouterr()
    assert cli.main([*args, "--against-seeds", "1"]) == 0
    fewer = json.loads(capsys.readouterr().out)
    assert trials(run_dir) == third and fewer["against_seeds"] == 1
    assert all(len(row["proxy"]["accuracies"]) == 2 and len(row["against"]["accuracies"]) == 1
               for row in fewer["architectures"])


def test_the_reference_points_of_a_space_are_always_checked() -> None:
    space = spaces.load("mnasnet")
    archs = proxy_check.architectures(space, 4, seed=0)
    assert list(archs)[:2] == ["efficientnet_b0", "mnasnet_a1"] and len(archs) == 6
    assert proxy_check.architectures(space, 4, seed=0) == archs  # seeded


def test_candidates_carry_their_whole_proxy(tmp_path: Path) -> None:
    settings = for_space(ProxyCheckSettings, spaces.loads(TINY_SPACE), {"proxy": {"batch_size": 32}})
    [candidate, *_] = proxy_check.candidates_for(settings.proxy, {"a": spaces.loads(TINY_SPACE).sample(
        __import__("numpy").random.default_rng(0))}, seeds=2)
    assert candidate.proxy_changes["lr"] == settings.proxy.learning_rate and candidate.seed == 0
    assert candidate.label.startswith(proxy_check.proxy_tag(settings.proxy))


def test_bad_against_flags_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["proxy-check", "--archs", "1", "--storage", str(tmp_path), "--against", "--epochs 0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "nas proxy-check: error: --against --epochs = 0: Input should be greater than or " \
                                "equal to 1"
    code = cli.main(["proxy-check", "--archs", "1", "--storage", str(tmp_path), "--against", "--colour red"])
    assert code == 2 and "--colour red is not a proxy flag" in capsys.readouterr().err


@pytest.mark.parametrize("against", [None, {"epochs": 2}])
def test_one_seed_reports_without_a_noise_estimate(tmp_path: Path, against: dict | None) -> None:
    """With one seed there is no noise floor: the report, its table and its plot say so instead of failing."""
    from nas.core.result import TrialResult

    def evaluate(todo, **_):  # noqa: ANN001, ANN003, ANN202
        return [TrialResult(arch=str(c.arch), accuracy=0.1 + 0.01 * i, macs=1000 + i, params=1, reward=0.1)
                for i, c in enumerate(todo)]

    space_path = tmp_path / "tiny.yaml"
    space_path.write_text(TINY_SPACE)
    settings = for_space(ProxyCheckSettings, spaces.load(str(space_path)), {
        "space": str(space_path), "archs": 4, "seeds": 1, "against": against,
        "place": {"storage": str(tmp_path), "name": "one-seed"}})
    report = proxy_check.run(settings, evaluate=evaluate, out=open(__import__("os").devnull, "w"))
    assert report["statistics"]["signal_to_noise"] is None and report["statistics"]["noise"] is None
    assert (tmp_path / "one-seed" / "proxy-check.png").read_bytes()[:4] == b"\x89PNG"
    assert "| - |" in (tmp_path / "one-seed" / "proxy-check.md").read_text()
