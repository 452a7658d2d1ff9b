"""nas from Python: the commands' own settings and drivers, with keyword arguments for flags.

``nas.search(...)`` runs (or resumes) a search exactly as ``nas search`` does — the same run folder,
store, resume and dashboard — and returns its summary; ``nas.load_run(...)`` reads a run's trials as a
pandas DataFrame; ``nas.evaluate(...)`` trains one architecture on the proxy; ``nas.train(...)`` trains one
to the end, with checkpoints and resume, as ``nas train`` does. A keyword is a flag without
its dashes (``max_train_samples=2000`` is ``--max-train-samples 2000``): ``nas search --help`` lists them.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from nas.core.errors import UserError
from nas.runs.results import RunResults, load_run

__all__ = ["RunResults", "evaluate", "load_run", "search", "train"]


def _parsed(command: str, positional: list[str], options: dict[str, Any]) -> Any:
    """``options`` as the command's own parser reads them (a bad option is a :class:`UserError`)."""
    from nas.app.cli import parser

    argv = [command, *positional]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser().parse_args(argv)
    except SystemExit:
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        raise UserError(lines[-1] if lines else f"bad options for {command}: {options}") from None


def _in_memory(options: dict[str, Any], image_column: str, label_column: str) -> dict[str, Any] | None:
    """``data=`` given as Python objects rather than a name or a path: its arrays, checked (a fault is one
    :class:`UserError`); ``options`` keep only what the parser reads."""
    data = options.get("data")
    if data is None or isinstance(data, (str, os.PathLike)):
        return None
    from nas.training import arrays

    del options["data"]
    return arrays.from_python(data, image_column=image_column, label_column=label_column)


def search(space: str | None = None, *, resume: str | Path | None = None, image_column: str = "image",
           label_column: str = "label", **options: Any) -> dict[str, Any]:
    """Run a search (or continue the run folder ``resume``) and return its summary: ``run_dir``, ``counts``
    and the ``best`` trial. ``nas.search(space="mnasnet", trials=8, epochs=2, resolution=16)``.

    ``data`` is a dataset name or folder as on the command line, or data in memory: ``(images, labels)``
    (tensors or arrays), a dict of such parts (``train``, optionally ``val`` and ``test``), a torchvision
    dataset, or a Hugging Face ``datasets.Dataset`` (its ``image_column`` and ``label_column``). Data in
    memory is converted to uint8 once and stored in the run folder as ``data.npz``, which every trial reads
    and ``resume`` finds."""
    from nas.app.commands import search as command

    arrays = _in_memory(options, image_column, label_column)
    if space is not None:
        options["space"] = space
    if resume is not None:
        options["resume"] = str(resume)
    return command.execute(_parsed("search", [], options), arrays)


def evaluate(arch: str, *, image_column: str = "image", label_column: str = "label", **options: Any) -> Any:
    """Train one architecture (a string, a shipped name or a one-point space file) on the proxy and score it:
    a :class:`~nas.core.result.TrialResult`. ``data`` takes what :func:`search`'s does."""
    from nas.app.commands import evaluate as command

    arrays = _in_memory(options, image_column, label_column)
    if arrays is None:
        return command.execute(_parsed("evaluate", [str(arch)], options))
    from nas.training import arrays as user_arrays

    with tempfile.TemporaryDirectory(prefix="nas-data-") as folder:  # one process: nothing outlives the call
        options["data"] = str(user_arrays.write(arrays, Path(folder) / "data.npz"))
        return command.execute(_parsed("evaluate", [str(arch)], options))


def train(arch: str | None = None, *, resume: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Train one architecture to the end as ``nas train`` does (its folder, a checkpoint every epoch, test
    accuracy at the end) and return the result's summary; ``resume`` continues a training folder.
    ``nas.train("efficientnet_b0", epochs=2, resolution=16)``; progress lines go to standard error."""
    import sys

    from nas.app.commands import train as command

    if resume is not None:
        options["resume"] = str(resume)
    return command.execute(_parsed("train", [str(arch)] if arch is not None else [], options), out=sys.stderr)
