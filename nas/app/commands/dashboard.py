"""``nas dashboard RUN_DIR [RUN_DIR ...]``: serve the live Pareto dashboard of one or more runs."""

from __future__ import annotations

import argparse
import sys

from nas.core.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dashboard", help="serve a live web page of one or more searches (read-only)",
                                   description="Serve a read-only page of the runs: Pareto front, progress, "
                                               "every trial. Binds 127.0.0.1 unless --host says otherwise.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s), e.g. runs/b0-search")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only). Another address exposes "
                             "every trial of these runs to whoever can reach it")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 picks a free one)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nas.app.dashboard.server import is_loopback, make_server

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {args.port}")
    try:
        server = make_server(args.run_dirs, host=args.host, port=args.port)
    except OSError as error:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    for run_ in server.runs.runs:
        if (problem := run_.problem()) is not None:
            print(f"nas dashboard: warning: {problem}. The other runs are still shown.", file=sys.stderr)
    if not is_loopback(args.host):
        print(f"nas dashboard: warning: serving on {args.host}, not just this machine; anyone who can reach "
              "it can read these runs (the page is read-only, with no authentication)", file=sys.stderr)
    print(f"nas dashboard: {server.url}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0
