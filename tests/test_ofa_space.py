"""The Once-for-All MobileNetV3 space and what it needs of the builder (a stage's own activation, MobileNetV3's
squeeze-excitation and head, elastic depth), held to outside code: every network is the one the authors' `ofa`
package builds for the same choices, computing the same function; MobileNetV3-Large is timm's and torchvision's;
the published Note8 network is a point of the space."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas import space as spaces
from nas.core import cost, ops
from nas.core.arch import ArchError, Architecture
from nas.network.builder import build
from nas.space.references import reference_points

MOBILENETV3_LARGE = (
    "stem_c16_s2,ds_r1_k3_s1_e1_c16_nre,ir_r1_k3_s2_e4_c24_nre,ir_r1_k3_s1_e3_c24_nre,ir_r3_k5_s2_e3_c40_se0.25_nre,"
    "ir_r1_k3_s2_e6_c80,ir_r1_k3_s1_e2.5_c80,ir_r2_k3_s1_e2.3_c80,ir_r2_k3_s1_e6_c112_se0.25,"
    "ir_r3_k5_s2_e6_c160_se0.25,head_c960,mix_c1280,act_hswish,se_mobilenetv3")
"""MobileNetV3-Large (Howard et al., ICCV 2019, Table 1) in block strings: timm's ``mobilenetv3_large_100``."""


def _macs(module: torch.nn.Module, resolution: int) -> int:
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(1, 3, resolution, resolution))
    return counter.get_total_flops() // 2  # FLOPs = 2 x multiply-adds


def _same_function(reference: torch.nn.Module, ours: torch.nn.Module, resolution: int,
                   skip: tuple[str, ...] = ()) -> None:
    """Give the reference random weights and batch-norm statistics, copy them into ours in order (both apply
    their parameters in the same order: same shapes required), and check both compute the same outputs."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in reference.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.1)
        for name in skip:
            reference.state_dict()[name].zero_()
    source = [(n, t) for n, t in reference.state_dict().items() if n not in skip]
    target = list(ours.state_dict().items())
    assert [tuple(t.shape) for _, t in source] == [tuple(t.shape) for _, t in target]
    ours.load_state_dict({name: tensor for (name, _), (_, tensor) in zip(target, source)})
    for module in ours.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-5  # torch's default, which the references keep (ours is EfficientNet's 1e-3)
    x = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        expected, got = reference.eval()(x), ours.eval()(x)
    assert expected.abs().max() > 1e-2  # a real signal, not two networks that both output zeros
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


def test_mobilenetv3_large_is_timms_and_torchvisions() -> None:
    """ReLU then hard swish, MobileNetV3's SE (hard sigmoid, a quarter of the expanded width rounded to 8) and
    its head: timm's network computes the same function; torchvision's has the same weights (as a Linear)."""
    import timm
    import torchvision

    arch = Architecture.parse(MOBILENETV3_LARGE)
    assert str(arch) == MOBILENETV3_LARGE
    ours = build(arch)
    reference = timm.create_model("mobilenetv3_large_100")
    price = cost.count(arch, 224)
    assert price.macs == _macs(reference, 224) == _macs(torchvision.models.mobilenet_v3_large(), 224) == 216_589_760
    # timm's 1x1 conv after the pool has a bias; MobileNetV3's paper and OFA's feature mix have none
    assert price.params == sum(p.numel() for p in ours.parameters()) == 5_483_032 - 1280
    _same_function(reference, ours, 96, skip=("conv_head.bias",))
    vision = [p.numel() for n, p in torchvision.models.mobilenet_v3_large().named_parameters() if p.dim() > 1]
    assert vision == [p.numel() for p in ours.parameters() if p.dim() > 1]


def _ofa_subnet(space: spaces.SearchSpace, choices: tuple[int, ...]) -> torch.nn.Module:
    """The network the authors' code builds for the same choices: each layer's kernel and expansion, each stage's
    depth (a left-out layer's choice is passed too, as OFA's sampler does)."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    values = {d.name: d.options[c] for d, c in zip(space.decisions, choices)}
    kernels, expansions, depths = [], [], []
    for block in range(2, 7):
        for layer in range(1, 5):
            variant = ops.variant(values[f"block{block}.layer{layer}.variant"])
            kernels.append(variant.kernel)
            expansions.append(int(variant.expand))
        depths.append(values[f"block{block}.layers"])
    supernet = OFAMobileNetV3(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4], width_mult=1.0)
    supernet.set_active_subnet(ks=kernels, e=expansions, d=depths)
    return supernet.get_active_subnet(preserve_weight=False)


