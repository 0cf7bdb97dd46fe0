"""The JSON contract of ``portmargin margin --format json`` field by field, and the risk matrix.

Every key below is the documented one (``docs/json.md``, "portmargin margin --format json":
the top-level fields, ``worst_scenario``/``scenarios``, ``positions``, ``by_underlying``,
``by_currency``, ``risk_matrix``); the values are those the objects were built with, so a key
renamed or a value swapped shows. The risk matrix rules are those of
:class:`portmargin.models.result.RiskMatrix`: rows are the distinct price moves, columns the
distinct vol shocks (ascending), a shared cell shows the larger loss (the first scenario on
a tie), and the binding scenario is always shown in its own cell.
"""

from __future__ import annotations

from typing import Any

import pytest

from portmargin.models.result import (
    MarginResult,
    PoolResult,
    PositionLine,
    ScenarioLine,
    UnderlyingResult,
    risk_matrix,
)


def _line(index: int, move: float, vol: float, pnl: float, raw: float) -> ScenarioLine:
    return ScenarioLine("BTC", index, "standard", move, vol, 1.0, pnl, raw)


def _underlying(
    lines: tuple[ScenarioLine, ...], worst: ScenarioLine, *, currency: str = "USD"
) -> UnderlyingResult:
    return UnderlyingResult(
        "BTC",
        currency,
        7.0,
        {"scanning_risk": 7.0, "roll_shock": 1.0},
        8.0,
        worst,
        lines,
        {"price_risk": 2.0},
        6.5,
        0.5,
    )


LINES = (
    _line(0, -0.1, -0.25, -7.0, -7.0),
    _line(1, -0.1, 0.5, -5.0, -5.0),
    _line(2, 0.1, -0.25, 0.0, 3.0),
    _line(3, 0.1, 0.5, 0.0, 4.0),
)


def test_position_and_pool_to_dict_are_the_documented_fields() -> None:
    pos = PositionLine("BTC-27MAR26-70000-C", -2.0, "BTC", -0.1, -1.1, -0.3, "interpolated", 0.25)
    assert pos.to_dict() == {
        "instrument": "BTC-27MAR26-70000-C",
        "quantity": -2.0,
        "currency": "BTC",
        "mark_value": -0.1,
        "delta": -1.1,
        "binding_scenario_pnl": -0.3,
        "quote": "interpolated",
        "scanning_contribution": 0.25,
    }
    pool = PoolResult(
        "BTC", 3.0, 2.0, 10.0, {"scanning_risk": 3.0}, (), 70_000.0, {"nov": 1.0}, ("h",)
    )
    assert pool.to_dict() == {
        "currency": "BTC",
        "initial_margin": 3.0,
        "maintenance_margin": 2.0,
        "equity": 10.0,
        "initial_excess": 7.0,
        "maintenance_excess": 8.0,
        "components": {"scanning_risk": 3.0},
        "im_only_components": ["h"],
        "details": {"nov": 1.0},
        "usd_rate": 70_000.0,
    }


def test_underlying_to_dict_leaves_the_scenarios_out_unless_asked() -> None:
    u = _underlying(LINES, LINES[0])
    want: dict[str, Any] = {
        "underlying": "BTC",
        "currency": "USD",
        "scanning_risk": 7.0,
        "requirement": 8.0,
        "components": {"scanning_risk": 7.0, "roll_shock": 1.0},
        "details": {"price_risk": 2.0},
        "worst_scenario": LINES[0].to_dict(),
        "scanning_contribution": 6.5,
        "collateral_contribution": 0.5,
    }
    assert u.to_dict() == want
    assert u.to_dict(with_scenarios=True) == {**want, "scenarios": [s.to_dict() for s in LINES]}


def _result(unds: tuple[UnderlyingResult, ...]) -> MarginResult:
    pos = PositionLine("BTC-PERPETUAL", 1.0, "USD", 0.0, 1.0, -7.0)
    pool = PoolResult("USD", 8.8, 8.0, 100.0, {"scanning_risk": 7.0}, unds, 1.0)
    return MarginResult(
        model="m",
        model_version="1",
        currency="USD",
        valuation_time="2026-02-25T08:00:00Z",
        market_source="demo",
        initial_margin=8.8,
        maintenance_margin=8.0,
        equity=100.0,
        components={"scanning_risk": 7.0},
        worst_scenario=LINES[0],
        scenarios=LINES,
        positions=(pos,),
        by_underlying=unds,
        by_currency=(pool,),
        notes=("a note",),
    )


