"""Results looked up instead of trained: a table of known architectures (a published tabular benchmark,
or results of your own) as the evaluator.

A table is a CSV file (a header row) or a JSON list of objects, one row per architecture:

* the architecture, either as an ``arch`` column (a canonical or block string, as ``nas arch show`` reads)
  or as one column per free decision of the space, named as ``nas space show`` names them
  (``block3.variant``, ``block2.kernel``) and holding the option as written there (``mb6_k5``, ``5``);
* ``accuracy`` in [0, 1];
* optionally ``macs``, ``params`` and ``latency_ms``: the table's own costs; without them the cost is
  counted as for a trained candidate (:meth:`nas.training.evaluate.Task.cost`).

Every other column is ignored. A trial of an architecture the table lacks fails, saying so; everything
else about a search (driver, store, controllers, dashboard) is the same as when trials train. This module
loads without torch: a controller study runs thousands of lookups a second.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.core import reward
from nas.core.arch import ArchError, Architecture
from nas.core.atomic import write_atomic
from nas.core.errors import UserError
from nas.core.result import TrialResult
from nas.latency.table import load_table
from nas.space import SearchSpace

MAX_TABLE_BYTES = 1 << 30
"""A table of every point of a few-million-architecture space is well under a gigabyte."""
COSTS = ("macs", "params", "latency_ms")


class TableError(UserError):
    """A table that cannot be read for this space: the message names the file, the row and what is wrong."""


@dataclass(frozen=True)
class Row:
    accuracy: float
    macs: int | None = None
    params: int | None = None
    latency_ms: float | None = None


class ResultTable:
    """A table's rows by canonical architecture string, checked against ``space`` when read."""

    def __init__(self, rows: dict[str, Row], *, source: str) -> None:
        self.rows = rows
        self.source = source

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, arch: object) -> bool:
        return str(arch) in self.rows

    @classmethod
    def read(cls, path: str | Path, space: SearchSpace) -> ResultTable:
        """Read ``path`` (``.csv`` or ``.json``) for ``space``; raises :class:`TableError` with one line."""
        path = Path(path).expanduser()
        name = str(path)
        try:
            if path.stat().st_size > MAX_TABLE_BYTES:
                raise TableError(f"table {name}: larger than {MAX_TABLE_BYTES >> 20} MiB")
            with path.open(encoding="utf-8", newline="") as handle:
                if path.suffix.lower() == ".json":
                    records = json.load(handle)
                    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                        raise TableError(f"table {name}: a JSON table is a list of objects, one per architecture")
                elif path.suffix.lower() == ".csv":
                    records = list(csv.DictReader(handle))
                else:
                    raise TableError(f"table {name}: give a .csv or .json file")
        except OSError as error:
            raise TableError(f"table {name}: cannot read it ({error.strerror or error})") from None
        except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
            raise TableError(f"table {name}: not a readable CSV/JSON table ({str(error).splitlines()[0]})") from None
        return cls.from_records(records, space, source=name)

    @staticmethod
    def write(path: str | Path, records: list[dict[str, Any]]) -> None:
        """Write ``records`` (one dict per architecture, the same keys in each) as a CSV table :meth:`read`
        reads; the file appears whole or not at all."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
        write_atomic(path, text.getvalue())

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], space: SearchSpace, *, source: str = "<records>"
                     ) -> ResultTable:
        if not records:
            raise TableError(f"table {source}: no rows")
        columns = set(records[0])
        free = [d for d in space.decisions if len(d) > 1]
        if "accuracy" not in columns:
            raise TableError(f"table {source}: no 'accuracy' column (columns: {', '.join(sorted(columns))})")
        by_decisions = "arch" not in columns
        if by_decisions:
            missing = [d.name for d in free if d.name not in columns]
            if missing:
                raise TableError(f"table {source}: give an 'arch' column or one column per free decision of space "
                                 f"{space.name!r}; missing {', '.join(missing[:5])}"
                                 + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        rows: dict[str, Row] = {}
        for number, record in enumerate(records, start=2 if source.endswith(".csv") else 1):
            where = f"table {source}, row {number}"
            arch = _arch_of(record, space, free, where) if by_decisions else _parsed(record.get("arch"), space, where)
            key = str(arch)
            if key in rows:
                raise TableError(f"{where}: the same architecture as an earlier row ({key[:80]}...)")
            rows[key] = _row(record, where)
        return cls(rows, source=source)

    def result(self, arch: Architecture, task: Any) -> TrialResult:
        """The trial result ``task`` would score for ``arch``: the table's accuracy (and costs where it has
        them), the task's reward. An architecture the table lacks is a failed trial saying so."""
        text = str(arch)
        row = self.rows.get(text)
        if row is None:
            return TrialResult.failure(text, f"not in the table {self.source} ({len(self.rows)} architectures)",
                                       evaluator="table")
        price = task.cost(arch) if row.macs is None or row.params is None else None
        macs = row.macs if row.macs is not None else price.macs
        params = row.params if row.params is not None else price.params
        settings = task.reward
        if settings.kind == "training_aware":
            return TrialResult.failure(text, "a table has no training step time: a training_aware reward cannot "
                                             "be scored from it", evaluator="table")
        latency = row.latency_ms
        if settings.latency_table is not None:  # the target device's latency, as for a trained trial
            latency = load_table(settings.latency_table).predict(arch)
        if settings.on == "latency" and latency is None:
            return TrialResult.failure(text, f"the reward is on latency and the table {self.source} has no "
                                             "latency_ms column (give a latency table)", evaluator="table")
        objective = latency if settings.on == "latency" else macs
        value = reward.compute(settings.kind, row.accuracy, objective, target=settings.target, w=settings.w,
                               alpha=settings.alpha, beta=settings.beta)
        return TrialResult(arch=text, accuracy=row.accuracy, macs=macs, params=params, reward=value,
                           latency_ms=latency, evaluator="table", device="table")


