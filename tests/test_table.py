"""Spaces written as papers write them (per-layer variants, identity layers) and results looked up from a
table: checked against NAS-Bench-Macro's published counts, torch's own parameter count and the driver."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas import space as spaces
from nas.core import cost
from nas.core.arch import ArchError, Architecture
from nas.core.errors import NasError
from nas.settings import SpaceError
from nas.training.evaluate import Task
from nas.training.table import ResultTable, TableError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests/data/nas_bench_macro/sample.json"   # published entries (Apache-2.0, see its README)


def _benchmark() -> dict:
    return json.loads(SAMPLE.read_text())


def _macro_choices(space: spaces.SearchSpace, key: str) -> tuple[int, ...]:
    """A benchmark key (one digit per layer: 0 identity, 1 MB3-K3, 2 MB6-K5) as the space's choices."""
    choices, digits = [], iter(key)
    for decision in space.decisions:
        choices.append(int(next(digits)) if decision.name.endswith(".variant") else 0)
    return tuple(choices)


def test_nas_bench_macro_space_has_the_published_parameters_and_macs() -> None:
    """Each published architecture, decoded from our space file, has exactly the parameter count and FLOPs
    (multiply-adds) NAS-Bench-Macro publishes — identity layers, downsampling identities and all."""
    space = spaces.load("nas_bench_macro")
    assert space.size == 3 ** 8 and sum(len(d) > 1 for d in space.decisions) == 8
    entries = _benchmark()
    assert len(entries) == 64
    for key, entry in entries.items():
        price = cost.count(space.decode(_macro_choices(space, key)), 32, num_classes=10)
        assert (price.params, price.macs) == (entry["params"], entry["flops"]), key


def test_identity_layers_build_to_what_they_cost() -> None:
    """torch's own count of the built network equals the published one; an identity where the shapes match
    is no module at all, and a downsampling one a 1x1 conv + batch norm (no activation)."""
    import torch

    from nas.network.builder import build

    space = spaces.load("nas_bench_macro")
    entries = _benchmark()
    for key in ("00000000", "11111111", "22222222"):
        net = build(space.decode(_macro_choices(space, key)), num_classes=10)
        assert sum(p.numel() for p in net.parameters()) == entries[key]["params"], key
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    arch = Architecture.parse("stem_c32_s1,id_r1_k1_s2_c64,id_r1_k1_s1_c64,head_c1280,act_relu")
    blocks = build(arch, num_classes=10).blocks
    assert len(blocks[1].body) == 0 and blocks[1].residual == "none"
    assert [type(m).__name__ for m in blocks[0].body[0]] == ["Conv2d", "BatchNorm2d"]
    with pytest.raises(ArchError, match="timm has no projecting identity layer"):
        Architecture.parse("id_r1_k1_s2_c64").timm_arch_def()


def test_variants_replace_op_kernel_and_se_and_round_trip() -> None:
    space = spaces.loads("""
name: variants
blocks:
  - {filters: 16, layers: 1, stride: 1, op: [mb6], kernel: [3, 5]}
  - {filters: 24, layers: 2, stride: 2, variants: [identity, mb3_k3, mb6_k5_se0.25, ds_k5], filter_ratios: [1, 2]}
""")
    names = [d.name for d in space.decisions]
    assert names[7:] == ["block2.variant", "block2.skip", "block2.filters", "block2.layers"]
    assert space.decisions[7].options == ("identity", "mb3_k3", "mb6_k5_se0.25", "ds_k5")
    seen = set()
    for index in range(space.size):
        choices, rest = [], index
        for decision in space.decisions:
            choices.append(rest % len(decision))
            rest //= len(decision)
        arch = space.decode(choices)
        assert space.encode(arch) == tuple(choices)
        seen.add(str(arch))
    assert len(seen) == space.size  # one string per point: decoding stays injective
    stage = space.decode([0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]).stages[1]
    assert (stage.op, stage.expand, stage.kernel, stage.se) == ("ir", 6, 5, 0.25)


@pytest.mark.parametrize(("variants", "message"), [
    ("[mb3]", "give its kernel, e.g. mb3_k3"),
    ("[mb3_k4]", "kernel must be odd"),
    ("[identity_k3]", "an identity layer takes no kernel"),
    ("[mb3_x3]", "cannot read 'x3'"),
    ("[warp_k3]", "op must be one of"),
])
def test_a_bad_variant_is_one_line_naming_it(variants: str, message: str) -> None:
    with pytest.raises(SpaceError, match=message) as error:
        spaces.loads(f"name: bad\nblocks:\n  - {{filters: 16, layers: 1, stride: 1, variants: {variants}}}\n",
                     source="bad.yaml")
    assert "\n" not in str(error.value) and "variants" in str(error.value)


