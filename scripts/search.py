#!/usr/bin/env python3
"""Run an architecture search: `python scripts/search.py --space search_spaces/mnasnet.yaml`.

On a Ray cluster: `ray submit cluster.yaml scripts/search.py -- --trials 8000`.
The flags are those of `nas search` (`--help` lists them).
"""

import sys
from pathlib import Path

try:
    import nas  # noqa: F401 - installed (pip install -e .), as on every cluster node
except ModuleNotFoundError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.app.cli import main


def search(argv: list[str] | None = None) -> int:
    """``nas search`` with these arguments (default: this script's)."""
    return main(["search", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(search())
