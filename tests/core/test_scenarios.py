"""Scenario sets and vol shocks: the formulas by hand, the validation, immutability.

Formulas as in :mod:`portmargin.scenarios` (Deribit Portfolio Margin,
https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin )::

    scale = (pivot / max(DTE, floor))^p,  p = short_term_power if DTE < pivot else long_term_power
    up:   σ' = max(σ·(1 + v·up·scale), min_vol_up)   (relative)   σ + v·up·scale (absolute)
    down: σ' = max(σ·(1 + v·down·scale), min_vol)    (v < 0)      σ + v·down·scale
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from portmargin.errors import ParameterError
from portmargin.scenarios import ScenarioSet, VolShock, VolShockMode

SHOCK = VolShock(up=0.5, down=0.3, short_term_power=0.5, long_term_power=0.2, pivot_days=30.0)


def test_vol_shock_scale_by_hand() -> None:
    got = SHOCK.scale(np.array([7.5, 30.0, 120.0, 0.25]))
    want = [
        (30 / 7.5) ** 0.5,  # 2: below the pivot, the short-term power
        1.0,  # at the pivot the long-term power, scale 1
        (30 / 120) ** 0.2,
        (30 / 1.0) ** 0.5,  # the floor of 1 day keeps it finite
    ]
    assert got == pytest.approx(want, rel=1e-15)


def test_relative_shock_up_down_and_floors_by_hand() -> None:
    shock = VolShock(up=0.5, down=0.3, min_vol_up=0.7, min_vol=0.45)
    sigma, dte = np.array([0.6, 0.6]), np.array([30.0, 30.0])
    got = shock.shocked(sigma, dte, np.array([1.0, -1.0, 0.0, 0.5]))
    # up: max(0.6·1.5, 0.7) = 0.9; down: max(0.6·0.7, 0.45) = 0.45 (floored);
    # none: 0.6; half up: max(0.6·1.25, 0.7) = 0.75
    assert got.shape == (2, 4)
    assert got[0] == pytest.approx([0.9, 0.45, 0.6, 0.75], rel=1e-15)
    assert np.array_equal(got[0], got[1])


def test_absolute_shock_by_hand_with_term_scaling() -> None:
    shock = VolShock(
        up=0.1, down=0.05, mode=VolShockMode.ABSOLUTE, short_term_power=1.0, pivot_days=30.0
    )
    got = shock.shocked(np.array([0.5]), np.array([15.0]), np.array([1.0, -1.0, -0.5]))
    # scale = 30/15 = 2: up 0.5 + 0.1·2 = 0.7; down 0.5 − 0.05·2 = 0.4; half down 0.45
    assert got[0] == pytest.approx([0.7, 0.4, 0.45], rel=1e-15)


@pytest.mark.parametrize(
    "field", ["up", "down", "pivot_days", "dte_floor_days", "min_vol_up", "min_vol"]
)
@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf])
def test_vol_shock_fields_are_checked(field: str, value: float) -> None:
    kw: dict[str, Any] = {"up": 0.1, "down": 0.1, field: value}
    with pytest.raises(ParameterError, match=f"`{field}`"):
        VolShock(**kw)


@pytest.mark.parametrize("field", ["pivot_days", "dte_floor_days"])
def test_vol_shock_pivot_and_floor_must_be_positive(field: str) -> None:
    kw: dict[str, Any] = {"up": 0.1, "down": 0.1, field: 0.0}
    with pytest.raises(ParameterError, match="must be > 0"):
        VolShock(**kw)


def _set(**kw: Any) -> ScenarioSet:
    base: dict[str, Any] = {"moves": [-0.1, 0.0, 0.1], "directions": [1.0, 0.0, -1.0]}
    base.update(kw)
    return ScenarioSet.build(vol_shock=SHOCK, **base)


def test_build_defaults() -> None:
    s = _set()
    assert len(s) == 3
    assert s.weights.tolist() == [1.0, 1.0, 1.0]
    assert s.coin_weights.tolist() == [1.0, 1.0, 1.0]
    assert s.groups == ("standard",) * 3
    assert s.lookahead_years == 0.0 and s.pnl_base == "model"
    assert s.tier_days.size == 0 and s.scales.size == 0
    with_w = _set(weights=[1.0, 0.5, 0.0])
    assert with_w.coin_weights.tolist() == [1.0, 0.5, 0.0]  # coin weights follow the weights


def test_arrays_are_read_only_private_copies() -> None:
    moves = np.array([-0.1, 0.0, 0.1])
    s = ScenarioSet(
        moves,
        np.zeros(3),
        np.ones(3),
        np.ones(3),
        SHOCK,
        ["standard"] * 3,  # type: ignore[arg-type]
    )
    moves[0] = 0.5  # the caller's array changes; the set does not
    assert s.price_moves[0] == -0.1
    assert isinstance(s.groups, tuple)
    for a in (s.price_moves, s.vol_directions, s.weights, s.coin_weights, s.tier_days):
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0.0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"directions": [1.0, 0.0]}, "same length"),
        ({"weights": [1.0, 1.0]}, "same length"),
        ({"coin_weights": [1.0]}, "same length"),
        ({"groups": ["standard"]}, "same length"),
        ({"moves": [], "directions": []}, "same length"),
        ({"moves": [-0.1, math.nan, 0.1]}, "finite"),
        ({"directions": [1.0, math.inf, -1.0]}, "finite"),
        ({"weights": [1.0, math.nan, 1.0]}, "finite"),
        ({"coin_weights": [1.0, 1.0, math.inf]}, "finite"),
        ({"moves": [-1.0, 0.0, 0.1]}, "> −100 %"),
        ({"moves": [-1.5, 0.0, 0.1]}, "> −100 %"),
        ({"weights": [1.0, -0.1, 1.0], "coin_weights": [1.0, 1.0, 1.0]}, "weights must be"),
        ({"coin_weights": [1.0, 1.0, -0.1]}, "weights must be"),
        ({"lookahead_years": -0.01}, "lookahead"),
        ({"lookahead_years": math.nan}, "lookahead"),
        ({"pnl_base": "close"}, "pnl_base"),
        ({"tiers": [(0.0, 0.0)]}, "scales > 0"),
        ({"tiers": [(0.0, math.nan)]}, "finite"),
        ({"tiers": [(-1.0, 1.0)]}, "strictly increasing"),
        ({"tiers": [(10.0, 1.0), (10.0, 0.8)]}, "strictly increasing"),
        ({"tiers": [(30.0, 1.0), (10.0, 0.8)]}, "strictly increasing"),
    ],
)
def test_bad_sets_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        _set(**kw)


def test_unequal_tier_arrays_are_refused() -> None:
    with pytest.raises(ParameterError, match="one scale per price-range tier"):
        ScenarioSet(
            np.zeros(1), np.zeros(1), np.ones(1), np.ones(1), SHOCK, ("standard",),
            tier_from_days=np.array([0.0, 30.0]), tier_scales=np.array([1.0]),
        )  # fmt: skip


def test_zero_weights_and_moves_near_minus_one_are_allowed() -> None:
    s = _set(moves=[-0.999, 0.0, 0.1], weights=[0.0, 0.0, 1.0], lookahead_years=0.0)
    assert s.price_moves[0] == -0.999 and s.weights[0] == 0.0


def test_move_scale_and_row_moves_by_tier() -> None:
    s = _set(tiers=[(10.0, 1.5), (30.0, 1.0), (120.0, 0.8)])
    dte = np.array([5.0, 10.0, 29.9, 30.0, 200.0, 200.0])
    dated = np.array([True, True, True, True, True, False])
    # below the first tier: 1; from 10 days: 1.5; from 30: 1.0; from 120: 0.8; undated: 1
    assert s.move_scale(dte, dated).tolist() == [1.0, 1.5, 1.5, 1.0, 0.8, 1.0]
    rows = s.row_moves(dte, dated)
    assert rows.shape == (6, 3)
    assert rows[1] == pytest.approx([-0.15, 0.0, 0.15], rel=1e-15)
    assert rows[4] == pytest.approx([-0.08, 0.0, 0.08], rel=1e-15)
    assert _set().move_scale(dte, dated).tolist() == [1.0] * 6  # no tiers: every row 1


def test_an_unchanged_vol_is_not_floored() -> None:
    # v = 0 keeps the mark vol, even below the down-shock floor
    shock = VolShock(up=0.5, down=0.3, min_vol_up=0.8, min_vol=0.45)
    got = shock.shocked(np.array([0.3]), np.array([30.0]), np.array([0.0, -1.0]))
    assert got[0].tolist() == [0.3, 0.45]


def test_limits_that_are_allowed() -> None:
    # a pivot and a floor below one day, a first tier at 0 days, tiers less than a day apart
    shock = VolShock(up=0.1, down=0.1, pivot_days=0.5, dte_floor_days=0.25)
    assert shock.scale(np.array([0.1])).tolist() == [1.0]  # both powers 0
    s = _set(tiers=[(0.0, 1.2), (0.5, 1.0)])
    assert s.move_scale(np.array([0.0, 0.25, 0.5]), np.ones(3, bool)).tolist() == [1.2, 1.2, 1.0]
