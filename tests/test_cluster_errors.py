"""A search that cannot use its cluster says why in one line, exit 2, before any trial and without a run folder:
Tune's storage out of reach, and a Ray cluster that refuses the driver's authentication token."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def nas_search(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.app.cli", "search", "--trials", "1", "--data", "synthetic",
                           "--storage", str(tmp_path / "runs"), "--name", "never", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_unreachable_object_storage_is_one_line_before_any_trial(tmp_path: Path) -> None:
    # An S3 endpoint on a closed loopback port: unreachable here and everywhere, and nothing leaves the machine
    # (static credentials and no instance-metadata lookups).
    port = free_port()
    uri = f"s3://nas-bucket/x?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    start = time.time()
    done = nas_search(tmp_path, "--tune-storage", uri,
                      env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_EC2_METADATA_DISABLED": "true"})
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(f"nas search: error: --tune-storage {uri}: cannot use it: ")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert time.time() - start < 90
    assert not (tmp_path / "runs" / "never").exists()  # a failed start leaves no run to refuse the next one


def test_a_tune_storage_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    from nas.core.errors import NasError
    from nas.runs.tune import check_storage

    (tmp_path / "file").write_text("")
    with pytest.raises(NasError, match=r"^--tune-storage .*file: cannot use it: "):
        check_storage(str(tmp_path / "file"))
    check_storage(str(tmp_path / "shared" / "tune"))  # a folder that can be made is fine, as Tune would make it
    assert (tmp_path / "shared" / "tune").is_dir()


@contextlib.contextmanager
def ray_head(token: str) -> Iterator[str]:
    """A real Ray head with token authentication (Ray's own `ray start`), in a Ray folder of its own; stopped
    by ending the `ray start --block` that runs it (which ends its processes)."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="nas-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_TMPDIR": temp}
    head = subprocess.Popen(["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=0", "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert head.poll() is None and time.time() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)  # the session this test started, nothing else
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_cluster_refusing_the_token_is_an_authentication_error_not_unreachable(tmp_path: Path) -> None:
    with ray_head(secrets.token_hex(32)) as address:
        wrong = nas_search(tmp_path, "--address", address,
                           env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})
        missing = nas_search(tmp_path, "--address", address,  # token mode, but no token anywhere
                             env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "", "HOME": str(tmp_path)})
    for done in (wrong, missing):
        assert done.returncode == 2, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"nas search: error: the Ray cluster at {address} (--address) refused this "
                               "driver's authentication token"), done.stderr[-2000:]
        assert "Traceback" not in done.stderr and "cannot reach" not in done.stderr
    assert not (tmp_path / "runs" / "never").exists()
