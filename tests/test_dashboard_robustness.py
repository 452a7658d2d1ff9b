"""The dashboard under a bad day: bursts of connections, idle sockets, clients that vanish, damaged runs."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from nas.app.dashboard.server import LISTEN_BACKLOG, make_server
from scripts.synthetic_runs import make_run

ROOT = Path(__file__).resolve().parents[1]
POINTS = [(0.70, 100e6), (0.75, 200e6), (0.80, 400e6)]


def serve(run_dirs: list[Path], **options: object):  # noqa: ANN201
    server = make_server(run_dirs, port=0)
    for key, value in options.items():
        setattr(server, key, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server


def get(server, path: str) -> tuple[int, dict]:  # noqa: ANN001
    try:
        with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_listen_backlog_takes_a_burst(tmp_path: Path) -> None:
    server = serve([make_run(tmp_path / "run", POINTS)])
    try:
        port = server.server_address[1]
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
        assert int(listening[2]) == LISTEN_BACKLOG >= 1024  # ss shows a listener's backlog as Send-Q
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(200)]  # a burst
        for client in clients:
            client.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answered = sum(client.recv(12).startswith(b"HTTP/1.1 200") for client in clients)
        assert answered == 200
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_idle_connections_are_closed_and_their_threads_end(tmp_path: Path) -> None:
    server = serve([make_run(tmp_path / "run", POINTS)], idle_timeout=0.5)
    try:
        before = threading.active_count()
        idle = [socket.create_connection(server.server_address[:2], timeout=5) for _ in range(50)]
        deadline = time.time() + 5
        while threading.active_count() < before + 40 and time.time() < deadline:
            time.sleep(0.05)
        assert threading.active_count() >= before + 40  # one handler thread each, while they last
        assert all(client.recv(1) == b"" for client in idle)  # each blocks until the server closes it
        deadline = time.time() + 5
        while threading.active_count() > before + 1 and time.time() < deadline:
            time.sleep(0.1)
        assert threading.active_count() <= before + 1
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_that_vanishes_leaves_no_traceback(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    server = serve([make_run(tmp_path / "run", POINTS)])
    try:
        for _ in range(5):
            client = socket.create_connection(server.server_address[:2])
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset on close
            client.sendall(b"GET /static/plotly.min.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # 4.8 MB answer
            client.recv(100)
            client.close()
        time.sleep(0.5)
        assert get(server, "/api/state")[0] == 200  # still serving
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in capfd.readouterr().err


def test_a_damaged_run_is_reported_and_the_others_are_served(tmp_path: Path) -> None:
    good = make_run(tmp_path / "good", POINTS)
    bad = make_run(tmp_path / "bad", POINTS)
    (bad / "trials.db").write_bytes(os.urandom(8192))
    server = serve([good, bad])
    try:
        status, state = get(server, "/api/state")
        assert status == 200
        first, second = state["runs"]
        assert first["available"] and first["summary"]["counts"]["ok"] == 3
        assert not second["available"] and second["damaged"] and "bad/trials.db" in second["message"]
        assert str(tmp_path) not in json.dumps(state)  # the page names runs, not the disk's paths
        assert get(server, "/api/run/0/front")[0] == 200
        status, body = get(server, "/api/run/1/front")
        assert status == 404 and "damaged or not a nas run database" in body["error"]
        # damage while the page is up: the other run is still served
        (good / "trials.db").write_bytes(b"")
        other = make_run(tmp_path / "third", POINTS)
        assert other.exists()
        status, state = get(server, "/api/state")
        assert status == 200 and not state["runs"][0]["available"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_nas_dashboard_starts_with_a_damaged_run_and_report_marks_it(tmp_path: Path) -> None:
    good = make_run(tmp_path / "good", POINTS)
    bad = make_run(tmp_path / "bad", POINTS)
    (bad / "trials.db").write_bytes(b"\x00" * 5000)
    dashboard = subprocess.Popen([sys.executable, "-m", "nas", "dashboard", str(good), str(bad), "--port", "0"],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert dashboard.stdout.readline().startswith("nas dashboard: http://127.0.0.1:")
    finally:
        dashboard.terminate()
        _, err = dashboard.communicate(timeout=10)
    assert "warning:" in err and str(bad / "trials.db") in err and "Traceback" not in err
    done = subprocess.run([sys.executable, "-m", "nas", "report", str(good), str(bad), "--out",
                           str(tmp_path / "r.html")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "r.html").read_text()
    assert "damaged or not a nas run database" in page


@pytest.mark.slow
def test_half_open_connections_are_capped_and_service_resumes(tmp_path: Path) -> None:
    from nas.app.dashboard.server import MAX_CONNECTIONS

    server = serve([make_run(tmp_path / "run", POINTS)], idle_timeout=5)
    try:
        port = server.server_address[1]
        before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(MAX_CONNECTIONS + 100)]
        time.sleep(1.0)
        assert threading.active_count() - before <= MAX_CONNECTIONS  # not one thread per socket without limit
        for client in idle:
            client.close()
        deadline = time.time() + 20
        while time.time() < deadline:  # the held slots free up as their sockets are seen closed
            try:
                if get(server, "/api/state")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert get(server, "/api/state")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_damaged_meta_value_is_one_run_shown_as_damaged_beside_healthy_ones(tmp_path: Path) -> None:
    import sqlite3

    healthy, damaged = make_run(tmp_path / "healthy", POINTS), make_run(tmp_path / "damaged", POINTS)
    with sqlite3.connect(damaged / "trials.db") as raw:
        raw.execute("UPDATE meta SET value = '{not json' WHERE key = 'target_macs'")
    server = serve([healthy, damaged])
    try:
        status, state = get(server, "/api/state")
        assert status == 200
        first, second = state["runs"]
        assert first["available"] and not second["available"] and second["damaged"]
        assert "'target_macs' is not JSON" in second["message"]
        assert str(tmp_path) not in json.dumps(state)  # run names, never the disk's paths
    finally:
        server.shutdown()
        server.server_close()
    done = subprocess.run([sys.executable, "-m", "nas.app.cli", "export", str(damaged), "--best", "reward",
                           "--format", "yaml"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "'target_macs' is not JSON" in done.stderr and "Traceback" not in done.stderr
