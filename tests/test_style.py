"""The code keeps the project's lint rules (`[tool.ruff]` in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="pip install ruff (the test extra has it)")
def test_ruff_passes_with_the_projects_config() -> None:
    done = subprocess.run([RUFF, "check", "--no-cache", "nas", "controllers", "tests", "scripts"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
