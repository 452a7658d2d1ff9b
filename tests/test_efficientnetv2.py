"""EfficientNetV2's search: Fused-MBConv in the space, builder and cost; EfficientNetV2-S as a point;
the training-aware reward A x S^w x P^v."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torchvision
from pydantic import ValidationError
from torch.utils.flop_counter import FlopCounterMode

from nas import space as spaces
from nas.core import cost, reward
from nas.core.arch import Architecture
from nas.network import builder as model
from nas.settings import ProxySettings, RewardSettings
from nas.training.evaluate import Task, evaluate

V2_S = ("stem_c24_s2,cn_r2_k3_s1_e1_c24,er_r4_k3_s2_e4_c48,er_r4_k3_s2_e4_c64,ir_r6_k3_s2_e4_c128_se0.25,"
        "ir_r9_k3_s1_e6_c160_se0.25,ir_r15_k3_s2_e6_c256_se0.25,head_c1280,act_silu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def flop_counted_macs(net: torch.nn.Module, resolution: int) -> int:
    with torch.device("meta"):
        x = torch.empty(1, 3, resolution, resolution)
    with FlopCounterMode(display=False) as counter:
        net.eval()(x)
    return counter.get_total_flops() // 2


def test_efficientnetv2_s_file_is_torchvisions_network() -> None:
    arch = spaces.load_architecture("efficientnetv2_s")
    assert str(arch) == V2_S
    reference = sum(p.numel() for p in torchvision.models.efficientnet_v2_s().parameters())
    assert reference == 21_458_488
    assert cost.count(arch, 384).params == reference == sum(p.numel() for p in model.build(arch).parameters())


def test_efficientnetv2_s_parameters_equal_timms() -> None:
    timm = pytest.importorskip("timm")
    reference = sum(p.numel() for p in timm.create_model("efficientnetv2_s", pretrained=False).parameters())
    assert cost.count(spaces.load_architecture("efficientnetv2_s")).params == reference == 21_458_488


@pytest.mark.parametrize("resolution, expected", [(300, 5_307_561_248), (384, 8_365_617_152)])
def test_efficientnetv2_s_macs_equal_torchs_flop_counter(resolution: int, expected: int) -> None:
    arch = spaces.load_architecture("efficientnetv2_s")
    with torch.device("meta"):
        net = model.build(arch)
    assert cost.count(arch, resolution).macs == flop_counted_macs(net, resolution) == expected


def test_efficientnetv2_s_is_a_point_of_the_v2_space() -> None:
    space = spaces.load("efficientnetv2")
    assert space.contains(spaces.load_architecture("efficientnetv2_s"))
    assert list(spaces.reference_points(space)) == ["efficientnetv2_s"]
    ops = {d.name: d.options for d in space.decisions}["block2.op"]
    assert ops == ("ds", "mb4", "mb6", "conv", "fmb4", "fmb6")  # mb1 and fmb1 are ds and conv
    assert all(d.options == ("identity",) for d in space.decisions if d.name.endswith(".skip"))


@pytest.mark.slow
def test_cost_equals_the_built_network_on_random_v2_architectures() -> None:
    space = spaces.load("efficientnetv2")
    rng = np.random.default_rng(21)
    fused = 0
    for _ in range(30):
        arch = space.sample(rng)
        fused += sum(stage.op == "er" for stage in arch.stages)
        with torch.device("meta"):
            net = model.build(arch)
        analytic = cost.count(arch, 96)
        assert analytic.params == sum(p.numel() for p in net.parameters()), str(arch)
        assert analytic.macs == flop_counted_macs(net, 96), str(arch)
    assert fused > 10  # the sample exercised Fused-MBConv


def test_fused_mbconv_layers_are_torchvisions() -> None:
    """Fused-MBConv e4 (k3, 48 -> 64, stride 2) has torchvision FusedMBConv's structure and size."""
    from torchvision.models.efficientnet import FusedMBConv, FusedMBConvConfig

    ours = model.build(Architecture.parse("stem_c48_s2,er_r1_k3_s2_e4_c64,head_c0"), num_classes=10).blocks[0]
    theirs = FusedMBConv(FusedMBConvConfig(4, 3, 2, 48, 64, 1), 0.0, torch.nn.BatchNorm2d)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    ours_convs = [m.weight.shape for m in ours.modules() if isinstance(m, torch.nn.Conv2d)]
    theirs_convs = [m.weight.shape for m in theirs.modules() if isinstance(m, torch.nn.Conv2d)]
    assert ours_convs == theirs_convs == [torch.Size([192, 48, 3, 3]), torch.Size([64, 192, 1, 1])]


