"""Compound scaling against torchvision's B1…B7 and the paper's Table 2; the α β γ grid; baselines; the CLI
and the grid-search orchestration with a fake evaluator (no Ray, no training)."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import subprocess
import sys
import zlib
from functools import cache
from pathlib import Path

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from nas.core import cost, scaling
from nas.core.arch import Architecture
from nas.core.result import TrialResult
from nas.network import builder as model
from nas.space import load_architecture

ROOT = Path(__file__).resolve().parents[1]
TORCHVISION_PARAMS = {"B0": 5_288_548, "B1": 7_794_184, "B2": 9_109_994, "B3": 12_233_232, "B4": 19_341_616,
                      "B5": 30_389_784, "B6": 43_040_704, "B7": 66_347_960}
PRESETS = {p.name: p for p in scaling.PAPER_PRESETS}


@cache
def torchvision_reference(name: str) -> tuple[int, int]:
    """(params, multiply-adds) of torchvision's efficientnet_bN at its preset resolution, built on the meta
    device (no memory, no init cost) and counted by torch's FlopCounterMode (FLOPs = 2 × MACs)."""
    resolution = PRESETS[name].resolution
    with torch.device("meta"):
        net = getattr(torchvision.models, f"efficientnet_{name.lower()}")().eval()
        x = torch.empty(1, 3, resolution, resolution)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() // 2


@pytest.fixture(scope="module")
def paper_family(b0: Architecture) -> dict[str, scaling.Scaled]:
    return {member.name: member for member in scaling.family(b0)}


# ---------------------------------------------------------------- presets vs torchvision and the paper


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_paper_presets_give_torchvision_parameter_counts_exactly(paper_family, name: str) -> None:
    member = paper_family[name]
    reference_params, _ = torchvision_reference(name)
    assert reference_params == TORCHVISION_PARAMS[name]
    assert member.cost().params == reference_params
    with torch.device("meta"):
        built = model.build(member.arch, dropout=member.dropout)
    assert sum(p.numel() for p in built.parameters()) == reference_params


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_paper_presets_give_torchvision_macs_exactly(paper_family, name: str) -> None:
    assert paper_family[name].cost().macs == torchvision_reference(name)[1]


# B4 and B5 miss 3 %: the paper's 4.2 B / 9.9 B are below what its own released configurations cost at 380 / 456 px
# (torchvision's models count exactly our 4.394 B / 10.266 B, see the test above; thop on the TF-ported weights
# reports 4.49 / 10.46, Lyken17/pytorch-OpCounter#69). No single convention fixes it: excluding SE, flooring the
# strided sizes, or rounding repeats to nearest moves other members out of 3 %; for B5 no input size near 456
# gives 9.9 B (448 px: 9.40 B, 452 px: 10.24 B). Kept strict so a fix in the cost model or presets shows up.
PAPER_MISS = {"B4": 0.046, "B5": 0.037}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=f"Table 2 understates {name} by "
                                                                    f"{PAPER_MISS[name]:.1%}; see comment"))
    if name in PAPER_MISS else name
    for name in scaling.PAPER_TABLE2_GMACS])
def test_paper_presets_macs_within_3_percent_of_table_2(paper_family, name: str) -> None:
    macs = paper_family[name].cost().macs
    assert abs(macs / (scaling.PAPER_TABLE2_GMACS[name] * 1e9) - 1) < 0.03


@pytest.mark.parametrize("name, miss", sorted(PAPER_MISS.items()))
def test_the_table_2_misses_are_the_known_ones(paper_family, name: str, miss: float) -> None:
    macs = paper_family[name].cost().macs
    assert macs / (scaling.PAPER_TABLE2_GMACS[name] * 1e9) - 1 == pytest.approx(miss, abs=0.001)


def test_family_dropout_and_resolution_come_from_the_table(paper_family) -> None:
    assert [(m.resolution, m.dropout) for m in paper_family.values()] == [
        (224, 0.2), (240, 0.2), (260, 0.3), (300, 0.3), (380, 0.4), (456, 0.4), (528, 0.5), (600, 0.5)]


# ---------------------------------------------------------------- compound scaling


