"""``nas report RUN_DIR [RUN_DIR ...] --out report.html --png pareto.png``: the dashboard, offline."""

from __future__ import annotations

import argparse

from nas.app.commands import output_file
from nas.core.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write the dashboard as one offline HTML file and/or a PNG",
                                   description="Write the dashboard's views (Pareto front, progress, trials) as a "
                                               "self-contained HTML file, and the Pareto front as a PNG for docs.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s)")
    parser.add_argument("--out", metavar="HTML", help="write the HTML report here (e.g. report.html)")
    parser.add_argument("--png", metavar="PNG", help="write the Pareto front as a PNG here (e.g. pareto.png)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nas.app import report
    from nas.runs.store import StoreError

    if not args.out and not args.png:
        raise UserError("nothing to write: give --out report.html and/or --png pareto.png")
    html = output_file("--out", args.out, ".html") if args.out else None
    png = output_file("--png", args.png, ".png") if args.png else None
    try:
        if html:
            print(f"wrote {report.write_html(args.run_dirs, html)}")
        if png:
            print(f"wrote {report.write_png(args.run_dirs, png)}")
    except StoreError as error:
        raise UserError(str(error)) from None
    return 0
