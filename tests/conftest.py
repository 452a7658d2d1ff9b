"""Shared fixtures: the repo's own search spaces and reference architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas import space as spaces
from nas.arch import Architecture

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; GPU results are recorded in docs/")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnasnet_space() -> spaces.SearchSpace:
    return spaces.load(SPACES / "mnasnet.yaml")


@pytest.fixture(scope="session")
def b0() -> Architecture:
    return spaces.load_architecture(str(SPACES / "efficientnet_b0.yaml"))


@pytest.fixture(scope="session")
def mnasnet_a1() -> Architecture:
    return spaces.load_architecture(str(SPACES / "mnasnet_a1.yaml"))
