"""The bounds and names an architecture's values are checked against, defined once for ops, architectures
and the space file's schema."""

from __future__ import annotations

LIMITS = {"repeats": (1, 1024), "kernel": (1, 15), "expand": (1, 16), "channels": (1, 32768), "stages": (1, 64),
          "resolution": (8, 4096), "groups": (1, 64)}
"""Bounds on every size an architecture (or a space) may ask for, inclusive: wide enough for B7 and
EfficientNetV2-XL, small enough that a typo (``r1000000000``) is an error, not an hour of allocation."""
SKIPS = ("none", "identity", "pool")
"""Skip ops (MnasNet §4.1). ``identity`` adds the input where shapes match; ``pool`` also gives the
first layer of a stage a shortcut: average-pool by the stride, then a 1×1 conv + BN if channels change."""
ACTIVATION_TOKENS = {"relu": "re", "relu6": "r6", "silu": "sw", "hswish": "hs"}
"""Activations a network or a stage may use (``hswish`` is MobileNetV3's hard swish), each with its block-string
token as timm writes a stage's own activation (``_nre``, ``_nhs``)."""
ACTIVATIONS = tuple(ACTIVATION_TOKENS)
