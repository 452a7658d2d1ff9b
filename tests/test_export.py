"""`nas export`: a run's best / Pareto-optimal architectures as files that load back to the same arch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nas.core import reward
from nas.core.arch import Architecture
from nas.space import load_architecture
from scripts.synthetic_runs import arch_string, make_run

ROOT = Path(__file__).resolve().parents[1]
POINTS = [(0.70, 100e6), (0.75, 200e6), (0.72, 300e6), (0.80, 400e6), (0.60, 150e6), (0.78, 900e6)]


def nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run", POINTS, failed=1, running=1)


def exported(done: subprocess.CompletedProcess) -> list[Path]:
    assert done.returncode == 0, done.stderr
    return [Path(line) for line in done.stdout.split()]


def test_best_reward_as_yaml_loads_back(run_dir: Path) -> None:
    rewards = [reward.soft(a, m) for a, m in POINTS]
    best = max(range(len(POINTS)), key=rewards.__getitem__)
    (path,) = exported(nas("export", str(run_dir), "--best", "reward", "--format", "yaml"))
    assert path.parent == run_dir / "export"
    assert load_architecture(str(path)) == Architecture.parse(arch_string(best))


def test_pareto_as_timm_writes_every_front_member(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "timm"
    paths = exported(nas("export", str(run_dir), "--best", "pareto", "--format", "timm", "--out", str(out)))
    expected = {arch_string(i) for i in reward.pareto_front(POINTS)}
    assert all(p.name.endswith(".timm.py") for p in paths)
    written = {line.split(" = ", 1)[1].strip("'") for p in paths for line in p.read_text().splitlines()
               if line.startswith("ARCH = ")}
    assert written == expected


@pytest.mark.slow
def test_torch_format_builds_the_module(run_dir: Path, tmp_path: Path) -> None:
    (path,) = exported(nas("export", str(run_dir), "--format", "torch", "--out", str(tmp_path)))
    done = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from nas.core import cost
    arch = Architecture.parse(arch_string(max(range(len(POINTS)), key=lambda i: reward.soft(*POINTS[i]))))
    assert f"{cost.count(arch).params} parameters" in done.stdout


@pytest.mark.slow
def test_export_errors_are_one_line(tmp_path: Path) -> None:
    missing = nas("export", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    empty = make_run(tmp_path / "empty", [], failed=2)
    nothing = nas("export", str(empty))
    assert nothing.returncode == 2 and "no successful trial" in nothing.stderr


def test_the_torch_file_is_the_builders_own_network_code() -> None:
    """One network definition: the exported file carries nas.network.blocks as it is, not a copy of it."""
    from importlib import resources

    from nas import space as spaces
    from nas.app import export

    blocks = resources.files("nas.network").joinpath("blocks.py").read_text(encoding="utf-8")
    code = blocks[blocks.index('"""', 3) + 3:]
    source = export.torch_source(spaces.load_architecture("efficientnet_b0"))
    assert code.strip() in source and "import nas" not in source and "from nas" not in source


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_runs_trials_table_exports_for_pandas(tmp_path: Path, fmt: str) -> None:
    import pandas as pd

    from nas.app import cli
    from scripts.synthetic_runs import make_run

    run = make_run(tmp_path / "run", [(0.70, 100e6), (0.75, 200e6), (0.80, 400e6)])
    assert cli.main(["export", str(run), "--format", fmt, "--out", str(tmp_path / f"t.{fmt}")]) == 0
    table = pd.read_csv(tmp_path / "t.csv") if fmt == "csv" else pd.read_parquet(tmp_path / "t.parquet")
    assert len(table) == 3 and sorted(table["accuracy"]) == [0.70, 0.75, 0.80]
    assert {"trial_id", "arch", "status", "macs", "reward"} <= set(table.columns)
