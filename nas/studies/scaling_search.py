"""The α β γ grid search behind ``scripts/scale.py`` and ``nas scale BASE --grid``.

1. For φ = 1, every grid point (α·β²·γ² ≈ 2) becomes a scaled candidate; with the unscaled
   base they are trained on the proxy through ``nas.runs.candidates.evaluate_many`` (the evaluator and
   Ray machinery of a search), into one run folder the dashboard can show.
2. The best candidate by proxy accuracy fixes (α, β, γ); B1…B7 (φ = 1…7) are written as
   one-point space files plus a table (Markdown and JSON).
3. Width-only, depth-only and resolution-only networks at the chosen member's multiply-adds
   are trained the same way, and a PNG compares accuracy against MACs for the four methods.

The evaluation step is a parameter (``evaluate=``) so the orchestration is testable without Ray.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from nas.core import scaling
from nas.core.errors import NasError
from nas.core.result import Candidate, TrialResult
from nas.settings import ScaleSettings, for_space
from nas.space import load, load_architecture
from nas.studies.scaling_report import family_markdown, write_outputs


class ScaleRunError(NasError):
    """A grid search that cannot run as asked (no candidates, nothing trained successfully, …)."""


Evaluate = Callable[..., list[TrialResult]]
"""``evaluate(candidates, *, run_dir, space_path, proxy, reward, resources, seed) -> list[TrialResult]``
in the candidates' order."""


def evaluate_many(candidates: Sequence[Candidate], **kwargs: Any) -> list[TrialResult]:
    """The real evaluator: :func:`nas.runs.candidates.evaluate_many` (imported late: it pulls in torch)."""
    from nas.runs.candidates import evaluate_many as train_candidates

    return train_candidates(list(candidates), **kwargs)


def settings_for(given: dict[str, Any]) -> ScaleSettings:
    """The settings of a grid search: the ``given`` changes (a nested dict like :class:`ScaleSettings`)
    on the proxy and reward of the space file they name (:meth:`ScaleSettings.space_path`)."""
    draft = ScaleSettings.model_validate({k: v for k, v in given.items() if k not in ("proxy", "reward")})
    return for_space(ScaleSettings, load(draft.space_path()), given)


QUICK: dict[str, Any] = {"max_candidates": 3, "place": {"name": "scale-quick"},
                         "resources": {"concurrency": 2},
                         "proxy": {"dataset": "synthetic", "epochs": 1, "max_train_samples": 256,
                                   "max_val_samples": 128, "resolution": 16, "batch_size": 32}}
"""``--quick``: synthetic data, three grid points, 16 px, batches of 32, tiny sample caps: the whole pipeline
in a minute or two on a CPU, in well under 1 GB per trial (the default 256-image batches at 32–40 px with a
stride-1 stem need 7–12 GB per CPU trial). The user's flags win over these."""


