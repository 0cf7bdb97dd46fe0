"""CLI: `portmargin accounts load/show` and the terminal view of `portmargin monitor`.

Runs without ../shared/data: the market feed is a JSON-lines file written from a seeded
simulated feed around the built-in demo market (2026-02-25), and the accounts are the first
30 of examples/accounts.json (fixture ``small_accounts``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console, Group

import portmargin.cli._monitor as cli_monitor
from portmargin.accounts import load_accounts
from portmargin.cli import main
from portmargin.market import demo_market
from portmargin.models import load_model
from portmargin.monitor import AccountChange, Monitor, SimulatedFeed, to_feed_line
from portmargin.storage import Store, open_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACCOUNTS = EXAMPLES / "accounts.json"
FEED_STEPS = 3  # time steps of the simulated feed: (3 + 1) × {BTC, ETH} = 8 market updates
FEED_EVENTS = 2 * (FEED_STEPS + 1)
SUMMARY = re.compile(
    r"processed (\d+) input events \((\d+) already committed\), (\d+) events, (\d+) rejected, "
    r"[\d.]+ s"
)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextlib.contextmanager
def _store(url: str) -> Iterator[Store]:
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def demo_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSON-lines market feed: a seeded simulated walk from the demo market."""
    path = tmp_path_factory.mktemp("feed") / "demo.jsonl"
    items = SimulatedFeed(demo_market(), seed=1, steps=FEED_STEPS)
    path.write_text("".join(to_feed_line(i) + "\n" for i in items))  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="module")
def headless_run(
    tmp_path_factory: pytest.TempPathFactory, small_accounts: Path, demo_feed: Path
) -> tuple[str, str]:
    """A headless monitor run over the whole feed: (database URL, stdout)."""
    url = _url(tmp_path_factory.mktemp("headless") / "m.db")
    out = io.StringIO()
    args = ["monitor", "--accounts", str(small_accounts), "--feed", str(demo_feed), "--db", url]
    with contextlib.redirect_stdout(out):
        code = main([*args, "--headless"])
    assert code == 0
    return url, out.getvalue()


# -- accounts load ---------------------------------------------------------------------------


def test_load_reports_the_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _url(tmp_path / "m.db")
    n = len(json.loads(ACCOUNTS.read_text())["accounts"])
    assert main(["accounts", "load", str(ACCOUNTS), "--db", url]) == 0
    cap = capsys.readouterr()
    assert " ".join(cap.out.split()) == f"stored {n} accounts in {url}"
    assert cap.err == ""
    with _store(url) as store:
        stored = store.load_accounts()
    expected, _ = load_accounts(ACCOUNTS)
    assert stored == sorted(expected, key=lambda a: a.account_id)


def test_loading_the_same_accounts_twice_is_refused(
    tmp_path: Path, small_accounts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "m.db")
    assert main(["accounts", "load", str(small_accounts), "--db", url]) == 0
    capsys.readouterr()
    assert main(["accounts", "load", str(small_accounts), "--db", url]) == 2
    assert "already stored" in _one_error_line(capsys.readouterr().err)
    with _store(url) as store:
        assert len(store.load_accounts()) == 30


