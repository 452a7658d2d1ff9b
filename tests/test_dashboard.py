"""The dashboard against real SQLite stores: view data by hand-computed expectations, the server's
security properties over real HTTP, and the page in real headless Chromium (Playwright)."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas.app.dashboard import queries
from nas.app.dashboard.runs import RunSet
from nas.app.dashboard.server import DashboardHandler, DashboardServer, make_server
from nas.core.result import TrialResult
from nas.runs.store import Store
from scripts.synthetic_runs import META, add_trial, arch_string, make_run, ok_result, random_points

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

# (accuracy, MACs): the non-dominated set by hand is trials 1, 2, 4 (seq is 1-based):
# 3 loses to 2 (less accurate, dearer), 5 to 1 (less accurate, dearer), 6 to 4.
POINTS = [(0.70, 100e6), (0.75, 200e6), (0.72, 300e6), (0.80, 400e6), (0.60, 150e6), (0.78, 900e6)]
FRONT = [1, 2, 4]


def b0() -> str:
    from nas.space import load_architecture

    return str(load_architecture("search_spaces/efficientnet_b0.yaml"))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    # trial 4 (the best, on the front) is EfficientNet-B0 itself
    return make_run(tmp_path / "search", POINTS, failed=1, running=1, arch={3: b0()})


class Serving:
    """A dashboard on 127.0.0.1:<free port>, served from a thread for the test's lifetime."""

    def __init__(self, run_dirs: list[Path]) -> None:
        self.server = make_server(run_dirs, port=0)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        self.url = self.server.url

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes]:
        host, port = self.server.server_address[:2]
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.putrequest(method, path, skip_accept_encoding=True)  # the raw path: nothing normalises it
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serving(run_dir: Path) -> Iterator[Serving]:
    served = Serving([run_dir])
    yield served
    served.close()


# ---------------------------------------------------------------- view data (no browser)


def test_front_is_the_hand_computed_non_dominated_set(run_dir: Path) -> None:
    run = RunSet([run_dir]).runs[0]
    front = run.front()
    assert front["seq"] == [1, 2, 3, 4, 5, 6]  # ok trials only; the failed and running rows are not points
    assert front["front"] == FRONT
    assert front["labels"] == {"4": "B0"}
    assert front["objective"] == {"on": "macs", "target": 400e6, "w": -0.07, "kind": "soft", "assumed": False}
    assert front["cost"] == [m for _, m in POINTS]
    best_iso = front["iso"][0]  # the curve through the best point passes through trial 4 exactly
    assert best_iso["reward"] == pytest.approx(0.80 * (400e6 / 400e6) ** -0.07)


# (accuracy, MACs, latency ms): on latency the non-dominated set is 1, 3, 4 — trial 3 is dearer than 2 in MACs
# but faster, and 2 is slower than 3 and less accurate; on MACs it would be 1, 2, 4.
LATENCY_POINTS = [(0.70, 100e6, 5.0), (0.72, 200e6, 9.0), (0.75, 300e6, 8.0), (0.80, 400e6, 12.0)]


def latency_run(path: Path) -> Path:
    meta = {"reward_on": "latency", "target_ms": 10.0}
    with Store.create(path, {**META, **meta}) as store:
        for i, (acc, macs, ms) in enumerate(LATENCY_POINTS):
            add_trial(store, f"t{i}", TrialResult(arch=arch_string(i), accuracy=acc, macs=int(macs), params=1,
                                                  latency_ms=ms, reward=acc * (ms / 10.0) ** -0.07, epochs=5))
    return path


def test_a_run_rewarded_on_latency_is_drawn_on_latency(tmp_path: Path) -> None:
    run = RunSet([latency_run(tmp_path / "lat")]).runs[0]
    front = run.front()
    assert front["objective"]["on"] == "latency" and front["objective"]["target"] == 10.0
    assert front["cost"] == [ms for *_, ms in LATENCY_POINTS]
    assert front["front"] == [1, 3, 4]
    assert front["iso"][0]["reward"] == pytest.approx(0.80 * 1.2 ** -0.07)
    assert run.progress()["hypervolume"]["reference_cost"] == 40.0


