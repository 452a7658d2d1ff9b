"""The ``nas`` subcommands, one module each; :mod:`nas.app.cli` dispatches to them."""

from __future__ import annotations

import json
from typing import Any


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=None, sort_keys=True, default=str))
