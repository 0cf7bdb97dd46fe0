"""SIGKILL the monitor mid-replay, restart it: no lost and no duplicated events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from portmargin.accounts import load_accounts
from portmargin.models import load_model
from portmargin.monitor import Monitor, ReplayFeed
from portmargin.storage import open_store

STEPS = 6


def _cmd(accounts: Path, db: str, speed: float) -> list[str]:
    # No --data: the replay of the crash-day data shipped in the package (runs on any clone).
    return [
        sys.executable,
        "-m",
        "portmargin.cli",
        "monitor",
        "--accounts",
        str(accounts),
        "--feed",
        "replay",
        "--steps",
        str(STEPS),
        "--db",
        db,
        "--headless",
        "--speed",
        str(speed),
    ]


def _reference(accounts: Path, db: str) -> list[tuple[object, ...]]:
    accts, settings = load_accounts(accounts)
    store = open_store(db)
    store.save_accounts(accts)
    feed = ReplayFeed(steps=STEPS)
    Monitor(store, load_model("deribit"), settings, feed_name=feed.name).run(feed)
    out: list[tuple[object, ...]] = [
        (e.seq, e.ordinal, e.kind, e.account_id, e.payload) for e in store.events()
    ]
    store.close()
    return out


def _kill_and_resume(accounts: Path, db: str, log: Path) -> None:
    span = 24 * 3600.0
    with log.open("wb") as err:
        proc = subprocess.Popen(
            _cmd(accounts, db, span / 6.0), stdout=subprocess.DEVNULL, stderr=err
        )
    engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://"))
    deadline = time.monotonic() + 120
    killed_at = -1
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with engine.connect() as c:
                    seq = c.execute(text("SELECT last_seq FROM monitor_cursor")).scalar()
            except Exception:  # the tables may not exist yet
                seq = None
            if seq is not None and seq >= 4:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = int(seq)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and killed_at < 0:
            proc.kill()
        proc.wait(timeout=30)
        engine.dispose()
    assert killed_at >= 4, log.read_text()
    assert killed_at < 2 * (STEPS + 1), "the run finished before it could be killed"
    done = subprocess.run(_cmd(accounts, db, 0.0), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already committed" in done.stdout


def _events(db: str) -> list[tuple[object, ...]]:
    store = open_store(db)
    out: list[tuple[object, ...]] = [
        (e.seq, e.ordinal, e.kind, e.account_id, e.payload) for e in store.events()
    ]
    store.close()
    return out


def test_sigkill_and_restart_sqlite(small_accounts: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'killed.db'}"
    _kill_and_resume(small_accounts, db, tmp_path / "stderr.log")
    got = _events(db)
    want = _reference(small_accounts, f"sqlite:///{tmp_path / 'clean.db'}")
    assert len({(s, o) for s, o, *_ in got}) == len(got)
    assert got == want
    store = open_store(db)
    cursor = store.cursor(f"replay:{STEPS}")
    store.close()
    assert cursor is not None
    assert cursor.last_seq == 2 * (STEPS + 1)


@pytest.mark.postgres
def test_sigkill_and_restart_postgres(
    small_accounts: Path, tmp_path: Path, postgres_url: str
) -> None:
    db = postgres_url
    _kill_and_resume(small_accounts, db, tmp_path / "stderr.log")
    got = _events(db)
    want = _reference(small_accounts, f"sqlite:///{tmp_path / 'clean.db'}")
    assert len({(s, o) for s, o, *_ in got}) == len(got)
    assert got == want


@pytest.mark.parametrize("cut", [1, 3, 4, 7])
def test_resume_after_any_committed_event_is_bit_identical(
    small_accounts: Path, tmp_path: Path, cut: int
) -> None:
    # A SIGKILL can only land between commits, so stopping after `cut` events and starting
    # a fresh monitor on the same database is the same restart, at a chosen point. The
    # resumed run rebuilds its book from the database; every figure must equal the
    # uninterrupted run's to the last bit (odd cuts resume between a BTC and an ETH update).
    want = _reference(small_accounts, f"sqlite:///{tmp_path / 'clean.db'}")
    accts, settings = load_accounts(small_accounts)
    db = f"sqlite:///{tmp_path / 'cut.db'}"
    store = open_store(db)
    store.save_accounts(accts)
    for limit in (cut, None):
        feed = ReplayFeed(steps=STEPS)
        Monitor(store, load_model("deribit"), settings, feed_name=feed.name).run(
            feed, max_events=limit
        )
    store.close()
    assert _events(db) == want
