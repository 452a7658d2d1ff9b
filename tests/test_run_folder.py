"""A run folder's life without Ray: one owner at a time, settings and space text stored, changes refused."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas import space as spaces
from nas.runs import folder as run_folder
from nas.runs.folder import RunFolderError
from nas.runs.store import Store, network_filesystem
from nas.settings import SearchSettings
from tests.test_search import TINY_SPACE


def settings_for(tmp_path: Path, space_path: Path, **given) -> SearchSettings:
    base = {"space": str(space_path), "trials": 4, "place": {"name": "run", "storage": str(tmp_path / "runs")},
            "proxy": {"dataset": "synthetic"}}
    return SearchSettings.for_space(spaces.load(space_path), {**base, **given})


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def _hold(run_dir: str, ready: multiprocessing.Event, done: multiprocessing.Event) -> None:
    with run_folder.resume(run_dir):
        ready.set()
        done.wait(30)


@contextlib.contextmanager
def owned_by_another_process(tmp_path: Path, tiny: Path) -> Iterator[tuple[SearchSettings, multiprocessing.Process]]:
    """A created run, held by a driver in another process for as long as the block runs."""
    settings = settings_for(tmp_path, tiny)
    run_folder.create(settings, spaces.load(tiny)).close()
    ready, done = multiprocessing.Event(), multiprocessing.Event()
    owner = multiprocessing.Process(target=_hold, args=(str(settings.run_dir()), ready, done))
    owner.start()
    try:
        assert ready.wait(30)
        yield settings, owner
    finally:
        done.set()
        owner.join(30)


def test_a_second_driver_on_a_run_is_refused_with_the_owner_named(tmp_path: Path, tiny: Path) -> None:
    with owned_by_another_process(tmp_path, tiny) as (settings, owner):
        with pytest.raises(RunFolderError) as caught:
            run_folder.resume(settings.run_dir())
        assert f"pid {owner.pid} on {socket.gethostname()}" in str(caught.value)
    with run_folder.resume(settings.run_dir()):  # the owner is gone: the OS released its lock
        pass


def test_the_lock_dies_with_its_owner(tmp_path: Path, tiny: Path) -> None:
    settings = settings_for(tmp_path, tiny)
    run_folder.create(settings, spaces.load(tiny)).close()
    ready, done = multiprocessing.Event(), multiprocessing.Event()
    owner = multiprocessing.Process(target=_hold, args=(str(settings.run_dir()), ready, done))
    owner.start()
    assert ready.wait(30)
    os.kill(owner.pid, 9)  # SIGKILL: no cleanup runs
    owner.join(30)
    with run_folder.resume(settings.run_dir()) as run:
        assert run.settings == settings


def test_deleting_the_lock_file_does_not_hand_the_run_to_a_second_driver(tmp_path: Path, tiny: Path) -> None:
    with owned_by_another_process(tmp_path, tiny) as (settings, _):
        (settings.run_dir() / run_folder.LOCK_NAME).unlink()  # what a careless `rm` would do
        with pytest.raises(RunFolderError, match="is in use by"):
            run_folder.resume(settings.run_dir())


@pytest.mark.parametrize("existing", [False, True], ids=["new-run", "resume"])
def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path: Path, tiny: Path, existing: bool) -> None:
    settings = settings_for(tmp_path, tiny)
    if existing:
        run_folder.create(settings, spaces.load(tiny)).close()
        (settings.run_dir() / run_folder.LOCK_NAME).unlink()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    settings.run_dir().mkdir(parents=True, exist_ok=True)
    (settings.run_dir() / run_folder.LOCK_NAME).symlink_to(victim)
    with pytest.raises(RunFolderError, match="is a link"):
        run_folder.resume(settings.run_dir()) if existing else run_folder.create(settings, spaces.load(tiny))
    assert victim.read_text() == "keep me\n"


def test_resume_reads_the_stored_space_not_the_edited_file(tmp_path: Path, tiny: Path) -> None:
    settings = settings_for(tmp_path, tiny)
    original = spaces.load(tiny)
    with run_folder.create(settings, original) as run:
        run.store.start_trial("evolution-0", str(original.sample(__import__("numpy").random.default_rng(0))))
    tiny.write_text(TINY_SPACE.replace("kernel: [3, 5]", "kernel: [7, 9]").replace("lr: 0.05", "lr: 0.5"))
    with run_folder.resume(settings.run_dir()) as run:
        assert run.space.decisions == original.decisions  # not the edited file's kernels
        assert run.settings.proxy == settings.proxy
        assert "stored in the run" in run.space.source
        assert run.pending == [("evolution-0", run.store.trials()[0].arch)]
    with run_folder.resume(settings.run_dir()):  # a tool that studies a run reads it while a driver holds it
        stored_settings, stored_space = run_folder.stored(settings.run_dir())
    assert stored_space.decisions == original.decisions and "stored in the run" in stored_space.source
    assert stored_settings.proxy == settings.proxy


def test_resume_changes_only_what_may_change(tmp_path: Path, tiny: Path) -> None:
    settings = settings_for(tmp_path, tiny)
    run_folder.create(settings, spaces.load(tiny)).close()
    with run_folder.resume(settings.run_dir(), {"trials": 9, "resources": {"concurrency": 3}}) as run:
        assert (run.settings.trials, run.settings.resources.concurrency) == (9, 3)
    with run_folder.resume(settings.run_dir()) as run:
        assert run.settings.trials == 9  # stored
        assert Store.open_readonly(settings.run_dir()).meta()["trials"] == 9  # what the dashboard shows
    for change, what in [({"controller": "ppo"}, "controller"), ({"seed": 5}, "seed"),
                         ({"proxy": {"batch_size": 32}}, "batch-size"), ({"reward": {"w": -0.1}}, "w")]:
        with pytest.raises(RunFolderError, match=f"{what} cannot change when resuming"):
            run_folder.resume(settings.run_dir(), change)


def test_creation_refuses_an_existing_run(tmp_path: Path, tiny: Path) -> None:
    settings = settings_for(tmp_path, tiny)
    run_folder.create(settings, spaces.load(tiny)).close()
    with pytest.raises(RunFolderError, match="already holds a run"):
        run_folder.create(settings, spaces.load(tiny))


def test_a_store_on_a_network_file_system_is_warned_about(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path} nfs4 rw 0 0\n")
    assert network_filesystem(tmp_path / "runs" / "x", mounts_file=mounts) == "nfs4"
    assert network_filesystem("/usr", mounts_file=mounts) is None