def test_every_network_of_the_ofa_space_is_the_one_ofas_code_builds() -> None:
    space = spaces.load("ofa_mobilenetv3")
    assert space.size == (9 ** 2 + 9 ** 3 + 9 ** 4) ** 5  # OFA's "more than 10^19"
    rng = np.random.default_rng(3)
    depths = set()
    for _ in range(4):
        choices = space.sample_choices(rng)
        arch = space.decode(choices)
        reference, ours = _ofa_subnet(space, choices), build(arch, dropout=0.1)
        price = cost.count(arch, 160)
        assert price.params == sum(p.numel() for p in reference.parameters())
        assert price.macs == _macs(reference, 160)
        _same_function(reference, ours, 64)
        depths.add(len(arch.layers()))
    assert len(depths) > 1


def test_ofas_published_note8_network_is_a_point_of_the_space() -> None:
    space, point = spaces.load("ofa_mobilenetv3"), spaces.load("ofa_note8_lat31")
    note8 = point.decode((0,) * len(point.decisions))
    assert reference_points(space) == {"ofa_note8_lat31": note8}
    choices = space.encode(note8)
    assert space.decode(choices) == note8
    reference = _ofa_subnet(space, choices)
    price = cost.count(note8, point.target_resolution)
    assert point.target_resolution == 152
    assert price.params == sum(p.numel() for p in reference.parameters()) == 4_595_536
    assert price.macs == _macs(reference, 152) == 100_520_248
    _same_function(reference, build(note8, dropout=0.1), 64)


def test_elastic_depth_builds_the_first_layers_and_ignores_the_rest() -> None:
    space = spaces.load("ofa_mobilenetv3")
    names = [d.name for d in space.decisions]
    rng = np.random.default_rng(0)
    choices = list(space.sample_choices(rng))
    depth = names.index("block2.layers")
    choices[depth] = space.decisions[depth].options.index(2)
    arch = space.decode(choices)
    assert sum(1 for layer in arch.layers() if layer.out_channels == 24) == 2
    # the choice for a layer the depth leaves out changes nothing, and encoding gives its first option
    fourth = names.index("block2.layer4.variant")
    other = list(choices)
    other[fourth] = (choices[fourth] + 1) % len(space.decisions[fourth])
    assert space.decode(other) == arch and fourth in space.left_out(choices)
    assert space.encode(arch)[fourth] == 0 and space.decode(space.encode(arch)) == arch
    # a mutation always changes the network
    for _ in range(40):
        assert space.mutate(arch, rng) != arch


def test_the_latency_parts_of_a_stage_with_its_own_activation_use_it() -> None:
    from nas.latency.parts import network_parts

    arch = Architecture.parse(MOBILENETV3_LARGE)
    acts = [part.act for part in network_parts(arch, resolution=224, num_classes=1000, in_channels=3)]
    assert acts[:7] == ["hswish", "relu", "relu", "relu", "relu", "relu", "relu"] and acts[7:] == ["hswish"] * 10


def test_a_stage_activation_reads_back_and_the_networks_own_is_no_token() -> None:
    arch = Architecture.parse("stem_c16_s2,ir_r1_k3_s2_e4_c24_nre,ir_r1_k3_s1_e3_c24_nhs,head_c960,act_hswish")
    assert str(arch) == "stem_c16_s2,ir_r1_k3_s2_e4_c24_nre,ir_r1_k3_s1_e3_c24,head_c960,act_hswish"
    assert Architecture.parse(str(arch)) == arch
    with pytest.raises(ArchError, match="cannot read activation 'ntanh'"):
        Architecture.parse("ir_r1_k3_s1_e3_c24_ntanh")
    with pytest.raises(ArchError, match="SE style 'resnet'"):
        Architecture.parse("ir_r1_k3_s1_e3_c24,se_resnet")


def test_timm_cannot_build_mobilenetv3s_head_and_says_so() -> None:
    with pytest.raises(ArchError, match="MobileNetV3's head or squeeze-excitation"):
        Architecture.parse(MOBILENETV3_LARGE).timm_arch_def()