def choose_points(points: Sequence[scaling.Coefficients], limit: int | None) -> list[scaling.Coefficients]:
    """All points, or ``limit`` of them spread evenly over the grid, always keeping the paper's."""
    points = list(points)
    if limit is None or limit >= len(points):
        return points
    if limit < 1:
        raise ScaleRunError(f"max_candidates must be >= 1, got {limit}")
    paper = scaling.Coefficients(*scaling.PAPER_COEFFICIENTS)
    chosen = [paper] if paper in points else []
    rest = [p for p in points if p not in chosen]
    want = limit - len(chosen)
    if want == 1:
        chosen.append(rest[len(rest) // 2])
    elif want > 1:
        chosen += [rest[round(i * (len(rest) - 1) / (want - 1))] for i in range(want)]
    return sorted(set(chosen), key=lambda p: (p.alpha, p.beta, p.gamma))


def _candidate(member: scaling.Scaled, *, proxy: int, divisor: int, label: str) -> Candidate:
    return Candidate(arch=member.arch, label=label, target_resolution=member.resolution,
                     proxy_changes={"resolution": scaling.proxy_resolution(proxy, member.resolution_mult,
                                                                          divisor=divisor)})


def _network(candidate: Candidate) -> tuple[str, int, int]:
    """What a trial trains and prices: candidates equal in these are the same trial."""
    return str(candidate.arch), candidate.proxy_resolution, candidate.target_resolution


def _row(label: str, kind: str, member: scaling.Scaled, candidate: Candidate, result: TrialResult,
         num_classes: int, same_as: str | None = None) -> dict[str, Any]:
    total = member.cost(num_classes)
    return {"label": label, "kind": kind, "width": member.width, "depth": member.depth,
            "resolution": member.resolution, "proxy_resolution": candidate.proxy_resolution,
            "alpha": member.alpha, "beta": member.beta, "gamma": member.gamma,
            "params": total.params, "macs": total.macs, "status": result.status, "accuracy": result.accuracy,
            "train_seconds": result.train_seconds, "error": result.error, "arch": str(member.arch),
            "same_as": same_as}


def run(config: ScaleSettings, *, evaluate: Evaluate = evaluate_many, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the grid search end to end; returns (and writes) the summary."""
    base = load_architecture(config.base)
    run_dir = config.run_dir()
    files_dir = run_dir / "scaling"
    space_path = config.space_path()
    space = load(space_path)
    proxy = config.proxy.resolution
    target = space.target_resolution
    points = choose_points(scaling.grid(step=config.step, tolerance=config.tolerance, max_value=config.max_value),
                           config.max_candidates)
    if not points:
        raise ScaleRunError(f"no (α, β, γ) on a {config.step:g} grid has α·β²·γ² within "
                            f"±{config.tolerance:.0%} of 2; widen --tolerance or refine --step")

    # Rounding maps many (α, β, γ) to one network (ceil(1.1·1) = ceil(1.2·1) repeats; at step 0.05, 111 grid
    # points are 66 networks), and a baseline can equal a grid point: each network is trained once.
    trained: dict[tuple[str, int, int], tuple[str, TrialResult]] = {}

    def train(batch: list[tuple[str, str, scaling.Scaled]]) -> list[dict[str, Any]]:
        candidates = [_candidate(member, proxy=proxy, divisor=config.proxy_divisor, label=label)
                      for label, _, member in batch]
        fresh: dict[tuple[str, int, int], Candidate] = {}
        for candidate in candidates:
            if _network(candidate) not in trained:
                fresh.setdefault(_network(candidate), candidate)
        settings = dict(run_dir=run_dir, space_path=space_path, proxy=config.proxy, reward=config.reward,
                        resources=config.resources, seed=config.seed, out=out)
        results = evaluate(list(fresh.values()), **settings) if fresh else []
        if len(results) != len(fresh):
            raise ScaleRunError(f"the evaluator returned {len(results)} results for {len(fresh)} candidates")
        trained.update({key: (c.label, r) for (key, c), r in zip(fresh.items(), results)})
        rows = []
        for (label, kind, member), candidate in zip(batch, candidates):
            first, result = trained[_network(candidate)]
            rows.append(_row(label, kind, member, candidate, result, config.num_classes,
                             same_as=None if first == label else first))
        return rows

    print(f"[scale] {len(points)} grid candidates (φ = 1) + the base, proxy {proxy}px, cost at {target}px; "
          f"run folder {run_dir} (watch: nas dashboard {run_dir})", file=out, flush=True)
    first = [("base", "base", scaling.scale_dims(base, base_resolution=target, name="base"))]
    first += [(f"compound-{p.label}", "grid", scaling.compound(base, phi=1, alpha=p.alpha, beta=p.beta,
                                                               gamma=p.gamma, base_resolution=target))
              for p in points]
    rows = train(first)
    graded = [r for r in rows if r["kind"] == "grid" and r["status"] == "ok" and r["accuracy"] is not None]
    if not graded:
        raise ScaleRunError(f"no grid candidate trained successfully; see the errors in {run_dir}/trials.db")
    best = max(graded, key=lambda r: (r["accuracy"], -r["macs"]))
    alpha, beta, gamma = best["alpha"], best["beta"], best["gamma"]
    print(f"[scale] best: α={alpha:g} β={beta:g} γ={gamma:g} (proxy accuracy {best['accuracy']:.4f})",
          file=out, flush=True)

    family = scaling.compound_family(base, alpha=alpha, beta=beta, gamma=gamma, phis=config.phis,
                                     base_resolution=target)
    second: list[tuple[str, str, scaling.Scaled]] = []
    for phi in config.compare_phis:
        member = scaling.compound(base, phi=phi, alpha=alpha, beta=beta, gamma=gamma, base_resolution=target)
        if phi != 1:  # φ = 1 is the chosen grid candidate, already trained
            second.append((f"compound-phi{phi}", "compound", member))
        for dim, other in scaling.baselines(base, target_macs=member.cost(config.num_classes).macs,
                                            base_resolution=target, num_classes=config.num_classes).items():
            second.append((f"{dim}-only-phi{phi}", dim, other))
    compared = train(second) if second else []

    summary = {"config": {**config.model_dump(mode="json"), "space": space_path}, "run_dir": str(run_dir),
               "proxy_resolution": proxy, "target_resolution": target, "base": str(base),
               "chosen": {"alpha": alpha, "beta": beta, "gamma": gamma, "label": best["label"],
                          "accuracy": best["accuracy"]},
               "candidates": rows, "comparison": compared,
               "family": [dict(member.row(config.num_classes),
                               proxy_resolution=scaling.proxy_resolution(proxy, member.resolution_mult,
                                                                          divisor=config.proxy_divisor))
                          for member in family]}
    write_outputs(summary, family=family, space_path=space_path, proxy=config.proxy, folder=files_dir)
    print(f"[scale] wrote {files_dir}/: B*.yaml, family.md, summary.json, comparison.png", file=out, flush=True)
    print(family_markdown(summary["family"]), file=out, flush=True)
    return summary
