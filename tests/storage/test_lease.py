"""Leases: one holder at a time, taken over when stale or dead, renewed, fenced, released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portmargin.accounts import Account
from portmargin.errors import StorageError
from portmargin.storage import MONITOR_LEASE, LeaseHeldError, Store, open_store


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A migrated SQLite database."""
    u = f"sqlite:///{tmp_path / 'l.db'}"
    open_store(u).close()
    return u


@pytest.fixture
def two(url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database, as two processes would have."""
    a, b = open_store(url), open_store(url)
    yield a, b
    a.close()
    b.close()


def _held_message(exc: BaseException, owner: str) -> None:
    msg = str(exc)
    assert "\n" not in msg
    assert f"lease 'monitor' is held by {owner} since " in msg
    assert "last heartbeat " in msg
    assert "stop that process first" in msg
    assert "wait until its lease expires at " in msg


def _exercise(a: Store, b: Store) -> None:
    with a.lease(MONITOR_LEASE, owner="host-a:1") as la:
        assert la.owner == "host-a:1"
        info = b.lease_holder(MONITOR_LEASE)
        assert info is not None
        assert info.owner == "host-a:1"
        with pytest.raises(LeaseHeldError) as exc, b.lease(MONITOR_LEASE, owner="host-b:2"):
            pass
        _held_message(exc.value, "host-a:1")
        with b.lease("other", owner="host-b:2"):  # leases are independent by name
            pass
    assert b.lease_holder(MONITOR_LEASE) is None  # released on exit
    with b.lease(MONITOR_LEASE, owner="host-b:2"):
        pass


def test_one_holder_at_a_time_sqlite(two: tuple[Store, Store]) -> None:
    _exercise(*two)


@pytest.mark.postgres
def test_one_holder_at_a_time_postgres(postgres_url: str) -> None:
    a, b = open_store(postgres_url), open_store(postgres_url)
    try:
        _exercise(a, b)
        _stale_takeover_and_fencing(a, b)
    finally:
        a.close()
        b.close()


def test_released_when_the_block_raises(two: tuple[Store, Store]) -> None:
    a, b = two
    with pytest.raises(RuntimeError), a.lease(MONITOR_LEASE):
        raise RuntimeError("boom")
    assert b.lease_holder(MONITOR_LEASE) is None


def test_one_store_cannot_hold_a_lease_twice(two: tuple[Store, Store]) -> None:
    a, _ = two
    with a.lease(MONITOR_LEASE), pytest.raises(StorageError, match="already held by this store"):
        a.lease(MONITOR_LEASE).__enter__()


def _stale_takeover_and_fencing(a: Store, b: Store) -> None:
    a.save_accounts([Account("x", {}, {"BTC": 1.0})])
    with a.lease(MONITOR_LEASE, owner="host-a:1", ttl=0.3, heartbeat=False):
        assert a.commit_step(feed="f", seq=1, market_time="t1", events=[("e", "x", {})])
        with pytest.raises(LeaseHeldError):
            b.lease(MONITOR_LEASE, owner="host-b:2").__enter__()
        time.sleep(0.5)  # no heartbeat for longer than the ttl: a has stalled
        with b.lease(MONITOR_LEASE, owner="host-b:2"):
            # a wakes up and tries to write: refused, rolled back, one line.
            with pytest.raises(StorageError) as exc:
                a.commit_step(feed="f", seq=2, market_time="t2", events=[("e", "x", {})])
            msg = str(exc.value)
            assert "\n" not in msg
            assert "lease 'monitor' of this process (host-a:1) was taken over by host-b:2" in msg
            assert "input event 2 of feed 'f' was not written" in msg
            cursor = a.cursor("f")
            assert cursor is not None
            assert cursor.last_seq == 1
            assert [e.seq for e in a.events()] == [1]
            info = b.lease_holder(MONITOR_LEASE)
            assert info is not None
            assert info.owner == "host-b:2"
        # a's release does not delete b's lease; b's did delete it.
    assert b.lease_holder(MONITOR_LEASE) is None


def test_stale_lease_is_taken_over_and_the_old_holder_fenced(two: tuple[Store, Store]) -> None:
    _stale_takeover_and_fencing(*two)


def test_commit_step_renews_the_heartbeat(two: tuple[Store, Store]) -> None:
    a, b = two
    with a.lease(MONITOR_LEASE, ttl=0.6, heartbeat=False):
        for seq in range(1, 6):
            time.sleep(0.2)
            assert a.commit_step(feed="f", seq=seq, market_time="t")
        # 1 s after acquiring, but 0.0 s after the last step: still held.
        with pytest.raises(LeaseHeldError):
            b.lease(MONITOR_LEASE).__enter__()


def test_heartbeat_thread_keeps_an_idle_lease(two: tuple[Store, Store]) -> None:
    a, b = two
    with a.lease(MONITOR_LEASE, ttl=0.6) as held:
        time.sleep(1.5)  # idle for 2.5 ttls, e.g. a monitor pacing a slow feed
        with pytest.raises(LeaseHeldError):
            b.lease(MONITOR_LEASE).__enter__()
        assert not held.lost
    assert not any(t.name.startswith("portmargin-lease") for t in threading.enumerate())


def test_renew_after_a_takeover_reports_the_loss(two: tuple[Store, Store]) -> None:
    a, b = two
    with a.lease(MONITOR_LEASE, ttl=0.2, heartbeat=False) as held:
        time.sleep(0.3)
        with b.lease(MONITOR_LEASE, owner="host-b:2"):
            with pytest.raises(StorageError, match="taken over by host-b:2"):
                held.renew()
            assert held.lost


def test_exactly_one_of_many_racing_contenders_wins(url: str) -> None:
    _race(url)


@pytest.mark.postgres
def test_exactly_one_of_many_racing_contenders_wins_postgres(postgres_url: str) -> None:
    open_store(postgres_url).close()
    _race(postgres_url)


def _race(url: str) -> None:
    stores = [open_store(url) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    won: list[int] = []
    refused: list[int] = []
    release = threading.Event()

    def contend(i: int) -> None:
        barrier.wait()
        try:
            with stores[i].lease(MONITOR_LEASE, owner=f"h:{i}"):
                won.append(i)
                release.wait(5)
        except LeaseHeldError:
            refused.append(i)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(won) + len(refused) < len(stores) and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert len(won) == 1
    assert len(refused) == len(stores) - 1


HOLD = """
import sys, time
from portmargin.storage import open_store
store = open_store(sys.argv[1])
with store.lease("monitor", ttl=3600):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_killed_holder_on_this_machine_is_replaced_at_once(url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        store = open_store(url)
        with pytest.raises(LeaseHeldError) as exc:
            store.lease(MONITOR_LEASE).__enter__()
        assert f":{proc.pid} since " in str(exc.value)  # host:pid of the holder
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # Its TTL is an hour, but its pid is gone: taken over without waiting.
        with store.lease(MONITOR_LEASE):
            pass
        store.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_invalid_ttl(two: tuple[Store, Store]) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        two[0].lease(MONITOR_LEASE, ttl=0).__enter__()