def test_an_ofa_network_written_as_a_file_and_as_torch_is_the_same_network(tmp_path) -> None:
    """``nas export``'s YAML reads back as the same architecture, and its torch file builds the same module."""
    from nas.app.export import torch_source
    from nas.space.writer import architecture_yaml

    space = spaces.load("ofa_mobilenetv3")
    arch = space.sample(np.random.default_rng(5))
    text = architecture_yaml(arch, name="found")
    assert spaces.load_architecture(_write(tmp_path, text)) == arch
    namespace: dict = {}
    exec(compile(torch_source(arch), "exported.py", "exec"), namespace)  # noqa: S102 - our own exported file
    exported, ours = namespace["model"](), build(arch)
    exported.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(exported.eval()(x), ours.eval()(x))


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "found.yaml"
    path.write_text(text)
    return str(path)


def test_an_ofa_network_runs_the_same_in_onnx_runtime(tmp_path) -> None:
    """Hard swish and hard sigmoid export to ONNX, and ONNX Runtime computes what torch does."""
    import onnxruntime

    from nas.app.export import export_program

    net = build(spaces.load_architecture("ofa_note8_lat31"), num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = net(x).numpy()
    export_program(net, tmp_path / "net.onnx", fmt="onnx", resolution=64, in_channels=3)
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0], expected, atol=1e-4)


@pytest.mark.parametrize(("change", "message"), [
    ("per_layer: yes", "per_layer"),
    ("activation: tanh", "activation"),
])
def test_bad_block_settings_are_one_line(change: str, message: str) -> None:
    text = f"name: x\nblocks:\n  - {{filters: 16, layers: 2, stride: 1, {change}}}\n"
    with pytest.raises(spaces.SpaceError, match=message) as error:
        spaces.loads(text)
    assert "\n" not in str(error.value)


def test_a_per_layer_block_of_ops_and_kernels_decides_each_layer() -> None:
    """Without variants, each layer of a per-layer block chooses its op, kernel and SE; the supernet, which
    shares one choice per block, says it does not cover such a space (nor OFA's)."""
    from nas.network.supernet import unsupported

    space = spaces.loads("name: x\nactivation: relu\nblocks:\n  - {filters: 16, layers: 3, stride: 2, per_layer: true, "
                         "op: [mb3, mb6], kernel: [3, 5], layer_deltas: [-1, 0]}\n")
    assert [d.name for d in space.decisions[1:4]] == ["block1.layer1.op", "block1.layer1.kernel", "block1.layer1.se"]
    assert space.size == 4 ** 2 + 4 ** 3
    arch = space.decode((0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1))
    assert [(s.expand, s.kernel, s.stride) for s in arch.stages] == [(6, 5, 2), (3, 3, 1), (3, 3, 1)]
    assert space.decode(space.encode(arch)) == arch
    merged = Architecture.parse("stem_c32_s2,ir_r1_k5_s2_e6_c16,ir_r2_k3_s1_e3_c16,head_c1280,act_relu")
    assert space.decode(space.encode(merged)) == arch  # the same network written as two stages
    assert "per-layer blocks" in (unsupported(space) or "")
    assert unsupported(spaces.load("ofa_mobilenetv3"))


def test_a_table_of_ofa_networks_may_leave_the_layers_a_depth_leaves_out_empty() -> None:
    from nas.training.table import ResultTable, TableError

    space = spaces.load("ofa_mobilenetv3")
    free = [d for d in space.decisions if len(d) > 1]
    rng = np.random.default_rng(11)
    records, archs = [], []
    for _ in range(3):
        choices = space.sample_choices(rng)
        arch = space.decode(choices)
        values = {d.name: d.options[c] for d, c in zip(space.decisions, choices)}
        record = {d.name: values[d.name] for d in free}
        for block in range(2, 7):  # the layers past each stage's depth: left empty
            for layer in range(values[f"block{block}.layers"] + 1, 5):
                record[f"block{block}.layer{layer}.variant"] = ""
        records.append({**record, "accuracy": 0.7})
        archs.append(arch)
    table = ResultTable.from_records(records, space)
    assert set(table.rows) == {str(a) for a in archs}
    live = dict(records[0], **{"block2.layer1.variant": ""})  # a layer every depth builds
    with pytest.raises(TableError, match="row 1: block2.layer1.variant is empty") as error:
        ResultTable.from_records([live], space)
    assert "\n" not in str(error.value)
