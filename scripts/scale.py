#!/usr/bin/env python3
"""Grid-search compound-scaling coefficients and write the scaled family:
`python scripts/scale.py search_spaces/efficientnet_b0.yaml --gpus-per-trial 0.25 --concurrency 4`.

For φ = 1 every (α, β, γ) on the grid with α·β²·γ² ≈ 2 is trained on the proxy (one Ray trial
each, one run folder the dashboard shows), the best by proxy accuracy gives B1…B7, and
width/depth/resolution-only networks at the same multiply-adds are trained for comparison.
`--quick` runs the whole pipeline on synthetic data in a minute or two on a CPU.
The flags are those of `nas scale --grid` (`--help` lists them). From Python, call
`run(settings_for({...}), evaluate=...)`: the evaluation step is a parameter (default: the real
`nas.runs.candidates.evaluate_many`), so tests inject a fake one.
"""

import sys
from pathlib import Path

try:
    import nas  # noqa: F401 - installed (pip install -e .), as on every cluster node
except ModuleNotFoundError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.app.cli import main as nas
from nas.studies.scaling_search import QUICK, ScaleRunError, evaluate_many, run, settings_for


def main(argv: list[str] | None = None) -> int:
    """``nas scale --grid`` with these arguments (default: this script's); a table mode named is kept."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--grid" not in argv and not any(flag in argv for flag in ("--preset", "--coefficients", "-h", "--help")):
        argv.append("--grid")
    return nas(["scale", *argv])


__all__ = ["QUICK", "ScaleRunError", "evaluate_many", "main", "run", "settings_for"]

if __name__ == "__main__":
    sys.exit(main())