def test_margin_result_to_dict_is_the_documented_object() -> None:
    u = _underlying(LINES, LINES[0])
    r = _result((u,))
    doc = r.to_dict()
    assert doc == {
        "model": "m",
        "model_version": "1",
        "currency": "USD",
        "valuation_time": "2026-02-25T08:00:00Z",
        "market": "demo",
        "initial_margin": 8.8,
        "maintenance_margin": 8.0,
        "equity": 100.0,
        "initial_excess": pytest.approx(91.2),
        "maintenance_excess": 92.0,
        "components": {"scanning_risk": 7.0},
        "worst_scenario": LINES[0].to_dict(),
        "scenarios": [s.to_dict() for s in LINES],
        "positions": [r.positions[0].to_dict()],
        "by_underlying": {"BTC": u.to_dict()},
        "by_currency": {"USD": r.by_currency[0].to_dict()},
        "notes": ["a note"],
        "risk_matrix": {"BTC": risk_matrix(u).to_dict()},
    }


def test_an_underlying_in_two_pools_is_keyed_by_underlying_and_pool() -> None:
    # docs/json.md: "BTC, or BTC/USD when it appears in several pools"
    a = _underlying(LINES, LINES[0], currency="BTC")
    b = _underlying(LINES, LINES[0], currency="USD")
    doc = _result((a, b)).to_dict()
    assert list(doc["by_underlying"]) == ["BTC/BTC", "BTC/USD"]
    assert list(doc["risk_matrix"]) == ["BTC/BTC", "BTC/USD"]


def test_risk_matrix_rows_columns_and_binding_cell() -> None:
    # moves (−0.1, 0.1) × shocks (−0.25, 0.5); binding: scenario 1 at (row 0, col 1)
    m = risk_matrix(_underlying(LINES, LINES[1])).to_dict()
    assert m == {
        "underlying": "BTC",
        "currency": "USD",
        "price_moves": [-0.1, 0.1],
        "vol_shocks": [-0.25, 0.5],
        "pnl": [[-7.0, -5.0], [3.0, 4.0]],
        "scenario": [[0, 1], [2, 3]],
        "binding": {
            "row": 0,
            "col": 1,
            "index": 1,
            "price_move": -0.1,
            "vol_shock": 0.5,
            "pnl": -5.0,
        },
    }


def test_risk_matrix_shared_cells_show_the_larger_loss_and_the_binding_scenario() -> None:
    # Scenarios 4, 5 share the cell (0.1, 0.5) with scenario 3 (raw 4): 5 loses more (−2),
    # 4 ties with it (−2) and comes first, so the cell shows scenario 4. Scenario 6 shares
    # (0.1, −0.25) with scenario 2 and loses more (−1), but the binding scenario is 2: its
    # cell shows it, row 1, column 0.
    lines = (
        *LINES,
        _line(4, 0.1, 0.5, -2.0, -2.0),
        _line(5, 0.1, 0.5, -2.0, -2.0),
        _line(6, 0.1, -0.25, -1.0, -1.0),
    )
    m = risk_matrix(_underlying(lines, lines[2]))
    assert m.pnl == ((-7.0, -5.0), (3.0, -2.0))
    assert m.scenario == ((0, 1), (2, 4))
    assert m.binding == (1, 0)
    # with scenario 6 binding the cell keeps it
    m = risk_matrix(_underlying(lines, lines[6]))
    assert (m.pnl[1][0], m.scenario[1][0], m.binding) == (-1.0, 6, (1, 0))


def test_risk_matrix_of_a_binding_scenario_outside_the_grid() -> None:
    # A result without scenario lines (or whose binding line is not among them) has no
    # binding cell.
    outside = _line(9, 0.1, 0.75, -1.0, -1.0)
    assert risk_matrix(_underlying((), outside)).to_dict()["binding"] is None
    assert risk_matrix(_underlying(LINES, outside)).to_dict()["binding"] is None
