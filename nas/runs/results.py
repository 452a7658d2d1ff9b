"""A run read back for analysis: its trials as a pandas DataFrame, its settings, its best and its front."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunResults:
    """A run read back: its trials as a pandas DataFrame (one row per trial, the store's columns), its
    stored settings, and the best trial by reward."""

    path: Path
    trials: Any
    settings: dict[str, Any]
    best: dict[str, Any] | None

    def front(self) -> Any:
        """The trials on the accuracy / MACs Pareto front (successful ones only)."""
        from nas.core.reward import pareto_front

        ok = self.trials[self.trials["status"] == "ok"]
        keep = pareto_front([(row.accuracy, row.macs) for row in ok.itertuples()])
        return ok.iloc[sorted(keep)]


def load_run(run_dir: str | Path) -> RunResults:
    """Read a run folder (read-only: the store cannot be changed through this) into pandas."""
    import pandas as pd

    from nas.runs.store import COLUMNS, Store

    with Store.open_readonly(run_dir) as store:
        rows = [row.to_dict() for row in store.trials()]
        best = store.best()
        meta = store.meta()
    return RunResults(path=Path(run_dir), trials=pd.DataFrame(rows, columns=list(COLUMNS)),
                      settings=meta.get("settings", {}), best=best.to_dict() if best else None)