@pytest.mark.slow
def test_big_runs_are_sampled_for_drawing_but_keep_the_front(tmp_path: Path) -> None:
    from nas.core import reward
    points = random_points(5000)
    run = make_run(tmp_path / "big", points)
    front = RunSet([run]).runs[0].front()
    progress = RunSet([run]).runs[0].progress()
    assert front["total"] == 5000 and len(front["seq"]) <= queries.MAX_MARKERS + len(front["front"])
    assert set(front["front"]) <= set(front["seq"])  # every non-dominated trial is still drawn
    expected = {i + 1 for i in reward.pareto_front(points)}
    assert set(front["front"]) == expected
    assert progress["total"] == 5000 and len(progress["seq"]) <= queries.MAX_MARKERS + len(progress["best_seq"])
    assert max(progress["best"]) == pytest.approx(max(progress["reward"]))  # the best trial is always drawn


def test_progress_best_so_far_and_hypervolume(run_dir: Path) -> None:
    progress = RunSet([run_dir]).runs[0].progress()
    rewards = [a * (m / 400e6) ** -0.07 for a, m in POINTS]
    assert progress["reward"] == pytest.approx(rewards)
    # best-so-far is drawn as a step line through its corners: expanding it gives the running max
    running = [max(rewards[: i + 1]) for i in range(len(rewards))]
    steps = dict(zip(progress["best_seq"], progress["best"]))
    expanded, current = [], None
    for seq in progress["seq"]:
        current = steps.get(seq, current)
        expanded.append(current)
    assert expanded == pytest.approx(running)
    assert progress["best_seq"][-1] == progress["seq"][-1] and progress["total"] == len(rewards)
    hv = progress["hypervolume"]
    assert hv["reference_cost"] == 1.6e9
    # after trial 1: 0.70 × (1.6e9 − 1e8) / 1.6e9 ; it never decreases
    assert hv["value"][0] == pytest.approx(0.70 * 1.5e9 / 1.6e9)
    assert hv["value"] == sorted(hv["value"])


def test_summary_and_messages(tmp_path: Path, run_dir: Path) -> None:
    snap = RunSet([run_dir]).runs[0].snapshot()
    summary = queries.summary(snap)
    assert summary["counts"] == {"running": 1, "ok": 6, "failed": 1, "stopped": 0}
    assert summary["best_seq"] == 4 and summary["name"] == META["name"] and summary["controller"] == "random"
    assert summary["messages"] == []
    empty = RunSet([make_run(tmp_path / "empty", [])]).runs[0].state()
    assert "No trials yet" in empty["summary"]["messages"][0]
    failed = RunSet([make_run(tmp_path / "failed", [], failed=3)]).runs[0].state()
    assert failed["summary"]["messages"][0].startswith("All 3 finished trials failed")
    missing = RunSet([tmp_path / "nope"]).runs[0].state()
    assert not missing["available"] and "does not exist" in missing["message"]


def test_missing_metrics_are_not_plotted_and_json_stays_valid(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "nan", [(0.7, 1e8)])
    with Store.open(run_dir) as store:
        result = TrialResult(arch=arch_string(7), accuracy=float("nan"), macs=2e8, reward=float("inf"))
        add_trial(store, "nan", result)
    served = Serving([run_dir])
    try:
        status, body = served.get("/api/run/0/front")
        assert status == 200 and json.loads(body)["seq"] == [1]
        status, body = served.get("/api/state")
        assert "not plotted" in json.loads(body)["runs"][0]["summary"]["messages"][0]
        status, body = served.get("/api/run/0/trials?sort=accuracy")
        assert [row["accuracy"] for row in json.loads(body)["rows"]] == [0.7, None]
    finally:
        served.close()


# ---------------------------------------------------------------- security


class _FakeSocket:
    """Enough of a socket for ``BaseHTTPRequestHandler``: canned request in, response bytes out."""

    def __init__(self, request: bytes) -> None:
        self.request, self.sent = request, bytearray()

    def makefile(self, mode: str, *args: object) -> io.BytesIO:
        return io.BytesIO(self.request)

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def settimeout(self, seconds: float | None) -> None:
        self.timeout = seconds