def test_training_aware_reward_is_a_times_s_to_the_w_times_p_to_the_v() -> None:
    assert reward.training_aware(0.8, 2.0, 0.5, w=-0.07, v=-0.05) == pytest.approx(0.8 * 2 ** -0.07 * 0.5 ** -0.05)
    with pytest.raises(ValidationError, match="exactly one of step_reference"):
        RewardSettings(kind="training_aware")
    with pytest.raises(ValidationError, match="exactly one of step_reference"):
        RewardSettings(kind="training_aware", step_ms=10, step_reference="efficientnetv2_s")


TINY_V2 = Architecture.parse("stem_c8_s2,cn_r1_k3_s1_e1_c8,er_r1_k3_s2_e4_c16,ir_r1_k3_s2_e4_c24_se0.25,head_c32,"
                             "act_silu")
PROXY = ProxySettings(dataset="synthetic", resolution=16, epochs=1, batch_size=32, max_train_samples=256,
                      max_val_samples=64)


def test_a_trial_measures_its_step_time_and_is_scored_with_it() -> None:
    task = Task(proxy=PROXY, device="cpu", reward=RewardSettings(kind="training_aware", step_ms=10.0,
                                                                 target_params=1e5))
    result = evaluate(TINY_V2, task)
    assert result.ok and result.step_ms > 0
    expected = result.accuracy * (result.step_ms / 10.0) ** -0.07 * (result.params / 1e5) ** -0.05
    assert result.reward == pytest.approx(expected)


@pytest.mark.slow
def test_the_reference_architecture_scores_its_own_step_time_as_one() -> None:
    """Normalized by itself, measured the same way: S is about 1, so the reward is about A x P^v."""
    task = Task(proxy=PROXY, device="cpu", reward=RewardSettings(kind="training_aware", step_reference=str(TINY_V2),
                                                                 target_params=1e5))
    result = evaluate(TINY_V2, task)
    assert result.ok
    no_time = result.accuracy * (result.params / 1e5) ** -0.05
    assert result.reward == pytest.approx(no_time, rel=0.05)  # S^w with S within ~2x of 1 moves it < 5 %
    slower = evaluate(TINY_V2, replace(task, reward=task.reward.changed(step_reference=None, step_ms=result.step_ms / 4)))
    assert slower.reward < result.reward  # 4x slower than the reference: penalized


@pytest.mark.slow
@pytest.mark.parametrize(("width", "depth"), [(1.1, 1.2), (1.21, 1.44)])
def test_compound_scaled_efficientnetv2_s_is_timms_scaled_v2_s(width: float, depth: float) -> None:
    """EfficientNet's uniform width/depth rules applied to V2-S give the network timm builds with the same
    channel and depth multipliers (V2's own non-uniform scaling of its M/L/XL models is not this)."""
    pytest.importorskip("timm")
    from timm.models.efficientnet import _gen_efficientnetv2_s

    from nas.core import scaling

    ours = scaling.scale_dims(spaces.load_architecture("efficientnetv2_s"), width=width, depth=depth).arch
    theirs = _gen_efficientnetv2_s("efficientnetv2_s", channel_multiplier=width, depth_multiplier=depth)
    assert [stage.repeats for stage in ours.stages] == [len(stage) for stage in theirs.blocks]
    assert [stage.op for stage in ours.stages] == ["cn", "er", "er", "ir", "ir", "ir"]
    net = model.build(ours)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert cost.count(ours, 384).params == sum(p.numel() for p in theirs.parameters())
