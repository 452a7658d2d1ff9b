"""Latency tables: the parts add up to the network torch builds, a table is built on ONNX Runtime and resumed,
bad tables are one line, and a search scores latency from a table (no timing during the search)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas import space as spaces
from nas.core import cost
from nas.core.arch import Architecture
from nas.core.errors import NasError
from nas.latency.parts import network_parts, space_parts
from nas.latency.table import FORMAT, Calibration, LatencyTable, LatencyTableError
from tests.test_table import _every_key, _write_table

ROOT = Path(__file__).resolve().parents[1]


def deployment(space: spaces.SearchSpace) -> dict:
    return {"resolution": space.target_resolution, "num_classes": space.num_classes, "in_channels": space.in_channels}


@pytest.mark.parametrize("name", ["mnasnet", "nas_bench_macro", "efficientnetv2", "fbnet", "proxylessnas",
                                  "ofa_mobilenetv3"])
def test_every_part_of_sampled_architectures_is_among_the_space_parts(name: str) -> None:
    space = spaces.load(name)
    every = space_parts(space, **deployment(space))
    rng = np.random.default_rng(0)
    for _ in range(300):
        arch = space.sample(rng)
        parts = network_parts(arch, **deployment(space))
        assert {p.key for p in parts} <= every.keys()
        assert parts[0].kind == "stem" and parts[-1].kind == "head" and len(parts) == 2 + len(arch.layers())
    if name == "mnasnet":  # a few hundred per block and activation, as a factorized space promises
        assert 3000 < len(every) < 8000


@pytest.mark.parametrize("name", ["mnasnet", "nas_bench_macro", "fbnet", "ofa_mobilenetv3"])
def test_the_parts_are_the_network_torch_builds(name: str) -> None:
    """Each part's module, run on its input, hands the next part its input; their parameters add up to the
    network's own (torch's count) — nothing of the network is left out of the sum, nothing counted twice."""
    import torch

    from nas.latency.timing import part_network
    from nas.network.builder import build

    space = spaces.load(name)
    rng = np.random.default_rng(1)
    for _ in range(3):
        arch = space.sample(rng)
        parts = network_parts(arch, **deployment(space))
        total = 0
        x = torch.randn(1, space.in_channels, space.target_resolution, space.target_resolution)
        with torch.inference_mode():
            for part in parts:
                module, shape = part_network(part)
                assert tuple(x.shape) == shape, part.key
                x = module(x)
                total += sum(p.numel() for p in module.parameters())
        net = build(arch, num_classes=space.num_classes, in_channels=space.in_channels)
        assert total == sum(p.numel() for p in net.parameters()) == cost.count(arch, space.target_resolution,
                                                                                 space.num_classes).params
        assert tuple(x.shape) == (1, space.num_classes)


def _table(space: spaces.SearchSpace, **changes: object) -> LatencyTable:
    parts = space_parts(space, **deployment(space))
    fields = {"space": space.name, **deployment(space), "runtime": "onnxruntime", "threads": 1,
              "parts": {key: 0.1 + (i % 7) / 10 for i, key in enumerate(sorted(parts))},
              "calibration": Calibration(intercept_ms=0.5, scale=1.1, networks=3), **changes}
    return LatencyTable(**fields)  # type: ignore[arg-type]


def test_a_prediction_is_the_calibrated_sum_of_the_parts(tmp_path: Path) -> None:
    space = spaces.load("nas_bench_macro")
    table = _table(space)
    table.save(tmp_path / "t.json")
    loaded = LatencyTable.load(tmp_path / "t.json")
    arch = space.sample(np.random.default_rng(3))
    by_hand = sum(table.parts[p.key] for p in network_parts(arch, **deployment(space)))
    assert loaded.predict(arch) == pytest.approx(0.5 + 1.1 * by_hand)
    loaded.check_deployment(space.name, keys=set(table.parts), **deployment(space))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: "not json{", "not JSON"),
    (lambda d: {**d, "format": "other"}, "not a latency table"),
    (lambda d: {k: v for k, v in d.items() if k != "parts"}, "no 'parts'"),
    (lambda d: {**d, "parts": {**d["parts"], "x": "fast"}}, "not a number of milliseconds"),
    (lambda d: {**d, "parts": {**d["parts"], "x": float("nan")}}, "not a number of milliseconds"),
    (lambda d: {**d, "runtime": "tflite"}, "runtime 'tflite'"),
    (lambda d: {**d, "resolution": 0}, "not a positive integer"),
])
def test_a_damaged_table_is_one_line(tmp_path: Path, damage, message: str) -> None:
    space = spaces.load("nas_bench_macro")
    data = _table(space).to_json()
    damaged = damage(data)
    (tmp_path / "t.json").write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    with pytest.raises(LatencyTableError, match=message) as error:
        LatencyTable.load(tmp_path / "t.json")
    assert isinstance(error.value, NasError) and "\n" not in str(error.value)


def test_a_table_of_another_deployment_or_missing_a_part_is_refused() -> None:
    space = spaces.load("nas_bench_macro")
    keys = set(space_parts(space, **deployment(space)))
    with pytest.raises(LatencyTableError, match="built for resolution 32, this search needs 64"):
        _table(space).check_deployment(space.name, keys=keys, **{**deployment(space), "resolution": 64})
    table = _table(space)
    gone = sorted(table.parts)[3]
    del table.parts[gone]
    with pytest.raises(LatencyTableError, match=f"lacks 1 of the parts .*first: `{gone}`"):
        table.check_deployment(space.name, keys=keys, **deployment(space))
    arch = next(a for a in (space.sample(np.random.default_rng(s)) for s in range(500))
                if gone in {p.key for p in network_parts(a, **deployment(space))})
    with pytest.raises(LatencyTableError, match="has no entry for"):
        table.predict(arch)
    unfinished = _table(space, calibration=None)
    with pytest.raises(LatencyTableError, match="is not finished"):
        unfinished.predict(arch)
    other = spaces.load("mnasnet")
    with pytest.raises(LatencyTableError, match="built for space 'nas_bench_macro'"):
        table.check_deployment(other.name, keys=set(space_parts(other, **deployment(space))), **deployment(space))


@pytest.mark.slow
def test_a_table_is_built_on_onnxruntime_resumes_and_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built on ONNX Runtime for NAS-Bench-Macro's space (20 parts); killed after its parts, it resumes without
    timing them again; its predictions of networks it never saw are within a factor of 1.5 of ONNX Runtime's
    own timing of the whole network (the ±10 % figure is a measurement for a quiet machine: docs/latency.md)."""
    pytest.importorskip("onnxruntime")
    from nas.latency import build as builder
    from nas.latency.check import check_table
    from nas.latency.timing import Timer

    space = spaces.load("nas_bench_macro")
    out = tmp_path / "nbm.json"
    timed: list[int] = []
    fastest = Timer.fastest

    def counting(self, items, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        timed.append(len(items))
        return fastest(self, items, *args, **kwargs)

    monkeypatch.setattr(Timer, "fastest", counting)

    def stop_at_networks(line: str) -> None:
        if "whole networks" in line and timed and timed[-1] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(builder, "SAY_SECONDS", 0.0)
    monkeypatch.setattr(builder, "NETWORKS_AT_ONCE", 1)  # a network per chunk, so it can stop between two
    with pytest.raises(KeyboardInterrupt):
        builder.build_table(space, space_file="nas_bench_macro", runtime="onnxruntime", threads=1, resolution=32,
                            out=out, rounds=2, networks=8, say=stop_at_networks)
    partial = json.loads(out.read_text())
    assert partial["progress"]["ratios"].keys() == space_parts(space, **deployment(space)).keys()
    assert len(partial["progress"]["network_ratios"]) == 1 and partial["parts"] == {}
    with pytest.raises(LatencyTableError, match="is not finished"):
        LatencyTable.load(out).predict(space.sample(np.random.default_rng(0)))
    timed.clear()
    table = builder.build_table(space, space_file="nas_bench_macro", runtime="onnxruntime", threads=1, resolution=32,
                                out=out, rounds=2, networks=8, say=lambda line: None)
    assert timed == [1] * 7  # the seven networks left; no part timed again
    assert table.parts.keys() == space_parts(space, **deployment(space)).keys()
    assert table.calibration is not None and table.calibration.networks == 8 and table.progress is None
    assert table.device["runtime"] == "onnxruntime" and table.device["onnxruntime"] and table.device["cpu"]
    assert all(ms > 0 and math.isfinite(ms) for ms in table.parts.values())
    report = check_table(LatencyTable.load(out), space, archs=4, rounds=2, say=lambda line: None)
    ratios = np.asarray(report.predicted_ms) / np.asarray(report.measured_ms)
    assert ((ratios > 1 / 1.5) & (ratios < 1.5)).all(), ratios
    assert report.summary()["predict_us"] < 1000



@pytest.mark.slow
def test_an_int8_table_predicts_the_int8_program_export_writes(tmp_path: Path) -> None:
    """``--runtime onnxruntime-int8`` times int8 parts; the program ``nas export --format onnx-int8`` writes for a
    network is what it predicts: ONNX Runtime runs that file within a factor of 1.5 of the table's prediction."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from nas.app import export
    from nas.latency import build as builder
    from nas.latency.int8 import random_inputs
    from nas.latency.timing import Timer

    torch = pytest.importorskip("torch")
    space = spaces.load("nas_bench_macro")
    table = builder.build_table(space, space_file="nas_bench_macro", runtime="onnxruntime-int8", threads=1,
                                resolution=32, out=tmp_path / "int8.json", rounds=2, networks=4, say=lambda line: None)
    assert table.runtime == "onnxruntime-int8" and table.device["onnxruntime"]
    archs = builder.sample_architectures(space, 2, seed=7)
    programs = []
    for index, arch in enumerate(archs):
        path = tmp_path / f"{index}.int8.onnx"
        export.export_int8(export.deployable(arch, num_classes=10, in_channels=3), path, resolution=32,
                           in_channels=3, calibration=random_inputs((1, 3, 32, 32)))
        programs.append(path)
    timer, example = Timer("onnxruntime-int8", 1), torch.randn(1, 3, 32, 32)
    ratios = timer.fastest(programs, prepare=lambda path: timer.onnx_call(str(path), example), rounds=2)
    measured = np.asarray(ratios) * table.device["reference_ms"]
    predicted = np.asarray([table.predict(arch) for arch in archs])
    assert ((predicted / measured > 1 / 1.5) & (predicted / measured < 1.5)).all(), (predicted, measured)


def _latency_search(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nas", "search", "--space", "nas_bench_macro", "--evaluator", "table",
               "--table", "t.csv", "--name", "lat", "--storage", "runs", "--address", "local", "--json", *extra]
    return subprocess.run(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_a_search_scores_latency_from_the_table(tmp_path: Path) -> None:
    """MnasNet's latency reward on a table: every trial's latency is the table's prediction (nothing is timed),
    its reward ACC × (latency/T)^w; a table of another space is refused in one line before the run exists."""
    from nas.runs.results import load_run

    space = spaces.load("nas_bench_macro")
    _write_table(tmp_path / "t.csv", space, {k: {"mean_acc": 50 + int(k, 3) % 40, "params": 1}
                                              for k in _every_key()})
    _table(space).save(tmp_path / "lat.json")
    done = _latency_search(tmp_path, "--latency-table", "lat.json", "--reward-on", "latency", "--target-ms", "2", "--w", "-0.07",
                           "--trials", "8", "--controller", "random")
    assert done.returncode == 0, done.stdout + done.stderr
    table = LatencyTable.load(tmp_path / "lat.json")
    trials = load_run(tmp_path / "runs/lat").trials
    assert len(trials) == 8 and (trials.status == "ok").all()
    for row in trials.itertuples():
        assert row.latency_ms == pytest.approx(table.predict(Architecture.parse(row.arch)))
        assert row.reward == pytest.approx(row.accuracy * (row.latency_ms / 2.0) ** -0.07)

    other = spaces.load("mnasnet")
    _table(other, **deployment(space)).save(tmp_path / "other.json")
    done = _latency_search(tmp_path, "--latency-table", "other.json", "--reward-on", "latency", "--trials", "2",
                           "--name", "refused")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "built for space 'mnasnet'" in done.stderr and not (tmp_path / "runs/refused").exists()


def test_the_cli_refuses_a_corrupt_table_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nas.app.cli import main

    (tmp_path / "t.json").write_text(json.dumps({"format": FORMAT}))
    assert main(["latency", "check", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a latency table (no 'calibration')" in err
    assert main(["latency", "check", str(tmp_path / "missing.json")]) == 2
    assert "no such latency table" in capsys.readouterr().err


def test_a_space_file_puts_its_reward_on_latency_in_plain_yaml() -> None:
    """`on: latency` is the reward's key `on` (YAML 1.1 would read `on` as the boolean True), and an exported
    architecture of a latency run keeps it."""
    from nas.settings import RewardSettings
    from nas.space import architecture_yaml, load_architecture

    plain = architecture_yaml(load_architecture("efficientnet_b0"), name="b0")
    lines = [line for line in plain.splitlines() if not line.startswith("reward:")]
    lines.insert(1, "reward:\n  on: latency\n  target_ms: 20\n  kind: mnasnet\n  alpha: 0\n  beta: -1")
    space = spaces.loads("\n".join(lines) + "\n")
    assert space.reward.on == "latency" and space.reward.target_ms == 20 and space.reward.beta == -1
    exported = architecture_yaml(load_architecture("efficientnet_b0"), name="b0",
                                 reward=RewardSettings(on="latency", target_ms=12.5))
    assert spaces.loads(exported).reward.on == "latency" and spaces.loads(exported).reward.target_ms == 12.5


def test_export_takes_a_latency_runs_front_on_latency(tmp_path: Path) -> None:
    from nas.app.commands.export import chosen
    from nas.core.result import TrialResult
    from nas.runs.store import Store
    from scripts.synthetic_runs import META, add_trial, arch_string

    points = [(0.70, 100e6, 5.0), (0.72, 200e6, 9.0), (0.75, 300e6, 8.0), (0.80, 400e6, 12.0)]
    with Store.create(tmp_path / "lat", {**META, "reward_on": "latency", "target_ms": 10.0}) as store:
        for i, (acc, macs, ms) in enumerate(points):
            add_trial(store, f"t{i}", TrialResult(arch=arch_string(i), accuracy=acc, macs=int(macs), params=1,
                                                  latency_ms=ms, reward=acc, epochs=5))
    with Store.open_readonly(tmp_path / "lat") as store:
        front = chosen(store, "pareto")
    assert sorted(row.latency_ms for row in front) == [5.0, 8.0, 12.0]  # on MACs, 9 ms would be on it and 8 not


def test_a_reproduction_matches_on_latency_when_it_has_a_table(tmp_path: Path) -> None:
    """With a latency table the reproduction pairs a reference with a found network no slower than it on the
    target device, and its verdict says so."""
    from nas.studies import reproduce

    space = spaces.load("nas_bench_macro")
    table = _table(space)
    table.save(tmp_path / "lat.json")
    rng = np.random.default_rng(5)
    archs = sorted((space.sample(rng) for _ in range(40)), key=table.predict)
    contenders = {"found-1": archs[-1], "found-2": archs[0], "reference": archs[20]}
    costs, matched_on = reproduce.contender_costs(contenders, space, str(tmp_path / "lat.json"))
    assert matched_on == "latency" and costs == {n: pytest.approx(table.predict(a)) for n, a in contenders.items()}
    assert reproduce.matched(list(contenders), costs, "reference") == "found-2"  # found-1 is slower
    macs, on = reproduce.contender_costs(contenders, space, None)
    assert on == "MACs" and macs["found-1"] == cost.count(archs[-1], 32, 10).macs
    runs = lambda values: [{"test_accuracy": v} for v in values]  # noqa: E731
    comparison = reproduce.paired_comparison("reference", "found-2", runs([0.9, 0.91, 0.92]), runs([0.8, 0.8, 0.81]),
                                             costs, 0.01, matched_on=matched_on)
    ratio = costs["found-2"] / costs["reference"]
    assert f"found-2 beats reference at {ratio:.2f}x its latency" in reproduce.answer([comparison])