def test_compound_uses_the_papers_convention(b0: Architecture) -> None:
    member = scaling.compound(b0, phi=2, alpha=1.2, beta=1.1, gamma=1.15)
    assert member.depth == pytest.approx(1.44) and member.width == pytest.approx(1.21)
    assert member.resolution == 296  # round(224 · 1.3225 = 296.24)
    assert member.arch == scaling.scale_dims(b0, width=1.21, depth=1.44).arch
    assert (member.phi, member.alpha, member.beta, member.gamma, member.dropout) == (2, 1.2, 1.1, 1.15, 0.3)


def test_compound_phi_1_roughly_doubles_the_ideal_flops_factor(b0: Architecture) -> None:
    """α·β²·γ² = 1.92. Rounded as EfficientNet rounds (repeats up, channels to 8, 'same' padding), φ = 1 costs
    2.57× B0: one-layer stages become two (ceil(1.2) = 2) and 258 px maps to 9×9 last maps (7×7 at 224). That is
    the paper's own B2 (width 1.1, depth 1.2, 260 px: 1.0 B vs 0.39 B); each further step of φ is then ~1.8–2×."""
    base = cost.count(b0, 224).macs
    assert 1.8 <= scaling.Coefficients(*scaling.PAPER_COEFFICIENTS).flops_factor <= 2.2
    macs = [scaling.compound(b0, phi=phi, alpha=1.2, beta=1.1, gamma=1.15).cost().macs for phi in range(0, 8)]
    assert macs[0] == base
    assert 2.4 <= macs[1] / base <= 2.7
    assert macs[1] == pytest.approx(scaling.family(b0)[2].cost().macs, rel=0.01)  # the paper's B2
    assert 4.0 <= macs[2] / base <= 5.0  # "roughly 4×": 4.69
    steps = [later / earlier for earlier, later in itertools.pairwise(macs[1:])]
    assert all(1.75 <= step <= 2.05 for step in steps), steps


def test_scaling_returns_new_values_and_identity_at_one(b0: Architecture) -> None:
    same = scaling.scale_dims(b0)
    assert same.arch == b0 and same.resolution == 224
    assert scaling.compound(b0, phi=0, alpha=1.2, beta=1.1, gamma=1.15).arch == b0
    with pytest.raises(dataclasses.FrozenInstanceError):
        same.width = 2.0  # type: ignore[misc]


@pytest.mark.parametrize("kwargs", [dict(phi=1, alpha=0, beta=1.1, gamma=1.15),
                                    dict(phi=-1, alpha=1.2, beta=1.1, gamma=1.15),
                                    dict(phi=1, alpha=1.2, beta=float("nan"), gamma=1.15)])
def test_compound_rejects_bad_values(b0: Architecture, kwargs: dict) -> None:
    with pytest.raises(scaling.ScalingError):
        scaling.compound(b0, **kwargs)


@pytest.mark.parametrize("proxy, multiplier, expected", [(32, 1.0, 32), (32, 1.1, 32), (32, 1.15, 40),
                                                         (32, 1.15 ** 2, 40), (32, 2.0, 64), (32, 1.15 ** 7, 88),
                                                         (8, 0.1, 8), (224, 1.15, 256)])
def test_proxy_resolution_rounds_to_a_multiple_of_8(proxy: int, multiplier: float, expected: int) -> None:
    assert scaling.proxy_resolution(proxy, multiplier) == expected


# ---------------------------------------------------------------- the α β γ grid


def test_grid_is_exactly_the_points_within_tolerance() -> None:
    """Cross-checked in exact integer arithmetic: values k/20, α·β²·γ² = a·b²·c² / 20⁵."""
    points = scaling.grid()
    ks = range(20, 43)  # 1.00 … 2.10 = 2·(1 + 5 %)
    expected = {(a, b, c) for a, b, c in itertools.product(ks, repeat=3)
                if 2 * 0.95 * 20 ** 5 <= a * b * b * c * c <= 2 * 1.05 * 20 ** 5}
    assert {(round(p.alpha * 20), round(p.beta * 20), round(p.gamma * 20)) for p in points} == expected
    assert len(points) == len(expected) == 111
    assert scaling.Coefficients(1.2, 1.1, 1.15) in points
    assert all(min(p.alpha, p.beta, p.gamma) >= 1 and abs(p.flops_factor / 2 - 1) <= 0.05 + 1e-12 for p in points)


