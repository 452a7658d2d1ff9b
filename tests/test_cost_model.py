"""Builder and analytic cost agree with torch, torchvision and the papers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from nas.core import cost
from nas.core.arch import Architecture
from nas.network import builder as model


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def counted_macs(module: torch.nn.Module, resolution: int, batch: int = 1) -> tuple[float, torch.Tensor]:
    """Multiply-adds as torch's FlopCounterMode sees them (it counts FLOPs = 2 x MACs)."""
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(torch.randn(batch, 3, resolution, resolution))
    return counter.get_total_flops() / 2 / batch, out


def test_b0_matches_torchvision_parameters_exactly(b0: Architecture) -> None:
    reference = n_params(torchvision.models.efficientnet_b0())
    assert reference == 5_288_548
    assert n_params(model.build(b0)) == reference
    assert cost.count(b0, 224).params == reference


def test_b0_macs_match_the_paper(b0: Architecture) -> None:
    macs = cost.count(b0, 224).macs
    assert abs(macs / 0.39e9 - 1) < 0.02  # EfficientNet Table 2: 0.39 B


def test_mnasnet_a1_matches_the_paper(mnasnet_a1: Architecture) -> None:
    total = cost.count(mnasnet_a1, 224)
    assert abs(total.params / 3.9e6 - 1) < 0.02   # MnasNet Table 1: 3.9 M
    assert abs(total.macs / 312e6 - 1) < 0.02     # 312 M multiply-adds
    assert n_params(model.build(mnasnet_a1)) == total.params


@pytest.mark.slow
def test_analytic_cost_matches_built_models(mnasnet_space) -> None:
    """>= 200 random members of the default space: exact params, MACs within 1 % of FlopCounterMode,
    and a forward pass at 224 and at the proxy resolution (with the proxy adaptation)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(2026)
    proxy = mnasnet_space.proxy
    worst = 0.0
    for _ in range(200):
        arch = mnasnet_space.sample(rng)
        net = model.build(arch)
        analytic = cost.count(arch, 224)
        assert analytic.params == n_params(net), str(arch)
        macs, out = counted_macs(net, 224)
        worst = max(worst, abs(analytic.macs / macs - 1))
        assert out.shape == (1, 1000) and torch.isfinite(out).all()
        small = arch.adapted(stem_stride=proxy.stem_stride, drop_downsamples=proxy.drop_downsamples)
        proxy_net = model.build(small, num_classes=10)
        proxy_macs, proxy_out = counted_macs(proxy_net, proxy.resolution, batch=2)
        assert proxy_out.shape == (2, 10)
        assert abs(cost.count(small, proxy.resolution, num_classes=10).macs / proxy_macs - 1) < 0.01
    assert worst < 0.01


def test_pool_skip_and_conv_blocks_are_priced_like_they_are_built() -> None:
    arch = Architecture.parse("cn_r2_k5_s2_e1_c24_se0.25_poolskip,ir_r2_k3_s2_e3_c40_poolskip,ds_r1_k3_s1_c40")
    macs, _ = counted_macs(model.build(arch), 64)
    total = cost.count(arch, 64)
    assert total.macs == macs and total.params == n_params(model.build(arch))


@pytest.mark.parametrize("width, depth", [(1.0, 1.1), (1.1, 1.2), (1.2, 1.4)])
def test_scaled_build_matches_torchvision_family(b0: Architecture, width: float, depth: float) -> None:
    from nas.core.arch import scale
    reference = {(1.0, 1.1): torchvision.models.efficientnet_b1, (1.1, 1.2): torchvision.models.efficientnet_b2,
                 (1.2, 1.4): torchvision.models.efficientnet_b3}[(width, depth)]
    built = model.build(b0, width_mult=width, depth_mult=depth)
    assert n_params(built) == n_params(reference()) == cost.count(scale(b0, width=width, depth=depth)).params


def test_proxy_adaptation_keeps_spatial_maps(b0: Architecture) -> None:
    small = b0.adapted(stem_stride=1, drop_downsamples=1)
    features = model.build(small, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    maps = features.blocks(features.stem(x))
    assert maps.shape[-1] == 4  # 32 / 2^3: stem and one block no longer downsample
    assert cost.count(b0, 224).macs != cost.count(small, 224).macs  # cost is taken on the original


def test_resolution_changes_macs_not_params(b0: Architecture) -> None:
    low, high = cost.count(b0, 224), cost.count(b0, 448)
    assert low.params == high.params
    assert 3.5 < high.macs / low.macs < 4.1
