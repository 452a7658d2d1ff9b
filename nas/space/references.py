"""The shipped architectures that lie inside a space."""

from __future__ import annotations

from nas.core.arch import Architecture
from nas.settings import SpaceError
from nas.space.loader import SHIPPED_SPACES, load
from nas.space.search_space import SearchSpace


def reference_points(space: SearchSpace) -> dict[str, Architecture]:
    """The shipped architecture files (one-point spaces: B0, MnasNet-A1, ...) that are points of ``space``,
    by their ``name``: the known networks a search in this space should find or beat."""
    found: dict[str, Architecture] = {}
    for path in sorted(SHIPPED_SPACES.glob("*.yaml")):
        try:
            point = load(path)
        except SpaceError:
            continue
        if point.size == 1:
            arch = point.decode((0,) * len(point.decisions))
            if space.contains(arch):
                found[point.name] = arch
    return found
