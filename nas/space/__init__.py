"""Search spaces: a YAML file, validated into a typed, immutable space of architectures.

The MnasNet space is factorized and hierarchical: the network is a list of
blocks, each block makes its own choices (op, kernel, SE ratio, skip, filters,
layers) and all layers inside a block share them. A space is therefore a flat,
ordered list of :class:`Decision` s; a point in it is one option index per
decision (``choices``), and ``decode``/``encode`` map choices to and from an
:class:`~nas.core.arch.Architecture`. Validation uses pydantic (already a Ray Tune
dependency); every error becomes one :class:`SpaceError` line naming the file,
the key path, the value and what is allowed.
"""

from nas.settings import SpaceError
from nas.space.loader import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    SHIPPED_SPACES,
    find_space_file,
    load,
    load_architecture,
    loads,
    read_space_text,
)
from nas.space.references import reference_points
from nas.space.search_space import Decision, SearchSpace, approx
from nas.space.writer import architecture_yaml

__all__ = ["SpaceError", "MAX_FILE_BYTES", "MAX_DEPTH", "SHIPPED_SPACES", "find_space_file", "load", "read_space_text", "loads", "load_architecture", "Decision", "SearchSpace", "approx", "architecture_yaml", "reference_points"]
