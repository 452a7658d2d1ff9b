"""Random search: uniform over the space. The baseline every other controller must beat."""

from __future__ import annotations

from typing import Any

from controllers.base import Choices, Controller
from nas.core.result import TrialResult


class RandomSearch(Controller):
    """Each decision drawn uniformly and independently; learns nothing from results."""

    name = "random"

    def _propose(self) -> tuple[Choices, dict[str, Any]]:
        # uniform over the architectures not yet evaluated or in flight
        return self.fresh(lambda: self.space.sample_choices(self.rng)), {}

    def _observe(self, choices: Choices, extra: dict[str, Any], result: TrialResult) -> None:
        pass
