"""Issue: expired instruments are settled, not priced from the smile with a negative T.

Rule (portmargin.market.snapshot): an option or dated future at or past expiry is settled.
The option is worth its intrinsic value against the expiry's settlement price ``P``
(``max(P − K, 0)`` for a call, ``max(K − P, 0)`` for a put, USD per unit; divided by ``P`` in
coin for inverse products), it has zero delta and zero scenario P&L; a settled future has
zero scenario P&L too. Golden values are those formulas worked by hand.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import portmargin as pm
from portmargin.errors import MarketDataError
from portmargin.market import OptionQuote, UnderlyingQuote, build_market, shift
from portmargin.models import load_model

AFTER = datetime(2026, 2, 5, 21, 29, tzinfo=UTC)  # the 2026-02-05 chain's collection time
FEB5 = datetime(2026, 2, 5, 8, tzinfo=UTC)
P = 71_234.5  # a settlement price for BTC 5FEB26 (the example figure)
SCEN = load_model("deribit").scenario_set("BTC")


def _after(settlements: dict[tuple[str, datetime], float] | None = None) -> pm.MarketSnapshot:
    return build_market(
        valuation_time=AFTER,
        underlyings={"BTC": UnderlyingQuote(63_858.0, 0.0, 63_844.5)},
        options={"BTC-27MAR26-64000-P": OptionQuote(mark_iv=0.71)},
        settlements=settlements,
    )


def test_settled_values_by_hand() -> None:
    m = _after({("BTC", FEB5): P})
    put, call = m.instrument("BTC-5FEB26-70000-P"), m.instrument("BTC-5FEB26-70000-C")
    linear = m.instrument("BTC_USDC-5FEB26-72000-P")
    assert m.is_expired(put) and m.is_expired(call) and m.is_expired(linear)
    assert not m.is_expired(m.instrument("BTC-27MAR26-64000-P"))
    assert not m.is_expired(m.instrument("BTC-PERPETUAL"))
    assert m.settlement_price("BTC", FEB5) == P
    assert m.mark_price(put) == 0.0  # 70,000 put, settled at 71,234.5: out of the money
    assert m.mark_price(call) == pytest.approx(1234.5 / 71234.5, rel=1e-15)  # coin
    assert m.mark_price(linear) == pytest.approx(765.5, rel=1e-15)  # USD
    assert m.mark_price(m.instrument("BTC-5FEB26")) == P


def test_instrument_table_and_risk_array_follow_the_rule() -> None:
    m = _after({("BTC", FEB5): P})
    names = ["BTC-5FEB26-70000-C", "BTC_USDC-5FEB26-72000-P", "BTC-5FEB26", "BTC-27MAR26-64000-P"]
    table = pm.instrument_table([m.instrument(n) for n in names], m)
    np.testing.assert_array_equal(table.settled, [True, True, True, False])
    np.testing.assert_array_equal(table.T[:3], 0.0)
    np.testing.assert_array_equal(table.sigma[:3], 0.0)
    np.testing.assert_array_equal(table.F[:3], P)
    np.testing.assert_array_equal(table.delta_coin[:3], 0.0)
    assert table.value_usd[0] == pytest.approx(1234.5, rel=1e-15)  # intrinsic USD
    assert table.value_usd[1] == pytest.approx(765.5, rel=1e-15)
    assert table.mark_settle[0] == pytest.approx(1234.5 / P, rel=1e-15)  # coin
    assert table.mark_settle[1] == pytest.approx(765.5, rel=1e-15)  # USDC
    assert list(table.quote_source) == ["settled", "settled", "settled", "quoted"]
    ra = pm.risk_array(table, SCEN)
    np.testing.assert_array_equal(ra.pnl_settle[:3], 0.0)
    np.testing.assert_array_equal(ra.pnl_usd[:3], 0.0)
    assert np.abs(ra.pnl_usd[3]).max() > 0  # the live option still moves


def test_missing_settlement_price_is_one_clear_line() -> None:
    m = _after()
    inst = m.instrument("BTC-5FEB26-70000-P")
    expected = (
        "BTC-5FEB26-70000-P expired at 2026-02-05T08:00Z; the market has no settlement price "
        'for BTC 5FEB26 (add "settlements" to the market file)'
    )
    with pytest.raises(MarketDataError) as info:
        pm.instrument_table([inst], m)
    assert str(info.value) == expected
    with pytest.raises(MarketDataError, match="no settlement price for BTC 5FEB26"):
        m.mark_price(inst)
    with pytest.raises(MarketDataError, match="no settlement price for BTC 5FEB26"):
        pm.margin(pm.Portfolio.of({inst.name: -1}), m, "deribit")


def test_expiry_at_the_valuation_time_settles_at_the_index() -> None:
    t = datetime(2026, 2, 6, 8, tzinfo=UTC)
    m = build_market(valuation_time=t, underlyings={"BTC": UnderlyingQuote(70_500.0)})
    call = m.instrument("BTC-6FEB26-70000-C")
    assert m.is_expired(call)
    assert m.settlement_price("BTC", t) == 70_500.0
    assert m.mark_price(call) == pytest.approx(500 / 70_500, rel=1e-15)


def test_settlement_of_a_future_expiry_is_refused() -> None:
    later = datetime(2026, 3, 27, 8, tzinfo=UTC)
    with pytest.raises(MarketDataError, match=r"settlements\.BTC\.27MAR26: expiry"):
        _after({("BTC", later): 70_000.0})
    with pytest.raises(MarketDataError, match="no settlement price yet"):
        _after().settlement_price("BTC", later)


def test_short_call_a_year_after_expiry_has_no_risk_only_its_settled_value() -> None:
    # Used to margin to 0.14 BTC, priced from the smile with T = −1 year and delta ±1.
    t = datetime(2026, 2, 25, 8, tzinfo=UTC)
    m = build_market(
        valuation_time=t,
        underlyings={"BTC": UnderlyingQuote(70_000.0)},
        settlements={("BTC", datetime(2025, 2, 27, 8, tzinfo=UTC)): 84_000.0},
    )
    book = pm.Portfolio.of({"BTC-27FEB25-70000-C": -1})
    for model in ("deribit", "span16"):
        r = pm.margin(book, m, model)
        assert r.initial_margin == 0.0 and r.maintenance_margin == 0.0
        # What the short call owes: 14,000 USD, i.e. 14,000/84,000 coin (inverse, deribit).
        owed = 14_000 / 84_000 if r.currency == "BTC" else 14_000.0
        assert r.equity == pytest.approx(-owed, rel=1e-14)


def test_settled_position_adds_no_risk_to_a_book() -> None:
    m = _after({("BTC", FEB5): 69_000.0})
    live = {"BTC-27MAR26-64000-P": -1.0}
    both = {**live, "BTC-5FEB26-70000-P": -2.0}
    for model in ("deribit", "span16"):
        a = pm.margin(pm.Portfolio.of(live), m, model)
        b = pm.margin(pm.Portfolio.of(both), m, model)
        assert b.initial_margin == pytest.approx(a.initial_margin, rel=1e-12)
        # −2 puts settled 1,000 USD in the money: −2·1000/69000 coin, or −2,000 USD.
        owed = 2 * 1000 / 69_000 if b.currency == "BTC" else 2_000.0
        assert b.equity - a.equity == pytest.approx(-owed, rel=1e-12)


def test_expired_quotes_are_ignored_with_a_warning() -> None:
    m = build_market(
        valuation_time=AFTER,
        underlyings={"BTC": UnderlyingQuote(63_858.0)},
        futures={"BTC-5FEB26": 64_000.0},
        options={
            "BTC-5FEB26-70000-P": OptionQuote(mark_iv=0.9),
            "BTC-5FEB26-72000-P": OptionQuote(mark_iv=0.9),
        },
    )
    assert m.option_names() == []
    assert "BTC-5FEB26" not in m.futures
    assert len(m.warnings) == 2
    assert any("2 quote(s) of BTC 5FEB26" in w for w in m.warnings)


def test_settlements_section_of_the_market_file(tmp_path: Path) -> None:
    doc = {
        "valuation_time": "2026-02-05T21:29:00Z",
        "underlyings": {"BTC": {"spot": 63858.0}},
        "settlements": {"BTC": {"5FEB26": P}},
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    m = pm.load_market(path)
    assert m.settlement_price("BTC", FEB5) == P
    assert m.mark_price(m.instrument("BTC-5FEB26-72000-P")) == pytest.approx(765.5 / P, rel=1e-15)


def test_time_moved_past_an_expiry_needs_its_settlement() -> None:
    m = pm.demo_market()  # 2026-02-25 08:00 UTC
    later = shift(m, time=timedelta(days=2))  # 26FEB26 passes, 27FEB26 expires right now
    assert not [n for n in later.option_names() if "26FEB26" in n or "27FEB26" in n]
    with pytest.raises(MarketDataError, match="BTC-26FEB26-70000-C expired at 2026-02-26"):
        pm.instrument_table([later.instrument("BTC-26FEB26-70000-C")], later)
    # An expiry at exactly the valuation time settles at the index (70,000 in the demo).
    assert later.mark_price(later.instrument("BTC-27FEB26-65000-C")) == pytest.approx(
        5000 / 70_000, rel=1e-15
    )
    feb26 = datetime(2026, 2, 26, 8, tzinfo=UTC)
    settled = shift(m, time=timedelta(days=2), settlements={("BTC", feb26): 71_000.0})
    assert settled.mark_price(settled.instrument("BTC-26FEB26-70000-C")) == pytest.approx(
        1000 / 71_000, rel=1e-15
    )


def test_real_chain_option_expired_that_morning(shared_data: Path) -> None:
    chain = (
        shared_data
        / "deribit_options_2026-02-04_05"
        / "deribit_options_snapshot_20260205T212937Z.csv"
    )
    m = pm.load_market(chain)
    inst = m.instrument("BTC-5FEB26-70000-P")
    assert m.is_expired(inst)  # 08:00 UTC that day; the chain was taken at 21:29
    with pytest.raises(MarketDataError, match="BTC-5FEB26-70000-P expired at 2026-02-05T08:00Z"):
        pm.margin(pm.Portfolio.of({inst.name: -1}), m, "deribit")
    settled = shift(m, settlements={("BTC", FEB5): P})
    table = pm.instrument_table([inst, settled.instrument("BTC-27MAR26-64000-P")], settled)
    assert table.mark_settle[0] == 0.0 and table.delta_coin[0] == 0.0
    assert table.mark_settle[1] == m.mark_price(m.instrument("BTC-27MAR26-64000-P"))
    np.testing.assert_array_equal(pm.risk_array(table, SCEN).pnl_settle[0], 0.0)
    r = pm.margin(pm.Portfolio.of({inst.name: -1, "BTC-27MAR26-64000-P": -1}), settled, "deribit")
    assert math.isfinite(r.initial_margin) and r.initial_margin > 0
