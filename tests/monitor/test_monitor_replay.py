"""The monitor on the real crash-day replay: same figures as `portmargin margin`, faults."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from portmargin.accounts import account_margin, load_accounts
from portmargin.accounts._account import result_pools
from portmargin.cli import main
from portmargin.models import load_model
from portmargin.monitor import (
    AccountChange,
    Monitor,
    ReplayFeed,
    market_to_dict,
    parse_feed_line,
)
from portmargin.storage import open_store


@pytest.fixture(scope="module")
def replayed(
    small_accounts: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Monitor, Path]:
    tmp = tmp_path_factory.mktemp("replay")
    accts, settings = load_accounts(small_accounts)
    store = open_store(f"sqlite:///{tmp / 'm.db'}")
    store.save_accounts(accts)
    feed = ReplayFeed(steps=4)  # the packaged crash-day data: runs on any clone
    mon = Monitor(store, load_model("deribit"), settings, feed_name=feed.name)
    mon.run(feed)
    return mon, tmp


def test_figures_equal_portmargin_margin_at_the_final_state(
    replayed: tuple[Monitor, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    mon, tmp = replayed
    assert mon.market is not None
    market = tmp / "market.json"
    market.write_text(json.dumps(market_to_dict(mon.market, mon.states)))
    checked = 0
    for acct in list(mon.accounts.values())[:12]:
        snap = mon.store.latest_snapshot(acct.account_id)
        assert snap is not None
        if snap["method"] != "portfolio":
            continue
        book = tmp / f"{acct.account_id}.json"
        book.write_text(
            json.dumps(
                {
                    "cash": dict(acct.balances),
                    "positions": [
                        {"instrument": k, "quantity": v} for k, v in acct.positions.items()
                    ],
                }
            )
        )
        assert main(["margin", str(book), "--market", str(market), "--format", "json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        pools = doc["by_currency"].values()
        im = sum(p["initial_margin"] * p["usd_rate"] for p in pools)
        mm = sum(p["maintenance_margin"] * p["usd_rate"] for p in pools)
        assert snap["initial_margin"] == pytest.approx(im, rel=1e-9)
        assert snap["maintenance_margin"] == pytest.approx(mm, rel=1e-9)
        checked += 1
    assert checked >= 5


def test_crash_produces_margin_calls_in_order(replayed: tuple[Monitor, Path]) -> None:
    mon, _ = replayed
    events = mon.store.events()
    keys = [(e.seq, e.ordinal) for e in events]
    assert keys == sorted(keys)
    bad = [e for e in events if e.kind in ("margin_call", "liquidation")]
    assert bad, "the 12 % crash must put some of the accounts into margin call"
    assert max(e.seq for e in bad) > 2, "calls come as the market falls, not only at the start"
    for e in bad:
        fig = e.payload["figures"]
        assert fig["equity"] < fig["initial_margin"]
        assert e.payload["cause"]["seq"] == e.seq
        assert e.market_time == e.payload["market_time"]


def _feed_after(mon: Monitor, seq: int) -> list[object]:
    assert mon.feed_time is not None
    t = mon.feed_time.isoformat().replace("+00:00", "Z")
    old = (mon.feed_time - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    acct = next(iter(mon.accounts))
    lines = [
        '{"seq": %d, "type": "market", "time": "%s", "underlying": "BTC", "index": NaN}',
        '{"seq": %d, "type": "market", "time": "%s", "underlying": "BTC", "index": 60000}',
        "{not json %d %s",
        '{"seq": %d, "type": "trade", "time": "%s", "account": "'
        + acct
        + '", "instrument": "BTC-27MAR26-12345-C", "quantity": 1}',
        '{"seq": %d, "type": "withdrawal", "time": "%s", "account": "'
        + acct
        + '", "currency": "USDC", "amount": 1e12}',
        '{"seq": %d, "type": "deposit", "time": "%s", "account": "nobody", '
        '"currency": "USDC", "amount": 5}',
    ]
    out: list[object] = []
    for i, line in enumerate(lines):
        when = old if i == 1 else t
        text = line % (seq + i + 1, when) if "%s" in line else line
        out.append(parse_feed_line(text))
    return out


def test_bad_input_is_rejected_recorded_and_nothing_changes(
    replayed: tuple[Monitor, Path],
) -> None:
    mon, _ = replayed
    before_accounts = dict(mon.accounts)
    before_market = mon.market
    items = _feed_after(mon, mon.last_seq)
    mon.run(items)  # type: ignore[arg-type]
    rejected = mon.store.events(kinds=["rejected"])[-6:]
    reasons = [e.payload["reason"] for e in rejected]
    assert "nan" in reasons[0].lower()
    assert "stale timestamp" in reasons[1]
    assert "malformed feed line" in reasons[2]
    assert "unknown instrument" in reasons[3]
    assert "exceeds the balance" in reasons[4] or "excess" in reasons[4]
    assert "unknown account" in reasons[5]
    assert mon.accounts == before_accounts
    assert mon.market is before_market
    # The monitor carries on: a valid deposit is accepted afterwards.
    acct = next(iter(mon.accounts))
    assert mon.feed_time is not None
    dep = AccountChange(
        mon.last_seq + 1, mon.feed_time, "deposit", acct, currency="USDC", amount=1.0
    )
    out = mon.process(dep)
    assert out is not None
    assert out[0]["kind"] == "deposit"
    assert mon.accounts[acct].balances["USDC"] == before_accounts[acct].balances.get("USDC", 0) + 1


def _assert_same_as_engine(mon: Monitor, accounts: list[str]) -> int:
    """The monitor's figures equal the single-account engine path at its market state."""
    assert mon.market is not None
    checked = 0
    for acct_id in accounts:
        got = mon.margins[acct_id]
        # The engine's PM figures, finished under the account's (sticky) margin method.
        acct = mon.accounts[acct_id]
        pools = result_pools(mon.model.margin(acct.portfolio(), mon.market))
        cross = mon.model.cross
        ref = account_margin(acct, mon.market, mon.settings, pools, cross=cross, method=got.method)
        assert got.method == ref.method
        for name in ("initial_margin_usd", "maintenance_margin_usd", "equity_usd"):
            assert getattr(got, name) == pytest.approx(getattr(ref, name), rel=1e-9, abs=1e-7)
        assert got.status is ref.status
        checked += 1
    return checked


