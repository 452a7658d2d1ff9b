"""Architecture values: canonical strings, timm block strings, scaling rules."""

from __future__ import annotations

import numpy as np
import pytest

from nas.core.arch import ArchError, Architecture, Stage, make_divisible, scale

# The block strings of EfficientNet-B0 as the TensorFlow TPU code writes them (DESIGN.md).
B0_TPU = ("r1_k3_s11_e1_i32_o16_se0.25 r2_k3_s22_e6_i16_o24_se0.25 r2_k5_s22_e6_i24_o40_se0.25 "
          "r3_k3_s22_e6_i40_o80_se0.25 r3_k5_s11_e6_i80_o112_se0.25 r4_k5_s22_e6_i112_o192_se0.25 "
          "r1_k3_s11_e6_i192_o320_se0.25")


def test_b0_tpu_block_strings_parse_to_the_reference(b0: Architecture) -> None:
    tokens = " ".join(f"ir_{t}" for t in B0_TPU.split())
    assert Architecture.parse(tokens) == b0  # ir with e1 is the depthwise-separable block


def test_canonical_string_round_trip_for_random_archs(mnasnet_space) -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        arch = mnasnet_space.sample(rng)
        text = str(arch)
        again = Architecture.parse(text)
        assert again == arch and str(again) == text and again.digest == arch.digest


def test_timm_block_strings_round_trip(b0: Architecture, mnasnet_a1: Architecture) -> None:
    assert b0.timm_arch_def()[0] == ["ds_r1_k3_s1_e1_c16_se0.25"]
    assert b0.timm_arch_def()[1] == ["ir_r2_k3_s2_e6_c24_se0.25"]
    assert mnasnet_a1.timm_arch_def()[0] == ["ds_r1_k3_s1_e1_c16_noskip"]
    for arch in (b0, mnasnet_a1):
        blocks = [block for stage in arch.timm_arch_def() for block in stage]
        again = Architecture.parse(",".join(blocks))
        assert again.stages == arch.stages


def test_timm_export_refuses_what_timm_cannot_express() -> None:
    arch = Architecture.parse("ir_r2_k3_s2_e6_c24_poolskip")
    with pytest.raises(ArchError, match="pooling skip"):
        arch.timm_arch_def()


def test_architectures_are_hashable_values() -> None:
    a = Architecture.parse("ds_r1_k3_s1_c16,ir_r2_k5_s2_e6_c24_se0.25")
    b = Architecture.parse("ds_r1_k3_s1_e1_c16 ir_r2_k5_s22_e6_c24_se0.25")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.stem = 16  # type: ignore[misc]


@pytest.mark.parametrize("text, fragment", [
    ("ir_r2_k4_s2_e6_c24", "kernel must be odd and in 1..15, got 4"),
    ("ir_r2_k99999_s2_e6_c24", "kernel must be odd and in 1..15, got 99999"),
    ("ir_r1000000000_k3_s2_e6_c24", "repeats must be in 1..1024, got 1000000000"),
    ("ir_r1_k3_s2_e6_c100000000000000000000", "cannot read option 'c100000000000000000000'"),
    ("ir_r1_k3_s2_e6_c100000", "channels must be in 1..32768, got 100000"),
    ("ir_r1_k3_s2_e1000000_c24", "expand must be in 1..16, got 1000000"),
    ("stem_c100000,ds_r1_k3_s1_c16", "stem channels must be in 1..32768"),
    ("ir_r2_k3_s3_e6_c24", "stride must be 1 or 2, got 3"),
    ("zz_r1_k3_s1_c16", "op 'zz'"),
    ("ir_r1_k3_s1_q9_c16", "cannot read option 'q9'"),
    ("ir_r1_k3_s1", "missing option(s) c"),
    ("ds_r1_k3_s1_e6_c16", "takes no expansion"),
    ("stem_c32_x2,ds_r1_k3_s1_c16", "stem token"),
    ("ds_r1_k3_s1_c16,act_tanh", "activation 'tanh'"),
    ("", "1..64 stages, got 0"),
])
def test_bad_strings_name_the_bad_token(text: str, fragment: str) -> None:
    with pytest.raises(ArchError) as error:
        Architecture.parse(text)
    assert fragment in str(error.value)


def test_make_divisible_follows_efficientnet_rounding() -> None:
    # Hand-computed: nearest multiple of 8, bumped up when that loses more than 10 %.
    assert make_divisible(32 * 1.1) == 32   # 35.2 -> 32 (>= 31.68)
    assert make_divisible(16 * 1.1) == 16   # 17.6 -> 16 (>= 15.84)
    assert make_divisible(24 * 1.1) == 24   # 26.4 -> 24 (>= 23.76)
    assert make_divisible(40 * 1.1) == 48   # 44 -> 48 (round half up)
    assert make_divisible(12.0) == 16 and make_divisible(3) == 8


def test_scale_rounds_channels_and_ceils_repeats(b0: Architecture) -> None:
    scaled = scale(b0, width=1.1, depth=1.2)
    assert [s.channels for s in scaled.stages] == [16, 24, 48, 88, 120, 208, 352]
    assert [s.repeats for s in scaled.stages] == [2, 3, 3, 4, 4, 5, 2]
    assert scaled.stem == 32 and scaled.head == 1408
    assert scale(b0) == b0


def test_adapted_drops_early_downsampling_only(b0: Architecture) -> None:
    proxy = b0.adapted(stem_stride=1, drop_downsamples=1)
    assert proxy.stem_stride == 1
    assert [s.stride for s in proxy.stages] == [1, 1, 2, 2, 1, 2, 1]
    assert b0.stem_stride == 2  # the original is untouched


def test_stage_normalises_unexpanded_mbconv() -> None:
    assert Stage("ir", 1, 3, 1, 1, 16).op == "ds"
