"""Nothing stops the monitor, and nothing it refuses leaves a trace but its rejection.

* Every kind of bad line is rejected with its one-line reason and changes nothing.
* Fault injection: hypothesis interleaves garbage (non-JSON, huge/negative/NaN numbers, 2^70
  sequence numbers, unknown accounts and instruments, 1e308 deposits, stale times) with the
  valid lines of the packaged crash-day replay; the monitor ends with exactly the state of a
  run on the valid lines alone (accounts, statuses, exclusions, every snapshot, every event
  but the rejections), and each garbage line is rejected exactly once.
* An exception while applying one event (a bug, a numerical fault) rolls back that event only;
  a storage fault still stops the monitor.
* SIGKILL in the middle of a feed full of garbage, then a restart, ends as an uninterrupted
  run (the same rows in every table).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, create_engine, select, text

from portmargin.accounts import load_accounts
from portmargin.accounts._ledger import Ledger
from portmargin.errors import StorageError
from portmargin.models import load_model
from portmargin.monitor import JsonlFeed, MarketUpdate, Monitor, ReplayFeed, to_feed_line
from portmargin.storage import Store, open_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
N_ACCOUNTS = 10
GAP = 10  # valid lines carry seq 10, 20, ...: garbage may take the numbers in between


@pytest.fixture(scope="module")
def accounts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = json.loads((EXAMPLES / "accounts.json").read_text())
    doc["accounts"] = doc["accounts"][:N_ACCOUNTS]
    path = tmp_path_factory.mktemp("accts") / "accounts.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def replay() -> list[MarketUpdate]:
    """The packaged replay in 2 steps: BTC and ETH at 21:33, 09:31 and 21:29."""
    return [x for x in ReplayFeed(steps=2) if isinstance(x, MarketUpdate)]


def _valid_lines(replay: list[MarketUpdate]) -> list[tuple[int, str]]:
    """(seq, line): the replay with seq 10, 20, ... and a deposit and a withdrawal."""
    out: list[tuple[int, str]] = []
    for k, item in enumerate(replay, start=1):
        out.append((k * GAP, to_feed_line(replace(item, seq=k * GAP, position=None))))
        when = item.time.isoformat().replace("+00:00", "Z")
        if k == 2:
            dep = {"type": "deposit", "account": "acct-000", "currency": "BTC", "amount": 0.25}
            out.append((k * GAP + 5, json.dumps({"seq": k * GAP + 5, "time": when, **dep})))
        if k == 4:
            wd = {"type": "withdrawal", "account": "acct-001", "currency": "USDC", "amount": 100}
            out.append((k * GAP + 5, json.dumps({"seq": k * GAP + 5, "time": when, **wd})))
    return out


def _run(accounts: Path, feed: Path) -> Store:
    accts, acct_settings = load_accounts(accounts)
    store = open_store("sqlite://")
    store.save_accounts(accts)
    mon = Monitor(store, load_model("deribit"), acct_settings, feed_name="f")
    mon.run(JsonlFeed(feed))
    return store


def _state(store: Store) -> dict[str, Any]:
    """What a run leaves: accounts, statuses, exclusions, snapshots, non-rejection events."""
    meta = MetaData()
    meta.reflect(store.engine)
    table = meta.tables["margin_snapshots"]
    cols = [c for c in table.columns if c.name != "id"]
    with store.engine.connect() as conn:
        snaps = sorted(tuple(r) for r in conn.execute(select(*cols)))
    return {
        "accounts": store.load_accounts(),
        "statuses": store.statuses(),
        "errors": store.account_errors(),
        "snapshots": snaps,
        "events": [
            (e.seq, e.ordinal, e.kind, e.account_id, e.payload)
            for e in store.events()
            if e.kind != "rejected"
        ],
    }


# -- every kind of bad line: its reason, and nothing else --------------------------------------


def _when(item: MarketUpdate, hours: float = 0.0) -> str:
    return (item.time + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


BAD_LINES: list[tuple[str, str]] = [
    ("{not json", "malformed feed line: not JSON: Expecting property name"),
    ("[1, 2]", "malformed feed line: expected a JSON object"),
    ('{"seq": 1180591620717411303424, "type": "deposit"}', "seq: 1180591620717411303424 is "),
    ('{"seq": 18446744073709551616, "type": "deposit"}', "outside [1, 2^63 - 1]"),
    ('{"seq": -5, "type": "deposit"}', "seq: -5 is outside [1, 2^63 - 1]"),
    ('{"seq": "7", "type": "deposit"}', "seq: expected an integer, got '7'"),
    ('{"seq": 1.5, "type": "deposit"}', "seq: expected an integer, got 1.5"),
    ('{"seq": @, "type": "market", "time": "2026-02-04T22:00:00"}', "needs a time zone"),
    (
        '{"seq": @, "type": "market", "time": "1999-01-01T00:00:00Z", "underlying": "BTC", '
        '"index": 70000}',
        "time: 1999-01-01T00:00:00+00:00 is outside [2000-01-01, 2100-01-01)",
    ),
    (
        '{"seq": @, "type": "market", "time": "STALE", "underlying": "BTC", "index": 70000}',
        "stale timestamp 2026-02-04T20:33:08.476844Z is before the feed time",
    ),
    (
        '{"seq": @, "type": "market", "time": "NOW", "underlying": "BTC", "index": NaN}',
        "BTC: index: must be a finite number, got nan",
    ),
    (
        '{"seq": @, "type": "market", "time": "NOW", "underlying": "BTC", "index": 1e308}',
        "BTC: index: must be in [1e-08, 1e+09] USD, got 1e+308",
    ),
    (
        '{"seq": @, "type": "market", "time": "NOW", "underlying": "BTC", "index": 1e400}',
        "BTC: index: must be a finite number, got inf",
    ),
    (
        '{"seq": @, "type": "market", "time": "NOW", "underlying": "BTC", "index": -70000}',
        "BTC: index: must be in [1e-08, 1e+09] USD, got -70000.0",
    ),
    (
        '{"seq": @, "type": "market", "time": "NOW", "underlying": "BTC", "index": 70000, '
        '"vols": {"BTC-27MAR26-70000-P": 11}}',
        "BTC: vols.BTC-27MAR26-70000-P: must be in (0, 10]",
    ),
    (
        '{"seq": @, "type": "market", "time": "NOW", "underlying": "BTC", "index": 70000, '
        '"vols": {"ETH-27MAR26-2000-P": 0.7}}',
        "BTC: vols: ETH-27MAR26-2000-P is an option on ETH, not on BTC",
    ),
    (
        '{"seq": @, "type": "market", "time": "NOW", "underlying": "BTC", "index": 70000, '
        '"forwards": {"27MAR26": 0}}',
        "BTC: forwards.27MAR26: must be in [1e-08, 1e+09] USD, got 0.0",
    ),
    (
        '{"seq": @, "type": "market", "time": "NOW", "underlying": "DOGE", "index": 0.1}',
        "underlying: unknown underlying 'DOGE' (known: BTC, ETH)",
    ),
    (
        '{"seq": @, "type": "deposit", "time": "NOW", "account": "acct-000", '
        '"currency": "BTC", "amount": 1e308}',
        "deposit amount 1e+308 must be a finite number in (0, 1e+12] BTC",
    ),
    (
        '{"seq": @, "type": "deposit", "time": "NOW", "account": "acct-000", '
        '"currency": "BTC", "amount": -5}',
        "deposit amount -5.0 must be a finite number in (0, 1e+12] BTC",
    ),
    (
        '{"seq": @, "type": "deposit", "time": "NOW", "account": "acct-000", '
        '"currency": "DOGE", "amount": 5}',
        "unsupported currency 'DOGE'",
    ),
    (
        '{"seq": @, "type": "deposit", "time": "NOW", "account": "nobody", '
        '"currency": "BTC", "amount": 5}',
        "unknown account 'nobody'",
    ),
    (
        '{"seq": @, "type": "withdrawal", "time": "NOW", "account": "acct-000", '
        '"currency": "BTC", "amount": 1e11}',
        "withdrawal of 1e+11 BTC exceeds the balance",
    ),
    (
        '{"seq": @, "type": "trade", "time": "NOW", "account": "acct-000", '
        '"instrument": "BTC-27MAR26-70000-P", "quantity": 1e10}',
        "trade quantity 10000000000.0 must be finite, non-zero and at most 1e+09",
    ),
    (
        '{"seq": @, "type": "trade", "time": "NOW", "account": "acct-000", '
        '"instrument": "BTC-27MAR26-12345-C", "quantity": 1}',
        "unknown instrument 'BTC-27MAR26-12345-C' (not listed in the market)",
    ),
    (
        '{"seq": @, "type": "trade", "time": "NOW", "account": "acct-000", '
        '"instrument": "NOPE", "quantity": 1}',
        "unknown instrument: instrument 'NOPE'",
    ),
    (
        '{"seq": 2, "type": "deposit", "time": "NOW", "account": "acct-000", '
        '"currency": "BTC", "amount": 1}',
        "seq: 2 is not above the last sequence number",
    ),
]


def test_every_bad_line_is_rejected_with_its_reason_and_changes_nothing(
    tmp_path: Path, accounts_file: Path, replay: list[MarketUpdate]
) -> None:
    first = [to_feed_line(x) for x in replay[:2]]
    lines = list(first)
    for k, (line, _) in enumerate(BAD_LINES):
        seq = 100 + k
        lines.append(
            line.replace("@", str(seq))
            .replace("STALE", _when(replay[1], -1))
            .replace("NOW", _when(replay[1]))
        )
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "good.jsonl").write_text("\n".join(first) + "\n")
    bad = _run(accounts_file, tmp_path / "bad.jsonl")
    good = _run(accounts_file, tmp_path / "good.jsonl")
    rejected = bad.events(kinds=["rejected"])
    assert len(rejected) == len(BAD_LINES)
    for k, (e, (_, words)) in enumerate(zip(rejected, BAD_LINES, strict=True)):
        reason = e.payload["reason"]
        assert words in reason, (reason, words)
        assert "\n" not in reason
        assert e.payload["position"] == len(first) + k + 1  # its line number
    assert _state(bad) == _state(good)


# -- fault injection -----------------------------------------------------------------------------

ACCOUNT_IDS = [f"acct-{i:03d}" for i in range(N_ACCOUNTS)]
BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e10, 1e308, 2.0**70]
BAD_SEQS = [0, -1, 2**63, 2**64, 2**70, "7", 1.5, True, None]


@st.composite
def garbage(draw: st.DrawFn, lo: int, hi: int, now: MarketUpdate) -> str:
    """One line the monitor must reject, between valid seqs ``lo`` and ``hi``.

    ``now`` is the last valid market line (before the first one, a stale line could not be
    told from a valid one: there is no feed time yet, so none is drawn there).
    """
    kind = draw(st.integers(0, 9).filter(lambda k: lo > 0 or k != 2))
    if kind == 0:  # not an event at all
        raw = draw(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=60))
        raw = raw.replace("\n", " ").replace("\r", " ")
        return raw if raw.strip() else "?"
    seq_choice = draw(
        st.one_of(st.integers(lo + 1, hi - 1), st.integers(-5, lo), st.sampled_from(BAD_SEQS))
    )
    t = _when(now)
    doc: dict[str, Any] = {"time": t}
    if kind == 1:  # a market line with a bad number
        field = draw(st.sampled_from(["index", "perpetual", "vol", "forward", "rate"]))
        bad = draw(st.sampled_from(BAD_NUMBERS))
        doc.update({"type": "market", "underlying": now.underlying, "index": now.index})
        if field == "index":
            doc["index"] = bad
        elif field == "perpetual":
            doc["perpetual"] = bad
        elif field == "vol":
            doc["vols"] = {next(iter(now.vols)): bad}
        elif field == "forward":
            doc["forwards"] = {"27MAR26": bad}
        else:
            doc["rate"] = bad if abs(bad) > 1 or not math.isfinite(bad) else 5.0
    elif kind == 2:  # a complete market line, but stale
        hours = draw(st.floats(0.001, 1e5))
        return to_feed_line(
            replace(now, seq=seq_choice if isinstance(seq_choice, int) else lo + 1)
        ).replace(t, _when(now, -hours))
    elif kind == 3:  # a deposit or withdrawal of a bad amount
        doc.update(
            {
                "type": draw(st.sampled_from(["deposit", "withdrawal"])),
                "account": draw(st.sampled_from(ACCOUNT_IDS)),
                "currency": draw(st.sampled_from(["BTC", "ETH", "USDC"])),
                "amount": draw(
                    st.sampled_from([math.nan, math.inf, -1.0, 0.0, 1e13, 1e308, 2.0**70])
                ),
            }
        )
    elif kind == 4:  # an unknown account
        doc.update(
            {
                "type": "deposit",
                "account": draw(st.text("abcxyz-", min_size=1, max_size=12)) + "?",
                "currency": "USDC",
                "amount": 10.0,
            }
        )
    elif kind == 5:  # an unknown instrument
        doc.update(
            {
                "type": "trade",
                "account": draw(st.sampled_from(ACCOUNT_IDS)),
                "instrument": draw(
                    st.sampled_from(
                        ["BTC-27MAR26-12345-C", "XYZ-27MAR26-1-C", "BTC-30FEB26", "-", "ETH-"]
                    )
                ),
                "quantity": 1.0,
            }
        )
    elif kind == 6:  # a huge or non-finite quantity
        doc.update(
            {
                "type": "trade",
                "account": draw(st.sampled_from(ACCOUNT_IDS)),
                "instrument": next(iter(now.vols)),
                "quantity": draw(st.sampled_from([1e10, -1e300, math.nan, math.inf, 0.0])),
            }
        )
    elif kind == 7:  # a valid deposit with an unusable sequence number
        doc.update(
            {"type": "deposit", "account": ACCOUNT_IDS[0], "currency": "USDC", "amount": 1.0}
        )
        seq_choice = draw(st.sampled_from([2**63, 2**64, 2**70, -1, 0]))
    elif kind == 8:  # an unknown underlying
        doc.update({"type": "market", "underlying": "DOGE", "index": 0.1})
    else:  # a withdrawal beyond any balance
        doc.update(
            {"type": "withdrawal", "account": ACCOUNT_IDS[1], "currency": "USDC", "amount": 1e11}
        )
    if seq_choice is not None:
        doc["seq"] = seq_choice
    return json.dumps(doc)


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, accounts_file: Path, replay: list[MarketUpdate]
) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ref") / "valid.jsonl"
    path.write_text("".join(line + "\n" for _, line in _valid_lines(replay)))
    store = _run(accounts_file, path)
    state = _state(store)
    store.close()
    assert state["events"], "the crash must emit status events"
    return state


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_garbage_interleaved_with_a_replay_leaves_exactly_the_valid_run(
    data: st.DataObject,
    tmp_path_factory: pytest.TempPathFactory,
    accounts_file: Path,
    replay: list[MarketUpdate],
    reference: dict[str, Any],
) -> None:
    valid = _valid_lines(replay)
    lines: list[str] = []
    n_garbage = 0
    prev = 0
    now = replay[0]
    markets = iter(replay)
    for seq, line in valid:
        if seq % GAP == 0:
            item = next(markets)
        junk = data.draw(st.lists(garbage(prev, seq, now), max_size=3), label=f"before {seq}")
        lines += junk
        n_garbage += len(junk)
        lines.append(line)
        prev = seq
        if seq % GAP == 0:
            now = item
    path = tmp_path_factory.mktemp("fuzz") / "feed.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    store = _run(accounts_file, path)
    try:
        assert _state(store) == reference
        assert len(store.events(kinds=["rejected"])) == n_garbage
    finally:
        store.close()


# -- exceptions while applying one event ---------------------------------------------------------


def test_an_exception_while_applying_rolls_back_that_event_only(
    tmp_path: Path,
    accounts_file: Path,
    replay: list[MarketUpdate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accts, acct_settings = load_accounts(accounts_file)
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.save_accounts(accts)
    mon = Monitor(store, load_model("deribit"), acct_settings, feed_name="f")
    for item in replay[:2]:
        mon.process(item)
    before = (dict(mon.accounts), dict(mon.margins), mon.ledger, dict(mon.states))
    tick = Ledger.tick

    def broken(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        raise FloatingPointError("overflow encountered in multiply")

    monkeypatch.setattr(Ledger, "tick", broken)
    (out,) = mon.process(replay[2]) or []
    assert out["kind"] == "rejected"
    assert out["reason"] == (
        "internal error while applying it (FloatingPointError: overflow encountered in multiply)"
    )
    assert (dict(mon.accounts), dict(mon.margins), mon.ledger, dict(mon.states)) == before
    assert mon.last_seq == replay[2].seq  # the cursor moved past it
    monkeypatch.setattr(Ledger, "tick", tick)
    assert mon.process(replay[3]) is not None  # the monitor carries on
    assert mon.states["ETH"] is not before[3]["ETH"]
    store.close()


def test_a_storage_fault_still_stops_the_monitor(
    tmp_path: Path,
    accounts_file: Path,
    replay: list[MarketUpdate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accts, acct_settings = load_accounts(accounts_file)
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.save_accounts(accts)
    mon = Monitor(store, load_model("deribit"), acct_settings, feed_name="f")

    def full(**_: Any) -> bool:
        raise StorageError("database sqlite:///m.db: the disk is full")

    monkeypatch.setattr(store, "commit_step", full)
    with pytest.raises(StorageError, match="the disk is full"):
        mon.process(replay[0])
    assert mon.last_seq == 0
    assert mon.states == {}
    store.close()


def test_non_finite_figures_exclude_the_account_not_the_event(
    tmp_path: Path,
    accounts_file: Path,
    replay: list[MarketUpdate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A figure that is not finite (here: an account's IM made NaN after the tick) excludes
    # that account with its reason; the others are margined and committed.
    from portmargin.monitor import _engine as engine

    accts, acct_settings = load_accounts(accounts_file)
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.save_accounts(accts)
    mon = Monitor(store, load_model("deribit"), acct_settings, feed_name="f")
    for item in replay[:2]:
        mon.process(item)
    real = engine.finite_figures  # type: ignore[attr-defined]  # imported there

    def nan_for_acct_000(m: Any) -> str | None:
        if m.account_id == "acct-000":
            return "pool BTC: initial_margin is nan, not a finite number"
        return real(m)

    monkeypatch.setattr(engine, "finite_figures", nan_for_acct_000)
    events = mon.process(replay[2]) or []
    (err,) = [e for e in events if e["kind"] == "account_error"]
    assert err["account"] == "acct-000"
    assert err["reason"] == (
        "its figures are not finite (pool BTC: initial_margin is nan, not a finite number)"
    )
    assert store.account_errors() == {"acct-000": err["reason"]}
    assert "acct-000" not in mon.margins
    assert set(mon.margins) >= {"acct-001", "acct-002"}
    monkeypatch.setattr(engine, "finite_figures", real)
    events = mon.process(replay[4]) or []  # the next BTC update: it is back
    assert [e["account"] for e in events if e["kind"] == "account_restored"] == ["acct-000"]
    assert store.account_errors() == {}
    store.close()


# -- SIGKILL while garbage is being rejected -----------------------------------------------------


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
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


def _cmd(accounts: Path, feed: Path, db: str, speed: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "portmargin.cli",
        "monitor",
        "--accounts",
        str(accounts),
        "--feed",
        str(feed),
        "--db",
        db,
        "--headless",
        "--speed",
        str(speed),
    ]


@pytest.fixture
def garbage_feed(tmp_path: Path, replay: list[MarketUpdate]) -> Path:
    lines = []
    for seq, line in _valid_lines(replay):
        lines += [
            "{garbage",
            f'{{"seq": {2**64}, "type": "deposit", "time": "2026-02-05T00:00:00Z", '
            '"account": "acct-000", "currency": "BTC", "amount": 1}',
            f'{{"seq": {seq - 1}, "type": "deposit", "time": "2026-02-05T00:00:00Z", '
            '"account": "acct-000", "currency": "BTC", "amount": 1e308}',
        ]
        lines.append(line)
    path = tmp_path / "garbage.jsonl"
    path.write_text("".join(x + "\n" for x in lines))
    return path


def test_sigkill_while_rejecting_garbage_then_restart(
    tmp_path: Path, accounts_file: Path, garbage_feed: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'killed.db'}"
    span = 24 * 3600.0
    with (tmp_path / "err.log").open("wb") as err:
        proc = subprocess.Popen(
            _cmd(accounts_file, garbage_feed, db, span / 3.0),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    engine = create_engine(db)
    killed_at = -1
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with engine.connect() as c:
                    pos = c.execute(text("SELECT position FROM monitor_cursor")).scalar()
            except Exception:  # the tables may not exist yet
                pos = None
            if pos is not None and pos >= 14:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = int(pos)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and killed_at < 0:
            proc.kill()
        proc.wait(timeout=30)
        engine.dispose()
    total = len(garbage_feed.read_text().splitlines())
    assert 14 <= killed_at < total, (tmp_path / "err.log").read_text()
    done = subprocess.run(
        _cmd(accounts_file, garbage_feed, db, 0.0), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "already committed" in done.stdout
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    ok = subprocess.run(
        _cmd(accounts_file, garbage_feed, clean, 0.0), capture_output=True, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr
    assert _dump(db) == _dump(clean)