def test_vectorised_pass_equals_the_engine_for_every_account(
    replayed: tuple[Monitor, Path],
) -> None:
    # After the last step every underlying was updated at the same time, so each account's
    # last figures must be the engine's at the final market (30 accounts, all of them).
    mon, _ = replayed
    assert _assert_same_as_engine(mon, list(mon.margins)) == len(mon.accounts)


def test_trade_in_a_new_instrument_grows_the_universe_and_keeps_figures(
    small_accounts: Path, tmp_path: Path
) -> None:
    accts, settings = load_accounts(small_accounts)
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.save_accounts(accts)
    feed = ReplayFeed(steps=2)
    mon = Monitor(store, load_model("deribit"), settings, feed_name=feed.name)
    mon.run(feed)
    assert mon.market is not None
    assert mon.session is not None
    held = set(mon.session.instruments)
    new = next(n for n in mon.market.option_names("ETH") if n not in held)
    # pools are segregated: the buyer of an (inverse) ETH option pays in ETH
    eth_rich = [a for a in mon.accounts if mon.accounts[a].balances.get("ETH", 0.0) > 0]
    acct = max(eth_rich, key=lambda a: mon.margins[a].excess_usd)
    assert mon.feed_time is not None
    out = mon.process(
        AccountChange(mon.last_seq + 1, mon.feed_time, "trade", acct, instrument=new, quantity=1)
    )
    assert out is not None
    assert out[0]["kind"] == "trade", out
    assert new in mon.session.instruments
    assert mon.accounts[acct].positions[new] == 1
    # Every account is re-margined on the grown session; all still equal the engine.
    assert _assert_same_as_engine(mon, list(mon.margins)) == len(mon.accounts)


def test_full_market_steps_give_the_same_figures(small_accounts: Path, tmp_path: Path) -> None:
    # The service builds each step's market with every quote (one build for the tick and
    # its view); the tick re-prices the moved underlying only either way.
    accts, settings = load_accounts(small_accounts)
    runs = []
    for full in (False, True):
        store = open_store(f"sqlite:///{tmp_path / f'{full}.db'}")
        store.save_accounts(accts)
        feed = ReplayFeed(steps=4)
        mon = Monitor(store, load_model("deribit"), settings, feed_name=feed.name, full_market=full)
        mon.run(feed)
        runs.append(mon)
    light_run, full_run = runs
    assert light_run.margins.keys() == full_run.margins.keys()
    for a, m in light_run.margins.items():
        assert m.to_dict() == full_run.margins[a].to_dict()
    assert light_run.statuses == full_run.statuses
    assert light_run.market is not None and full_run.market is not None
    assert dict(light_run.market.option_iv) == dict(full_run.market.option_iv)
