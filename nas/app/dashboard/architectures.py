"""What the dashboard shows about one architecture: its stage table, timm block strings, and whether
it is one of the reference networks (EfficientNet-B0, MnasNet-A1) so the plots can label it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from nas.core.arch import ArchError, Architecture

REFERENCES = {"B0": "efficientnet_b0.yaml", "MnasNet-A1": "mnasnet_a1.yaml"}
"""Label → one-point space file under ``search_spaces/``."""


def _space_dirs() -> list[Path]:
    # The files ship with the repository, not the wheel: look beside the package, then in the cwd.
    from nas.space import SHIPPED_SPACES

    return [SHIPPED_SPACES, Path.cwd() / "search_spaces"]


@functools.lru_cache(maxsize=1)
def reference_labels() -> dict[str, str]:
    """Canonical string → label for every reference file found; an empty dict if none is."""
    from nas.space import SpaceError, load_architecture  # pydantic: only paid once, when needed

    labels: dict[str, str] = {}
    for label, name in REFERENCES.items():
        for folder in _space_dirs():
            path = folder / name
            if path.is_file():
                try:
                    labels[str(load_architecture(str(path)))] = label
                except (SpaceError, ArchError):
                    continue
                break
    return labels


def describe(arch_string: str) -> dict[str, Any]:
    """Stage table and timm ``arch_def`` for the detail panel; a string that no longer parses is
    reported, not raised, so one odd row cannot break the page."""
    try:
        arch = Architecture.parse(arch_string)
    except ArchError as error:
        return {"stages": None, "timm": None, "timm_error": None, "parse_error": str(error),
                "label": reference_labels().get(arch_string)}
    stages = [{"op": s.op, "repeats": s.repeats, "kernel": s.kernel, "stride": s.stride, "expand": s.expand,
               "channels": s.channels, "se": s.se, "skip": s.skip, "block": s.block_string()}
              for s in arch.stages]
    try:
        timm, timm_error = arch.timm_arch_def(), None
    except ArchError as error:
        timm, timm_error = None, str(error)
    return {"stages": stages, "stem": {"channels": arch.stem, "stride": arch.stem_stride}, "head": arch.head,
            "act": arch.act, "timm": timm, "timm_error": timm_error, "parse_error": None,
            "label": reference_labels().get(arch_string)}
