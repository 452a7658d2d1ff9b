"""The runs a dashboard shows, addressed by their index on the command line (never by a path a
request names). Each poll opens the store read-only, reads its counts, and re-reads the rows only
when the counts changed; the views derived from a snapshot are computed once and shared."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.app.dashboard import queries
from nas.app.dashboard.architectures import reference_labels
from nas.core.result import STATUSES
from nas.runs.store import Store, StoreError


@dataclass
class _Cached:
    snapshot: queries.Snapshot
    views: dict[str, Any] = field(default_factory=dict)


class Run:
    """One run folder; it may not exist yet (the search has not started): that is a state, not an error."""

    def __init__(self, index: int, run_dir: str | Path) -> None:
        self.index = index
        self.path = Path(run_dir)
        self._lock = threading.Lock()
        self._cached: _Cached | None = None

    @property
    def label(self) -> str:
        return self.path.name or str(self.path)

    def open(self) -> Store:
        """A fresh read-only connection (cheap), so threads never share one."""
        return Store.open_readonly(self.path)

    def _current(self) -> _Cached:
        """The snapshot for the store's present contents; raises ``StoreError`` if there is no store."""
        store = self.open()
        try:
            fingerprint, meta = store.fingerprint(), store.meta()
            with self._lock:
                cached = self._cached
                if cached is None or cached.snapshot.version != fingerprint or cached.snapshot.meta != meta:
                    rows = tuple(store.trials())
                    # counts again from the same rows: a write between the two reads cannot tear the snapshot
                    fresh = dict.fromkeys(STATUSES, 0)
                    for row in rows:
                        fresh[row.status] += 1
                    cached = _Cached(queries.Snapshot(meta=meta, rows=rows, counts=fresh, version=fingerprint,
                                                      curves=store.curves()))
                    self._cached = cached
                return cached
        finally:
            store.close()

    def _view(self, name: str, compute: Any) -> Any:
        cached = self._current()
        with self._lock:
            if name not in cached.views:
                cached.views[name] = compute(cached.snapshot)
            return cached.views[name]

    def snapshot(self) -> queries.Snapshot:
        return self._current().snapshot

    def state(self) -> dict[str, Any]:
        """Header data, or the reason there is none (missing folder, not a run)."""
        base = {"index": self.index, "label": self.label}  # no paths: a page shows run names, not the disk
        try:
            cached = self._current()
        except StoreError as error:
            waiting = not (self.path / "trials.db").exists()
            reason = str(error)
            for path in sorted({str(self.path.resolve()), str(self.path)}, key=len, reverse=True):
                reason = reason.replace(path, self.label)
            message = f"{reason}. The page will show the run as soon as the search creates it." if waiting else \
                f"{reason}. The other runs are still shown."
            return {**base, "available": False, "version": None, "damaged": not waiting, "message": message}
        return {**base, "available": True, "version": cached.snapshot.version,
                "summary": queries.summary(cached.snapshot)}

    def problem(self) -> str | None:
        """What keeps the run from being shown, as the store says it (paths included: for the terminal that
        started the dashboard, not for the page), or None."""
        try:
            self._current()
        except StoreError as error:
            return str(error)
        return None

    def front(self) -> dict[str, Any]:
        return self._view("front", lambda snap: queries.front(snap, reference_labels()))

    def progress(self) -> dict[str, Any]:
        return self._view("progress", queries.progress)

    def curves(self) -> dict[str, Any]:
        return self._view("curves", queries.curves)


class RunSet:
    """The ordered runs given to ``nas dashboard``."""

    def __init__(self, run_dirs: list[str | Path]) -> None:
        if not run_dirs:
            raise ValueError("at least one run folder is needed")
        self.runs = [Run(i, d) for i, d in enumerate(run_dirs)]

    def get(self, index: int) -> Run | None:
        return self.runs[index] if 0 <= index < len(self.runs) else None

    def state(self) -> dict[str, Any]:
        return {"runs": [run.state() for run in self.runs]}

    def warm(self) -> None:
        """Compute every view once so the first page load does not pay for it."""
        reference_labels()
        for run in self.runs:
            try:
                run.front()
                run.progress()
            except StoreError:
                continue
