"""``nas search`` (and ``scripts/search.py``, the same flags): run or resume a search on Ray Tune.

The flags are the settings tree's (:class:`nas.settings.SearchSettings`); a flag left out takes the
space file's value (proxy, reward) or the setting's default.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

from nas.app.commands import print_json
from nas.core.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import controllers
    from nas.settings import RESUMABLE, SearchSettings, flags

    declared = flags.declare(parser, SearchSettings)
    for action in parser._actions:
        if action.dest == "controller":  # the registry names them; the settings only hold the name
            action.help = f"the search algorithm: {', '.join(controllers.available())}"
    resumable = [flag for path, flag in declared.names.items() if path[0] in RESUMABLE]
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its stored settings; "
                        f"only {', '.join(resumable)} may change")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="controller option, e.g. --option population_size=64 (JSON values)")
    parser.add_argument("--json", action="store_true", help="print the final summary as one JSON object")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help="run (or --resume) an architecture search on Ray Tune")
    add_arguments(parser)
    parser.set_defaults(run=run)


def _options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    summary = execute(args)
    if args.json:
        print_json(summary)
    counts = summary["counts"]
    if counts["ok"] == 0 and counts["failed"] > 0:  # a search where every trial failed did not work
        raise SearchFailed(f"no trial succeeded ({counts['failed']} failed); the first failure: "
                           f"{summary['first_error']}")
    return 0


def execute(args: argparse.Namespace, arrays: dict | None = None) -> dict:
    """The search (or the resumed one) the parsed flags describe; its summary. ``arrays``: data given from
    Python (:func:`nas.training.arrays.from_python`), written into the new run's folder as ``data.npz``."""
    from nas import space as spaces
    from nas.settings import DEFAULT_SPACE

    given = args.settings_flags.given(args)
    if args.option:
        given["controller_options"] = _options(args.option)
    if args.resume:
        if arrays is not None:
            raise UserError("a resumed run keeps the data it started with; leave data out with resume")
        from nas.runs.search import run as run_search  # torch and Ray load only once the flags are known good

        summary = run_search(resume_from=args.resume, changes=given)
    else:
        space = spaces.load(given.get("space", DEFAULT_SPACE))
        place = given.setdefault("place", {})
        place.setdefault("name", f"{given.get('controller', 'evolution')}-{time.strftime('%Y%m%d-%H%M%S')}")
        settings = args.settings_flags.for_space(space, given)
        written = _write_arrays(settings.run_dir(), arrays) if arrays is not None else None
        if written is not None:
            proxy = given.setdefault("proxy", {})
            proxy["dataset"] = str(written)
            proxy.pop("data_dir", None)  # the file is the whole dataset
            settings = args.settings_flags.for_space(space, given)
        from nas.runs.search import run as run_search

        try:
            summary = run_search(settings, space=space)
        except BaseException:
            if written is not None and not (written.parent / "trials.db").exists():
                written.unlink(missing_ok=True)  # a failed start leaves nothing behind
                with contextlib.suppress(OSError):
                    written.parent.rmdir()  # only if empty
            raise
    return summary


def _write_arrays(run_dir: Path, arrays: dict) -> Path:
    """The run's own copy of in-memory data: trials in other processes read it, and --resume finds it."""
    from nas.training import arrays as user_arrays

    if (run_dir / "trials.db").exists():
        raise UserError(f"{run_dir} already holds a run; continue it with resume={str(run_dir)!r} (its data "
                        "is stored with it), or choose another name")
    try:
        return user_arrays.write(arrays, run_dir / "data.npz")
    except OSError as error:
        raise UserError(f"cannot write the data into {run_dir}: {error.strerror or error}") from None


class SearchFailed(UserError):
    """Every trial of a search failed: almost always one cause (the data, the device, the settings)."""
