"""The `nas` command as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas import space as spaces
from nas.core import cost

ROOT = Path(__file__).resolve().parents[1]


def nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_space_show_json_reports_size_and_decisions() -> None:
    done = nas("space", "show", "search_spaces/mnasnet.yaml", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    space = spaces.load(ROOT / "search_spaces/mnasnet.yaml")
    assert info["size"] == space.size
    assert [d["name"] for d in info["decisions"]] == [d.name for d in space.decisions]


def test_space_show_table_lists_every_decision() -> None:
    done = nas("space", "show", "search_spaces/mnasnet.yaml")
    assert done.returncode == 0
    assert "block7.layers" in done.stdout and "43 decisions" in done.stdout


def test_arch_show_json_prices_a_file_and_a_string(b0) -> None:
    from_file = json.loads(nas("arch", "show", "search_spaces/efficientnet_b0.yaml", "--json").stdout)
    assert from_file["params"] == 5_288_548 and from_file["arch"] == str(b0)
    from_string = json.loads(nas("arch", "show", str(b0), "--resolution", "256", "--json").stdout)
    assert from_string["resolution"] == 256 and from_string["macs"] == cost.count(b0, 256).macs


@pytest.mark.parametrize("args, fragment", [
    (("space", "show", "tests/does-not-exist.yaml"), "cannot read the file"),
    (("arch", "show", "ir_r1_k4_s1_c16"), "kernel must be odd and in 1..15"),
])
def test_user_errors_are_one_line_exit_2(args: tuple[str, ...], fragment: str) -> None:
    done = nas(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in done.stderr


def test_bad_space_file_via_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nblocks:\n  - {filters: 16, layers: 1, stride: 4}\n")
    done = nas("space", "show", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"nas space: error: {bad}: blocks[0].stride = 4: Input should be 1 or 2")


@pytest.mark.parametrize("flags, fragment", [
    (("--epochs", "0"), "--epochs = 0: Input should be greater than or equal to 1"),
    (("--batch-size", "0"), "--batch-size = 0: Input should be greater than or equal to 2"),
    (("--resolution", "0"), "--resolution = 0: Input should be greater than or equal to 8"),
    (("--max-train-samples", "-5"), "--max-train-samples = -5: Input should be greater than or equal to 2"),
    (("--target-macs", "-1"), "--target-macs = -1.0: Input should be greater than 0"),
    (("--cpus-per-trial", "-1"), "--cpus-per-trial = -1.0: Input should be greater than 0"),
    (("--gpus-per-trial", "100"), "--gpus-per-trial = 100.0: Input should be less than or equal to 64"),
    (("--w", "5"), "--w = 5.0: Input should be less than or equal to 0"),
    (("--progress-seconds", "-1"), "--progress-seconds = -1.0: Input should be greater than 0"),
    (("--trials", "0"), "--trials = 0: Input should be greater than or equal to 1"),
    (("--concurrency", "0"), "--concurrency = 0: Input should be greater than or equal to 1"),
    (("--name", "../../x"), "--name = '../../x': must be a single folder name"),
    (("--name", "a/b"), "--name = 'a/b': must be a single folder name"),
    (("--data", "imagenet"), "neither a dataset name"),
    (("--option", "novalue"), "expected KEY=VALUE"),
])
def test_search_flags_out_of_bounds_are_one_line_exit_2(tmp_path: Path, flags: tuple[str, ...],
                                                        fragment: str) -> None:
    done = nas("search", "--storage", str(tmp_path), *flags)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert not any(tmp_path.iterdir())  # nothing was created


def test_a_search_where_every_trial_failed_is_an_error_not_success(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Never "0 ok" with exit 0: a search whose every trial failed says so, with the first failure's reason."""
    from nas.app import cli
    from nas.runs import search

    def every_trial_failed(settings, space=None, **_):
        return {"run_dir": "runs/x", "counts": {"running": 0, "ok": 0, "failed": 2, "stopped": 0}, "trials": 2,
                "best": None, "first_error": "DatasetError: cannot decode images/a.png"}

    monkeypatch.setattr(search, "run", every_trial_failed)
    code = cli.main(["search", "--trials", "2", "--data", "synthetic", "--storage", str(ROOT / "runs-never")])
    assert code == 2
    assert "no trial succeeded (2 failed); the first failure: DatasetError: cannot decode images/a.png" in \
        capsys.readouterr().err


