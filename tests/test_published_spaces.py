"""The FBNet and ProxylessNAS spaces as their papers and reference code state them, each with its best
published network as a point: checked layer for layer against timm's FBNet-C and pytorchcv's
ProxylessNAS-Mobile, and against torch's own count of every sampled member."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas import space as spaces
from nas.core import cost
from nas.core.arch import ArchError, Architecture
from nas.network.blocks import ChannelShuffle
from nas.network.builder import build
from nas.space.references import reference_points


def _point(name: str) -> Architecture:
    point = spaces.load(name)
    assert point.size == 1
    return point.decode((0,) * len(point.decisions))


def _weight_shapes(module: torch.nn.Module) -> list[tuple[int, ...]]:
    """Every conv and linear weight's shape, in the order the network applies them."""
    return [tuple(m.weight.shape) for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def _macs(module: torch.nn.Module, resolution: int) -> float:
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(1, 3, resolution, resolution))
    return counter.get_total_flops() / 2  # FLOPs = 2 x multiply-adds


def test_fbnet_c_is_a_point_of_the_fbnet_space_and_is_timms_fbnet_c() -> None:
    import timm
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet

    space, fbnet_c = spaces.load("fbnet"), _point("fbnet_c")
    assert space.size == 9 ** 16 * 8 ** 6 and sum(len(d) > 1 for d in space.decisions) == 22  # a choice per layer
    assert reference_points(space) == {"fbnet_c": fbnet_c}
    reference = timm.create_model("fbnetc_100")
    ours = build(fbnet_c)
    assert _weight_shapes(ours) == _weight_shapes(reference)
    price = cost.count(fbnet_c, 224)
    assert price.params == sum(p.numel() for p in ours.parameters()) == 5_572_200
    assert price.macs == _macs(reference, 224)  # multiply-adds, exactly
    # its timm block strings build timm's FBNet-C: timm's inverted residual keeps its 1x1 at e1, like FBNet's
    rebuilt = EfficientNet(block_args=decode_arch_def(fbnet_c.timm_arch_def()), stem_size=16, fix_stem=True,
                           num_features=1984, round_chs_fn=lambda channels, *_, **__: channels)
    assert _weight_shapes(rebuilt) == _weight_shapes(reference)


def test_proxylessnas_mobile_is_a_point_of_the_proxylessnas_space_and_is_the_released_network() -> None:
    from pytorchcv.models.proxylessnas import proxylessnas_mobile

    space, mobile = spaces.load("proxylessnas"), _point("proxylessnas_mobile")
    assert space.size == 6 ** 6 * 7 ** 15 and sum(len(d) > 1 for d in space.decisions) == 21  # the first is fixed
    assert reference_points(space) == {"proxylessnas_mobile": mobile}
    reference = proxylessnas_mobile()
    ours = build(mobile)
    assert _weight_shapes(ours) == _weight_shapes(reference)
    assert [type(m) for m in ours.modules() if isinstance(m, torch.nn.ReLU6)]  # ReLU6, as released
    price = cost.count(mobile, 224)
    assert price.params == sum(p.numel() for p in ours.parameters()) == 4_080_512
    assert price.macs == _macs(reference, 224)  # multiply-adds, exactly


@pytest.mark.parametrize("name", ["fbnet", "proxylessnas"])
def test_sampled_members_cost_what_torch_builds(name: str) -> None:
    """Grouped blocks, shuffles and identity layers included: exact parameters, multiply-adds within 1 % of
    torch's FlopCounterMode, and a forward pass at the proxy's resolution with its adaptation."""
    space = spaces.load(name)
    rng = np.random.default_rng(7)
    grouped = 0
    for _ in range(6):
        arch = space.sample(rng)
        net = build(arch)
        price = cost.count(arch, 224)
        assert price.params == sum(p.numel() for p in net.parameters()), str(arch)
        assert price.macs == pytest.approx(_macs(net, 224), rel=0.01), str(arch)
        grouped += sum(isinstance(m, ChannelShuffle) for m in net.modules())
        small = arch.adapted(stem_stride=space.proxy.stem_stride, drop_downsamples=space.proxy.drop_downsamples)
        assert build(small, num_classes=10).eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert (grouped > 0) == (name == "fbnet")