GOOD = {"id": "new-1", "balances": {"USDC": 1000.0}}


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        (
            {"accounts": [GOOD, {"id": "new-2", "balances": {"BTC": "lots"}}]},
            "accounts.1.balances.BTC",
            "valid number",
        ),
        ({"accounts": [GOOD, GOOD]}, "accounts.1.id", "duplicate account id"),
        (
            {"accounts": [{"id": "new-2", "balances": {"DOGE": 1}}]},
            "balances.DOGE",
            "unsupported currency",
        ),
        (
            {"accounts": [{"id": "new-2", "positions": [{"instrument": "BTC-PERPETUAL"}]}]},
            "accounts.0.positions.0.quantity",
            "required",
        ),
        (
            {
                "accounts": [
                    GOOD,
                    {"id": "new-2", "positions": [{"instrument": "garbage", "quantity": 1}]},
                ]
            },
            "accounts.1: account new-2: positions: instrument 'garbage'",
            "not a recognised name",
        ),
        (
            {
                "accounts": [
                    {
                        "id": "new-2",
                        "positions": [{"instrument": "BTC-30FEB26-70000-C", "quantity": 1}],
                    }
                ]
            },
            "instrument 'BTC-30FEB26-70000-C'",
            "not a real date",
        ),
        ({"accounts": {"id": "new-2"}}, "accounts", "valid list"),
        ({"settings": {"haircuts": {"BTC": 2}}, "accounts": [GOOD]}, "haircuts.BTC", "[0, 1)"),
        ("{not json", "line 1", "bad JSON"),
    ],
)
def test_load_malformed_file_is_one_line_and_leaves_the_db_unchanged(
    tmp_path: Path,
    small_accounts: Path,
    capsys: pytest.CaptureFixture[str],
    doc: object,
    field: str,
    reason: str,
) -> None:
    url = _url(tmp_path / "m.db")
    assert main(["accounts", "load", str(small_accounts), "--db", url]) == 0
    with _store(url) as store:
        before = (store.load_accounts(), store.statuses())
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    code = main(["accounts", "load", str(bad), "--db", url])
    cap = capsys.readouterr()
    assert code == 2
    assert cap.out == ""
    line = _one_error_line(cap.err)
    assert str(bad) in line
    assert field in line
    assert reason in line
    with _store(url) as store:
        assert (store.load_accounts(), store.statuses()) == before


def test_failed_load_creates_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"accounts": [{"id": "a", "balances": {"BTC": "x"}}]}))
    assert main(["accounts", "load", str(bad), "--db", _url(tmp_path / "m.db")]) == 2
    _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "m.db").exists()


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["accounts", "load", str(tmp_path / "nope.json"), "--db", _url(tmp_path / "m.db")])
    assert code == 2
    assert "file not found" in _one_error_line(capsys.readouterr().err)


# -- headless monitor and accounts show ------------------------------------------------------


def test_headless_monitor_prints_one_line_per_event_and_writes_them_to_the_db(
    headless_run: tuple[str, str],
) -> None:
    # Headless prints one line per emitted event (the events stored, in order), then the
    # summary; no view. (It used to print the summary only.)
    url, out = headless_run
    lines = out.strip().splitlines()
    m = SUMMARY.fullmatch(lines[-1])
    assert m is not None, lines[-1]
    processed, skipped, emitted, rejected = map(int, m.groups())
    assert (processed, skipped, rejected) == (FEED_EVENTS, 0, 0)
    with _store(url) as store:
        events = store.events()
        cursor = store.cursor("jsonl:demo.jsonl")
    assert emitted == len(events) > 0
    assert {e.kind for e in events} <= {"margin_call", "liquidation", "healthy"}
    assert cursor is not None
    assert cursor.last_seq == FEED_EVENTS
    assert len(lines) == len(events) + 1
    for line, e in zip(lines, events, strict=False):
        fig = e.payload["figures"]
        assert line == (
            f"{e.market_time}  seq {e.seq}  {e.kind}  {e.account_id}  "
            f"equity {fig['equity']:,.0f} / IM {fig['initial_margin']:,.0f} / "
            f"MM {fig['maintenance_margin']:,.0f} USD"
        )
    assert "accounts by margin ratio" not in out


