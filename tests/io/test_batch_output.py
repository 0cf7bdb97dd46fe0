"""Batch output files: all or nothing, errors name the target, stale temporaries cleaned."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from portmargin.errors import InputError
from portmargin.io.batch_output import (
    check_target,
    clean_stale,
    temp_pattern,
    write_table,
    write_tables,
)

TABLE = pa.table({"account": ["a", "b"], "initial_margin": [1.0, 2.0]})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_written_whole_with_no_temporary_left(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    write_table(TABLE, out)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    if name.endswith(".parquet"):
        assert pq.read_table(out).equals(TABLE)
    else:
        assert out.read_text().splitlines()[0] == '"account","initial_margin"'


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("missing/out.parquet", r"out\.parquet: directory .*missing does not exist"),
        ("out.txt", r"unknown output format '\.txt'"),
    ],
)
def test_bad_targets_name_the_target(tmp_path: Path, target: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        check_target(tmp_path / target)
    assert str(info.value).startswith(str(tmp_path / target))


def test_a_directory_is_not_a_target(tmp_path: Path) -> None:
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        check_target(tmp_path / "out.csv")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_names_the_target(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(InputError, match=r"ro/out\.csv: directory .* is not writable"):
            write_table(TABLE, ro / "out.csv")
    finally:
        ro.chmod(0o755)


def test_a_failed_write_names_the_target_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "old.csv").write_text("previous run\n")

    def full(table: pa.Table, where: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(where))

    monkeypatch.setattr("portmargin.io.batch_output.pacsv.write_csv", full)
    with pytest.raises(InputError) as info:
        write_tables([(TABLE, tmp_path / "a.parquet"), (TABLE, tmp_path / "old.csv")])
    msg = str(info.value)
    assert msg == f"{tmp_path / 'old.csv'}: cannot write (No space left on device)"
    assert ".tmp" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]
    assert (tmp_path / "old.csv").read_text() == "previous run\n"


def test_a_permission_error_on_the_temporary_names_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Path.open

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        if self.name.endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(InputError) as info:
        write_table(TABLE, tmp_path / "out.parquet")
    assert str(info.value) == f"{tmp_path / 'out.parquet'}: cannot write (Permission denied)"
    assert list(tmp_path.iterdir()) == []


def test_clean_stale_removes_only_our_old_orphans(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    dead = _dead_pid()
    orphan = tmp_path / f".out.parquet.{dead}.0123abcd.tmp"
    live = tmp_path / f".out.parquet.{os.getppid()}.0123abcd.tmp"  # a running process
    other_target = tmp_path / f".other.parquet.{dead}.0123abcd.tmp"
    not_ours = tmp_path / f".out.parquet.{dead}.XYZ.tmp"
    fresh = tmp_path / f".out.parquet.{dead}.fedcba98.tmp"
    for p in (orphan, live, other_target, not_ours, fresh):
        p.write_bytes(b"partial")
    old = time.time() - 3600
    for p in (orphan, live, other_target, not_ours):
        os.utime(p, (old, old))
    link = tmp_path / f".out.parquet.{dead}.11111111.tmp"
    link.symlink_to(orphan)
    os.utime(link, (old, old), follow_symlinks=False)
    start = time.time() - 60  # fresh was written after the run started
    os.utime(fresh, (start + 30, start + 30))

    removed = clean_stale(out, before=start)

    assert removed == [orphan]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(p.name for p in (live, other_target, not_ours, fresh, link))
    assert temp_pattern(out).fullmatch(orphan.name)


def test_sigkill_in_the_write_window_leaves_a_temporary_the_next_run_removes(
    tmp_path: Path,
) -> None:
    out = tmp_path / "margins.parquet"
    script = textwrap.dedent(
        f"""
        import os, signal
        import pyarrow as pa
        from portmargin.io import batch_output

        real = batch_output.pq.write_table

        def write_then_die(table, where):
            real(table, where)
            os.kill(os.getpid(), signal.SIGKILL)  # killed before the rename

        batch_output.pq.write_table = write_then_die
        batch_output.write_table(pa.table({{"a": [1.0]}}), {str(out)!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    leftovers = list(tmp_path.iterdir())
    assert not out.exists()
    assert len(leftovers) == 1 and temp_pattern(out).fullmatch(leftovers[0].name)

    assert clean_stale(out, before=time.time() + 1) == leftovers
    write_table(TABLE, out)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
