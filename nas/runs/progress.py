"""The search's status line: done/running/failed, best reward (and its architecture when it changes),
Pareto-front size, elapsed time and ETA, at most every few seconds."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from nas.core import reward as rewards
from nas.core.result import TrialResult


class Progress:
    """One status line at most every ``interval`` seconds: done/running/failed, best, front size, ETA."""

    def __init__(self, total: int, finished: list[TrialResult], *, interval: float, out: TextIO | None = None) -> None:
        self.total, self.interval, self.out = total, interval, out or sys.stdout
        self.results = list(finished)
        self.resumed_with = len(finished)
        self.running = 0
        self.started = time.time()
        self._last = 0.0
        self._best_shown: str | None = None

    def record(self, _proposal_id: str, result: TrialResult) -> None:
        self.results.append(result)
        self.maybe_print()

    def maybe_print(self, *, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last >= self.interval:
            self._last = now
            print(self.line(), file=self.out, flush=True)

    def line(self) -> str:
        done = len(self.results)
        failed = sum(r.status == "failed" for r in self.results)
        stopped = sum(r.status == "stopped" for r in self.results)
        ok = [r for r in self.results if r.ok and r.reward is not None]
        elapsed = time.time() - self.started
        new = done - self.resumed_with
        eta = (elapsed / new * (self.total - done)) if new else float("nan")
        best = max(ok, key=lambda r: r.reward, default=None)
        front = len(rewards.pareto_front([(r.accuracy, r.macs) for r in ok if r.accuracy is not None and r.macs]))
        best_text = "best -"
        if best is not None:
            latency = f", {best.latency_ms:.2f} ms" if best.latency_ms is not None else ""
            best_text = f"best reward {best.reward:.4f} (acc {best.accuracy:.4f}, {best.macs / 1e6:.0f} M MACs{latency})"
            if best.arch != self._best_shown:  # the long string only when the best changes
                self._best_shown = best.arch
                best_text += f" {best.arch}"
        early = f"{stopped} stopped early, " if stopped else ""
        return (f"[nas] {done}/{self.total} done, {self.running} running, {early}{failed} failed | {best_text} | "
                f"front {front} | {clock(elapsed)} elapsed, ETA {clock(eta)}")


def clock(seconds: float) -> str:
    """h:mm:ss ('-' when unknown)."""
    if math.isnan(seconds):
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
