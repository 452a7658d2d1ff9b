"""Atomic file writes: a reader, or a crash halfway, never sees half a file.

The content goes to a temporary file in the same folder, which then replaces the target in one
``os.replace``. Used for everything a run writes outside SQLite: the searcher's checkpoints, the
scaling run's family files and the node's dataset cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: str | Path, content: str | bytes | Callable[[BinaryIO], None], *,
                 durable: bool = False) -> None:
    """Write ``content`` (text, bytes, or a function writing to the open binary file) to ``path``.

    ``durable`` also fsyncs the data before the rename, for state a resume must find after a power loss."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make outputs private to their writer
        with os.fdopen(fd, "wb") as handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode() if isinstance(content, str) else content)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