def test_a_grouped_fbnet_block_is_grouped_convs_around_torchs_channel_shuffle() -> None:
    arch = Architecture.parse("stem_c16_s2,fb_r2_k5_s2_e1_c24_g2,head_c64,act_relu")
    assert str(Architecture.parse(str(arch))) == str(arch)
    block = build(arch, num_classes=10).blocks[0].body
    convs = [m[0] for m in block if isinstance(m, torch.nn.Sequential)]
    assert [(c.in_channels, c.out_channels, c.groups) for c in convs] == [(16, 16, 2), (16, 16, 16), (16, 24, 2)]
    assert isinstance(block[1], ChannelShuffle)
    x = torch.randn(3, 12, 5, 5)
    assert torch.equal(ChannelShuffle(3)(x), torch.nn.ChannelShuffle(3)(x))


def test_a_grouped_network_runs_the_same_in_onnx_runtime(tmp_path) -> None:
    """torch's own ChannelShuffle has no ONNX export; ours exports through both of our exporters (the latency
    timing's, and ``nas export``'s with a dynamic batch), and ONNX Runtime computes what torch does."""
    import onnxruntime

    from nas.app.export import export_program
    from nas.latency.timing import onnx_bytes

    arch = Architecture.parse("stem_c16_s1,fb_r2_k3_s2_e1_c24_g2,ir_r1_k3_s1_e6_c32,head_c64,act_relu")
    net = build(arch, num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = net(x).numpy()
    export_program(net, tmp_path / "net.onnx", fmt="onnx", resolution=32, in_channels=3)
    for program in (onnx_bytes(net, x[:1], dynamic_batch=True), (tmp_path / "net.onnx").read_bytes()):
        session = onnxruntime.InferenceSession(program, providers=["CPUExecutionProvider"])
        assert np.allclose(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0], expected, atol=1e-4)


@pytest.mark.parametrize(("text", "message"), [
    ("ir_r1_k3_s1_e6_c24_g2", "only an FBNet block"),
    ("fb_r1_k3_s1_e1_c25_g2", "do not split into 2 groups"),
    ("stem_c18_s2,fb_r1_k3_s1_e1_c24_g4", "input channels"),
])
def test_impossible_groups_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ArchError, match=message) as error:
        Architecture.parse(text)
    assert "\n" not in str(error.value)


def test_a_grouped_variant_outside_an_fbnet_block_is_refused_in_the_space_file() -> None:
    from nas.settings import SpaceError

    with pytest.raises(SpaceError, match="only an FBNet block"):
        spaces.loads("name: x\nblocks:\n  - {filters: 16, layers: 1, stride: 1, variants: [mb6_k3_g2]}\n")
    space = spaces.loads("name: x\nblocks:\n  - {filters: 16, layers: 1, stride: 1, variants: [fb6_k3, fb1_k3_g2]}\n")
    # an ungrouped, expanding FBNet block is an MBConv
    assert list(space.decisions[1].options) == ["mb6_k3", "fb1_k3_g2"]


def test_a_grouped_architecture_written_as_a_file_reads_back_the_same() -> None:
    from nas.space.writer import architecture_yaml

    space = spaces.load("fbnet")
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(20)]
    assert any(stage.groups > 1 for arch in archs for stage in arch.stages)
    for arch in archs:
        point = spaces.loads(architecture_yaml(arch, name="found"))
        assert point.decode((0,) * len(point.decisions)) == arch


def test_timm_cannot_build_a_grouped_block_and_says_so() -> None:
    with pytest.raises(ArchError, match="timm has no grouped 1x1 convs"):
        Architecture.parse("fb_r1_k3_s1_e1_c24_g2").timm_arch_def()
