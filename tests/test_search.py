"""The search on real Ray (in-process local cluster), a real SQLite store, a tiny synthetic proxy."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from nas import space as spaces  # noqa: E402
from nas.core.errors import NasError  # noqa: E402
from nas.runs import search  # noqa: E402
from nas.runs.store import Store  # noqa: E402
from nas.settings import SearchSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# A small space that still has every kind of choice, and a proxy that trains in a fraction of a second.
TINY_SPACE = """\
name: tiny
target_resolution: 64
activation: [relu, silu]
stem: {channels: 8, stride: 2}
head: {channels: 32}
reward: {target_macs: 2e6, w: -0.07}
proxy: {resolution: 16, epochs: 1, batch_size: 64, val_size: 64, stem_stride: 1, drop_downsamples: 0,
        lr: 0.05, warmup_epochs: 0}
choices: {op: [ds, mb3], kernel: [3, 5], se: [0, 0.25], skip: [none, identity], filter_ratios: [0.5, 1.0]}
blocks:
  - {filters: 8, layers: 1, stride: 1}
  - {filters: 16, layers: 2, stride: 2}
  - {filters: 24, layers: 2, stride: 2}
"""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture()
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def tiny_config(tmp_path: Path, space: Path, *, data: str = "synthetic", name: str = "run",
                **overrides) -> SearchSettings:
    given = {"space": str(space), "controller": "evolution", "trials": 16, "seed": 0, "progress_seconds": 0.5,
             "place": {"name": name, "storage": str(tmp_path / "runs")}, "resources": {"concurrency": 2},
             "proxy": {"dataset": data, "max_train_samples": 256, "max_val_samples": 64}, **overrides}
    return SearchSettings.for_space(spaces.load(space), given)


def rows(run_dir: Path) -> list[dict]:
    with sqlite3.connect(run_dir / "trials.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM trials ORDER BY seq")]


@pytest.mark.slow
@pytest.mark.parametrize("controller", ["random", "evolution", "ppo", "nsga2"])
def test_sixteen_trial_search_end_to_end(local_ray, tmp_path: Path, tiny_space: Path, controller: str,
                                         capsys) -> None:
    config = tiny_config(tmp_path, tiny_space, controller=controller, name=controller)
    summary = search.run(config)
    run_dir = Path(summary["run_dir"])
    stored = rows(run_dir)
    assert len(stored) == 16 and all(r["status"] == "ok" for r in stored), [r["error"] for r in stored]
    assert len({r["trial_id"] for r in stored}) == 16
    assert all(r["controller"] == controller for r in stored)
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["macs"] > 0 and r["reward"] > 0 for r in stored)
    best = max(stored, key=lambda r: r["reward"])
    assert summary["best"]["trial_id"] == best["trial_id"]
    assert Store.open_readonly(run_dir).controller_state()["stats"]["told"] == 16
    out = capsys.readouterr().out
    assert "16/16 done" in out and f"nas dashboard {run_dir}" in out


@pytest.mark.slow
def test_failing_trials_are_stored_with_their_reason(local_ray, tmp_path: Path, tiny_space: Path) -> None:
    config = tiny_config(tmp_path, tiny_space, trials=4, name="nan")
    # fault injection: an lr far beyond what settings accept makes every trial's loss non-finite
    exploding = config.model_copy(update={"proxy": config.proxy.model_copy(update={"lr": 1e30})})
    summary = search.run(exploding)
    stored = rows(Path(summary["run_dir"]))
    assert len(stored) == 4 and all(r["status"] == "failed" for r in stored)
    assert all("nan" in (r["error"] or "").lower() or "inf" in (r["error"] or "").lower() for r in stored)
    assert summary["counts"] == {"running": 0, "ok": 0, "failed": 4, "stopped": 0}


@pytest.mark.slow
def test_an_existing_run_is_never_overwritten(local_ray, tmp_path: Path, tiny_space: Path) -> None:
    config = tiny_config(tmp_path, tiny_space, trials=2, name="once")
    search.run(config)
    with pytest.raises(NasError, match="--resume"):
        search.run(config)


@pytest.mark.slow
def test_resume_of_a_finished_run_runs_nothing_more(local_ray, tmp_path: Path, tiny_space: Path) -> None:
    config = tiny_config(tmp_path, tiny_space, trials=3, name="done")
    first = search.run(config)
    before = rows(Path(first["run_dir"]))
    again = search.run(resume_from=first["run_dir"])
    assert rows(Path(again["run_dir"])) == before


@pytest.mark.slow
def test_resume_refuses_to_change_what_the_run_was(local_ray, tmp_path: Path, tiny_space: Path) -> None:
    first = search.run(tiny_config(tmp_path, tiny_space, trials=2, name="fixed"))
    with pytest.raises(NasError, match="controller cannot change when resuming"):
        search.run(resume_from=first["run_dir"], changes={"controller": "ppo"})
    with pytest.raises(NasError, match="epochs cannot change when resuming"):
        search.run(resume_from=first["run_dir"], changes={"proxy": {"epochs": 3}})
    search.run(resume_from=first["run_dir"], changes={"proxy": {"epochs": 1}})  # the same value is no change


@pytest.mark.slow
def test_resume_extends_a_run_to_more_trials(local_ray, tmp_path: Path, tiny_space: Path) -> None:
    config = tiny_config(tmp_path, tiny_space, trials=3, name="grow")
    first = search.run(config)
    before = rows(Path(first["run_dir"]))
    search.run(resume_from=first["run_dir"], changes={"trials": 6})
    after = rows(Path(first["run_dir"]))
    assert len(after) == 6 and after[:3] == before


def _search_cli(run_dir: Path, space: Path, trials: int, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts/search.py"), "--space", str(space), "--controller", "evolution",
            "--trials", str(trials), "--concurrency", "2", "--data", "synthetic", "--max-train-samples", "2048",
            "--max-val-samples", "64", "--name", run_dir.name, "--storage", str(run_dir.parent),
            "--progress-seconds", "1", "--address", "local", *extra]


def _wait_until_ok(run_dir: Path, driver: subprocess.Popen, count: int) -> None:
    """Until the search driven by ``driver`` has stored ``count`` successful trials (it must stay alive)."""
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        if (run_dir / "trials.db").exists() and sum(r["status"] == "ok" for r in rows(run_dir)) >= count:
            return
        assert driver.poll() is None, driver.stdout.read()
    pytest.fail(f"the search never finished {count} trials")


@pytest.mark.slow
def test_driver_sigkill_then_resume_loses_nothing(tmp_path: Path, tiny_space: Path) -> None:
    """Kill the whole driver (and its in-process Ray) with SIGKILL mid-search, then --resume."""
    run_dir = tmp_path / "runs" / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(_search_cli(run_dir, tiny_space, 12), cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_ok(run_dir, driver, 3)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = {r["trial_id"]: r for r in rows(run_dir) if r["status"] != "running"}
    assert 3 <= len(before) < 12
    # Only the run folder: every setting, --trials included, comes back from the store.
    done = subprocess.run([sys.executable, str(ROOT / "scripts/search.py"), "--resume", str(run_dir), "--json",
                           "--address", "local"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    after = rows(run_dir)
    assert len(after) == 12 and all(r["status"] == "ok" for r in after)
    assert len({r["trial_id"] for r in after}) == 12
    for trial_id, row in before.items():  # completed trials are kept exactly, never re-run
        kept = next(r for r in after if r["trial_id"] == trial_id)
        assert kept == row
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["counts"]["ok"] == 12


@pytest.mark.slow
def test_a_relative_data_folder_reaches_every_trial(tmp_path: Path, tiny_space: Path) -> None:
    """Tune runs each trial in a folder of its own: a --data path relative to where the user typed it must
    reach the trials as the folder it named (it used to fail every trial and end "0 ok" with exit 0)."""
    from PIL import Image

    for label, shade in (("dark", 30), ("bright", 220)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(24):
            Image.new("RGB", (12, 12), (shade, shade - i, shade)).save(tmp_path / "images" / label / f"{i}.png")
    command = [sys.executable, str(ROOT / "scripts/search.py"), "--space", str(tiny_space), "--trials", "2",
               "--concurrency", "2", "--data", "images", "--epochs", "1", "--resolution", "8",
               "--name", "relative", "--storage", "runs", "--address", "local", "--json"]
    done = subprocess.run(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["counts"]["ok"] == 2, summary


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_search_says_how_to_resume_and_resume_finishes_it(tmp_path: Path, tiny_space: Path,
                                                                          number: int) -> None:
    """Ctrl-C used to exit 0 with Ray's Tuner.restore advice, and SIGTERM (preemption, docker stop) ended in a
    Ray abort (134). Both must end non-zero with the --resume line, and --resume must finish the run."""
    run_dir = tmp_path / "runs" / "interrupted"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(_search_cli(run_dir, tiny_space, 10), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_ok(run_dir, driver, 2)
        driver.send_signal(number)
        output, _ = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 128 + number, output[-2000:]
    assert f"nas search --resume {run_dir}" in output.splitlines()[-1], output[-2000:]
    assert "Tuner.restore" not in output
    done = subprocess.run([sys.executable, str(ROOT / "scripts/search.py"), "--resume", str(run_dir), "--json",
                           "--address", "local"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["counts"]["ok"] == 10


@pytest.mark.slow
def test_a_store_that_cannot_be_written_ends_the_search_with_its_one_line(local_ray, tmp_path: Path,
                                                                          tiny_space: Path, monkeypatch) -> None:
    """The disk filling mid-search used to surface as Tune tracebacks (the StoreError wrapped in a TuneError),
    exit 1. The search stops suggesting, lets Tune wind down, and raises the store's own line."""
    from nas.runs.store import Store, StoreError

    original, calls = Store.finish_trial, []

    def disk_full_on_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 3:
            raise StoreError(f"the disk holding {self.path} is full; the run is intact up to its last finished "
                             f"trial: free some space and continue with --resume {self.path.parent}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Store, "finish_trial", disk_full_on_the_third)
    config = tiny_config(tmp_path, tiny_space, trials=8, name="full")
    with pytest.raises(StoreError, match="is full"):
        search.run(config)
    monkeypatch.setattr(Store, "finish_trial", original)
    stored = rows(config.run_dir())
    assert sum(r["status"] == "ok" for r in stored) == 2  # what was written is intact
    summary = search.run(resume_from=config.run_dir())  # and the run goes on once there is room
    assert summary["counts"]["ok"] == 8


def test_a_missing_dataset_stops_the_search_before_any_trial(tmp_path: Path, tiny_space: Path,
                                                            monkeypatch) -> None:
    from nas.training.data import DatasetError
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "no-data-here"))
    monkeypatch.setattr("nas.training.data.DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    config = tiny_config(tmp_path, tiny_space, data="fashion_mnist", name="nodata")
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        search.run(config)
    assert not config.run_dir().exists()  # nothing half-made is left behind


@pytest.mark.slow
def test_evaluate_many_trains_fixed_candidates_at_their_own_resolutions(local_ray, tmp_path: Path,
                                                                        tiny_space: Path) -> None:
    from nas import space as spaces
    from nas.core import cost
    from nas.core.result import Candidate

    space = spaces.load(tiny_space)
    archs = [space.decode((0,) * len(space.decisions)), space.decode([len(d) - 1 for d in space.decisions])]
    candidates = [Candidate(archs[0], "small", 64, {"resolution": 16}),
                  Candidate(archs[1], "large", 96, {"resolution": 24}, seed=3)]
    run_dir = tmp_path / "runs" / "fixed"
    from nas.settings import Resources

    proxy = space.proxy.override(dataset="synthetic", max_train_samples=256, max_val_samples=64)
    kwargs = dict(run_dir=run_dir, space_path=str(tiny_space), proxy=proxy, resources=Resources(address="local"))
    from nas.runs.candidates import evaluate_many

    results = evaluate_many(candidates, **kwargs)
    assert [r.arch for r in results] == [str(a) for a in archs] and all(r.ok for r in results)
    # each is priced at its own target resolution (1000-class deployment head, as every trial)
    assert [r.macs for r in results] == [cost.count(archs[0], 64).macs, cost.count(archs[1], 96).macs]
    assert {r["trial_id"] for r in rows(run_dir)} == {"small", "large"}
    before = rows(run_dir)
    assert evaluate_many(candidates, **kwargs) == results  # a second call re-runs nothing
    assert rows(run_dir) == before


@pytest.mark.slow
def test_a_run_written_by_the_previous_version_resumes(local_ray, tmp_path: Path, tiny_space: Path) -> None:
    """tests/data holds the database of a real 8-trial run written by nas 0.1 (flat settings, no stored space);
    it resumes to 12 trials with its 8 rows untouched, and now stores its settings and space text."""
    run_dir = tmp_path / "runs" / "v1run"
    run_dir.mkdir(parents=True)
    dump = (ROOT / "tests" / "data" / "run-written-by-nas-0.1.sql").read_text()
    dump = dump.replace("@SPACE@", str(tiny_space)).replace("@STORAGE@", str(tmp_path / "runs"))
    with sqlite3.connect(run_dir / "trials.db") as db:
        db.executescript(dump)
    before = rows(run_dir)
    assert len(before) == 8
    summary = search.run(resume_from=run_dir, changes={"trials": 12})
    after = rows(run_dir)
    # the old rows are untouched (the upgrade only adds a step_ms column, empty for them)
    assert summary["counts"]["ok"] == 12 and [{k: r[k] for k in before[0]} for r in after[:8]] == before
    assert all(r["step_ms"] is None for r in after[:8])
    meta = Store.open_readonly(run_dir).meta()
    assert meta["schema_version"] == 2 and meta["space_text"] == tiny_space.read_text()
    assert SearchSettings.model_validate(meta["settings"]).proxy.dataset == "synthetic"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_two_searches_on_one_machine_each_own_their_ray(tmp_path: Path, tiny_space: Path) -> None:
    """Another user's Ray on the machine is never joined by accident: its end cannot end our searches."""
    env = _clean_env()
    foreign = subprocess.Popen([sys.executable, "-c", "import ray, time; ray.init(num_cpus=1, include_dashboard=False);"
                                " print('up', flush=True); time.sleep(600)"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    searches = []
    try:
        assert foreign.stdout.readline().strip() == "up"
        for name in ("first", "second"):
            command = _search_cli(tmp_path / "runs" / name, tiny_space, 6)
            command.remove("--address"), command.remove("local")  # the default: no address given
            searches.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, start_new_session=True))
        deadline = time.time() + 120
        while time.time() < deadline and not all((tmp_path / "runs" / n / "trials.db").exists()
                                                 and rows(tmp_path / "runs" / n) for n in ("first", "second")):
            time.sleep(0.5)
    finally:
        os.killpg(foreign.pid, signal.SIGKILL)  # the other user's Ray goes away mid-search
        foreign.wait()
    outputs = [s.communicate(timeout=400)[0] for s in searches]
    for search_process, output in zip(searches, outputs):
        assert search_process.returncode == 0, output
        assert "Ray started in-process" in output and "6/6 done" in output, output
    for name in ("first", "second"):
        assert [r["status"] for r in rows(tmp_path / "runs" / name)] == ["ok"] * 6


@pytest.mark.slow
@pytest.mark.parametrize("flags, fragment", [
    (("--gpus-per-trial", "5"), "a trial asks for 1 CPUs and 5 GPUs, but the largest node has"),
    (("--cpus-per-trial", "64"), "a trial asks for 64 CPUs and 0 GPUs"),
    (("--address", "127.0.0.1:1"), "cannot reach the Ray cluster at 127.0.0.1:1"),
])
def test_impossible_resources_and_unreachable_clusters_fail_fast(tmp_path: Path, tiny_space: Path,
                                                                 flags: tuple[str, ...], fragment: str) -> None:
    command = _search_cli(tmp_path / "runs" / "never", tiny_space, 2)
    command = command[:command.index("--address")] + list(flags)
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("nas search: error:")]
    assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in done.stderr, done.stderr
    assert time.time() - started < 60