def _write_table(path: Path, space: spaces.SearchSpace, entries: dict) -> None:
    variants = [d for d in space.decisions if d.name.endswith(".variant")]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([d.name for d in variants] + ["accuracy", "params"])
        for key, entry in entries.items():
            writer.writerow([d.options[int(c)] for d, c in zip(variants, key)] + [entry["mean_acc"] / 100, entry["params"]])


def _every_key() -> list[str]:
    return ["".join(digits) for digits in itertools.product("012", repeat=8)]


def test_a_table_answers_what_it_holds_and_fails_what_it_lacks(tmp_path: Path) -> None:
    space = spaces.load("nas_bench_macro")
    entries = _benchmark()
    _write_table(tmp_path / "t.csv", space, entries)
    table = ResultTable.read(tmp_path / "t.csv", space)
    task = Task.from_space(space)
    key = "11111111"
    result = table.result(space.decode(_macro_choices(space, key)), task)
    assert result.ok and result.accuracy == pytest.approx(entries[key]["mean_acc"] / 100)
    assert result.reward == pytest.approx(result.accuracy)  # the space's reward is accuracy alone (w = 0)
    assert result.params == entries[key]["params"] and result.macs == entries[key]["flops"]  # MACs counted
    assert result.evaluator == "table"
    missing = next(k for k in _every_key() if k not in entries)
    lacking = table.result(space.decode(_macro_choices(space, missing)), task)
    assert not lacking.ok and "not in the table" in lacking.error and "64 architectures" in lacking.error
    # the same table keyed by architecture strings, as JSON
    records = [{"arch": str(space.decode(_macro_choices(space, k))), "accuracy": e["mean_acc"] / 100}
               for k, e in entries.items()]
    (tmp_path / "t.json").write_text(json.dumps(records))
    assert ResultTable.read(tmp_path / "t.json", space).rows.keys() == table.rows.keys()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda rows: [r[:8] + ["91.2", r[9]] if i else r for i, r in enumerate(rows)], "row 2: accuracy is 91.2; give it in"),
    (lambda rows: [r[:8] + ["params", "x"] if not i else r for i, r in enumerate(rows)], "no 'accuracy' column"),
    (lambda rows: [rows[0], ["mb9_k3"] + rows[1][1:]] + rows[2:], "row 2: block1.variant is 'mb9_k3'"),
    (lambda rows: rows + [rows[1]], "the same architecture as an earlier row"),
    (lambda rows: [r[1:] for r in rows], "missing block1.variant"),
    (lambda rows: rows[:1], "no rows"),
])
def test_a_bad_table_is_one_line_naming_the_row(tmp_path: Path, edit, message: str) -> None:
    space = spaces.load("nas_bench_macro")
    _write_table(tmp_path / "t.csv", space, _benchmark())
    rows = list(csv.reader((tmp_path / "t.csv").open()))
    with (tmp_path / "bad.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(edit(rows))
    with pytest.raises(TableError, match=message) as error:
        ResultTable.read(tmp_path / "bad.csv", space)
    assert isinstance(error.value, NasError) and "\n" not in str(error.value)


def _search(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nas", "search", "--space", "nas_bench_macro", "--evaluator", "table",
               "--name", "bench", "--storage", "runs", "--address", "local", "--json", *extra]
    return subprocess.run(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_a_missing_table_is_one_line_and_leaves_no_run(tmp_path: Path) -> None:
    done = _search(tmp_path, "--table", "nowhere.csv", "--trials", "2")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "nowhere.csv" in done.stderr and "cannot read it" in done.stderr
    assert not (tmp_path / "runs").exists()
    done = _search(tmp_path, "--trials", "2")
    assert done.returncode == 2 and "--evaluator table and --table FILE go together" in done.stderr


@pytest.mark.slow
def test_a_search_on_a_table_goes_through_the_driver_and_store(tmp_path: Path) -> None:
    """The whole driver (Ray Tune, the store, the controller) with the table as the evaluator, a relative
    table path included: every trial is answered with the table's accuracy, nothing is trained."""
    space = spaces.load("nas_bench_macro")
    entries = _benchmark()
    everything = {k: {"mean_acc": 50 + int(k, 3) % 40, "params": 1} for k in _every_key()} | entries
    _write_table(tmp_path / "t.csv", space, everything)
    done = _search(tmp_path, "--table", "t.csv", "--trials", "12", "--concurrency", "2", "--controller", "random")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["counts"]["ok"] + summary["counts"]["failed"] == 12
    from nas.runs.results import load_run

    trials = load_run(tmp_path / "runs/bench").trials
    accuracies = {str(space.decode(_macro_choices(space, k))): e["mean_acc"] / 100 for k, e in everything.items()}
    assert summary["counts"]["ok"] == 12 and len(trials) == 12 and (trials.evaluator == "table").all()
    for row in trials.itertuples():
        assert row.accuracy == pytest.approx(accuracies[row.arch])


@pytest.mark.slow
def test_a_supernet_search_of_a_space_with_variants_is_refused_in_one_line(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    from nas.app.cli import main

    assert main(["search", "--space", "nas_bench_macro", "--evaluator", "supernet", "--trials", "2",
                 "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "block1.variant chooses variants or an identity layer" in err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- NAS-Bench-201 as a choice space and a table


def _nas_bench_201_network(cell: tuple[str, ...]):
    """NAS-Bench-201's CIFAR-10 network (Dong & Yang, ICLR 2020, section 2.1) built here with torch, to count:
    a 3x3 stem, three stages of 5 cells (16, 32, 64 channels) joined by residual reduction blocks, batch
    norm, ReLU, global pool, linear. Each node of a cell sums its inputs' edges."""
    import torch
    from torch import nn

    def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Module:
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                             nn.BatchNorm2d(c_out))

    class Cell(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            make = {"nor_conv_3x3": lambda: relu_conv_bn(channels, channels, 3),
                    "nor_conv_1x1": lambda: relu_conv_bn(channels, channels, 1),
                    "avg_pool_3x3": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
                    "skip_connect": nn.Identity, "none": lambda: None}
            self.ops = [make[op]() for op in cell]
            self.modules_ = nn.ModuleList([op for op in self.ops if op is not None])

        def forward(self, x):
            nodes, edge = [x], 0
            for node in range(1, 4):
                total = torch.zeros_like(x)
                for source in range(node):
                    if self.ops[edge] is not None:
                        total = total + self.ops[edge](nodes[source])
                    edge += 1
                nodes.append(total)
            return nodes[-1]

    class Reduction(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.a, self.b = relu_conv_bn(c_in, c_out, 3, 2), relu_conv_bn(c_out, c_out, 3)
            self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

        def forward(self, x):
            return self.shortcut(x) + self.b(self.a(x))

    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)]
    for stage, channels in enumerate((16, 32, 64)):
        if stage:
            layers.append(Reduction(channels // 2, channels))
        layers += [Cell(channels) for _ in range(5)]
    layers += [nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def _nas_bench_201_script():
    import importlib.util

    path = ROOT / "scripts/table_from_nas_bench_201.py"
    spec = importlib.util.spec_from_file_location("table_from_nas_bench_201", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nas_bench_201_costs_are_torchs_count_of_its_network() -> None:
    """The table's MACs and parameters are torch's count of NAS-Bench-201's network (convs and the classifier,
    the benchmark's FLOPs convention), for the empty cell, the all-3x3 cell and mixed cells."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    script = _nas_bench_201_script()
    cells = [("none",) * 6, ("nor_conv_3x3",) * 6, script.edge_ops(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"),
        ("nor_conv_1x1", "none", "skip_connect", "avg_pool_3x3", "nor_conv_3x3", "nor_conv_1x1")]
    for cell in cells:
        net = _nas_bench_201_network(cell).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, 3, 32, 32))
        macs, params = script.cost(cell)
        assert params == sum(p.numel() for p in net.parameters()), cell
        assert macs == counter.get_total_flops() // 2 + 10, cell  # + the classifier's bias, as the benchmark counts
    assert script.cost(cells[0])[0] == 7_783_050 and script.cost(cells[1]) == (220_119_690, 1_531_546)


def test_nas_bench_201_results_become_a_table_the_search_reads(tmp_path: Path) -> None:
    script = _nas_bench_201_script()
    cells = ["|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops) for ops in itertools.islice(
        itertools.product(script.OPS, repeat=6), 0, 15625, 97)]
    results = tmp_path / "results.csv"
    with results.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "accuracy"])
        writer.writerows([cell, 50 + i % 40] for i, cell in enumerate(cells))
    assert script.main([str(results), str(tmp_path / "nb201.csv")]) == 0
    space = spaces.load(tmp_path / "nb201.space.yaml")
    assert space.size == 5 ** 6 and sum(len(d) > 1 for d in space.decisions) == 6
    table = ResultTable.read(tmp_path / "nb201.csv", space)
    assert len(table) == len(cells)
    row = next(csv.DictReader((tmp_path / "nb201.csv").open()))
    arch = space.decode([0 if len(d) == 1 else d.options.index(row[d.name]) for d in space.decisions])
    result = table.result(arch, Task.from_space(space))
    assert result.ok and result.accuracy == pytest.approx(float(row["accuracy"])) and result.macs == int(row["macs"])
    results.write_text("arch,accuracy\n|nor_conv_3x3~0|+|bad~0|none~1|,90\n")
    assert script.main([str(results), str(tmp_path / "bad.csv")]) == 2
