"""Risk arrays: golden values worked by hand from the documented formulas, and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portmargin.market import demo_market
from portmargin.models import load_model
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
    scen = load_model("span16").scenario_set("BTC")
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
