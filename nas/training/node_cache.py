"""A node-local disk cache for decoded datasets: decode once per machine, not once per process.

A search runs several Ray worker processes per node (one per concurrent trial), and each needs the
same proxy images. Decoding them (gzip + resize for Fashion-MNIST, JPEG decoding for an ImageFolder
tree) is done once per node by whichever process gets there first, under a file lock, and written
here as an uncompressed ``.npz``; every other process on the node reads it back from the page cache.
The key includes each source file's path, size and modification time, so changed data is decoded
again. The cache is an optimisation only: if it cannot be written (read-only home, full disk) the
data is decoded in-process as before.

Where: ``$NAS_CACHE_DIR`` (``off`` disables it), else ``$XDG_CACHE_HOME/nas``, else ``~/.cache/nas``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.atomic import write_atomic

Arrays = dict[str, np.ndarray]

_DISABLED = {"", "0", "off", "none", "false"}


def cache_dir() -> Path | None:
    """The cache's folder, or None when ``NAS_CACHE_DIR`` turns it off."""
    value = os.environ.get("NAS_CACHE_DIR")
    if value is not None:
        return None if value.strip().lower() in _DISABLED else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nas"


def fingerprint(sources: Iterable[Path]) -> list[Any]:
    """Path, size and mtime of every file in ``sources`` (folders are walked), in a stable order."""
    stamp: list[Any] = []
    for source in sources:
        source = Path(source).expanduser().resolve()
        files = [source] if not source.is_dir() else sorted(
            Path(folder) / name for folder, _, names in os.walk(source) for name in names)
        for file in files:
            try:
                info = file.stat()
                stamp.append([str(file), info.st_size, info.st_mtime_ns])
            except OSError:
                stamp.append([str(file), None, None])  # missing: the build will say so
    return stamp


def load_or_build(key: dict[str, Any], sources: Iterable[Path], build: Callable[[], Arrays]) -> Arrays:
    """The arrays cached under ``key`` + the sources' fingerprint, building (and storing) them if absent.

    Concurrent callers on one node wait for the first one's build instead of repeating it."""
    folder = cache_dir()
    if folder is None:
        return build()
    text = json.dumps({"key": key, "sources": fingerprint(sources)}, sort_keys=True)
    path = folder / "datasets" / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.npz"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held across the build below
    except OSError:
        return build()
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        cached = _read(path)
        if cached is not None:
            return cached
        arrays = build()
        _write(path, arrays)
        return arrays


def _read(path: Path) -> Arrays | None:
    """The stored arrays, or None when absent or unreadable (a damaged file is rebuilt, not trusted)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def _write(path: Path, arrays: Arrays) -> None:
    """Atomically: a reader never sees half a file. Failure (a full disk) only costs the cache."""
    try:
        write_atomic(path, lambda handle: np.savez(handle, **arrays))
    except OSError:
        pass
