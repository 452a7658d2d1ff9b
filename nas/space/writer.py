"""An architecture written back as a one-point space file."""

from __future__ import annotations

from nas.core import ops
from nas.core.arch import Architecture
from nas.settings import RewardSettings


def _op_name(code: str, expand: float) -> str:
    return ops.OPS[code].yaml_name(expand)


def architecture_yaml(arch: Architecture, *, name: str, comment: str = "", target_resolution: int = 224,
                      reward: RewardSettings | None = None) -> str:
    """A one-point space file for ``arch`` (the format of ``search_spaces/efficientnet_b0.yaml``)."""
    reward = reward or RewardSettings()
    on_latency = f", on: latency, target_ms: {reward.target_ms:.6g}" if reward.on == "latency" else ""
    mix = f", feature_mix: {arch.feature_mix}" if arch.feature_mix else ""
    lines = [f"# {line}" for line in comment.splitlines()] + [
        f"name: {name}", f"target_resolution: {target_resolution}", f"activation: {arch.act}",
        *([f"se_style: {arch.se_style}"] if arch.se_style != "efficientnet" else []),
        f"stem: {{channels: {arch.stem}, stride: {arch.stem_stride}}}", f"head: {{channels: {arch.head}{mix}}}",
        f"reward: {{kind: {reward.kind}, target_macs: {reward.target_macs:.6g}, w: {reward.w}{on_latency}}}",
        "choices: {filter_ratios: 1.0, layer_deltas: 0}", "blocks:"]
    for stage in arch.stages:
        if stage.groups > 1:  # only a variant says groups
            what = f"variants: [{ops.variant_name(stage.op, stage.expand, stage.kernel, stage.se, stage.groups)}]"
        else:
            what = f"op: {_op_name(stage.op, stage.expand)}, kernel: {stage.kernel}, se: {stage.se:g}"
        act = f", activation: {stage.act}" if stage.act else ""
        lines.append(f"  - {{{what}, skip: {stage.skip}, filters: {stage.channels}, layers: {stage.repeats}, "
                     f"stride: {stage.stride}{act}}}")
    return "\n".join(lines) + "\n"