def test_grid_options() -> None:
    assert scaling.grid(tolerance=0.0) == [p for p in scaling.grid() if p.flops_factor == pytest.approx(2.0)]
    capped = scaling.grid(max_value=1.3)
    assert capped and max(max(p.alpha, p.beta, p.gamma) for p in capped) <= 1.3
    assert scaling.Coefficients(1.2, 1.1, 1.15) in scaling.grid(step=0.05, tolerance=0.04)
    assert scaling.Coefficients(1.2, 1.1, 1.15) not in scaling.grid(step=0.05, tolerance=0.03)  # 1.920 is -4 %
    with pytest.raises(scaling.ScalingError):
        scaling.grid(step=0)


# ---------------------------------------------------------------- single-dimension baselines

BASELINE_TOLERANCE = {"width": 0.03, "depth": 0.11, "resolution": 0.06}
"""How close each dimension can get to a MACs target from B0: width moves in 8-channel steps (±3 %), resolution in
pixels but with jumps where a strided size rounds up (±6 %), depth in whole layers of all seven stages at once
(ceil of a shared multiplier: up to ±11 %). The tests below also check the pick is the nearest reachable."""


@pytest.mark.parametrize("point", [(1.2, 1.1, 1.15), (1.0, 1.0, 1.4), (1.0, 1.2, 1.15), (1.6, 1.1, 1.0),
                                   (1.35, 1.05, 1.15)])
def test_baselines_hit_the_target_macs(b0: Architecture, point: tuple[float, float, float]) -> None:
    alpha, beta, gamma = point
    target = scaling.compound(b0, phi=1, alpha=alpha, beta=beta, gamma=gamma).cost().macs
    for dim, member in scaling.baselines(b0, target_macs=target).items():
        assert abs(member.cost().macs / target - 1) <= BASELINE_TOLERANCE[dim], (dim, member)
        others = {d: getattr(member, d) for d in ("width", "depth")}
        assert all(v == 1.0 for d, v in others.items() if d != dim)
        assert dim == "resolution" or member.resolution == 224


def test_baseline_is_the_nearest_reachable_network(b0: Architecture) -> None:
    target = scaling.compound(b0, phi=1, alpha=1.2, beta=1.1, gamma=1.15).cost().macs
    for dim, found in scaling.baselines(b0, target_macs=target).items():
        error = abs(found.cost().macs - target)
        scan = [1 + i / 500 for i in range(1500)]  # 1.000 … 3.998
        nearest = min(abs(scaling.single_dimension(b0, dimension=dim, multiplier=m).cost().macs - target)
                      for m in scan)
        assert error <= nearest, dim


def test_baseline_errors(b0: Architecture) -> None:
    with pytest.raises(scaling.ScalingError, match="stays below"):
        scaling.match_macs(b0, dimension="depth", target_macs=1e15)
    with pytest.raises(scaling.ScalingError, match="not one of"):
        scaling.match_macs(b0, dimension="kernel", target_macs=1e9)


# ---------------------------------------------------------------- CLI


