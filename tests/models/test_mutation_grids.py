"""Scenario grids built from their parameters, every field of the set written out by hand.

Sources, as in :mod:`portmargin.models.grids`: Deribit "Portfolio Margin"
(https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin: 9 buckets x
vol up / same / down, then the extended table weighted ``f·PR/|m|``, coin weight
``·(1+m)/(1 + sign(m)·PR)``); CME "Components of SPAN"
(http://www.cme.com/clearing/rmspan/span/components.html: 0, ±1/3, ±2/3, ±1 PSR each with vol
up and down, then ±X·PSR at the cover fraction, vol unchanged); OCC "Customer Portfolio Margin"
(https://www.theocc.com/risk-management/customer-portfolio-margin) and FINRA Rule 4210(g):
ten equidistant points, −R_down·k/5 then +R_up·k/5. Every grid carries the look-ahead
``lookahead_days / lookahead_basis`` and the P&L base (``docs/models.md``).
"""

from __future__ import annotations

import numpy as np
import pytest

from portmargin.models.config import ExtraScenario, UnderlyingParams
from portmargin.models.grids import custom_grid, deribit_grid, span16_grid, tims10_grid
from portmargin.scenarios import VolShock, VolShockMode


def test_deribit_grid_every_field() -> None:
    p = UnderlyingParams(
        price_range=0.16,
        buckets_per_side=4,
        extended_moves=(-0.66, 0.5),
        extended_factor=0.5,
        lookahead_days=2.0,
        lookahead_basis=252,
        pnl_base="mark",
    )
    s = deribit_grid(p)
    assert s.groups == ("standard",) * 27 + ("extended",) * 2
    np.testing.assert_array_equal(s.weights[:27], 1.0)
    np.testing.assert_array_equal(s.coin_weights[:27], 1.0)
    np.testing.assert_allclose(s.price_moves[:27], np.repeat(0.16 * np.arange(-4, 5) / 4, 3))
    np.testing.assert_array_equal(s.vol_directions[:27], [1.0, 0.0, -1.0] * 9)
    # extended: f·PR/|m| = 0.5·0.16/0.66 and 0.5·0.16/0.5; coin: ·(1+m)/(1 ± PR)
    down, up = 0.5 * 0.16 / 0.66, 0.5 * 0.16 / 0.5
    np.testing.assert_allclose(s.weights[27:], [down, up], rtol=1e-15)
    np.testing.assert_allclose(
        s.coin_weights[27:], [down * 0.34 / 0.84, up * 1.5 / 1.16], rtol=1e-15
    )
    np.testing.assert_array_equal(s.vol_directions[27:], [1.0, 1.0])
    assert s.lookahead_years == pytest.approx(2.0 / 252, rel=1e-15)
    assert s.pnl_base == "mark"


def test_span16_grid_every_field() -> None:
    p = UnderlyingParams(
        price_range=0.12,
        extreme_multiplier=2.5,
        cover_fraction=0.3,
        lookahead_days=1.0,
        pnl_base="mark",
    )
    s = span16_grid(p)
    fracs = [0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0]
    np.testing.assert_allclose(s.price_moves[:14], np.repeat(np.array(fracs) * 0.12, 2))
    np.testing.assert_allclose(s.price_moves[14:], [0.3, -0.3], rtol=1e-15)
    np.testing.assert_array_equal(s.vol_directions, [1.0, -1.0] * 7 + [0.0, 0.0])
    np.testing.assert_array_equal(s.weights, [1.0] * 14 + [0.3, 0.3])
    assert s.groups == ("standard",) * 14 + ("extreme", "extreme")
    assert s.lookahead_years == pytest.approx(1.0 / 365, rel=1e-15)
    assert s.pnl_base == "mark"


def test_tims10_grid_with_its_own_up_range() -> None:
    # OCC's high-cap index ranges: −8 % down, +6 % up.
    p = UnderlyingParams(price_range=0.08, price_range_up=0.06, lookahead_days=3.0, pnl_base="mark")
    s = tims10_grid(p)
    want = [-0.08, -0.064, -0.048, -0.032, -0.016, 0.012, 0.024, 0.036, 0.048, 0.06]
    np.testing.assert_allclose(s.price_moves, want, rtol=1e-14)
    assert s.groups == tuple(f"down{k}" for k in (5, 4, 3, 2, 1)) + tuple(
        f"up{k}" for k in (1, 2, 3, 4, 5)
    )
    np.testing.assert_array_equal(s.vol_directions, 0.0)
    assert s.lookahead_years == pytest.approx(3.0 / 365, rel=1e-15)
    assert s.pnl_base == "mark"


def test_custom_grid_carries_the_term_structure_and_floors() -> None:
    p = UnderlyingParams(
        vol_mode="absolute",
        short_term_power=0.3,
        long_term_power=0.13,
        pivot_days=20.0,
        dte_floor_days=2.0,
        min_vol_up=0.4,
        min_vol=0.05,
        price_moves=(-0.1, 0.1),
        vol_shifts=(-0.2, 0.3),
        move_weights=(1.0, 0.5),
        extra_scenarios=(ExtraScenario(move=0.5, vol_shift=0.1, weight=0.2),),
        lookahead_days=1.0,
        pnl_base="mark",
    )
    s = custom_grid(p)
    assert s.vol_shock == VolShock(
        up=1.0,
        down=1.0,
        mode=VolShockMode.ABSOLUTE,
        short_term_power=0.3,
        long_term_power=0.13,
        pivot_days=20.0,
        dte_floor_days=2.0,
        min_vol_up=0.4,
        min_vol=0.05,
    )
    np.testing.assert_allclose(s.price_moves, [-0.1, -0.1, 0.1, 0.1, 0.5])
    np.testing.assert_allclose(s.vol_directions, [-0.2, 0.3, -0.2, 0.3, 0.1])
    np.testing.assert_allclose(s.weights, [1.0, 1.0, 0.5, 0.5, 0.2])
    assert s.groups == ("standard",) * 4 + ("extended",)
    assert s.lookahead_years == pytest.approx(1.0 / 365, rel=1e-15)
    assert s.pnl_base == "mark"
