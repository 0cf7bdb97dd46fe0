"""CLI: database faults are one line on stderr with exit code 2, never a traceback.

For ``portmargin monitor``, ``accounts load`` and ``accounts show``: garbage, driverless and
unreachable URLs, missing and read-only directories, corrupt files, a full disk in the middle
of a monitor run (the failed step leaves nothing behind and a restart completes the run), a
mistyped ``--db`` of a reader, and a second monitor on a database in use.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, create_engine, event, select

from portmargin.cli import main
from portmargin.market import demo_market
from portmargin.monitor import SimulatedFeed, to_feed_line
from portmargin.storage import MONITOR_LEASE, open_store

SECRET = "s3cr3t-Pa55"
FEED_STEPS = 3  # (3 + 1) × {BTC, ETH} = 8 market updates


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    assert SECRET not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSON-lines market feed: a seeded simulated walk from the demo market."""
    path = tmp_path_factory.mktemp("feed") / "demo.jsonl"
    items = SimulatedFeed(demo_market(), seed=1, steps=FEED_STEPS)
    path.write_text("".join(to_feed_line(i) + "\n" for i in items))  # type: ignore[arg-type]
    return path


def _monitor(accounts: Path, feed: Path, url: str) -> list[str]:
    return ["monitor", "--accounts", str(accounts), "--feed", str(feed), "--db", url, "--headless"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    cap = capsys.readouterr()
    return code, out.getvalue() + cap.out, cap.err


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every portmargin table except autoincrement ids and leases, sorted."""
    engine: Engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            if name in ("leases", "alembic_version"):
                continue
            cols = [c for c in table.columns if c.name != "id"]
            out[name] = sorted(tuple(r) for r in conn.execute(select(*cols)))
    engine.dispose()
    return out


# -- URLs, files and servers, for every command that opens the database ---------------------


def _read_only_dir(tmp_path: Path) -> tuple[str, str]:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    if os.geteuid() == 0:
        # chmod does not bind root: /proc is a directory nobody can create files in.
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc")
        return "sqlite:////proc/portmargin-test.db", "cannot open or create the file"
    ro = tmp_path / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    return _url(ro / "x.db"), "is not writable"


def _fault(kind: str, tmp_path: Path) -> tuple[str, str]:
    """(database URL, words of the message) of one fault."""
    if kind == "garbage URL":
        return "not a url", "database URL 'not a url' cannot be parsed; use sqlite:///"
    if kind == "mysql without a driver":
        return f"mysql://u:{SECRET}@localhost/db", "the driver for 'mysql' is not installed"
    if kind == "unknown kind":
        return "nosuchdb://x/y", "unknown database kind 'nosuchdb'"
    if kind == "missing directory":
        return _url(tmp_path / "nodir" / "x.db"), "nodir does not exist; create the directory"
    if kind == "file for a directory":
        (tmp_path / "plain").write_text("")
        return _url(tmp_path / "plain" / "x.db"), "is a file, not a directory"
    if kind == "read-only directory":
        return _read_only_dir(tmp_path)
    if kind == "corrupt file":
        (tmp_path / "x.db").write_bytes(os.urandom(8192))
        return _url(tmp_path / "x.db"), "is not a SQLite database or is corrupt"
    if kind == "unreachable postgres":
        url = f"postgresql://pm:{SECRET}@127.0.0.1:{_closed_port()}/pm"
        return url, "cannot connect to database postgresql://pm:***@127.0.0.1:"
    raise AssertionError(kind)


FAULTS = [
    "garbage URL",
    "mysql without a driver",
    "unknown kind",
    "missing directory",
    "file for a directory",
    "read-only directory",
    "corrupt file",
    "unreachable postgres",
]
COMMANDS = ["monitor", "accounts load", "accounts show"]
NO_FILE = {"missing directory", "file for a directory", "read-only directory"}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("fault", FAULTS)
def test_database_fault_is_one_line_exit_2(
    tmp_path: Path,
    small_accounts: Path,
    feed: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    fault: str,
) -> None:
    url, words = _fault(fault, tmp_path)
    if command == "accounts show" and fault in NO_FILE:
        words = "no database at "  # a reader names the missing file first
    args = {
        "monitor": _monitor(small_accounts, feed, url),
        "accounts load": ["accounts", "load", str(small_accounts), "--db", url],
        "accounts show": ["accounts", "show", "acct-000", "--db", url],
    }[command]
    t0 = time.monotonic()
    code, out, err = _run(args, capsys)
    assert time.monotonic() - t0 < 30
    assert code == 2
    assert out == ""
    assert words in _one_error_line(err)


def test_read_only_database_file_is_one_line(
    tmp_path: Path, small_accounts: Path, feed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.db"
    assert main(["accounts", "load", str(small_accounts), "--db", _url(path)]) == 0
    capsys.readouterr()
    # SQLite's read-only open mode stands for a read-only file (chmod does not bind root).
    ro = f"sqlite:///file:{path}?mode=ro&uri=true"
    code, out, err = _run(_monitor(small_accounts, feed, ro), capsys)
    assert code == 2
    assert "is read-only (attempt to write a readonly database)" in _one_error_line(err)
    # Reading works.
    code, out, err = _run(["accounts", "show", "acct-000", "--db", ro], capsys)
    assert code == 0, err
    assert '"id": "acct-000"' in out


# -- a reader's mistyped --db ----------------------------------------------------------------


def test_show_refuses_a_missing_database_and_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typo.db"
    code, out, err = _run(["accounts", "show", "acct-000", "--db", _url(path)], capsys)
    assert code == 2
    assert out == ""
    line = _one_error_line(err)
    assert f"no database at {path}" in line
    assert "portmargin accounts load FILE --db URL" in line
    assert "portmargin monitor --accounts FILE --db URL" in line
    assert not path.exists()


def test_show_refuses_an_empty_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    code, _, err = _run(["accounts", "show", "acct-000", "--db", _url(path)], capsys)
    assert code == 2
    assert "holds no portmargin data" in _one_error_line(err)


def test_writers_still_create_the_database(
    tmp_path: Path, small_accounts: Path, feed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "new.db")
    code, _, err = _run([*_monitor(small_accounts, feed, url), "--max-events", "1"], capsys)
    assert code == 0, err
    code, _, err = _run(["accounts", "show", "acct-000", "--db", url], capsys)
    assert code == 0, err


# -- a full disk in the middle of a monitor run ----------------------------------------------


@contextlib.contextmanager
def _disk_full_at(statement: str, nth: int) -> Iterator[list[int]]:
    """Every engine: the ``nth`` statement starting with ``statement`` fails as SQLITE_FULL."""
    seen = [0]

    def hook(_c: Any, _cur: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().upper().startswith(statement):
            seen[0] += 1
            if seen[0] == nth:
                raise sqlite3.OperationalError("database or disk is full")

    event.listen(Engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", hook)


@pytest.mark.parametrize("statement", ["INSERT INTO MARGIN_SNAPSHOTS", "UPDATE MONITOR_CURSOR"])
def test_full_disk_mid_run_writes_nothing_of_the_step_and_a_restart_completes(
    tmp_path: Path,
    small_accounts: Path,
    feed: Path,
    capsys: pytest.CaptureFixture[str],
    statement: str,
) -> None:
    url = _url(tmp_path / "full.db")
    with _disk_full_at(statement, 3) as seen:
        code, _, err = _run(_monitor(small_accounts, feed, url), capsys)
    assert seen[0] == 3
    assert code == 2
    line = _one_error_line(err)
    assert "the disk is full (database or disk is full) while committing input event" in line
    assert (
        "rolled back and nothing of it was written; free disk space and run the command again"
        in line
    )

    # The database holds exactly the steps committed before the fault: the same rows as a
    # clean run stopped after as many input events.
    with open_store(url, create=False) as store:
        cursor = store.cursor(f"jsonl:{feed.name}")
        assert store.lease_holder(MONITOR_LEASE) is None  # released on the error
    assert cursor is not None
    committed = cursor.last_seq
    assert 0 < committed < 2 * (FEED_STEPS + 1)
    clean = _url(tmp_path / "clean.db")
    code, _, err = _run(
        [*_monitor(small_accounts, feed, clean), "--max-events", str(committed)], capsys
    )
    assert code == 0, err
    assert _dump(url) == _dump(clean)

    # With room again the run resumes after the last committed step and ends like a clean one.
    code, out, err = _run(_monitor(small_accounts, feed, url), capsys)
    assert code == 0, err
    assert f"({committed} already committed)" in out
    full = _url(tmp_path / "full-clean.db")
    assert _run(_monitor(small_accounts, feed, full), capsys)[0] == 0
    assert _dump(url) == _dump(full)


# -- two monitors on one database ------------------------------------------------------------


def test_second_monitor_is_refused_while_the_first_runs_and_starts_after(
    tmp_path: Path, small_accounts: Path, feed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "m.db")
    with open_store(url) as first, first.lease(MONITOR_LEASE, owner="desk-7:4242"):
        code, out, err = _run(_monitor(small_accounts, feed, url), capsys)
        assert code == 2
        assert out == ""
        line = _one_error_line(err)
        assert f"database {url} is in use: lease 'monitor' is held by desk-7:4242 since " in line
        assert "last heartbeat " in line
        assert "stop that process first, or if it is no longer running wait until" in line
        # accounts load would change balances under the running monitor: refused too.
        code, _, err = _run(["accounts", "load", str(small_accounts), "--db", url], capsys)
        assert code == 2
        assert "is held by desk-7:4242" in _one_error_line(err)
        # Readers are not blocked (the database holds no accounts yet).
        code, _, err = _run(["accounts", "show", "acct-000", "--db", url], capsys)
        assert code == 2
        assert "account 'acct-000' not found" in _one_error_line(err)
    code, _, err = _run(_monitor(small_accounts, feed, url), capsys)
    assert code == 0, err
    assert _run(["accounts", "show", "acct-000", "--db", url], capsys)[0] == 0


def test_monitor_takes_over_a_stale_lease(
    tmp_path: Path, small_accounts: Path, feed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "m.db")
    with (
        open_store(url) as hung,
        hung.lease(MONITOR_LEASE, owner="desk-7:4242", ttl=0.5, heartbeat=False),
    ):
        code, _, err = _run(_monitor(small_accounts, feed, url), capsys)
        assert code == 2
        _one_error_line(err)
        time.sleep(0.7)  # no heartbeat for longer than its ttl: a hung or partitioned holder
        code, _, err = _run(_monitor(small_accounts, feed, url), capsys)
        assert code == 0, err


HOLD = """
import sys, time
from portmargin.storage import open_store
store = open_store(sys.argv[1])
with store.lease("monitor", ttl=3600):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_monitor_starts_at_once_after_the_holder_was_killed(
    tmp_path: Path, small_accounts: Path, feed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "m.db")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        code, _, err = _run(_monitor(small_accounts, feed, url), capsys)
        assert code == 2
        assert f":{proc.pid} since " in _one_error_line(err)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        code, _, err = _run(_monitor(small_accounts, feed, url), capsys)
        assert code == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.postgres
def test_second_monitor_is_refused_postgres(
    postgres_url: str, small_accounts: Path, feed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_store(postgres_url) as first, first.lease(MONITOR_LEASE, owner="desk-7:4242"):
        code, _, err = _run(_monitor(small_accounts, feed, postgres_url), capsys)
        assert code == 2
        assert "is held by desk-7:4242" in _one_error_line(err)
    code, _, err = _run(_monitor(small_accounts, feed, postgres_url), capsys)
    assert code == 0, err


@pytest.mark.postgres
def test_show_refuses_an_empty_postgres_database(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["accounts", "show", "acct-000", "--db", postgres_url], capsys)
    assert code == 2
    assert "holds no portmargin data" in _one_error_line(err)
