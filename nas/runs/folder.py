"""A run folder's life: created whole, owned by one driver at a time, its settings stored with it.

``STORAGE/NAME`` holds ``trials.db`` (:mod:`nas.runs.store`: every trial, the controller's state, the
run's settings and a copy of its space file's text) and Tune's logs. While a driver works on it, it
holds an exclusive lock on the folder (:class:`RunLock`; the OS releases it when the driver dies, however
it dies) and names itself in ``driver.lock``; a second driver is refused with the holder's pid and host. A resumed run reads its settings and
space from the database, never from the files they came from, so editing a space file after a run
started cannot change what its stored choices mean.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nas import space as spaces
from nas.core.errors import NasError
from nas.runs.store import Store, network_filesystem
from nas.settings import RESUMABLE, Resources, RunPlace, SearchSettings, describe_error

LOCK_NAME = "driver.lock"


class RunFolderError(NasError):
    """A run folder that cannot be started or continued as asked."""


class RunLock:
    """An exclusive ``flock`` on the run folder itself, and ``RUN_DIR/driver.lock`` naming the owner.

    The lock is held on the folder's own descriptor, not on a file inside it: deleting ``driver.lock``
    cannot hand the run to a second driver. The note is opened without following links, and only once the
    folder is ours: a planted ``driver.lock -> ~/file`` is refused and never written, and a refused
    driver truncates nothing."""

    def __init__(self, path: Path, folder_fd: int) -> None:
        self.path, self._folder_fd = path, folder_fd

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        path = run_dir / LOCK_NAME
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            folder_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise RunFolderError(f"cannot use the run folder {run_dir}: {error.strerror or error}") from None
        try:
            fcntl.flock(folder_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(folder_fd)
            raise RunFolderError(f"{run_dir} is in use by {_holder(path)}; one driver per run "
                                 "(wait for it to finish, or stop it first)") from None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as error:
            os.close(folder_fd)
            what = "is a link; remove it" if error.errno == errno.ELOOP else error.strerror or str(error)
            raise RunFolderError(f"{path}: {what}") from None
        with os.fdopen(fd, "w") as note:
            note.truncate()
            note.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return cls(path, folder_fd)

    def release(self) -> None:
        if self._folder_fd >= 0:
            os.close(self._folder_fd)  # closing drops the lock
            self._folder_fd = -1


def _holder(path: Path) -> str:
    """Who the note says holds the run (read without following a link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd) as note:
            return note.read(200).strip() or "another process"
    except OSError:
        return "another process"


@dataclass
class Run:
    """An open run: its store, its (resolved) settings and space, and the lock that makes it ours."""

    path: Path
    store: Store
    settings: SearchSettings
    space: spaces.SearchSpace
    lock: RunLock
    pending: list[tuple[str, str]] = field(default_factory=list)
    """``(trial id, arch)`` of trials that were in flight when the last driver stopped: to run again."""
    notes: list[str] = field(default_factory=list)
    """Lines worth telling the user at start (a migrated run, a store on a network file system)."""

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            self.lock.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create(settings: SearchSettings, space: spaces.SearchSpace, *, kind: str = "search") -> Run:
    """A new run folder for ``settings`` (its database made whole, with the settings and the space text)."""
    run_dir = settings.run_dir()
    if (run_dir / "trials.db").exists():
        raise RunFolderError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
                             "or pick another --name")
    existed = run_dir.exists()
    lock = RunLock.acquire(run_dir)
    try:
        store = Store.create(run_dir, {"kind": kind, "settings": settings.model_dump(mode="json"),
                                       "space_text": space.text, "space_source": space.source,
                                       **summary(settings, space)})
    except BaseException:
        lock.path.unlink(missing_ok=True)  # a run that could not be created leaves nothing behind
        lock.release()
        if not existed:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise
    return Run(run_dir, store, settings, space, lock, notes=_storage_notes(run_dir))


def resume(run_dir: str | Path, changes: dict[str, Any] | None = None) -> Run:
    """Reopen ``run_dir`` with its stored settings; ``changes`` (a nested dict like the settings) may
    change only what :data:`nas.settings.RESUMABLE` names; anything else must equal the stored value."""
    run_dir = Path(run_dir)
    if not (run_dir / "trials.db").is_file():
        Store.open_readonly(run_dir)  # raises the precise StoreError (no folder, no database)
    lock = RunLock.acquire(run_dir)
    try:
        store = Store.open(run_dir)
        try:
            run = _reopen(run_dir, store, lock, changes or {})
        except BaseException:
            store.close()
            raise
    except BaseException:
        lock.release()
        raise
    return run


def stored(run_dir: str | Path) -> tuple[SearchSettings, spaces.SearchSpace]:
    """A run's stored settings and its own copy of the space, read-only (no lock taken, nothing written):
    what a tool that studies a run must use, since the space file may have been edited since."""
    run_dir = Path(run_dir)
    with Store.open_readonly(run_dir) as store:
        settings, space, _ = _stored(store.meta(), run_dir)
    return settings, space


