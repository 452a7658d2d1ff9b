"""The layering in pyproject.toml ([tool.importlinter]) holds, and would catch a lower layer importing a higher one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="pip install import-linter (the test extra has it)")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)},
                          timeout=120)


def test_every_import_contract_is_kept() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("nas/core/arch.py", "import nas.runs.search", "Layers"),               # the genotype importing the driver
    ("nas/settings/run.py", "import nas.space", "Layers"),                  # settings reaching up to the space
    ("controllers/base.py", "import nas.runs.tune", "Layers"),              # a controller importing the Ray backend
    ("controllers/evolution.py", "import nas.training.trainer", "Controllers see"),  # a controller training
    ("nas/core/cost.py", "import torch", "Decoding never builds"),          # pricing that needs torch
    ("nas/app/dashboard/queries.py", "import nas.runs.search", "only read"),  # the dashboard reaching the driver
    ("nas/runs/store.py", "import nas.runs.folder", "cycles"),              # two modules of one package in a loop
    ("nas/latency/table.py", "import onnxruntime", "needs no torch"),       # a prediction that loads a runtime
    ("nas/network/blocks.py", "import nas.latency.timing", "Layers"),       # the network reaching up to its timing
])
def test_a_violation_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for part in ("nas", "controllers", "pyproject.toml"):
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / part)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # deliberate violation\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    broken = done.stdout.split("Broken contracts", 1)[1]
    assert contract in broken and module.removesuffix(".py").replace("/", ".") in broken
