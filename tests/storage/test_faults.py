"""Database faults: one-line StorageError from open_store and every Store method, no half step.

The CLI side of the same faults (exit code 2, one line on stderr) is
tests/cli/test_cli_db_errors.py.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, MetaData, create_engine, event, make_url, select, text

from portmargin.accounts import Account, AccountMargin, AccountSettings, evaluate_account
from portmargin.errors import PortmarginError, StorageError
from portmargin.market import demo_market
from portmargin.models import load_model
from portmargin.storage import PG_CONNECT_TIMEOUT, Store, open_store

SECRET = "s3cr3t-Pa55"


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg
    assert SECRET not in msg
    assert "Traceback" not in msg
    return msg


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every portmargin table except autoincrement ids and leases, sorted."""
    meta = MetaData()
    meta.reflect(engine)
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            if name in ("leases", "alembic_version"):
                continue
            cols = [c for c in table.columns if c.name != "id"]
            out[name] = sorted(tuple(r) for r in conn.execute(select(*cols)))
    return out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store with two accounts and one committed step."""
    s = open_store(_url(tmp_path / "s.db"))
    s.save_accounts(
        [Account("a", {"BTC-PERPETUAL": 1.0}, {"BTC": 2.0}), Account("b", {}, {"USDC": 5.0})]
    )
    assert s.commit_step(feed="f", seq=1, market_time="t1", events=[("x", "a", {"v": 1})])
    yield s
    s.close()


def _margin(account: Account) -> AccountMargin:
    return evaluate_account(account, demo_market(), load_model("deribit"), AccountSettings())


def _step(s: Store) -> bool:
    a = Account("a", {"BTC-PERPETUAL": 2.0}, {"BTC": 1.5})
    return s.commit_step(
        feed="f",
        seq=2,
        market_time="t2",
        accounts=[a],
        margins=[_margin(a)],
        events=[("margin_call", "a", {"v": 2}), ("healthy", "b", {"v": 3})],
    )


# -- open_store ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("garbage", "cannot be parsed"),
        (f"postgresql://u:{SECRET}@h:notaport/db", "cannot be parsed"),
        (f"mysql://u:{SECRET}@localhost/db", "driver for 'mysql' is not installed"),
        ("nosuchdb://x", "unknown database kind 'nosuchdb'"),
    ],
)
def test_unusable_urls(url: str, words: str) -> None:
    with pytest.raises(StorageError) as info:
        open_store(url)
    assert words in _one_line(info.value)


def test_storage_error_is_a_portmargin_error() -> None:
    assert issubclass(StorageError, PortmarginError)


def test_missing_directory_is_named_and_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"directory .*nodir does not exist"):
        open_store(_url(tmp_path / "nodir" / "x.db"))
    assert not (tmp_path / "nodir").exists()


def test_file_where_a_directory_is_expected(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(StorageError, match="is a file, not a directory"):
        open_store(_url(tmp_path / "f" / "x.db"))
    with pytest.raises(StorageError, match="a file stands where a directory is expected"):
        open_store(_url(tmp_path / "f" / "sub" / "x.db"))


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory, not a database file"):
        open_store(_url(tmp_path))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_read_only_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # chmod does not bind root: /proc is a directory nobody can create files in.
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc")
        url, words = "sqlite:////proc/portmargin-test.db", "cannot open or create the file"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        url, words = _url(ro / "x.db"), "is not writable"
    with pytest.raises(StorageError) as info:
        open_store(url)
    assert words in _one_line(info.value)


def test_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_store(_url(path)).close()
    # SQLite's read-only open mode stands for a read-only file (chmod does not bind root).
    ro = open_store(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert ro.load_accounts() == []  # reading works
    with pytest.raises(StorageError) as info:
        ro.save_accounts([Account("a", {}, {"BTC": 1.0})])
    ro.close()
    assert "is read-only" in _one_line(info.value)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(os.urandom(4096))
    for create in (True, False):
        with pytest.raises(StorageError) as info:
            open_store(_url(path), create=create)
        assert "not a SQLite database or is corrupt" in _one_line(info.value)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = _url(tmp_path / "s.db")
    s = open_store(url)
    with s.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    s.close()
    with pytest.raises(StorageError, match="schema revision this portmargin does not know"):
        open_store(url)


def test_readers_refuse_a_missing_file_and_create_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(StorageError) as info:
        open_store(_url(path), create=False)
    msg = _one_line(info.value)
    assert msg.startswith(f"no database at {path}")
    assert "portmargin accounts load" in msg
    assert not path.exists()


def test_readers_refuse_a_database_without_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(StorageError, match="holds no portmargin data"):
        open_store(_url(path), create=False)
    assert path.read_bytes() == b""


def test_readers_open_an_existing_database(store: Store, tmp_path: Path) -> None:
    reader = open_store(_url(tmp_path / "s.db"), create=False)
    assert [a.account_id for a in reader.load_accounts()] == ["a", "b"]
    reader.close()


def test_unreachable_postgres_fails_at_once_with_the_password_masked() -> None:
    url = f"postgresql://portmargin:{SECRET}@127.0.0.1:{_closed_port()}/portmargin"
    t0 = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_store(url)
    assert time.monotonic() - t0 < PG_CONNECT_TIMEOUT + 5
    msg = _one_line(info.value)
    assert msg.startswith("cannot connect to database postgresql://portmargin:***@127.0.0.1:")
    assert "check that the server is running" in msg


def test_silent_postgres_times_out_after_the_connect_timeout() -> None:
    # A socket that accepts TCP connections but never answers: only the timeout ends it.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(StorageError) as info:
            open_store(f"postgresql://u:{SECRET}@127.0.0.1:{port}/db?connect_timeout=1")
        assert time.monotonic() - t0 < 10
    assert "cannot connect to database" in _one_line(info.value)


def test_default_connect_timeout_is_a_few_seconds() -> None:
    # The default applies when the URL has none (the silent-server test uses 1 s to be quick).
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(StorageError, match="cannot connect"):
            open_store(f"postgresql://u@127.0.0.1:{port}/db")
        elapsed = time.monotonic() - t0
    assert PG_CONNECT_TIMEOUT - 1 <= elapsed < PG_CONNECT_TIMEOUT + 10


def test_concurrent_opens_of_a_new_database_all_succeed(tmp_path: Path) -> None:
    # Migrations take the write lock first: the others wait and find the schema at head.
    url = _url(tmp_path / "new.db")
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def go() -> None:
        barrier.wait()
        try:
            open_store(url).close()
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- every method ----------------------------------------------------------------------------

CALLS: dict[str, Callable[[Store], object]] = {
    "save_accounts": lambda s: s.save_accounts([Account("c", {}, {"BTC": 1.0})]),
    "load_accounts": lambda s: s.load_accounts(),
    "statuses": lambda s: s.statuses(),
    "margin_methods": lambda s: s.margin_methods(),
    "latest_snapshot": lambda s: s.latest_snapshot("a"),
    "cursor": lambda s: s.cursor("f"),
    "commit_step": lambda s: s.commit_step(feed="f", seq=9, market_time="t"),
    "events": lambda s: s.events(),
    "lease_holder": lambda s: s.lease_holder("monitor"),
    "lease": lambda s: s.lease("monitor").__enter__(),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_method_raises_one_line_on_a_corrupted_file(
    store: Store, tmp_path: Path, call: str
) -> None:
    store.engine.dispose()
    (tmp_path / "s.db").write_bytes(os.urandom(8192))
    with pytest.raises(StorageError) as info:
        CALLS[call](store)
    assert "not a SQLite database or is corrupt" in _one_line(info.value)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_method_raises_one_line_when_the_server_is_gone(call: str) -> None:
    url = f"postgresql+psycopg://u:{SECRET}@127.0.0.1:{_closed_port()}/db"
    s = Store(create_engine(url, connect_args={"connect_timeout": 2}))
    with pytest.raises(StorageError) as info:
        CALLS[call](s)
    assert "cannot connect" in _one_line(info.value)
    s.close()


# -- a full disk during commit_step ----------------------------------------------------------


def _fail_on(engine: Engine, prefix: str) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _full(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(prefix):
            raise sqlite3.OperationalError("database or disk is full")


@pytest.mark.parametrize(
    "prefix", ["INSERT INTO MARGIN_SNAPSHOTS", "INSERT INTO EVENTS", "UPDATE MONITOR_CURSOR"]
)
def test_full_disk_mid_step_rolls_the_step_back(store: Store, prefix: str) -> None:
    before = _dump(store.engine)
    _fail_on(store.engine, prefix)
    with pytest.raises(StorageError) as info:
        _step(store)
    msg = _one_line(info.value)
    assert "the disk is full" in msg
    assert "while committing input event 2 of feed 'f'" in msg
    assert _dump(store.engine) == before
    cursor = store.cursor("f")
    assert cursor is not None
    assert cursor.last_seq == 1


def test_full_disk_at_commit_rolls_the_step_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _dump(store.engine)
    dialect = store.engine.dialect

    def full(_dbapi_conn: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(dialect, "do_commit", full)
    with pytest.raises(StorageError, match="the disk is full"):
        _step(store)
    monkeypatch.undo()
    assert _dump(store.engine) == before
    assert _step(store)  # the same step commits once there is room again
    cursor = store.cursor("f")
    assert cursor is not None
    assert cursor.last_seq == 2


def test_a_really_full_database_rolls_the_step_back(tmp_path: Path) -> None:
    # SQLite's max_page_count makes the file "full" for real (SQLITE_FULL), not by a mock.
    url = _url(tmp_path / "full.db")
    s = open_store(url)
    s.save_accounts([Account(f"a{i}", {}, {"BTC": 1.0}) for i in range(50)])
    with s.engine.connect() as conn:
        pages = int(conn.execute(text("PRAGMA page_count")).scalar_one())
    s.close()
    s = open_store(url)

    @event.listens_for(s.engine, "connect")
    def _limit(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    s.engine.dispose()
    before = _dump(s.engine)
    big = {"blob": "x" * 20_000}
    with pytest.raises(StorageError) as info:
        s.commit_step(feed="f", seq=1, market_time="t", events=[("x", "a0", big)] * 4)
    assert "the disk is full (database or disk is full)" in _one_line(info.value)
    assert _dump(s.engine) == before
    assert s.cursor("f") is None
    s.close()


def test_a_failing_step_leaves_other_methods_working(store: Store) -> None:
    _fail_on(store.engine, "INSERT INTO EVENTS")
    with pytest.raises(StorageError):
        _step(store)
    assert [a.account_id for a in store.load_accounts()] == ["a", "b"]
    assert [e.payload for e in store.events()] == [{"v": 1}]


@pytest.mark.postgres
def test_full_disk_mid_step_rolls_the_step_back_postgres(postgres_url: str) -> None:
    s = open_store(postgres_url)
    s.save_accounts([Account("a", {}, {"BTC": 1.0}), Account("b", {}, {"USDC": 5.0})])
    assert s.commit_step(feed="f", seq=1, market_time="t1", events=[("x", "a", {"v": 1})])
    before = _dump(s.engine)

    @event.listens_for(s.engine, "before_cursor_execute")
    def _full(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            raise psycopg.errors.DiskFull("could not extend file: No space left on device")

    with pytest.raises(StorageError, match="the disk is full"):
        _step(s)
    assert _dump(s.engine) == before
    s.close()


@pytest.mark.postgres
def test_missing_postgres_database_is_one_line(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/portmargin_no_such_database"
    with pytest.raises(StorageError) as info:
        open_store(url)
    msg = _one_line(info.value)
    assert msg.startswith("cannot connect to database postgresql://")
    assert "portmargin_no_such_database" in msg
    password = make_url(url).password
    assert not password or str(password) not in msg
