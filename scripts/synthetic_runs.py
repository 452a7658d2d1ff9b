"""Real run stores with synthetic trials, for the dashboard benchmark (and the tests): written through
``nas.runs.store.Store`` as the search driver writes them, so readers see exactly what a search leaves behind."""

from __future__ import annotations

import math
import random
from pathlib import Path

from nas.core import reward
from nas.core.result import TrialResult
from nas.runs.store import Store

T, W = 400e6, -0.07
META = {"name": "test-search", "controller": "random", "space": "search_spaces/mnasnet.yaml",
        "target_macs": T, "w": W, "reward_kind": "soft", "trials": 100, "seed": 0}


def arch_string(i: int) -> str:
    """A distinct, valid architecture per index (channels and kernel vary)."""
    kernel = 3 if i % 2 else 5
    return (f"stem_c32_s2,ds_r1_k3_s1_e1_c16,ir_r2_k{kernel}_s2_e6_c{24 + 8 * (i % 50)}_se0.25,"
            f"ir_r{1 + i % 4}_k3_s2_e6_c{40 + i // 50}_se0.25,head_c1280,act_silu")


def ok_result(arch: str, accuracy: float, macs: float) -> TrialResult:
    return TrialResult(arch=arch, accuracy=accuracy, macs=int(macs), params=int(macs / 80),
                       reward=reward.soft(accuracy, macs, T, W), train_seconds=12.5, epochs=5)


def add_trial(store: Store, trial_id: str, result: TrialResult, controller: str = "random") -> None:
    store.start_trial(trial_id, result.arch, controller=controller)
    store.finish_trial(trial_id, result, node="test-node")


def make_run(run_dir: Path, points: list[tuple[float, float]], *, failed: int = 0, running: int = 0,
             arch: dict[int, str] | None = None, meta: dict | None = None) -> Path:
    """A store with one ok trial per (accuracy, macs) point, then ``failed`` failures and ``running`` rows."""
    with Store.create(run_dir, {**META, **(meta or {})}) as store:
        for i, (acc, macs) in enumerate(points):
            name = (arch or {}).get(i, arch_string(i))
            add_trial(store, f"t{i:05d}", ok_result(name, acc, macs))
        for j in range(failed):
            add_trial(store, f"f{j:05d}", TrialResult.failure(arch_string(10_000 + j), f"CUDA out of memory (trial {j})"))
        for k in range(running):
            store.start_trial(f"r{k:05d}", arch_string(20_000 + k), controller="random")
    return run_dir


def random_points(n: int, seed: int = 0) -> list[tuple[float, float]]:
    """Accuracy that grows with log MACs plus noise, as a real search looks."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        macs = math.exp(rng.uniform(math.log(80e6), math.log(1.6e9)))
        acc = min(0.97, 0.55 + 0.045 * math.log(macs / 80e6) + rng.gauss(0, 0.03))
        out.append((round(acc, 5), macs))
    return out
