"""write_atomic: the old file survives a failed write, no temp file is left, outputs are readable by others."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nas.core.atomic import write_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    write_atomic(target, '{"trials": 3}')
    assert target.read_text() == '{"trials": 3}'

    def crash_halfway(handle) -> None:  # noqa: ANN001
        handle.write(b'{"tri')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        write_atomic(target, crash_halfway)
    assert target.read_text() == '{"trials": 3}'
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_bytes_writer_functions_and_permissions(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.bin", b"\x00\x01", durable=True)
    write_atomic(tmp_path / "b.txt", lambda handle: handle.write("é".encode()))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01" and (tmp_path / "b.txt").read_text() == "é"
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) & 0o044 == 0o044  # not mkstemp's private 0600
