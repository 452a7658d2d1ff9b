"""nas: multi-objective neural architecture search (the MnasNet / EfficientNet-B0 search) and compound scaling.

From Python::

    import nas
    summary = nas.search(space="mnasnet", trials=8, epochs=2, resolution=16, batch_size=64)
    run = nas.load_run(summary["run_dir"])      # run.trials: a pandas DataFrame, one row per trial
    result = nas.evaluate("efficientnet_b0", epochs=1, resolution=16)
    trained = nas.train("efficientnet_b0", epochs=2, resolution=16)   # checkpoints; nas.train(resume=folder)

The keywords are the command-line flags without their dashes (``nas search --help``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunResults", "evaluate", "load_run", "search", "train"]


def __getattr__(name: str) -> Any:  # the API loads its layers (torch, Ray) only when first used
    if name in __all__:
        from nas.app import api

        return getattr(api, name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
