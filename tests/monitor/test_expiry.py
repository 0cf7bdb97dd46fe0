"""Expiry during a run: options pay their intrinsic value, futures settle to the price.

A hand-made seed market (BTC 70,000 on 2026-02-25 08:00Z, 26FEB26 forward 70,050) and two
BTC lines around the 26FEB26 expiry (08:00Z): 07:00 (index 68,000, 26FEB26 forward 68,010)
and 09:00 (index 67,400, settlement 67,500 or, without it, the index interpolated at 08:00).
Golden values worked by hand:

* ``put``: short 2 BTC-26FEB26-70000-P (inverse, 1 BTC each), 1 BTC. The put pays
  ``max(70,000 − 67,500, 0) / 67,500 = 2,500 / 67,500`` BTC per contract; short 2:
  ``1 − 2·2,500/67,500 = 0.925925925…`` BTC.
* ``call``: long 1 BTC_USDC-26FEB26-66000-C (linear, USDC), 10,000 USDC: pays
  ``67,500 − 66,000 = 1,500`` USDC, 11,500 USDC after.
* ``fut``: long 1 BTC-26FEB26 (inverse), 0.5 BTC. Variation margin from the first mark the
  monitor sees (the seed's forward 70,050) telescopes to ``1·(1 − 70,050/67,500)
  = −2,550/67,500`` BTC: 0.5 − 0.0377777… = 0.4622222… BTC; nothing more at expiry.
* ``other``: an ETH put, and ``btc``: a BTC 27MAR26 put, untouched by the expiry.

Without a settlement price in the line the expiry settles at the index interpolated in time
between the two lines: ``68,000 + (67,400 − 68,000)·(1 h / 2 h) = 67,700``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from portmargin.accounts import AccountSettings, accounts_from_dict, evaluate_account
from portmargin.io import load_market
from portmargin.models import load_model
from portmargin.monitor import JsonlFeed, Monitor, ReplayFeed
from portmargin.storage import open_store

SEED: dict[str, Any] = {
    "valuation_time": "2026-02-25T08:00:00Z",
    "underlyings": {"BTC": {"spot": 70000.0}, "ETH": {"spot": 2000.0}},
    "futures": {
        "BTC-PERPETUAL": {"mark_price": 70000.0},
        "ETH-PERPETUAL": {"mark_price": 2000.0},
    },
    "forwards": {"BTC": {"26FEB26": 70050.0, "27MAR26": 70500.0}, "ETH": {"27MAR26": 2010.0}},
    "options": {
        "BTC-27MAR26-60000-P": {"mark_iv": 0.6},
        "BTC-27MAR26-70000-P": {"mark_iv": 0.5},
        "BTC-27MAR26-80000-C": {"mark_iv": 0.55},
        "ETH-27MAR26-2000-P": {"mark_iv": 0.7},
    },
}
ACCOUNTS = {
    "settings": {"min_pm_equity_usd": 0},
    "accounts": [
        {
            "id": "put",
            "balances": {"BTC": 1.0},
            "positions": [{"instrument": "BTC-26FEB26-70000-P", "quantity": -2}],
        },
        {
            "id": "call",
            "balances": {"USDC": 10000.0},
            "positions": [{"instrument": "BTC_USDC-26FEB26-66000-C", "quantity": 1}],
        },
        {
            "id": "fut",
            "balances": {"BTC": 0.5},
            "positions": [{"instrument": "BTC-26FEB26", "quantity": 1}],
        },
        {
            "id": "other",
            "balances": {"ETH": 5.0},
            "positions": [{"instrument": "ETH-27MAR26-2000-P", "quantity": -1}],
        },
        {
            "id": "btc",
            "balances": {"BTC": 1.0},
            "positions": [{"instrument": "BTC-27MAR26-70000-P", "quantity": -1}],
        },
    ],
}
BEFORE = {
    "seq": 1,
    "type": "market",
    "time": "2026-02-26T07:00:00Z",
    "underlying": "BTC",
    "index": 68000.0,
    "forwards": {"26FEB26": 68010.0},
}
EXPIRY = datetime(2026, 2, 26, 8, tzinfo=UTC)
AFTER = {
    "seq": 2,
    "type": "market",
    "time": "2026-02-26T09:00:00Z",
    "underlying": "BTC",
    "index": 67400.0,
}


def _run(tmp_path: Path, lines: list[dict[str, Any]], seed: dict[str, Any] = SEED) -> Monitor:
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    (tmp_path / "feed.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    accts, settings = accounts_from_dict(ACCOUNTS)
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.save_accounts(accts)
    market = load_market(tmp_path / "seed.json")
    mon = Monitor(store, load_model("deribit"), settings, feed_name="f", market=market)
    mon.run(JsonlFeed(tmp_path / "feed.jsonl"))
    return mon


def test_expiry_settles_options_and_futures_at_the_given_price(tmp_path: Path) -> None:
    mon = _run(tmp_path, [BEFORE, {**AFTER, "settlements": {"26FEB26": 67500.0}}])
    acc = {a.account_id: a for a in mon.store.load_accounts()}
    assert acc["put"].positions == {}
    assert acc["put"].balances["BTC"] == pytest.approx(1 - 2 * 2500 / 67500, rel=1e-12)
    assert acc["call"].positions == {}
    assert acc["call"].balances["USDC"] == pytest.approx(11500.0, rel=1e-12)
    assert acc["fut"].positions == {}
    assert acc["fut"].balances["BTC"] == pytest.approx(0.5 - 2550 / 67500, rel=1e-12)
    assert dict(acc["other"].positions) == {"ETH-27MAR26-2000-P": -1.0}
    assert acc["other"].balances == {"ETH": 5.0}

    expiries = mon.store.events(kinds=["expiry"])
    assert [(e.seq, e.account_id) for e in expiries] == [(2, "call"), (2, "fut"), (2, "put")]
    by = {e.account_id: e.payload for e in expiries}
    (line,) = by["put"]["settled"]
    assert line["instrument"] == "BTC-26FEB26-70000-P"
    assert line["quantity"] == -2
    assert line["settlement_price"] == 67500.0
    assert line["value_per_contract"] == pytest.approx(2500 / 67500, rel=1e-12)
    assert line["currency"] == "BTC"
    assert line["cash"] == pytest.approx(-2 * 2500 / 67500, rel=1e-12)
    assert by["call"]["settled"][0]["cash"] == pytest.approx(1500.0, rel=1e-12)
    assert by["call"]["settled"][0]["currency"] == "USDC"
    assert by["fut"]["settled"][0]["cash"] == 0.0  # settled by the variation margin
    assert by["put"]["balances"] == dict(acc["put"].balances)
    # The figures after expiry are those of the account without the position.
    assert mon.market is not None
    model, settings = load_model("deribit"), AccountSettings(min_pm_equity_usd=0)
    for a in ("put", "call", "fut"):
        ref = evaluate_account(acc[a], mon.market, model, settings)
        assert by[a]["figures"]["equity"] == pytest.approx(ref.equity_usd, rel=1e-12)
        assert by[a]["figures"]["initial_margin"] == 0.0


def test_without_a_settlement_price_the_index_is_interpolated_at_expiry(tmp_path: Path) -> None:
    mon = _run(tmp_path, [BEFORE, AFTER])
    acc = {a.account_id: a for a in mon.store.load_accounts()}
    assert mon.settled[("BTC", EXPIRY)] == pytest.approx(67700.0, rel=1e-15)
    assert acc["put"].balances["BTC"] == pytest.approx(1 - 2 * 2300 / 67700, rel=1e-12)
    assert acc["call"].balances["USDC"] == pytest.approx(11700.0, rel=1e-12)
    assert acc["fut"].balances["BTC"] == pytest.approx(0.5 + 1 - 70050 / 67700, rel=1e-12)


def test_trading_an_expired_instrument_is_rejected(tmp_path: Path) -> None:
    trade = {
        "seq": 3,
        "type": "trade",
        "time": "2026-02-26T09:00:00Z",
        "account": "other",
        "instrument": "BTC-26FEB26-70000-P",
        "quantity": 1,
    }
    mon = _run(tmp_path, [BEFORE, {**AFTER, "settlements": {"26FEB26": 67500.0}}, trade])
    (rej,) = mon.store.events(kinds=["rejected"])
    assert rej.payload["reason"] == (
        "instrument BTC-26FEB26-70000-P expired at 2026-02-26T08:00:00Z"
    )


def test_an_expired_option_without_a_price_excludes_only_its_account(tmp_path: Path) -> None:
    # The monitor starts after the expiry with no settlement price: the account holding the
    # expired option is excluded (account_error) and every other account is margined; a
    # later line with the price settles the option and brings the account back.
    seed = {**SEED, "valuation_time": "2026-02-26T08:30:00Z"}
    seed["forwards"] = {"BTC": {"27MAR26": 70500.0}, "ETH": {"27MAR26": 2010.0}}
    late = {**AFTER, "settlements": {"26FEB26": 67500.0}}
    first = {**BEFORE, "time": "2026-02-26T08:45:00Z", "forwards": {}}
    mon = _run(tmp_path, [first], seed)
    errors = mon.store.events(kinds=["account_error"])
    assert {e.account_id for e in errors} == {"put", "call", "fut"}
    reason = next(e.payload["reason"] for e in errors if e.account_id == "put")
    assert reason == (
        "BTC-26FEB26-70000-P expired at 2026-02-26T08:00:00Z and no settlement price is "
        "known for BTC 26FEB26"
    )
    assert set(mon.errors) == {"put", "call", "fut"}
    assert set(mon.margins) == {"btc"}  # the desk is not blind: BTC moved, btc margined
    # Restart and feed the settlement price: the accounts are settled and restored.
    mon.store.close()
    (tmp_path / "feed.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(late) + "\n")
    _, settings = accounts_from_dict(ACCOUNTS)
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    assert set(store.account_errors()) == set(mon.errors)
    market = load_market(tmp_path / "seed.json")
    again = Monitor(store, load_model("deribit"), settings, feed_name="f", market=market)
    again.run(JsonlFeed(tmp_path / "feed.jsonl"))
    assert again.errors == {}
    assert store.account_errors() == {}
    restored = store.events(kinds=["account_restored"])
    assert {e.account_id for e in restored} == set(mon.errors)
    acc = {a.account_id: a for a in store.load_accounts()}
    assert acc["put"].balances["BTC"] == pytest.approx(1 - 2 * 2500 / 67500, rel=1e-12)
    assert acc["call"].balances["USDC"] == pytest.approx(11500.0, rel=1e-12)
    # An excluded account is not variation-margined: its expired future is not settled
    # while excluded (a documented limit); it is back, valued at the settlement price.
    assert dict(acc["fut"].positions) == {"BTC-26FEB26": 1.0}
    assert set(again.margins) == {"put", "call", "fut", "btc"}
    store.close()


def test_the_replay_settles_the_5feb26_expiry_at_the_index_at_8(tmp_path: Path) -> None:
    # The packaged crash-day replay crosses 2026-02-05 08:00Z: its first update after it
    # carries index(08:00) as the settlement price, and an account holding a 5FEB26 option is
    # settled at it (the example accounts hold nothing that expires that day).
    feed = ReplayFeed(steps=24)
    name = "BTC-5FEB26-75000-P"
    assert name in feed.m0.option_iv
    accts, settings = accounts_from_dict(
        {
            "settings": {"min_pm_equity_usd": 0},
            "accounts": [
                {
                    "id": "p",
                    "balances": {"BTC": 1.0},
                    "positions": [{"instrument": name, "quantity": -1}],
                }
            ],
        }
    )
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.save_accounts(accts)
    mon = Monitor(store, load_model("deribit"), settings, feed_name=feed.name)
    mon.run(feed)
    (exp,) = store.events(kinds=["expiry"])
    (line,) = exp.payload["settled"]
    expiry = datetime(2026, 2, 5, 8, tzinfo=UTC)
    price, _ = feed.index_at("BTC", expiry)
    assert line["settlement_price"] == price
    assert 70_000 < price < 72_000  # BTC between its 04:32 and 09:31 replay steps
    k = next(k for k, t in enumerate(feed.times()) if t >= expiry)  # the first step after
    assert exp.seq == 2 * k + 1  # its BTC update
    (acct,) = store.load_accounts()
    assert acct.positions == {}
    assert acct.balances["BTC"] == pytest.approx(1 - max(75000 - price, 0) / price, rel=1e-12)
    store.close()