@pytest.mark.parametrize("command", [["space", "show"], ["arch", "show"], ["search", "--trials", "1", "--space"]])
def test_a_pipe_given_as_a_space_is_one_line_not_a_hang(tmp_path: Path, command: list[str]) -> None:
    import os

    fifo = tmp_path / "space.yaml"
    os.mkfifo(fifo)
    done = nas(*command, str(fifo))  # nas() times out after 120 s: a hang fails the test
    assert done.returncode == 2 and "not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_an_address_that_is_not_ray_is_one_line_fast_and_leaves_no_run(tmp_path: Path) -> None:
    """RAY_ADDRESS pointing at an open port that is not Ray used to hang for minutes (the reachability check
    passed any open port), and a search that could not start left a trials.db that refused the same command."""
    import os
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def answer_like_a_web_server() -> None:
        while True:
            client, _ = server.accept()
            client.recv(100)
            client.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            client.close()

    threading.Thread(target=answer_like_a_web_server, daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "nas.app.cli", "search", "--trials", "1", "--data", "synthetic",
                           "--storage", str(tmp_path), "--name", "never"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RAY_ADDRESS": address})
    assert done.returncode == 2 and time.time() - start < 60, done.stderr
    assert f"{address} answers, but not as a Ray cluster" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "never").exists()


BIG_INTEGER = "blocks: " + "9" * 5001
LONG_ARCH = "stem_c32_s2," + ",".join(["ir_r1_k3_s1_e6_c16"] * 6000) + ",head_c32"


@pytest.mark.slow
@pytest.mark.parametrize("args, fragment", [
    (["space", "show", "{big}"], "a value cannot be read"),
    (["arch", "show", "stem_c²,ir_r1_k3_s1_e6_c16,head_c32"], "cannot read 'c²'"),
    (["arch", "show", LONG_ARCH], "1..64 stages, got 6000"),
    (["arch", "show", "efficientnet_b0", "--classes", "-5"], "-5 is outside"),
    (["export", "efficientnet_b0", "--format", "onnx", "--classes", "-1", "--out", "{tmp}/x.onnx"], "-1 is outside"),
    (["export", "efficientnet_b0", "--format", "onnx", "--resolution", "99999", "--out", "{tmp}/x.onnx"], "outside 8..4096"),
    (["export", "efficientnet_b0", "--format", "onnx", "--resolution", "0", "--out", "{tmp}/x.onnx"], "outside 8..4096"),
    (["export", "efficientnet_b0", "--format", "pt2", "--in-channels", "0", "--out", "{tmp}/x.pt2"], "0 is outside"),
    (["export", "efficientnet_b0", "--format", "pt2", "--checkpoint", "{big}", "--out", "{tmp}/x.pt2"],
     "cannot read the checkpoint"),
    (["report", "{tmp}", "--out", "{tmp}"], "is a folder"),
    (["search", "--target-macs", "nan"], "finite number"),
    (["space", "show", "\x1b[31mred\u202e.yaml"], "\\x1b[31mred\\u202e.yaml"),
], ids=["5001-digit-int", "superscript-digit", "6000-blocks", "negative-classes", "onnx-negative-classes",
        "onnx-huge-resolution", "onnx-zero-resolution", "pt2-zero-channels", "garbage-checkpoint", "report-into-folder",
        "nan", "escape-codes"])
def test_nonsense_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(BIG_INTEGER)
    done = nas(*(a.format(big=big, tmp=tmp_path) for a in args))
    assert done.returncode == 2, done.stdout + done.stderr
    assert fragment in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "\x1b" not in done.stderr and "\u202e" not in done.stderr  # a terminal would act on those
    assert not list(tmp_path.glob("x.*"))  # nothing half-written