def test_show_prints_balances_positions_margin_and_events(
    headless_run: tuple[str, str], small_accounts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = headless_run
    with _store(url) as store:
        events = store.events()
        account_id = events[0].account_id
        assert account_id is not None
        snap = store.latest_snapshot(account_id)
        status = store.statuses()[account_id]
        stored = next(a for a in store.load_accounts() if a.account_id == account_id)
    assert main(["accounts", "show", account_id, "--db", url]) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    doc = json.loads(cap.out)
    src = next(
        a for a in json.loads(small_accounts.read_text())["accounts"] if a["id"] == account_id
    )
    assert doc["id"] == account_id
    # Balances as stored now (the monitor settles futures P&L into them).
    assert doc["balances"] == dict(stored.balances)
    assert set(src["balances"]) <= set(doc["balances"])
    # Positions as stored now (inverse futures sizes are rescaled when settled).
    assert {p["instrument"]: p["quantity"] for p in doc["positions"]} == dict(stored.positions)
    assert {p["instrument"] for p in doc["positions"]} == {
        p["instrument"] for p in src["positions"]
    }
    latest = doc["latest_margin"]
    assert latest == snap
    assert latest["seq"] == FEED_EVENTS or latest["seq"] == FEED_EVENTS - 1
    assert latest["initial_margin"] >= latest["maintenance_margin"] > 0
    assert math.isfinite(latest["equity"])
    assert doc["status"] == latest["status"] == status
    assert status in ("margin_call", "liquidation", "healthy")
    mine = [e for e in events if e.account_id == account_id]
    assert doc["events"] == [
        {"seq": e.seq, "kind": e.kind, "market_time": e.market_time} for e in mine
    ]
    assert doc["events"][-1]["kind"] == status or status == "healthy"


def test_show_before_any_margin_run(
    tmp_path: Path, small_accounts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path / "m.db")
    assert main(["accounts", "load", str(small_accounts), "--db", url]) == 0
    capsys.readouterr()
    assert main(["accounts", "show", "acct-001", "--db", url]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == "acct-001"
    assert doc["positions"]
    assert doc["latest_margin"] is None
    assert doc["events"] == []


def test_show_unknown_id_is_one_line(
    headless_run: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = headless_run
    assert main(["accounts", "show", "acct-nobody", "--db", url]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    line = _one_error_line(cap.err)
    assert "'acct-nobody'" in line
    assert "not found" in line


def test_monitor_refuses_an_account_with_an_unknown_instrument(
    tmp_path: Path, demo_feed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Otherwise every market update is rejected for every account (the desk goes blind).
    doc = json.loads(ACCOUNTS.read_text())
    doc["accounts"] = [
        *doc["accounts"][:3],
        {"id": "typo", "positions": [{"instrument": "BTC-27MAR26-7000O-C", "quantity": 1}]},
    ]
    accts = tmp_path / "accounts.json"
    accts.write_text(json.dumps(doc))
    url = _url(tmp_path / "m.db")
    args = ["monitor", "--accounts", str(accts), "--feed", str(demo_feed), "--db", url]
    assert main([*args, "--headless"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{accts}: accounts.3: account typo: positions: instrument 'BTC-27MAR26-7000O-C'" in line
    assert not (tmp_path / "m.db").exists()


# -- the Live view -----------------------------------------------------------------------------


def _render(view: Group, width: int = 200) -> str:
    con = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    con.print(view)
    return con.export_text()


def _rows(block: str) -> list[list[str]]:
    """Data rows of a rendered rich table (cells between the │ separators)."""
    out = []
    for line in block.splitlines():
        if line.startswith("│"):
            out.append([c.strip() for c in line.strip("│").split("│")])
    return [r for r in out if r[0] not in ("account", "seq")]


@pytest.fixture(scope="module")
def live_monitor(tmp_path_factory: pytest.TempPathFactory, small_accounts: Path) -> Monitor:
    """A monitor after a few simulated steps, a rejected and an accepted deposit."""
    accts, settings = load_accounts(small_accounts)
    store = open_store(_url(tmp_path_factory.mktemp("view") / "m.db"))
    store.save_accounts(accts)
    feed = SimulatedFeed(demo_market(), seed=1, steps=2)
    mon = Monitor(store, load_model("deribit"), settings, feed_name=feed.name)
    mon.run(feed)
    assert mon.feed_time is not None
    seq = mon.last_seq
    mon.process(
        AccountChange(seq + 1, mon.feed_time, "deposit", "acct-nobody", currency="USDC", amount=1)
    )
    mon.process(
        AccountChange(seq + 2, mon.feed_time, "deposit", "acct-000", currency="USDC", amount=5)
    )
    return mon


def test_view_ranks_accounts_by_margin_ratio_highest_first(live_monitor: Monitor) -> None:
    mon = live_monitor
    text = _render(cli_monitor._view(mon))
    accounts_block, _ = text.split("recent events")
    rows = _rows(accounts_block)
    assert len(mon.margins) >= 20
    assert len(rows) == 15  # the 15 closest to (or past) liquidation
    ranked = sorted(mon.margins.values(), key=lambda a: a.margin_ratio, reverse=True)
    ratios = [math.inf if r[5] == "inf" else float(r[5].rstrip("%")) / 100 for r in rows]
    assert ratios == sorted(ratios, reverse=True)
    assert ratios[0] == pytest.approx(ranked[0].margin_ratio, abs=5e-4)
    # Everything not shown ranks at or below the last row shown.
    shown = {r[0] for r in rows}
    assert all(a.margin_ratio <= ratios[-1] + 5e-4 for a in ranked if a.account_id not in shown)
    for r in rows:
        a = mon.margins[r[0]]
        ratio = "inf" if math.isinf(a.margin_ratio) else f"{a.margin_ratio:.1%}"
        assert r[1:] == [
            a.method,
            f"{a.equity_usd:,.0f}",
            f"{a.initial_margin_usd:,.0f}",
            f"{a.maintenance_margin_usd:,.0f}",
            ratio,
            a.status.value,
        ]
    assert {r[6] for r in rows} & {"margin_call", "liquidation"}


def test_view_shows_recent_events_newest_first(live_monitor: Monitor) -> None:
    mon = live_monitor
    _, events_block = _render(cli_monitor._view(mon)).split("recent events")
    rows = _rows(events_block)
    recent = list(mon.recent)[:10]
    assert len(rows) == len(recent) >= 3  # a status change, a rejection, a deposit at least
    assert [(r[2], r[3]) for r in rows] == [(e["kind"], e.get("account") or "-") for e in recent]
    newest, rejected = rows[0], rows[1]
    assert newest[2:4] == ["deposit", "acct-000"]
    assert newest[0] == str(mon.last_seq)
    assert newest[1] == mon.recent[0]["market_time"]
    assert newest[4].startswith("equity ")
    assert rejected[2:4] == ["rejected", "acct-nobody"]
    assert rejected[4] == "unknown account 'acct-nobody'"


def test_view_head_shows_feed_time_and_updates_per_second(live_monitor: Monitor) -> None:
    mon = live_monitor
    assert mon.feed_time is not None
    head = _render(cli_monitor._view(mon)).splitlines()[0]
    assert f"feed time {mon.feed_time.isoformat()}" in head
    assert f"seq {mon.last_seq}" in head
    assert mon.stats.updates_per_second > 0
    assert f"{mon.stats.updates_per_second:,.1f} updates/s" in head
    assert f"events {mon.stats.emitted}" in head
    assert "rejected 1" in head


@pytest.fixture
def idle_monitor(tmp_path: Path, small_accounts: Path) -> Iterator[Monitor]:
    """A monitor that has seen no market data yet."""
    accts, settings = load_accounts(small_accounts)
    with _store(_url(tmp_path / "m.db")) as store:
        store.save_accounts(accts)
        yield Monitor(store, load_model("deribit"), settings, feed_name="none")


def test_view_before_any_event(idle_monitor: Monitor) -> None:
    text = _render(cli_monitor._view(idle_monitor))
    assert text.splitlines()[0].startswith("feed time -   seq 0   0.0 updates/s")
    accounts_block, events_block = text.split("recent events")
    assert _rows(accounts_block) == []
    assert _rows(events_block) == []


def test_view_shows_feed_data_as_text_not_markup(idle_monitor: Monitor) -> None:
    # Feed lines are untrusted: an account id like "[/bold]" used to raise rich's MarkupError
    # inside the Live view and kill the monitor with a traceback.
    mon = idle_monitor
    for i, acct in enumerate(["[/bold]", "[red]x"], start=1):
        t = demo_market().valuation_time
        out = mon.process(AccountChange(i, t, "deposit", acct, currency="USDC", amount=1))
        assert out is not None
        assert out[0]["kind"] == "rejected"
    rows = _rows(_render(cli_monitor._view(mon)).split("recent events")[1])
    assert [r[3] for r in rows] == ["[red]x", "[/bold]"]
    assert [r[4] for r in rows] == ["unknown account '[red]x'", "unknown account '[/bold]'"]


def test_view_shows_the_ten_newest_events(idle_monitor: Monitor) -> None:
    mon = idle_monitor
    t = demo_market().valuation_time
    for i in range(1, 13):
        mon.process(AccountChange(i, t, "deposit", f"nobody-{i}", currency="USDC", amount=1))
    rows = _rows(_render(cli_monitor._view(mon)).split("recent events")[1])
    assert [r[0] for r in rows] == [str(i) for i in range(12, 2, -1)]
    assert [r[3] for r in rows] == [f"nobody-{i}" for i in range(12, 2, -1)]


def test_monitor_with_the_live_view_exits_0(
    tmp_path: Path,
    small_accounts: Path,
    demo_feed: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = _url(tmp_path / "m.db")
    args = ["monitor", "--accounts", str(small_accounts), "--feed", str(demo_feed), "--db", url]
    assert main([*args, "--max-events", "4"]) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    # Not a terminal: Live prints its last frame once, then the summary on a line of its own.
    assert "accounts by margin ratio" in cap.out
    assert "recent events" in cap.out
    lines = cap.out.rstrip("\n").splitlines()
    assert lines[-2].startswith("└")
    m = SUMMARY.fullmatch(lines[-1])
    assert m is not None, lines[-1]
    assert m.group(1) == "4"
    with _store(url) as store:
        cursor = store.cursor("jsonl:demo.jsonl")
    assert cursor is not None
    assert cursor.last_seq == 4


def test_live_loop_redraws_on_a_terminal(
    tmp_path: Path,
    small_accounts: Path,
    demo_feed: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    screen = io.StringIO()
    term = Console(
        file=screen, force_terminal=True, width=160, color_system="standard", highlight=False
    )
    monkeypatch.setattr(cli_monitor, "console", term)
    frames: list[Monitor] = []
    view = cli_monitor._view

    def counting_view(m: Monitor) -> Group:
        frames.append(m)
        return view(m)

    monkeypatch.setattr(cli_monitor, "_view", counting_view)
    # 60 s feed steps at 600× speed: 0.1 s per step, so Live's 4 Hz refresh thread runs too.
    url = _url(tmp_path / "m.db")
    args = ["monitor", "--accounts", str(small_accounts), "--feed", str(demo_feed), "--db", url]
    assert main([*args, "--speed", "600"]) == 0
    assert capsys.readouterr().err == ""
    out = screen.getvalue()
    assert len(frames) == 1 + FEED_EVENTS  # the first frame, then one per input event
    assert "\x1b[?25l" in out  # Live hid the cursor: it drew on a terminal
    assert out.count("accounts by margin ratio") >= 2  # redrawn, not printed once
    last_frame = out[out.rindex("feed time") :]
    t_end = demo_market().valuation_time + timedelta(seconds=60 * FEED_STEPS)
    assert f"feed time {t_end.isoformat()}" in last_frame
    assert f"seq {FEED_EVENTS}" in last_frame
    assert f"processed {FEED_EVENTS} input events" in out


# -- reliability from the command line ---------------------------------------------------------


def _feed_with(tmp_path: Path, demo_feed: Path, extra: list[str]) -> Path:
    path = tmp_path / "feed.jsonl"
    path.write_text(demo_feed.read_text() + "".join(x + "\n" for x in extra))
    return path


def test_a_2_64_seq_and_a_1e308_deposit_are_rejected_and_a_restart_does_not_crash(
    tmp_path: Path, small_accounts: Path, demo_feed: Path
) -> None:
    # Both used to crash the monitor (OverflowError into SQLite INTEGER; NaN equity into a
    # NOT NULL column) on every restart, since the cursor never moved past the line.
    last = demo_market().valuation_time + timedelta(seconds=60 * FEED_STEPS)
    when = last.isoformat().replace("+00:00", "Z")
    feed = _feed_with(
        tmp_path,
        demo_feed,
        [
            f'{{"seq": {2**64}, "type": "deposit", "time": "{when}", "account": "acct-000", '
            '"currency": "BTC", "amount": 1}',
            f'{{"seq": {FEED_EVENTS + 1}, "type": "deposit", "time": "{when}", '
            '"account": "acct-000", "currency": "BTC", "amount": 1e308}',
        ],
    )
    url = _url(tmp_path / "m.db")
    args = ["monitor", "--accounts", str(small_accounts), "--feed", str(feed), "--db", url]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--headless"]) == 0
    lines = out.getvalue().strip().splitlines()
    assert lines[-3] == (
        f"{when}  seq -  rejected malformed line {FEED_EVENTS + 1}  -  "
        "malformed feed line: seq: 18446744073709551616 is outside [1, 2^63 - 1]"
    )
    assert lines[-2] == (
        f"{when}  seq {FEED_EVENTS + 1}  rejected deposit line {FEED_EVENTS + 2}  acct-000  "
        "deposit amount 1e+308 must be a finite number in (0, 1e+12] BTC"
    )
    m = SUMMARY.fullmatch(lines[-1])
    assert m is not None
    assert (int(m.group(1)), int(m.group(4))) == (FEED_EVENTS + 2, 2)
    with _store(url) as store:
        before = store.events()
        accounts = store.load_accounts()
        cursor = store.cursor(f"jsonl:{feed.name}")
    assert cursor is not None
    assert (cursor.last_seq, cursor.position) == (FEED_EVENTS + 1, FEED_EVENTS + 2)
    # A restart skips both lines: no crash, nothing written twice.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--headless"]) == 0
    assert out.getvalue().strip().splitlines() == [
        f"processed 0 input events ({FEED_EVENTS + 2} already committed), 0 events, "
        f"0 rejected, {out.getvalue().split(', ')[-1].strip()}"
    ]
    with _store(url) as store:
        assert store.events() == before
        assert store.load_accounts() == accounts


def test_index_only_lines_work_on_a_seeded_market(
    tmp_path: Path, small_accounts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from portmargin.monitor import market_to_dict, states_of

    demo = demo_market()
    market = tmp_path / "market.json"
    market.write_text(json.dumps(market_to_dict(demo, states_of(demo))))
    t = (demo.valuation_time + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    feed = tmp_path / "index.jsonl"
    feed.write_text(
        f'{{"seq": 1, "type": "market", "time": "{t}", "underlying": "BTC", "index": 66500}}\n'
        f'{{"seq": 2, "type": "market", "time": "{t}", "underlying": "ETH", "index": 3300}}\n'
    )
    url = _url(tmp_path / "m.db")
    args = ["monitor", "--accounts", str(small_accounts), "--feed", str(feed), "--db", url]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--market", str(market), "--headless"]) == 0
    m = SUMMARY.fullmatch(out.getvalue().strip().splitlines()[-1])
    assert m is not None
    assert (int(m.group(1)), int(m.group(4))) == (2, 0)
    with _store(url) as store:
        assert store.latest_snapshot("acct-000") is not None  # margined on the moved market
    assert capsys.readouterr().err == ""


def test_market_with_the_replay_is_refused(
    tmp_path: Path, small_accounts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    market = tmp_path / "m.json"
    market.write_text(json.dumps({"valuation_time": "2026-02-25T08:00:00Z", "underlyings": {}}))
    args = ["monitor", "--accounts", str(small_accounts), "--db", _url(tmp_path / "m.db")]
    assert main([*args, "--market", str(market)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--market seeds a JSON-lines or simulated feed; the replay brings its own" in line
    assert not (tmp_path / "m.db").exists()


def test_the_default_replay_runs_from_the_packaged_data(
    tmp_path: Path, small_accounts: Path
) -> None:
    # No --data: the crash-day replay reads the copy shipped in the package (a fresh install
    # has no ../shared).
    url = _url(tmp_path / "m.db")
    args = ["monitor", "--accounts", str(small_accounts), "--steps", "1", "--db", url]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--headless"]) == 0
    m = SUMMARY.fullmatch(out.getvalue().strip().splitlines()[-1])
    assert m is not None
    assert m.group(1) == "4"  # BTC and ETH at both snapshots
    with _store(url) as store:
        cursor = store.cursor("replay:1")
    assert cursor is not None
    assert cursor.last_seq == 4


def test_pm_approved_survives_load_and_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {
        "accounts": [
            {"id": "no-pm", "balances": {"USDC": 1000.0}, "pm_approved": False},
            {"id": "pm", "balances": {"USDC": 1000.0}},
        ]
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    url = _url(tmp_path / "m.db")
    assert main(["accounts", "load", str(path), "--db", url]) == 0
    capsys.readouterr()
    assert main(["accounts", "show", "no-pm", "--db", url]) == 0
    assert json.loads(capsys.readouterr().out)["pm_approved"] is False
    assert main(["accounts", "show", "pm", "--db", url]) == 0
    assert "pm_approved" not in json.loads(capsys.readouterr().out)  # default true, not shown


# -- the live view: markets, counts, q ---------------------------------------------------------


def test_view_shows_index_moves_and_accounts_per_status(live_monitor: Monitor) -> None:
    mon = live_monitor
    lines = _render(cli_monitor._view(mon)).splitlines()
    markets, counts = lines[1], lines[2]
    assert markets.startswith("index (move since the start)   ")
    for u in ("BTC", "ETH"):
        now, start = mon.states[u].index, mon.start_index[u]
        assert f"{u} {now:,.0f} ({now / start - 1:+.1%})" in markets
    got = mon.status_counts()
    assert sum(got.values()) == len(mon.accounts)
    assert counts == (
        f"accounts   healthy {got['healthy']}   margin call {got['margin_call']}   "
        f"liquidation {got['liquidation']}   excluded (error) {got['error']}   (q quits)"
    )


def test_q_quits_the_live_view_with_the_summary(
    tmp_path: Path,
    small_accounts: Path,
    demo_feed: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    read, write = os.pipe()
    os.write(write, b"x")  # other keys do nothing
    threading.Timer(0.3, os.write, (write, b"q")).start()
    monkeypatch.setattr(cli_monitor, "_key_fd", lambda: read)
    url = _url(tmp_path / "m.db")
    args = ["monitor", "--accounts", str(small_accounts), "--feed", str(demo_feed), "--db", url]
    try:
        # 60 s feed steps at 60x: a second per step, so q lands long before the feed ends.
        assert main([*args, "--speed", "60"]) == 0
    finally:
        os.close(read)
        os.close(write)
    cap = capsys.readouterr()
    assert cap.err == ""
    m = SUMMARY.fullmatch(cap.out.rstrip("\n").splitlines()[-1])
    assert m is not None
    assert 1 <= int(m.group(1)) < FEED_EVENTS