def _arch_of(record: dict[str, Any], space: SearchSpace, free: list, where: str) -> Architecture:
    """The row's architecture. A decision may be left empty where it builds nothing (a layer that a per-layer
    block's depth leaves out)."""
    choices, empty = [], []
    for position, decision in enumerate(space.decisions):
        if len(decision) == 1:
            choices.append(0)
            continue
        written = record.get(decision.name)
        index = _option_index(decision.options, written)
        if index is None and written in (None, ""):
            empty.append(position)
            index = 0
        elif index is None:
            raise TableError(f"{where}: {decision.name} is {written!r}; space {space.name!r} allows "
                             f"{list(decision.options)}")
        choices.append(index)
    left_out = space.left_out(choices)
    for position in empty:
        if position not in left_out:
            decision = space.decisions[position]
            raise TableError(f"{where}: {decision.name} is empty; space {space.name!r} allows "
                             f"{list(decision.options)}")
    return space.decode(choices)


def _option_index(options: tuple[Any, ...], written: Any) -> int | None:
    """Where ``written`` (a CSV cell is text: ``"5"``, ``"0.25"``) is among ``options``."""
    for index, option in enumerate(options):
        if written == option or str(written).strip() == str(option):
            return index
        if isinstance(option, (int, float)) and not isinstance(option, bool):
            try:
                if float(written) == float(option):
                    return index
            except (TypeError, ValueError):
                pass
    return None


def _parsed(text: Any, space: SearchSpace, where: str) -> Architecture:
    try:
        arch = Architecture.parse(str(text))
    except ArchError as error:
        raise TableError(f"{where}: {error}") from None
    if not space.contains(arch):
        try:
            space.encode(arch)
        except ValueError as error:
            raise TableError(f"{where}: not an architecture of space {space.name!r}: {error}") from None
    return arch


def _number(record: dict[str, Any], column: str, where: str, *, integer: bool = False) -> Any:
    value = record.get(column)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TableError(f"{where}: {column} is {value!r}, not a number") from None
    if not math.isfinite(number) or number < 0:
        raise TableError(f"{where}: {column} is {value!r}; it must be a finite number >= 0")
    return int(number) if integer else number


def _row(record: dict[str, Any], where: str) -> Row:
    accuracy = _number(record, "accuracy", where)
    if accuracy is None:
        raise TableError(f"{where}: no accuracy")
    if accuracy > 1:
        raise TableError(f"{where}: accuracy is {accuracy:g}; give it in [0, 1] (a percentage divided by 100)")
    latency = _number(record, "latency_ms", where)
    if latency is not None and latency <= 0:
        raise TableError(f"{where}: latency_ms must be positive")
    macs = _number(record, "macs", where, integer=True)
    return Row(accuracy=accuracy, macs=macs or None, params=_number(record, "params", where, integer=True),
               latency_ms=latency)


@functools.lru_cache(maxsize=2)
def _cached(path: str, stamp: float, space_text: str) -> ResultTable:
    from nas import space as spaces

    return ResultTable.read(path, spaces.loads(space_text))


class TableEvaluator:
    """What a trial calls instead of training: picklable (Ray ships it to workers, which read the table once
    per process)."""

    def __init__(self, path: str | Path, space: SearchSpace) -> None:
        self.path = os.path.abspath(Path(path).expanduser())  # trials run in folders of their own
        self.space_text = space.text or ""

    def check(self) -> ResultTable:
        """Read the table now (the driver does, before the run exists: a bad table leaves nothing behind)."""
        return _cached(self.path, os.stat(self.path).st_mtime if os.path.exists(self.path) else 0.0,
                       self.space_text)

    def __call__(self, arch: Architecture, task: Any, **_: object) -> TrialResult:
        return self.check().result(arch, task)


__all__ = ["ResultTable", "Row", "TableError", "TableEvaluator"]