@pytest.mark.slow
def test_asha_stops_weak_trials_early_and_resume_keeps_its_decisions(local_ray, tmp_path: Path,
                                                                     tiny_space: Path) -> None:
    config = tiny_config(tmp_path, tiny_space, trials=10, name="asha", controller="random",
                         scheduler={"kind": "asha", "grace_period": 1, "reduction_factor": 2},
                         proxy={"dataset": "synthetic", "max_train_samples": 256, "max_val_samples": 64, "epochs": 3})
    summary = search.run(config)
    run_dir = Path(summary["run_dir"])
    stored = rows(run_dir)
    stopped = [r for r in stored if r["status"] == "stopped"]
    full = [r for r in stored if r["status"] == "ok"]
    assert len(stored) == 10 and stopped and full, [(r["status"], r["epochs"]) for r in stored]
    assert all(1 <= r["epochs"] < 3 and r["accuracy"] is not None for r in stopped)
    assert all(r["epochs"] == 3 for r in full)
    with Store.open_readonly(run_dir) as store:
        curves = store.curves()
        assert all(len(curves[r["trial_id"]]) == r["epochs"] for r in stored)  # a point per epoch trained
        assert store.best().trial_id in {r["trial_id"] for r in full}
    assert summary["counts"]["stopped"] == len(stopped)
    # the front, the best reward and export take full-fidelity trials only
    from nas.app.commands.export import chosen
    with Store.open_readonly(run_dir) as store:
        assert {row.trial_id for row in chosen(store, "pareto")} <= {r["trial_id"] for r in full}
    # resume: the scheduler comes back from the run, and what it stopped stays stopped
    again = search.run(resume_from=run_dir, changes={"trials": 12})
    after = {r["trial_id"]: r for r in rows(run_dir)}
    assert len(after) == 12 and all(after[r["trial_id"]] == r for r in stored)
    assert SearchSettings.model_validate(Store.open_readonly(run_dir).meta()["settings"]).scheduler.kind == "asha"
    assert again["counts"]["ok"] + again["counts"]["stopped"] == 12


