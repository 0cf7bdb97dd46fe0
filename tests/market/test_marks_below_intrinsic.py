"""Issue: a mark below intrinsic stops everything.

Real marks sometimes sit a little below the no-arbitrage lower bound (the chains of
2026-02-04/05 have such rows). Such a mark is kept as the mark with a warning naming the
option; its implied vol is floored at 1 % (portmargin.market.limits.VOL_FLOOR) and it stays
out of the smile. A mark above the upper bound is still an error.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

import portmargin as pm
from portmargin.errors import MarketDataError
from portmargin.instruments import ProductSpec, Settlement
from portmargin.market import OptionQuote, UnderlyingQuote, build_market, year_fraction
from portmargin.pricing import black76_price
from portmargin.rules import load_rule_set, rules_margin

T0 = datetime(2026, 2, 25, 8, tzinfo=UTC)
EXP = datetime(2026, 3, 20, 8, tzinfo=UTC)
XYZ = ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 100.0)


def _xyz(mark: float) -> pm.MarketSnapshot:
    # XYZ at 91.5, r = 0, no futures: F = S; the 100 put's intrinsic value is 8.5 USD.
    return build_market(
        valuation_time=T0,
        underlyings={"XYZ": UnderlyingQuote(91.5)},
        products={"XYZ": XYZ},
        options={
            "XYZ-20MAR26-100-P": OptionQuote(mark_price=mark),
            "XYZ-20MAR26-95-P": OptionQuote(mark_iv=0.4),
        },
    )


def test_mark_below_intrinsic_is_kept_with_a_warning_and_a_floored_vol() -> None:
    m = _xyz(8.4)
    inst = m.instrument("XYZ-20MAR26-100-P")
    assert m.mark_price(inst) == 8.4
    assert m.option_iv["XYZ-20MAR26-100-P"] == 0.01
    (warning,) = m.warnings
    assert "XYZ-20MAR26-100-P" in warning and "8.4" in warning and "8.5" in warning
    assert "np.float64" not in warning and "\n" not in warning
    # The floored option does not enter the smile: the surface is the 95 strike alone.
    (slice_,) = m.surfaces["XYZ"].slices
    np.testing.assert_array_equal(slice_.vol, [0.4])


def test_scenario_pnl_is_measured_from_black76_at_the_floor_and_equity_uses_the_mark() -> None:
    m = _xyz(8.4)
    inst = m.instrument("XYZ-20MAR26-100-P")
    table = pm.instrument_table([inst], m)
    t = year_fraction(T0, EXP)
    assert table.value_usd[0] == pytest.approx(
        100 * float(black76_price(91.5, 100.0, t, 0.01, False)), rel=1e-14
    )
    assert table.mark_settle[0] == pytest.approx(100 * 8.4, rel=1e-15)
    for model in ("deribit", "span16"):
        r = pm.margin(pm.Portfolio.of({inst.name: -2}), m, model)
        assert math.isfinite(r.initial_margin) and r.initial_margin > 0
        assert r.equity == pytest.approx(-2 * 100 * 8.4, rel=1e-12)


def test_rules_based_margin_is_computable() -> None:
    m = _xyz(8.4)
    r = rules_margin(
        [(m.instrument("XYZ-20MAR26-100-P"), -1.0)], {}, m, load_rule_set("deribit-standard")
    )
    assert math.isfinite(r.initial_margin) and r.initial_margin >= 0


def test_zero_mark_of_an_out_of_the_money_option_is_at_the_bound() -> None:
    m = build_market(
        valuation_time=T0,
        underlyings={"BTC": UnderlyingQuote(70_000.0)},
        options={"BTC-27MAR26-200000-C": OptionQuote(mark_price=0.0)},
    )
    assert m.option_iv["BTC-27MAR26-200000-C"] == 0.01
    assert m.mark_price(m.instrument("BTC-27MAR26-200000-C")) == 0.0
    assert len(m.warnings) == 1


def test_mark_above_the_upper_bound_stays_an_error() -> None:
    with pytest.raises(MarketDataError, match=r"XYZ-20MAR26-100-P\.mark_price: 100\.5 is above"):
        _xyz(100.5)  # a put is worth at most D·K = 100


def test_market_file_with_a_mark_below_intrinsic_loads(tmp_path: Path) -> None:
    doc = {
        "valuation_time": "2026-02-25T08:00:00Z",
        "products": {"XYZ": {"settlement": "linear", "quote_currency": "USD", "multiplier": 100}},
        "underlyings": {"XYZ": {"spot": 91.5}},
        "options": {"XYZ-20MAR26-100-P": {"mark_price": 8.4}},
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    m = pm.load_market(path)
    assert m.mark_price(m.instrument("XYZ-20MAR26-100-P")) == 8.4
    assert any("XYZ-20MAR26-100-P" in w for w in m.warnings)


def test_real_chain_rows_below_intrinsic_load_as_quoted(shared_data: Path) -> None:
    # BTC-27MAR26-280000-P on 2026-02-05: mark 3.37587045 coin, F = underlying column; the
    # chain also gives the vol, so nothing is floored and the mark is kept as given.
    chain = (
        shared_data
        / "deribit_options_2026-02-04_05"
        / "deribit_options_snapshot_20260205T212937Z.csv"
    )
    m = pm.load_market(chain)
    inst = m.instrument("BTC-27MAR26-280000-P")
    assert m.mark_price(inst) == 3.37587045
    assert m.warnings == ()