def _handle(server: DashboardServer, client: str, host: str = "127.0.0.1") -> bytes:
    fake = _FakeSocket(f"GET /api/state HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    DashboardHandler(fake, (client, 40000), server)  # type: ignore[arg-type]
    return bytes(fake.sent)


def test_default_server_is_loopback_only(serving: Serving) -> None:
    server = serving.server
    assert server.server_address[0] == "127.0.0.1" and server.loopback_only
    assert _handle(server, "127.0.0.1").startswith(b"HTTP/1.1 200")
    for client in ("203.0.113.7", "192.168.1.20", "10.0.0.3", "::ffff:203.0.113.7"):
        answer = _handle(server, client)
        assert answer.startswith(b"HTTP/1.1 403") and b"local machine only" in answer
    # a page on another origin that resolves its name to 127.0.0.1 (DNS rebinding) is refused too
    assert _handle(server, "127.0.0.1", host="evil.example:8050").startswith(b"HTTP/1.1 403")
    # a Host that only looks local is refused: exactly a loopback name and an optional port pass
    for host in ("localhost:1@evil.example", "127.0.0.1:80 evil", "localhost:8050/x", "[::1]x", ""):
        assert _handle(server, "127.0.0.1", host=host).startswith(b"HTTP/1.1 403"), host
    for host in ("localhost", "LOCALHOST:8050", "127.0.0.1:1", "[::1]:8050"):
        assert _handle(server, "127.0.0.1", host=host).startswith(b"HTTP/1.1 200"), host
    # and the socket itself is not reachable on this machine's other addresses
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outbound interface
        address = probe.getsockname()[0]
        probe.close()
    except OSError:
        address = "127.0.0.1"
    if not address.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((address, server.server_address[1]), timeout=2).close()


@pytest.mark.parametrize("path", [
    "/../../../../etc/passwd", "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2fpyproject.toml", "//etc/passwd", "/etc/passwd", "/pyproject.toml",
    "/static/app.js/../../../pyproject.toml", "/api/run/0/trial/..%2f..%2fetc%2fpasswd",
    "/api/run/../trials", "/api/run/%2e%2e/front", "/api/run/1/front", "/api/run/0/trials?sort=/etc/passwd",
    "/api/run/0/trials?status=../../etc/passwd", "/api/run/0/trials.csv?sort=..%2f..%2fetc%2fpasswd",
    "/api/run/0/trials?sort=seq;DROP%20TABLE%20trials", "/static/trials.db", "/api/run/0/../../trials.db",
    "/%2Fetc%2Fpasswd", "/api/run/-1/front", "/api/run/99999999999/front",
])
def test_path_like_parameters_cannot_read_files(serving: Serving, path: str) -> None:
    status, body = serving.get(path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"[build-system]" not in body and b"SQLite format" not in body


def test_nothing_writes(serving: Serving, run_dir: Path) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert serving.get("/api/state", method=method)[0] == 405
    with Store.open_readonly(run_dir) as store:
        assert store.counts() == {"running": 1, "ok": 6, "failed": 1, "stopped": 0}


def test_csv_download(serving: Serving) -> None:
    status, body = serving.get("/api/run/0/trials.csv?status=ok&sort=reward&desc=1")
    lines = body.decode().splitlines()
    assert status == 200 and lines[0].startswith("seq,trial_id,arch")
    assert len(lines) == 7 and lines[1].startswith("4,")


# ---------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield browser
        browser.close()


def open_page(browser: object, url: str) -> object:
    page = browser.new_page(viewport={"width": 1400, "height": 1100})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(url)
    page.wait_for_selector("body[data-plotted]", timeout=20_000)
    return page


def wait_until(page: object, expression: str, timeout: float = 10.0) -> object:
    """Poll a JS expression from Python (the page's CSP forbids Playwright's eval-based waits)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)  # type: ignore[attr-defined]
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


POINTS_TRACE = "document.getElementById('pareto').data.find(t => t.uid === 'points-0')"
FRONT_TRACE = "document.getElementById('pareto').data.find(t => t.uid === 'front-0')"


@pytest.mark.slow
def test_page_front_click_sort_live(browser: object, serving: Serving, run_dir: Path) -> None:
    page = open_page(browser, serving.url)
    # the front: every finished trial drawn once, and the hand-computed non-dominated set
    assert page.evaluate(f"{POINTS_TRACE}.x.length") == len(POINTS)
    assert page.locator("#pareto .scatterlayer .trace").nth(0).locator("path.point").count() == 0  # iso lines
    drawn = page.evaluate("[...document.querySelectorAll('#pareto .scatterlayer .trace')].map(t => t.querySelectorAll('path.point').length)")
    assert len(POINTS) in drawn and len(FRONT) in drawn
    assert page.evaluate(f"{FRONT_TRACE}.customdata.map(c => c[1])") == FRONT
    notes = page.evaluate("[...document.querySelectorAll('#pareto .annotation-text')].map(e => e.textContent.trim())")
    assert "B0" in notes and "T = 400.0 M" in notes
    header = page.locator("#runs").inner_text()
    assert "test-search" in header and "0.8000 (#4)" in header

    # clicking a dominated point (trial 3) opens that trial's architecture
    box = page.evaluate("""() => {
        const trace = document.getElementById('pareto').data.findIndex(t => t.uid === 'points-0');
        const layer = document.querySelectorAll('#pareto .scatterlayer .trace')[trace];
        const r = layer.querySelectorAll('path.point')[2].getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2]; }""")
    page.mouse.move(*box)
    page.mouse.click(*box)
    page.wait_for_selector("#detail[data-seq='3']", timeout=5_000)
    assert page.locator("#detail-arch").inner_text() == arch_string(2)
    assert page.locator("#stage-table tbody tr").count() == 2 + 3  # stem, 3 stages, head
    assert "ir_r2_k5_s2_e6_c40_se0.25" in page.locator("#detail-timm").inner_text()

    # a table row opens its trial too; B0 carries its label
    page.locator("#trials tbody tr[data-seq='4']").click()
    page.wait_for_selector("#detail[data-seq='4']")
    assert "B0" in page.locator("#detail h2").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # the table sorts by a clicked column, server-side
    page.locator("#trials th[data-col='reward']").click()
    page.wait_for_selector("#trials[data-sort='reward:desc']")
    seqs = page.evaluate("[...document.querySelectorAll('#trials tbody tr')].map(r => Number(r.dataset.seq))")
    assert seqs[:6] == [4, 2, 1, 6, 3, 5] and len(seqs) == 8  # rewards by hand (cheaper is rewarded), then none
    page.locator("#trials th[data-col='reward']").click()
    page.wait_for_selector("#trials[data-sort='reward:asc']")
    seqs = page.evaluate("[...document.querySelectorAll('#trials tbody tr')].map(r => Number(r.dataset.seq))")
    assert seqs[:6] == [5, 3, 6, 1, 2, 4]
    page.select_option("#status-filter", "failed")
    wait_until(page, "document.querySelectorAll('#trials tbody tr').length === 1")
    assert page.locator("#trials tbody td.status-failed").count() == 1

    # a trial the search writes now shows up without a reload
    with Store.open(run_dir) as store:
        add_trial(store, "late", ok_result(arch_string(40), 0.85, 500e6))
    assert wait_until(page, f"{POINTS_TRACE}.x.length === {len(POINTS) + 1}")
    assert page.evaluate(f"{FRONT_TRACE}.customdata.map(c => c[1])") == [1, 2, 4, 9]
    assert page.locator("#runs .done").inner_text().startswith("8 ")  # 7 ok + 1 failed
    assert page.errors == []


@pytest.mark.slow
def test_page_draws_a_latency_run_on_latency(browser: object, tmp_path: Path) -> None:
    served = Serving([latency_run(tmp_path / "lat")])
    try:
        page = open_page(browser, served.url)
        assert page.evaluate(f"{POINTS_TRACE}.x") == [ms for *_, ms in LATENCY_POINTS]
        assert page.evaluate(f"{FRONT_TRACE}.customdata.map(c => c[1])") == [1, 3, 4]
        assert page.evaluate("document.getElementById('pareto').layout.xaxis.title.text") == \
            "batch-1 latency (ms), log scale"
        notes = page.evaluate("[...document.querySelectorAll('#pareto .annotation-text')].map(e => e.textContent.trim())")
        assert "T = 10.00 ms" in notes
        assert "10.00 ms" in page.locator("#runs").inner_text()
        assert page.locator("#trials th[data-col='latency_ms']").count() == 1
        assert page.errors == []
    finally:
        served.close()


@pytest.mark.slow
def test_empty_failed_and_missing_runs_render_messages(browser: object, tmp_path: Path) -> None:
    served = Serving([make_run(tmp_path / "empty", []), make_run(tmp_path / "failed", [], failed=3),
                      tmp_path / "not-yet"])
    try:
        page = open_page(browser, served.url)
        messages = page.locator("#messages").inner_text()
        assert "No trials yet" in messages
        assert "All 3 finished trials failed" in messages and "CUDA out of memory" in messages
        assert "does not exist" in messages
        assert page.locator("#pareto-empty").is_visible()
        assert "every finished trial failed" in page.locator("#pareto-empty").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-empty.png"), full_page=True)
        assert page.errors == []
    finally:
        served.close()