@pytest.mark.slow
def test_asha_survives_trials_that_fail_after_reporting_epochs(local_ray, tmp_path: Path, tiny_space: Path) -> None:
    """A trial that reports epochs and then fails (a loss that diverges late, a latency measurement that
    faults) is a stored failure; Tune's scheduler must not crash on its missing reward."""
    import controllers
    from nas.core.result import TrialResult
    from nas.runs import tune as nas_tune
    from nas.settings import SchedulerSettings
    from nas.training.evaluate import Task, evaluate

    def fails_late(arch, task, on_epoch=None):  # real training with its epoch reports, then a fault
        result = evaluate(arch, task, on_epoch=on_epoch)
        return TrialResult.failure(str(arch), "injected fault after the last epoch", epochs=result.epochs)

    config = tiny_config(tmp_path, tiny_space, trials=8, controller="random",
                         proxy={"dataset": "synthetic", "max_train_samples": 256, "max_val_samples": 64, "epochs": 3})
    space = spaces.load(tiny_space)
    store = Store.create(tmp_path / "late")
    searcher = nas_tune.ControllerSearcher(controllers.create("random", space, seed=0), store=store)
    task = Task.from_space(space, proxy=config.proxy, reward=config.reward, seed=0)
    nas_tune.run_experiment(searcher, task, run_dir=tmp_path / "late", num_samples=8, resources=config.resources,
                            scheduler=nas_tune.scheduler_for(SchedulerSettings(kind="asha", grace_period=1,
                                                                               reduction_factor=2), 3),
                            evaluator=fails_late)
    stored = rows(tmp_path / "late")
    assert len(stored) == 8, stored
    failed = [r for r in stored if r["status"] == "failed"]
    assert failed and all(r["error"] == "injected fault after the last epoch" for r in failed), stored
    assert all(r["status"] == "stopped" and r["reward"] is not None for r in stored if r not in failed)
    assert store.controller_state()["stats"]["told"] == 8


def test_a_scheduler_needs_a_proxy_longer_than_its_grace_period(tmp_path: Path, tiny_space: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="grace period"):
        tiny_config(tmp_path, tiny_space, scheduler={"kind": "asha", "grace_period": 1})  # the proxy: 1 epoch
