"""Risk arrays: golden values worked by hand from the documented formulas, and invariants."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from portmargin.instruments import ProductSpec, Settlement
from portmargin.market import (
    MarketSnapshot,
    OptionQuote,
    UnderlyingQuote,
    build_market,
    demo_market,
)
from portmargin.models import load_model
from portmargin.models.config import UnderlyingParams
from portmargin.models.grids import span16_grid
from portmargin.pricing import black76_price
from portmargin.risk import instrument_table, risk_array
from portmargin.scenarios import ScenarioSet, VolShock, VolShockMode

MARKET = demo_market()


def _flat_scenarios(
    moves: list[float], dirs: list[float], shock: VolShock | None = None
) -> ScenarioSet:
    return ScenarioSet.build(moves, dirs, shock or VolShock(up=0.5, down=0.25))


def test_inverse_future_coin_pnl_matches_deribit_formula() -> None:
    # reference/deribit.md §1.4: PnL_coin(m) = Q·(1 − 1/(1+m)), verified there to 1e-12.
    table = instrument_table([MARKET.instrument("BTC-27MAR26")], MARKET)
    moves = [-0.16, -0.08, 0.0, 0.08, 0.16]
    ra = risk_array(table, _flat_scenarios(moves, [0.0] * 5))
    expected = [1 - 1 / (1 + m) for m in moves]
    np.testing.assert_allclose(ra.pnl_settle[0], expected, rtol=0, atol=1e-15)
    # In USD the same future gains F·m.
    f = MARKET.mark_price(MARKET.instrument("BTC-27MAR26"))
    np.testing.assert_allclose(ra.pnl_usd[0], [f * m for m in moves], rtol=1e-14)


def test_option_usd_and_coin_pnl_by_hand() -> None:
    inst = MARKET.instrument("BTC-27MAR26-75000-C")
    table = instrument_table([inst], MARKET)
    f = MARKET.forward("BTC", inst.expiry)  # type: ignore[arg-type]
    t = MARKET.year_fraction(inst.expiry)  # type: ignore[arg-type]
    sigma = float(table.sigma[0])
    m = 0.16
    # DTE = 30 → scale = (30/30)^p = 1: σ_up = max(σ·1.5, 0.5).
    shock = VolShock(up=0.5, down=0.25, short_term_power=0.3, long_term_power=0.13, min_vol_up=0.5)
    ra = risk_array(table, _flat_scenarios([m], [1.0], shock))
    s_up = max(sigma * 1.5, 0.5)
    v0 = float(black76_price(f, 75000.0, t, sigma, True))
    v1 = float(black76_price(f * (1 + m), 75000.0, t, s_up, True))
    assert ra.pnl_usd[0, 0] == pytest.approx(v1 - v0, rel=1e-13)
    assert ra.pnl_settle[0, 0] == pytest.approx(v1 / (f * (1 + m)) - v0 / f, rel=1e-13)


def test_vol_shock_term_structure() -> None:
    shock = VolShock(
        up=0.5,
        down=0.25,
        short_term_power=0.3,
        long_term_power=0.13,
        min_vol_up=0.5,
        dte_floor_days=1,
    )
    sig = np.array([0.6, 0.6, 0.6, 0.2])
    dte = np.array([7.5, 30.0, 120.0, 30.0])
    out = shock.shocked(sig, dte, np.array([1.0, 0.0, -1.0]))
    # (30/7.5)^0.3 for short expiries, (30/120)^0.13 for long ones (reference/deribit.md §1.3).
    k7, k120 = 4**0.3, 0.25**0.13
    np.testing.assert_allclose(
        out[:, 0], [0.6 * (1 + 0.5 * k7), 0.9, 0.6 * (1 + 0.5 * k120), 0.5], rtol=1e-14
    )
    np.testing.assert_allclose(out[:, 1], sig)
    np.testing.assert_allclose(
        out[:, 2], [0.6 * (1 - 0.25 * k7), 0.45, 0.6 * (1 - 0.25 * k120), 0.15], rtol=1e-14
    )


def test_absolute_vol_shock_mode() -> None:
    shock = VolShock(up=0.05, down=0.05, mode=VolShockMode.ABSOLUTE)
    out = shock.shocked(np.array([0.5]), np.array([30.0]), np.array([1.0, -1.0]))
    np.testing.assert_allclose(out, [[0.55, 0.45]])


def test_unshocked_scenario_is_exactly_zero_and_put_call_parity_of_arrays() -> None:
    names = ["BTC-24APR26-70000-C", "BTC-24APR26-70000-P"]
    table = instrument_table([MARKET.instrument(n) for n in names], MARKET)
    scen = load_model("deribit").scenario_set("BTC")
    ra = risk_array(table, scen)
    assert np.all(ra.pnl_usd[:, 13] == 0.0)  # bucket 0, vol unchanged
    # A call minus a put at the same strike is a forward: its P&L is F·m in USD whatever the vol.
    diff = ra.pnl_usd[0] - ra.pnl_usd[1]
    f = float(table.F[0])
    np.testing.assert_allclose(diff, f * scen.price_moves, rtol=1e-9, atol=1e-7)


def test_span16_grid_layout() -> None:
    scen = load_model("span16-2026.1").scenario_set("BTC")
    assert len(scen) == 16
    psr = 0.15
    expected = [
        0,
        0,
        psr / 3,
        psr / 3,
        -psr / 3,
        -psr / 3,
        2 * psr / 3,
        2 * psr / 3,
        -2 * psr / 3,
        -2 * psr / 3,
        psr,
        psr,
        -psr,
        -psr,
        3 * psr,
        -3 * psr,
    ]
    np.testing.assert_allclose(scen.price_moves, expected, atol=1e-15)
    np.testing.assert_allclose(scen.weights[-2:], [0.33, 0.33])
    assert scen.lookahead_years == pytest.approx(1 / 365)


def test_deribit_grid_layout_and_extended_weights() -> None:
    scen = load_model("deribit").scenario_set("ETH")
    pr = 0.18
    assert len(scen) == 27 + 8
    np.testing.assert_allclose(scen.price_moves[:27:3], [pr * k / 4 for k in range(-4, 5)])
    m = scen.price_moves[27:]
    np.testing.assert_allclose(scen.weights[27:], pr / np.abs(m))
    np.testing.assert_allclose(
        scen.coin_weights[27:], pr / np.abs(m) * (1 + m) / (1 + np.sign(m) * pr)
    )


@settings(max_examples=40, deadline=None)
@given(q=st.floats(min_value=-50, max_value=50, allow_nan=False), j=st.integers(0, 34))
def test_risk_arrays_linear_in_position_size(q: float, j: int) -> None:
    table = instrument_table([MARKET.instrument("BTC-27MAR26-65000-P")], MARKET)
    ra = risk_array(table, load_model("deribit").scenario_set("BTC"))
    one = ra.weighted_settle()[0, j]
    assert q * one == pytest.approx(
        float(np.array([q]) @ ra.weighted_settle()[:, j]), rel=1e-12, abs=1e-15
    )


def test_long_option_loss_bounded_by_value() -> None:
    names = MARKET.option_names("BTC")[::37]
    table = instrument_table([MARKET.instrument(n) for n in names], MARKET)
    ra = risk_array(table, load_model("deribit").scenario_set("BTC"))
    coin_value = table.value_usd / table.F
    assert np.all(ra.pnl_settle.min(axis=1) >= -coin_value - 1e-12)
    assert np.all(ra.pnl_usd.min(axis=1) >= -table.value_usd - 1e-9)
    assert math.isfinite(float(ra.pnl_usd.sum()))


# ----------------------------------------------------------------------------------------
# Look-ahead revaluation: the rolled convention for options on a spot-quoted underlying.
#
# CME, "Components of SPAN" (http://www.cme.com/clearing/rmspan/span/components.html): a risk
# array value is the gain or loss "from the current point in time to a specific point in time
# in the near future ... the look-ahead time", one trading day; CME Type B records give it in
# years ("Lookahead Time (in years)"). For an option on a spot-quoted underlying the price
# scenario moves the spot, and the underlying is carried to the new time: Black-Scholes at
# T − τ on the shifted spot, V = S'·N(d1) − K·e^{−r(T−τ)}·N(d2). Options on futures (or on an
# explicit forward) keep the shifted futures price: V = e^{−r(T−τ)}·B76(F', K, T − τ).

_T0 = datetime(2026, 2, 25, 8, 0, tzinfo=UTC)
_EXPIRY = _T0 + timedelta(days=14)  # 11MAR26, 14 days
_XYZ = {"XYZ": ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 100.0)}


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _bs(S: float, K: float, T: float, sigma: float, r: float, *, call: bool) -> float:
    """Black-Scholes on a spot with rate r, written out (no dividends)."""
    if T <= 0.0:
        return max(S - K, 0.0) if call else max(K - S, 0.0)
    d1 = (math.log(S / K) + (r + 0.5 * sigma * sigma) * T) / (sigma * math.sqrt(T))
    d2 = d1 - sigma * math.sqrt(T)
    if call:
        return S * _ncdf(d1) - K * math.exp(-r * T) * _ncdf(d2)
    return K * math.exp(-r * T) * _ncdf(-d2) - S * _ncdf(-d1)


def _xyz_market(*, forward: float | None = None) -> MarketSnapshot:
    """XYZ spot 100, r = 10 %, options at 20 % vol on 11MAR26; optionally an explicit forward."""
    names = ["XYZ-11MAR26-100-C", "XYZ-11MAR26-100-P", "XYZ-11MAR26-75-C"]
    return build_market(
        valuation_time=_T0,
        products=_XYZ,
        underlyings={"XYZ": UnderlyingQuote(100.0, 0.10)},
        forwards=None if forward is None else {("XYZ", _EXPIRY): forward},
        options={n: OptionQuote(mark_iv=0.20) for n in names},
    )


def _span_grid(basis: int) -> ScenarioSet:
    # a clearing house's equity-option layout: PSR 9 %, VSR 23 % of IV, X = 3, c = 0.32
    u = UnderlyingParams(
        price_range=0.09,
        vol_up=0.23,
        vol_down=0.23,
        extreme_multiplier=3.0,
        cover_fraction=0.32,
        lookahead_days=1.0,
        lookahead_basis=basis,
    )
    return span16_grid(u)


def test_lookahead_rolls_the_spot_of_an_option_on_a_spot_quoted_underlying() -> None:
    market = _xyz_market()
    names = ["XYZ-11MAR26-100-C", "XYZ-11MAR26-100-P", "XYZ-11MAR26-75-C"]
    table = instrument_table([market.instrument(n) for n in names], market)
    np.testing.assert_array_equal(table.carry, [0.10, 0.10, 0.10])
    scen = _span_grid(252)
    assert scen.lookahead_years == 1 / 252
    ra = risk_array(table, scen)
    T, tau, r = 14 / 365, 1 / 252, 0.10
    for row, (K, call) in enumerate([(100.0, True), (100.0, False), (75.0, True)]):
        v0 = _bs(100.0, K, T, 0.20, r, call=call)
        for j in range(16):
            m = float(scen.price_moves[j])
            d = float(scen.vol_directions[j])
            sig = 0.20 * (1.0 + 0.23 * d)
            expected = 100.0 * (_bs(100.0 * (1 + m), K, T - tau, sig, r, call=call) - v0)
            assert ra.pnl_usd[row, j] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # The deep in-the-money call loses the carry of its strike over the day, K·r·τ per unit
    # (≈ 2.976 USD per contract of 100), where holding the forward fixed would show a gain of
    # (S − K)·r·τ: the difference is S·(e^{rτ} − 1)·M ≈ 3.97 USD, 0.44 % of the 900 USD scan.
    loss = -float(ra.pnl_usd[2, 0])  # no move, vol up
    assert loss == pytest.approx(
        100.0 * 75.0 * (math.exp(-r * (T - tau)) - math.exp(-r * T)), rel=1e-3
    )
    F = 100.0 * math.exp(r * T)
    fixed = 100.0 * (
        math.exp(-r * (T - tau)) * float(black76_price(F, 75.0, T - tau, 0.2 * 1.23, True))
        - _bs(100.0, 75.0, T, 0.20, r, call=True)
    )
    assert abs(-fixed - loss) / 900.0 == pytest.approx(
        100.0 * 100.0 * (math.exp(r * tau) - 1) / 900.0, rel=1e-3
    )


def test_lookahead_keeps_the_futures_price_of_an_option_on_a_forward() -> None:
    # The same option with an explicit forward for its expiry: an option on that forward.
    market = _xyz_market(forward=100.5)
    table = instrument_table([market.instrument("XYZ-11MAR26-100-C")], market)
    assert float(table.carry[0]) == 0.0
    scen = _span_grid(252)
    ra = risk_array(table, scen)
    T, tau, r = 14 / 365, 1 / 252, 0.10
    v0 = math.exp(-r * T) * float(black76_price(100.5, 100.0, T, 0.20, True))
    for j in range(16):
        m = float(scen.price_moves[j])
        sig = 0.20 * (1.0 + 0.23 * float(scen.vol_directions[j]))
        v = math.exp(-r * (T - tau)) * float(
            black76_price(100.5 * (1 + m), 100.0, T - tau, sig, True)
        )
        assert ra.pnl_usd[0, j] == pytest.approx(100.0 * (v - v0), rel=1e-9, abs=1e-9)


def test_lookahead_basis_is_calendar_or_trading_days() -> None:
    assert _span_grid(365).lookahead_years == 1 / 365
    assert _span_grid(252).lookahead_years == 1 / 252
    with pytest.raises(ValidationError, match=r"365 .* or 252"):
        UnderlyingParams(lookahead_basis=360)


def test_demo_market_has_no_rolled_rows() -> None:
    # Crypto forwards come from futures marks (the demo has a rate of 0 and futures): every
    # option is an option on its forward, as before.
    names = MARKET.option_names("BTC")[::50]
    table = instrument_table([MARKET.instrument(n) for n in names], MARKET)
    assert not table.carry.any()


# ----------------------------------------------------------------------------------------
# pnl_base: V(scenario) − V(model at the mark vol) (SPAN) or V(scenario) − mark (venues)


def test_pnl_base_mark_measures_from_the_mark_price() -> None:
    name = "BTC-27MAR26-70000-C"
    market = build_market(
        valuation_time=MARKET.valuation_time,
        underlyings={"BTC": UnderlyingQuote(70000.0)},
        futures={"BTC-27MAR26": 70288.26},
        options={name: OptionQuote(mark_iv=0.55, mark_price=0.07)},  # both quoted: they differ
    )
    table = instrument_table([market.instrument(name)], market)
    F = float(table.F[0])
    model_coin = float(table.value_usd[0]) / F
    assert abs(model_coin - 0.07) > 1e-3
    moves = [-0.1, 0.0, 0.1]
    by_model = risk_array(table, ScenarioSet.build(moves, [0.0] * 3, VolShock(0.5, 0.25)))
    by_mark = risk_array(
        table, ScenarioSet.build(moves, [0.0] * 3, VolShock(0.5, 0.25), pnl_base="mark")
    )
    assert by_model.pnl_settle[0, 1] == 0.0  # unshocked: exactly 0 from the model value
    # coin: V/(F(1+m)) − mark; USD: V − mark·F
    np.testing.assert_allclose(
        by_mark.pnl_settle[0], by_model.pnl_settle[0] + model_coin - 0.07, rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(
        by_mark.pnl_usd[0], by_model.pnl_usd[0] + (model_coin - 0.07) * F, rtol=1e-12
    )


def test_weighted_pnl_uses_coin_weights_for_inverse_rows_only() -> None:
    # Deribit's extended scenarios re-denominate coin P&L: coin weights differ from USD ones.
    names = ["BTC-27MAR26", "BTC-PERPETUAL", "BTC_USDC-27MAR26-70000-P"]
    table = instrument_table([MARKET.instrument(n) for n in names], MARKET)
    scen = ScenarioSet.build(
        [-0.16, 0.0, 0.5],
        [0.0, 0.0, 0.0],
        VolShock(up=0.5, down=0.25),
        weights=[1.0, 0.5, 0.2],
        coin_weights=[0.25, 2.0, 4.0],
    )
    ra = risk_array(table, scen)
    assert table.inverse.tolist() == [True, True, False]
    w = np.array([[0.25, 2.0, 4.0], [0.25, 2.0, 4.0], [1.0, 0.5, 0.2]])
    np.testing.assert_array_equal(ra.weighted_settle(), ra.pnl_settle * w)
    np.testing.assert_array_equal(ra.weighted_usd(), ra.pnl_usd * np.array([1.0, 0.5, 0.2]))
    assert ra.weighted_settle()[0, 0] == pytest.approx(0.25 * (1 - 1 / 0.84), rel=1e-14)