def nas(*args: str) -> subprocess.CompletedProcess:
    # Through nas.app.cli.main (the installed `nas` entry point), not `-m nas.app.cli`, whose __main__ copy of UserError
    # differs from the one the commands raise.
    return subprocess.run([sys.executable, "-c", "import sys; from nas.app.cli import main; sys.exit(main())", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_nas_scale_preset_paper_json() -> None:
    done = nas("scale", "search_spaces/efficientnet_b0.yaml", "--preset", "paper", "--json")
    assert done.returncode == 0, done.stderr
    members = json.loads(done.stdout)["members"]
    assert [m["member"] for m in members] == list(TORCHVISION_PARAMS)
    assert [m["params"] for m in members] == list(TORCHVISION_PARAMS.values())
    for m in members:
        assert m["macs"] == cost.count(Architecture.parse(m["arch"]), m["resolution"]).macs
        assert m["paper_macs"] == int(scaling.PAPER_TABLE2_GMACS[m["member"]] * 1e9)


def test_nas_scale_table_and_user_errors() -> None:
    done = nas("scale", "--coefficients", "1.2", "1.1", "1.15", "--phis", "1", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:4] == ["B1", "1.100", "1.200", "258"]
    bad = nas("scale", "--coefficients", "1.2", "0", "1.15")
    assert bad.returncode == 2 and bad.stderr.strip() == "nas scale: error: beta must be a positive number, got 0.0"


# ---------------------------------------------------------------- grid-search orchestration (fake evaluator)


class FakeEvaluate:
    """Records every call; accuracy peaks at one grid point; one candidate fails like a trial can."""

    def __init__(self, best: str, failing: str | None = None) -> None:
        self.best, self.failing, self.calls = best, failing, []

    def __call__(self, candidates, **kwargs) -> list[TrialResult]:
        self.calls.append((list(candidates), kwargs))
        out = []
        for c in candidates:
            total = cost.count(c.arch, c.target_resolution)
            if c.label == self.failing:
                out.append(TrialResult.failure(str(c.arch), "CUDA out of memory", macs=total.macs))
                continue
            accuracy = 0.9 if c.label == self.best else 0.5 + (zlib.crc32(c.label.encode()) % 100) / 1000
            out.append(TrialResult(arch=str(c.arch), accuracy=accuracy, macs=total.macs, params=total.params,
                                   reward=accuracy, train_seconds=0.1, epochs=1))
        return out


def load_script():
    spec = importlib.util.spec_from_file_location("scale_script", ROOT / "scripts" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_search_picks_the_best_and_writes_the_family(tmp_path: Path, b0: Architecture) -> None:
    script = load_script()
    fake = FakeEvaluate(best="compound-a1.20-b1.10-g1.15", failing="compound-a1.00-b1.00-g1.40")
    config = script.settings_for({"base": str(ROOT / "search_spaces/efficientnet_b0.yaml"),
                                  "place": {"storage": str(tmp_path), "name": "run"},
                                  "proxy": {"dataset": "synthetic", "epochs": 1}})
    summary = script.run(config, evaluate=fake, out=open("/dev/null", "w"))

    grid_call, baseline_call = fake.calls
    candidates, kwargs = grid_call
    assert kwargs["run_dir"] == tmp_path / "run" and kwargs["proxy"].dataset == "synthetic"
    assert kwargs["proxy"].epochs == 1
    assert baseline_call[1]["run_dir"] == kwargs["run_dir"]  # one run folder for everything
    # 111 grid points, but rounding makes them 66 distinct networks: each is trained once
    networks = [(str(c.arch), c.proxy_resolution, c.target_resolution) for c in candidates]
    assert len(networks) == len(set(networks)) == 1 + 66 and candidates[0].label == "base"
    grid_rows = [r for r in summary["candidates"] if r["kind"] == "grid"]
    assert len(grid_rows) == 111
    by_label = {r["label"]: r for r in summary["candidates"]}
    twin = by_label["compound-a1.25-b1.10-g1.15"]  # ceil(1.25) = ceil(1.2) repeats: the paper point's network
    assert twin["same_as"] == "compound-a1.20-b1.10-g1.15" and twin["accuracy"] == 0.9
    assert all(r["same_as"] is None or by_label[r["same_as"]]["arch"] == r["arch"] for r in grid_rows)
    paper = next(c for c in candidates if c.label == "compound-a1.20-b1.10-g1.15")
    assert (paper.proxy_resolution, paper.target_resolution) == (40, 258)
    assert summary["chosen"] == {"alpha": 1.2, "beta": 1.1, "gamma": 1.15, "label": "compound-a1.20-b1.10-g1.15",
                                 "accuracy": 0.9}

    target = scaling.compound(b0, phi=1, alpha=1.2, beta=1.1, gamma=1.15).cost().macs
    labels = {c.label: c for c in baseline_call[0]}
    assert set(labels) == {"width-only-phi1", "depth-only-phi1", "resolution-only-phi1"}
    for dim in scaling.DIMENSIONS:
        c = labels[f"{dim}-only-phi1"]
        assert abs(cost.count(c.arch, c.target_resolution).macs / target - 1) <= BASELINE_TOLERANCE[dim]
    assert labels["resolution-only-phi1"].proxy_resolution == scaling.proxy_resolution(
        32, labels["resolution-only-phi1"].target_resolution / 224)

    folder = tmp_path / "run" / "scaling"
    for phi in range(1, 8):
        expected = scaling.compound(b0, phi=phi, alpha=1.2, beta=1.1, gamma=1.15)
        path = folder / f"B{phi}.yaml"
        assert load_architecture(str(path)) == expected.arch
        text = path.read_text()
        assert f"target_resolution: {expected.resolution}\n" in text and f"dropout: {expected.dropout:g}\n" in text
    table = json.loads((folder / "summary.json").read_text())
    assert [r["member"] for r in table["family"]] == [f"B{phi}" for phi in range(1, 8)]
    assert table["family"][0]["macs"] == target
    assert any(r["status"] == "failed" for r in table["candidates"])
    assert "| B7 |" in (folder / "family.md").read_text()
    assert (folder / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid_search_quick_subset_and_all_failed(tmp_path: Path) -> None:
    from nas.studies.scaling_search import QUICK, ScaleRunError, run, settings_for

    fake = FakeEvaluate(best="none")
    config = settings_for({**QUICK, "place": {"storage": str(tmp_path), "name": "quick"}, "compare_phis": (1, 2)})
    summary = run(config, evaluate=fake, out=open("/dev/null", "w"))
    grid_labels = [c.label for c in fake.calls[0][0]]
    assert len(grid_labels) == 1 + 3 and "compound-a1.20-b1.10-g1.15" in grid_labels
    proxy = fake.calls[0][1]["proxy"]  # the B0 file's proxy with the quick changes
    assert (proxy.max_train_samples, proxy.dataset, proxy.batch_size) == (256, "synthetic", 32)
    assert proxy.learning_rate == pytest.approx(0.1 * 32 / 256)
    assert fake.calls[0][0][0].proxy_resolution == 16
    # every comparison has its row; one equal to a network already trained is not trained again
    compared = {r["label"]: r for r in summary["comparison"]}
    assert set(compared) >= {"compound-phi2", "width-only-phi2", "depth-only-phi1", "resolution-only-phi1"}
    retrained = {c.label for c in fake.calls[1][0]}
    assert all((label in retrained) != bool(row["same_as"]) for label, row in compared.items())
    assert summary["chosen"]["label"] in grid_labels

    def failing(candidates, **kwargs):
        return [TrialResult.failure(str(c.arch), "NaN loss") for c in candidates]

    with pytest.raises(ScaleRunError, match="no grid candidate trained"):
        run(config.changed(place={"storage": str(tmp_path), "name": "failed"}), evaluate=failing,
            out=open("/dev/null", "w"))


def test_proxy_divisor_lets_a_small_proxy_scale_its_resolution(tmp_path: Path) -> None:
    from nas.studies.scaling_search import run, settings_for

    def sizes(divisor: int) -> dict[str, int]:
        fake = FakeEvaluate(best="compound-a1.20-b1.10-g1.15")
        config = settings_for({"place": {"storage": str(tmp_path), "name": f"d{divisor}"}, "proxy_divisor": divisor,
                               "proxy": {"dataset": "synthetic", "resolution": 16}, "max_candidates": 5})
        run(config, evaluate=fake, out=open("/dev/null", "w"))
        return {c.label: c.proxy_resolution for c in fake.calls[0][0]}

    eights, fours = sizes(8), sizes(4)
    # γ = 1.15 at 16 px: 18.4 px is 16 in multiples of 8 (no resolution change at all) but 20 in multiples of 4
    assert eights["compound-a1.20-b1.10-g1.15"] == 16 and fours["compound-a1.20-b1.10-g1.15"] == 20
    assert all(size % 4 == 0 for size in fours.values()) and len(set(fours.values())) > len(set(eights.values()))
    member = (tmp_path / "d4" / "scaling" / "B1.yaml").read_text()
    assert '"resolution": 20' in member  # the family files carry the same proxy size
