"""The dashboard's HTTP server: a fixed set of read-only routes, loopback-only unless asked otherwise.

Stdlib ``http.server`` is enough here: one user, a few requests every two seconds, no templating,
and nothing to install or keep patched. Security is by construction, not by filtering: a request
can only pick a run by its index and a static asset by a whitelisted name, so no URL can reach a
file; every handler is a GET that reads; the default server answers loopback clients only and
checks the Host header (so a web page on another origin cannot reach it through DNS rebinding).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from nas.app.dashboard import queries
from nas.app.dashboard.architectures import describe, reference_labels
from nas.app.dashboard.assets import static_assets
from nas.app.dashboard.runs import Run, RunSet
from nas.core.result import STATUSES
from nas.runs.store import COLUMNS, StoreError

MAX_PAGE_SIZE = 500
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Plotly sets inline styles; nothing else is inline and nothing is fetched from elsewhere.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
}


class BadRequest(Exception):
    """A malformed parameter: answered with 400 and the reason."""


IDLE_TIMEOUT_S = 30.0
"""A keep-alive connection idle this long is closed, so idle browsers (or a flood of idle sockets) cannot
hold a thread each forever."""
LISTEN_BACKLOG = 1024
"""Connections the kernel queues while every handler is busy (the stdlib default of 5 drops bursts)."""


MAX_CONNECTIONS = 256
"""Connections served at once; more are closed at once, so slow or half-open clients cannot take a thread
each without limit."""


class DashboardServer(ThreadingHTTPServer):
    """Serves one :class:`RunSet`. ``loopback_only`` refuses clients (and Host names) that are not local."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], runs: RunSet, *, loopback_only: bool | None = None,
                 idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self.runs = runs
        self.assets = static_assets()
        self.idle_timeout = idle_timeout
        self.loopback_only = is_loopback(address[0]) if loopback_only is None else loopback_only
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, DashboardHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: this one is closed, the ones being served go on
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (closed tab, timeout) is normal: no traceback for it."""
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9.-]+))(?::[0-9]{1,5})?")


def _host_name(header: str | None) -> str:
    """``Host: [::1]:8050`` → ``::1``; ``Host: localhost:8050`` → ``localhost``; anything that is not exactly
    a host and an optional port (``localhost:1@evil``) → ``""``, which no check accepts."""
    match = _HOST.fullmatch((header or "").strip().lower())
    if match is None:
        return ""
    return match["v6"] or match["name"]


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "nas-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # applied to the socket by StreamRequestHandler.setup
        super().setup()

    # ------------------------------------------------------------ dispatch

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(head=True)

    def _refuse_write(self) -> None:
        self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, "the dashboard is read-only", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_write  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # polling every two seconds would flood the terminal

    def _dispatch(self, *, head: bool) -> None:
        if self.server.loopback_only:
            if not is_loopback(self.client_address[0]):
                return self._send_error(HTTPStatus.FORBIDDEN, "this dashboard serves the local machine only; "
                                        "start it with --host to expose it")
            if _host_name(self.headers.get("Host")) not in LOOPBACK_NAMES:
                return self._send_error(HTTPStatus.FORBIDDEN, "unexpected Host header")
        url = urlsplit(self.path)
        try:
            query = {k: v[-1] for k, v in parse_qs(url.query, strict_parsing=False).items()}
            if url.path in self.server.assets:
                body, kind = self.server.assets[url.path]
                cache = "max-age=86400" if url.path.endswith("plotly.min.js") else "no-cache"
                return self._send(HTTPStatus.OK, body, kind, head=head, extra={"Cache-Control": cache})
            for pattern, handler in _ROUTES:
                match = pattern.fullmatch(url.path)
                if match:
                    status, body, kind, extra = handler(self.server.runs, match, query)
                    return self._send(status, body, kind, head=head, extra={"Cache-Control": "no-store", **extra})
        except BadRequest as error:
            return self._send_error(HTTPStatus.BAD_REQUEST, str(error))
        self._send_error(HTTPStatus.NOT_FOUND, "no such page")

    # ------------------------------------------------------------ responses

    def _send(self, status: HTTPStatus, body: bytes, kind: str, *, head: bool = False,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_error(self, status: HTTPStatus, message: str, extra: dict[str, str] | None = None) -> None:
        self._send(status, _json({"error": message}), "application/json", extra=extra)


# ---------------------------------------------------------------- API routes

Response = tuple[HTTPStatus, bytes, str, dict[str, str]]


def _json(data: Any) -> bytes:
    # allow_nan=False: a NaN that slipped through is a bug to see, not invalid JSON for the browser
    return json.dumps(data, allow_nan=False, separators=(",", ":")).encode()


def _ok(data: Any) -> Response:
    return HTTPStatus.OK, _json(data), "application/json", {}


def _run(runs: RunSet, match: re.Match[str]) -> Run:
    run = runs.get(int(match["run"]))
    if run is None:
        raise BadRequest(f"no run {match['run']}; this dashboard shows runs 0..{len(runs.runs) - 1}")
    return run


def _unavailable(run: Run, error: StoreError) -> Response:
    return HTTPStatus.NOT_FOUND, _json({"error": str(error), "run": run.index}), "application/json", {}


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be in [{low}, {high}]")
    return value


def _table_query(query: dict[str, str]) -> tuple[str | None, str, bool]:
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    sort = query.get("sort") or "seq"
    if sort not in COLUMNS:
        raise BadRequest(f"cannot sort by {sort!r}; allowed: {', '.join(COLUMNS)}")
    return status, sort, query.get("desc") in ("1", "true")


def api_state(runs: RunSet, match: re.Match[str], query: dict[str, str]) -> Response:
    return _ok(runs.state())


def api_front(runs: RunSet, match: re.Match[str], query: dict[str, str]) -> Response:
    run = _run(runs, match)
    try:
        return _ok(run.front())
    except StoreError as error:
        return _unavailable(run, error)


def api_progress(runs: RunSet, match: re.Match[str], query: dict[str, str]) -> Response:
    run = _run(runs, match)
    try:
        return _ok(run.progress())
    except StoreError as error:
        return _unavailable(run, error)


def api_trials(runs: RunSet, match: re.Match[str], query: dict[str, str]) -> Response:
    """One page of the table, sorted and filtered by SQLite so 20 000 rows never cross the wire."""
    run = _run(runs, match)
    status, sort, desc = _table_query(query)
    size = _int(query, "size", 50, 1, MAX_PAGE_SIZE)
    page = _int(query, "page", 0, 0, 10**9)
    try:
        with run.open() as store:
            counts = store.counts()
            total = counts.get(status, 0) if status else sum(counts.values())
            rows = store.trials(status=status, order_by=sort, descending=desc, limit=size, offset=page * size)
    except StoreError as error:
        return _unavailable(run, error)
    labels = reference_labels()
    return _ok({"total": total, "page": page, "size": size, "sort": sort, "desc": desc, "status": status,
                "rows": [queries.row_dict(r, labels) for r in rows]})


def api_trial(runs: RunSet, match: re.Match[str], query: dict[str, str]) -> Response:
    run = _run(runs, match)
    try:
        row = run.snapshot().by_seq.get(int(match["seq"]))
    except StoreError as error:
        return _unavailable(run, error)
    if row is None:
        return HTTPStatus.NOT_FOUND, _json({"error": f"run {run.index} has no trial {match['seq']}"}), \
            "application/json", {}
    return _ok({"trial": queries.row_dict(row, reference_labels()), "arch": describe(row.arch)})


def api_curves(runs: RunSet, match: re.Match[str], query: dict[str, str]) -> Response:
    """Learning curves (accuracy after each epoch) of the running trials and of the most recent finished ones."""
    run = _run(runs, match)
    try:
        return _ok(run.curves())
    except StoreError as error:
        return _unavailable(run, error)


def api_csv(runs: RunSet, match: re.Match[str], query: dict[str, str]) -> Response:
    run = _run(runs, match)
    status, sort, desc = _table_query(query)
    try:
        with run.open() as store:
            rows = store.trials(status=status, order_by=sort, descending=desc)
    except StoreError as error:
        return _unavailable(run, error)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        data = queries.row_dict(row, {})
        writer.writerow(["" if data[c] is None else data[c] for c in COLUMNS])
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", run.label) or f"run{run.index}"
    return HTTPStatus.OK, buffer.getvalue().encode(), "text/csv; charset=utf-8", \
        {"Content-Disposition": f'attachment; filename="{name}-trials.csv"'}


_ROUTES: list[tuple[re.Pattern[str], Callable[[RunSet, re.Match[str], dict[str, str]], Response]]] = [
    (re.compile(r"/api/state"), api_state),
    (re.compile(r"/api/run/(?P<run>\d{1,6})/front"), api_front),
    (re.compile(r"/api/run/(?P<run>\d{1,6})/progress"), api_progress),
    (re.compile(r"/api/run/(?P<run>\d{1,6})/trials"), api_trials),
    (re.compile(r"/api/run/(?P<run>\d{1,6})/curves"), api_curves),
    (re.compile(r"/api/run/(?P<run>\d{1,6})/trials\.csv"), api_csv),
    (re.compile(r"/api/run/(?P<run>\d{1,6})/trial/(?P<seq>\d{1,12})"), api_trial),
]


def make_server(run_dirs: list[str | Path], *, host: str = "127.0.0.1", port: int = 0,
                warm: bool = True) -> DashboardServer:
    """A ready (bound, not yet serving) server; ``port=0`` picks a free port."""
    runs = RunSet(run_dirs)
    if warm:
        runs.warm()
    return DashboardServer((host, port), runs)
