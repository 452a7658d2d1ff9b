"""The package imports where only its core needs are installed (a GPU machine without a package registry has
torch, torchvision, numpy, pyyaml, pandas, Ray, pydantic and threadpoolctl): the optional helpers (SciPy for
rank correlations, matplotlib and Plotly for figures, Optuna, ONNX, timm) load only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("scipy", "matplotlib", "plotly", "optuna", "onnx", "onnxscript", "onnxruntime", "timm")

_IMPORT_ALL = """
import importlib, pkgutil, sys

from importlib.machinery import PathFinder

BLOCKED = set(sys.argv[1].split(","))

class WithoutOptional(PathFinder):
    # the path finder, blind to the optional packages: to every import and find_spec, not installed

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return None
        return PathFinder.find_spec(name, path, target)

sys.meta_path[:] = [WithoutOptional if finder is PathFinder else finder for finder in sys.meta_path]
import nas, controllers
failed = []
for package in (nas, controllers):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError as error:
            failed.append(f"{module.name}: {error}")
print("\\n".join(failed) or "all imported")
"""


def test_every_module_imports_without_the_optional_packages() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORT_ALL, ",".join(OPTIONAL)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "all imported", done.stdout
