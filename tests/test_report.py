"""``nas report``: one self-contained HTML file (checked offline in Chromium) and a PNG."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nas.app import report
from nas.app.cli import main
from nas.runs.store import StoreError
from scripts.synthetic_runs import make_run
from tests.test_dashboard import CHROMIUM, POINTS, b0, browser  # noqa: F401 (the browser fixture)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "search", POINTS, failed=1, arch={3: b0()})


def test_html_is_self_contained(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    html = out.read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(https?:)?//", html)  # nothing fetched
    assert "<script src=" not in html and 'href="/static' not in html
    assert "window.NAS_REPORT" in html and "plotly.js v" in html


@pytest.mark.slow
def test_report_opens_offline_in_chromium(browser: object, run_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    out = report.write_html([run_dir], tmp_path / "report.html")
    page = browser.new_page()  # type: ignore[attr-defined]
    requested: list[str] = []
    page.route("**/*", lambda route: (requested.append(route.request.url), route.abort()
                                      if not route.request.url.startswith("file:") else route.continue_()))
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-plotted]", timeout=20_000)
    assert page.evaluate("document.getElementById('pareto').data.find(t => t.uid === 'points-0').x.length") == 6
    assert page.evaluate("document.getElementById('pareto').data.find(t => t.uid === 'front-0')"
                         ".customdata.map(c => c[1])") == [1, 2, 4]
    page.locator("#trials th[data-col='reward']").click()
    page.wait_for_selector("#trials[data-sort='reward:desc']")
    page.locator("#trials tbody tr[data-seq='4']").click()
    page.wait_for_selector("#detail[data-seq='4'] #stage-table")
    assert all(url.startswith("file:") for url in requested), requested


def test_png_and_errors(run_dir: Path, tmp_path: Path) -> None:
    png = report.write_png([run_dir], tmp_path / "pareto.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with pytest.raises(StoreError):
        report.render_html([tmp_path / "missing"])
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]) == 2
    empty = make_run(tmp_path / "empty", [])
    assert "No trials yet" in report.render_html([empty])
