"""A wheel install (not editable) carries what nas needs at run time: the shipped spaces, the dashboard's files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_install_finds_the_shipped_spaces_from_any_folder(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "wheel"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("nas-*.whl")
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import json, nas.space, nas.app.dashboard.architectures as a; "
            "s = nas.space.load('mnasnet'); "
            "print(json.dumps({'file': nas.space.__file__, 'source': s.source, 'decisions': len(s.decisions), "
            "'labels': sorted(a.reference_labels().values())}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(target), "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["file"].startswith(str(target))  # the wheel's copy, not this checkout
    assert seen["source"] == str(target / "nas" / "search_spaces" / "mnasnet.yaml") and seen["decisions"] == 43
    assert seen["labels"] == ["B0", "MnasNet-A1"]  # the dashboard labels its reference points from the wheel too

    # Every module of the checkout is in the wheel and imports from it (a package listed by hand can be forgotten).
    modules = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for top in ("nas", "controllers") for path in (ROOT / top).rglob("*.py")
                     if path.name != "__main__.py")
    code = ("import importlib, json, sys; out = {}\n"
            "for name in sys.argv[1:]:\n"
            "    module = importlib.import_module(name); out[name] = module.__file__\n"
            "print(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code, *modules], cwd=elsewhere, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(target), "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)
    assert len(modules) > 60 and "nas.training.supernet_training" in modules
    assert all(file.startswith(str(target)) for file in files.values()), files
