"""Dashboard responsiveness over a 20 000-trial store, in headless Chromium (Playwright).

Measures, per fresh browser context (cold cache), the median over a few runs of:
  * first paint: navigation → header and first table page rendered from the API (``nas:first-render``);
  * plots drawn: navigation → Pareto front and progress plots drawn (Plotly.js run included);
  * table page change: click "next" → the new page is in the DOM; and the same for a sort by reward.
Prints a Markdown table; ``--append docs/benchmarks.md`` also appends it with the device and date.

    python scripts/bench_dashboard.py --trials 20000 --repeats 5 --append docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthetic_runs import META, arch_string, ok_result, random_points  # noqa: E402 - beside this script

from nas.app.dashboard.server import make_server  # noqa: E402
from nas.runs.store import Store  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

# Clicks a control and resolves when the table's data-page / data-sort attribute changes (in-page timing).
CLICK_AND_WAIT = """async ([selector, attribute]) => {
  const table = document.getElementById('trials');
  const before = table.dataset[attribute];
  const start = performance.now();
  document.querySelector(selector).click();
  while (table.dataset[attribute] === before) await new Promise(r => setTimeout(r, 2));
  await new Promise(r => requestAnimationFrame(() => r()));
  return performance.now() - start;
}"""


def build_store(run_dir: Path, trials: int) -> None:
    """Written through the Store API, as the search driver writes (start, then finish, per trial)."""
    with Store.create(run_dir, {**META, "trials": trials}) as store:
        for i, (acc, macs) in enumerate(random_points(trials, seed=1)):
            store.start_trial(f"t{i:06d}", arch_string(i), controller="random")
            store.finish_trial(f"t{i:06d}", ok_result(arch_string(i), acc, macs), node="bench")


def measure(url: str, repeats: int, screenshot: Path | None = None) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {"first paint (header + table)": [], "plots drawn (20k points)": [],
                                     "table page change (next)": [], "table sort by reward": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(repeats):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-plotted]", timeout=60_000)
            marks = page.evaluate("Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))")
            times["first paint (header + table)"].append(marks["nas:first-render"])
            times["plots drawn (20k points)"].append(marks["nas:plotted"])
            times["table page change (next)"].append(page.evaluate(CLICK_AND_WAIT, ["#next", "page"]))
            times["table sort by reward"].append(page.evaluate(CLICK_AND_WAIT, ["#trials th[data-col='reward']", "sort"]))
            if screenshot:
                page.screenshot(path=str(screenshot), full_page=True)
            context.close()
        browser.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=f"{os.cpu_count()}-core CPU ({platform.machine()}), headless Chromium")
    parser.add_argument("--date", default=time.strftime("%Y-%m-%d"))
    parser.add_argument("--append", type=Path, help="append the result to this Markdown file")
    parser.add_argument("--screenshot", type=Path, help="save a full-page screenshot of the last run here")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"needs Debian chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        run_dir = Path(tmp) / "bench"
        start = time.perf_counter()
        build_store(run_dir, args.trials)
        print(f"store of {args.trials} trials written in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        server = make_server([run_dir], port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            times = measure(server.url, args.repeats, args.screenshot)
        finally:
            server.shutdown()
            server.server_close()
    lines = [f"| measure ({args.trials:,} trials) | median ms | min ms | max ms | target |",
             "| --- | ---: | ---: | ---: | --- |"]
    for name, values in times.items():
        target = "< 1000" if not name.startswith("plots") else "(reported)"
        lines.append(f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} | {target} |")
    table = "\n".join(lines)
    print(table)
    if args.append:
        with args.append.open("a", encoding="utf-8") as out:
            out.write(f"\n## Dashboard over {args.trials:,} trials ({args.date}, {args.device})\n\n"
                      f"`python scripts/bench_dashboard.py --trials {args.trials} --repeats {args.repeats}`: "
                      f"median of {args.repeats} cold page loads (fresh browser context each).\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