def _stored(meta: dict[str, Any], run_dir: Path) -> tuple[SearchSettings, spaces.SearchSpace, bool]:
    """The settings and space in ``meta``, and whether they were converted from an older nas's run."""
    if "settings" in meta:
        space = spaces.loads(meta["space_text"], source=f"{meta.get('space_source')} (the copy stored in the run)")
        return SearchSettings.model_validate(meta["settings"]), space, False
    if "config" in meta:
        return (*_from_version_1(meta["config"], run_dir), True)
    raise RunFolderError(f"{run_dir} has no stored search settings; it was not made by `nas search`")


def _reopen(run_dir: Path, store: Store, lock: RunLock, changes: dict[str, Any]) -> Run:
    meta = store.meta()
    notes = _storage_notes(run_dir)
    stored_settings, space, converted = _stored(meta, run_dir)
    if converted:
        notes.append(f"this run was written by an older nas: its settings were converted and the space file "
                     f"{stored_settings.space} was read once and stored in the run")
    settings = _apply_changes(stored_settings, changes)
    settings = settings.changed(place=RunPlace(name=run_dir.name, storage=str(run_dir.parent)).model_dump())
    updates = {"settings": settings.model_dump(mode="json"), "resumed_at": time.time(), **summary(settings, space)}
    if "space_text" not in meta:
        updates.update(space_text=space.text, space_source=space.source)
    store.set_meta(updates)
    pending = [(row.trial_id, row.arch) for row in store.trials(status="running")]
    return Run(run_dir, store, settings, space, lock, pending=pending, notes=notes)


_RESUMABLE_NAMES = [name.replace("_", "-") for key in RESUMABLE
                    for name in (Resources.model_fields if key == "resources" else (key,))]
"""What a resume may change, as the user spells it (derived from :data:`nas.settings.RESUMABLE`)."""


def _apply_changes(stored: SearchSettings, changes: dict[str, Any]) -> SearchSettings:
    """``stored`` with the resumable ``changes``; a change to anything else is refused, naming it."""
    allowed: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "place":
            continue  # --resume RUN_DIR says where the run is
        if key in RESUMABLE:
            allowed[key] = {**getattr(stored, key).model_dump(), **value} if isinstance(value, dict) else value
            continue
        current = getattr(stored, key)
        asked = current.override(**value) if key == "proxy" else (
            current.changed(**value) if isinstance(value, dict) else value)
        if asked != current:
            differing = [name for name in (value if isinstance(value, dict) else {key: value})
                         if getattr(asked, name, asked) != getattr(current, name, current)]
            what = differing[0] if differing else key
            has = getattr(current, what, current)
            raise RunFolderError(f"{what.replace('_', '-')} cannot change when resuming (the run has {has!r}); "
                                 f"resumable: {', '.join(_RESUMABLE_NAMES)}")
    try:
        return SearchSettings.model_validate({**stored.model_dump(), **allowed})
    except ValidationError as error:
        raise describe_error(error, source="resume") from None


def summary(settings: SearchSettings, space: spaces.SearchSpace) -> dict[str, Any]:
    """The flat keys readers (the dashboard, ``nas export``) take from a run's meta."""
    return {"name": settings.place.name, "controller": settings.controller, "space": settings.space,
            "space_name": space.name, "trials": settings.trials, "seed": settings.seed,
            "reward_kind": settings.reward.kind, "target_macs": settings.reward.target_macs, "w": settings.reward.w,
            "reward_on": settings.reward.on, "target_ms": settings.reward.target_ms,
            "latency_table": settings.reward.latency_table,
            "evaluator": settings.evaluator}


def _storage_notes(run_dir: Path) -> list[str]:
    kind = network_filesystem(run_dir)
    if kind is None:
        return []
    return [f"warning: {run_dir} is on a network file system ({kind}); SQLite's WAL, which the run store uses, "
            "does not work there: keep --storage on the driver's local disk (only --tune-storage needs to be "
            "shared)"]


def _from_version_1(config: dict[str, Any], run_dir: Path) -> tuple[SearchSettings, spaces.SearchSpace]:
    """Settings of a run written before settings were stored whole (a flat ``config``)."""
    space = spaces.load(config.get("space") or "search_spaces/mnasnet.yaml")
    proxy = {"dataset": config.get("data"), "epochs": config.get("epochs"), "batch_size": config.get("batch_size"),
             "resolution": config.get("resolution"), "max_train_samples": config.get("max_train_samples"),
             "max_val_samples": config.get("max_val_samples")}
    reward = {k: config[k] for k in ("target_macs", "w") if config.get(k) is not None}
    resources = Resources(**{k: config[k] for k in ("concurrency", "cpus_per_trial", "gpus_per_trial", "address")
                             if config.get(k) is not None})
    given = {"space": config.get("space") or "search_spaces/mnasnet.yaml", "controller": config["controller"],
             "controller_options": config.get("controller_options") or {}, "trials": config["trials"],
             "seed": config.get("seed", 0), "progress_seconds": config.get("progress_seconds", 5.0),
             "place": {"name": run_dir.name, "storage": str(run_dir.parent)},
             "resources": resources.model_dump(), "proxy": {k: v for k, v in proxy.items() if v is not None},
             "reward": reward}
    return SearchSettings.for_space(space, given), space


__all__ = ["LOCK_NAME", "Run", "RunFolderError", "RunLock", "create", "resume", "stored", "summary"]
