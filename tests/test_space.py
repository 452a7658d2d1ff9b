"""Search spaces: loading, validation errors, decisions, size, sample/mutate/encode/decode."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nas import space as spaces
from nas.space import SpaceError
from tests.conftest import SPACES

MINIMAL = """\
name: tiny
blocks:
  - {filters: 16, layers: 1, stride: 1}
  - {filters: 24, layers: 2, stride: 2}
"""


def test_default_space_has_the_mnasnet_structure(mnasnet_space) -> None:
    names = [d.name for d in mnasnet_space.decisions]
    assert names[0] == "activation"
    per_block = ("op", "kernel", "se", "skip", "filters", "layers")
    assert names[1:] == [f"block{b}.{f}" for b in range(1, 8) for f in per_block]
    by_name = {d.name: d.options for d in mnasnet_space.decisions}
    assert by_name["block3.op"] == ("conv", "ds", "mb3", "mb6")
    assert by_name["block3.filters"] == (24, 32, 40)          # 0.75 / 1.0 / 1.25 x 32
    assert by_name["block5.filters"] == (72, 96, 112, 120)    # 112 added for B0 and A1
    assert by_name["block6.filters"] == (120, 160, 192, 200)  # 192 added for B0
    assert by_name["block4.layers"] == (3, 4, 5)              # MobileNetV2's 4, -1/0/+1
    assert mnasnet_space.target_resolution == 224
    assert mnasnet_space.reward.target_macs == 400e6 and mnasnet_space.reward.w == -0.07


def test_size_is_the_number_of_distinct_architectures(mnasnet_space) -> None:
    assert mnasnet_space.size == math.prod(len(d) for d in mnasnet_space.decisions)
    small = spaces.loads(MINIMAL + "choices: {kernel: [3, 5], se: [0, 0.25]}\n")
    archs = {small.decode((0, 0, k1, s1, 0, 0, 0, 0, k2, s2, 0, 0, 0))
             for k1 in range(2) for s1 in range(2) for k2 in range(2) for s2 in range(2)}
    assert small.size == 16 == len(archs)


def test_references_are_points_of_the_default_space(mnasnet_space, b0, mnasnet_a1) -> None:
    assert mnasnet_space.contains(b0) and mnasnet_space.contains(mnasnet_a1)
    assert mnasnet_space.decode(mnasnet_space.encode(b0)) == b0


def test_encode_decode_round_trip(mnasnet_space) -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        choices = mnasnet_space.sample_choices(rng)
        arch = mnasnet_space.decode(choices)
        assert mnasnet_space.encode(arch) == choices
        assert mnasnet_space.contains(arch)


def test_sampling_is_seeded_and_covers_options(mnasnet_space) -> None:
    first = [mnasnet_space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert first[0] == first[1]
    rng = np.random.default_rng(4)
    ops = {mnasnet_space.sample(rng).stages[2].op for _ in range(100)}
    assert ops == {"cn", "ds", "ir"}


def test_mutate_changes_exactly_one_decision(mnasnet_space) -> None:
    rng = np.random.default_rng(1)
    arch = mnasnet_space.sample(rng)
    for _ in range(200):
        child = mnasnet_space.mutate(arch, rng)
        before, after = mnasnet_space.encode(arch), mnasnet_space.encode(child)
        assert sum(a != b for a, b in zip(before, after)) == 1
        arch = child


def test_contains_rejects_outside_points(mnasnet_space, b0) -> None:
    from dataclasses import replace
    wider = replace(b0, stages=(replace(b0.stages[0], kernel=7), *b0.stages[1:]))
    assert not mnasnet_space.contains(wider)
    assert not mnasnet_space.contains(replace(b0, head=1536))
    with pytest.raises(ValueError, match="block1.kernel is 7"):
        mnasnet_space.encode(wider)


def test_single_point_files_load_as_architectures(b0, mnasnet_a1) -> None:
    assert str(b0).startswith("stem_c32_s2,ds_r1_k3_s1_e1_c16_se0.25,ir_r2_k3_s2_e6_c24_se0.25")
    assert mnasnet_a1.act == "relu" and mnasnet_a1.stages[0].skip == "none"


def test_numbers_written_the_papers_way_are_accepted() -> None:
    space = spaces.loads(MINIMAL + "reward: {target_macs: 400e6, w: -0.07}\n")
    assert space.reward.target_macs == 400e6


# (kind, YAML text, key path in the message, fragment of what is allowed)
BAD = [
    ("unknown key", MINIMAL + "colour: blue\n", "colour", "unknown key; allowed keys here: name"),
    ("unknown nested key", MINIMAL.replace("stride: 1}", "stride: 1, kernal: 3}"), "blocks[0].kernal",
     "allowed keys here: filters, layers, stride"),
    ("wrong type", MINIMAL.replace("filters: 16", "filters: sixteen"), "blocks[0].filters",
     "valid integer"),
    ("empty choice list", MINIMAL + "choices: {kernel: []}\n", "choices.kernel", "at least 1 item"),
    ("negative filters", MINIMAL.replace("filters: 16", "filters: -16"), "blocks[0].filters",
     "greater than or equal to 1"),
    # every size has bounds, named in the error (a typo must not become an hour of allocation)
    ("layers 10^9", MINIMAL.replace("layers: 1,", "layers: 1000000000,"), "blocks[0].layers",
     "less than or equal to 1024"),
    ("filters 10^8", MINIMAL.replace("filters: 16", "filters: 100000000"), "blocks[0].filters",
     "less than or equal to 32768"),
    ("kernel 99999", MINIMAL + "choices: {kernel: [99999]}\n", "choices.kernel[0]", "less than or equal to 15"),
    ("op mb1000000", MINIMAL + "choices: {op: [mb1000000]}\n", "choices.op[0]", "expansion 1 <= N <= 16"),
    ("resolution 1e8", MINIMAL + "target_resolution: 100000000\n", "target_resolution", "less than or equal to 4096"),
    ("lr inf", MINIMAL + "proxy: {lr: .inf}\n", "proxy.lr", "finite"),
    ("ratio rounds to 0 channels", MINIMAL + "choices: {filter_ratios: [0.01, 1.0]}\n",
     "blocks[0].filter_ratios", "must round to 1..32768 channels"),
    ("3000 blocks", "name: big\nblocks:\n" + "  - {filters: 8, layers: 1, stride: 1}\n" * 3000, "blocks",
     "at most 64 items"),
    ("alias", MINIMAL + "choices: &c {kernel: [3]}\nx: *c\n", "", "aliases (*name) are not allowed"),
    ("nested deep", MINIMAL + "proxy: " + "[" * 40 + "]" * 40 + "\n", "", "nested more than 16 levels"),
    ("huge value in error", MINIMAL.replace("name: tiny", "name: [" + "x, " * 100000 + "]"), "name",
     "chars)"),
    ("unknown op", MINIMAL + "choices: {op: [mb6, sepconv]}\n", "choices.op[1]", "op must be one of conv (regular conv), ds"),
    ("duplicate key", MINIMAL + "name: again\n", "name", "key written twice"),
    ("stride not 1/2", MINIMAL.replace("stride: 2", "stride: 3"), "blocks[1].stride", "1 or 2"),
    ("missing blocks", "name: tiny\n", "blocks", "required key is missing"),
    ("empty blocks", "name: tiny\nblocks: []\n", "blocks", "at least 1 item"),
    ("bad reward exponent", MINIMAL + "reward: {w: 0.5}\n", "reward.w", "less than or equal to 0"),
    ("malformed file", "name: [unclosed\n", "", "not valid YAML at line"),
    ("not a mapping", "- just\n- a list\n", "", "expected a mapping"),
    ("even kernel", MINIMAL + "choices: {kernel: [3, 4]}\n", "choices.kernel[1]", "odd"),
    ("layers below one", MINIMAL + "choices: {layer_deltas: [-1, 0]}\n", "blocks[0].layer_deltas",
     "must be in 1..1024"),
]


@pytest.mark.slow
@pytest.mark.parametrize("kind, text, key, allowed", BAD, ids=[b[0] for b in BAD])
def test_bad_yaml_gives_one_precise_error(tmp_path: Path, kind: str, text: str, key: str, allowed: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as caught:
        spaces.load(path)
    error = caught.value
    message = str(error)
    assert message.startswith(f"{path}: "), message
    assert error.key == key, message
    assert allowed in message, message
    assert "\n" not in message


def test_files_that_are_not_utf8_or_too_large_are_refused_in_one_line(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("name: caf\xe9\nblocks: []\n".encode("latin-1"))
    with pytest.raises(SpaceError, match="not UTF-8 text"):
        spaces.load(latin)
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(SpaceError, match="larger than 1024 KiB"):
        spaces.load(big)


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}" + f", *{chr(97 + i)}" * 9 + "]"
                                                     for i in range(8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpaceError, match="aliases"):
        spaces.load(bomb)


def test_missing_file_is_a_space_error(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="cannot read the file"):
        spaces.load(tmp_path / "nope.yaml")


def test_multi_point_space_is_not_an_architecture_file() -> None:
    with pytest.raises(SpaceError, match="an architecture file must hold one"):
        spaces.load_architecture("search_spaces/mnasnet.yaml")


def test_architecture_yaml_round_trips(mnasnet_space, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    for index in range(50):
        arch = mnasnet_space.sample(rng)
        path = tmp_path / f"a{index}.yaml"
        path.write_text(spaces.architecture_yaml(arch, name=f"a{index}", comment="exported\nby a test"))
        assert spaces.load_architecture(str(path)) == arch


def test_shipped_spaces_are_found_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ray submit` runs the script from the home folder: the default space paths must still resolve."""
    monkeypatch.chdir(tmp_path)
    from nas.settings import DEFAULT_SCALING_BASE as SCALE_DEFAULT
    from nas.settings import DEFAULT_SPACE

    reference = spaces.load(SPACES / "mnasnet.yaml")
    for name in (DEFAULT_SPACE, "mnasnet", "mnasnet.yaml"):
        assert spaces.load(name).decisions == reference.decisions
    assert spaces.load_architecture(SCALE_DEFAULT) == spaces.load_architecture(str(SPACES / "efficientnet_b0.yaml"))
    (tmp_path / "mnasnet.yaml").write_text((SPACES / "mnasnet_a1.yaml").read_text())
    assert spaces.load("mnasnet.yaml").size == 1  # a file in the current folder wins over a shipped one
    with pytest.raises(SpaceError, match=r"nothere\.yaml: cannot read the file .*also looked in .*search_spaces"):
        spaces.load("search_spaces/nothere.yaml")
