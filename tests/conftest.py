"""Shared fixtures: the repo's own search spaces and reference architectures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nas import space as spaces
from nas.core.arch import Architecture

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any("gpu" in item.keywords for item in items):
        return
    import torch  # only when a GPU test was collected: the fast lane need not load torch for nothing

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; its results belong in docs/benchmarks.md")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Two shared cores: one intra-op thread trains several times faster than two fighting over them."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def mnasnet_space() -> spaces.SearchSpace:
    return spaces.load(SPACES / "mnasnet.yaml")


@pytest.fixture(scope="session")
def b0() -> Architecture:
    return spaces.load_architecture(str(SPACES / "efficientnet_b0.yaml"))


@pytest.fixture(scope="session")
def mnasnet_a1() -> Architecture:
    return spaces.load_architecture(str(SPACES / "mnasnet_a1.yaml"))
