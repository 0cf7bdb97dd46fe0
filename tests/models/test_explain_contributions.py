"""Euler contributions and the risk matrix of an explained margin result.

The scanning risk ``R`` of a (pool, underlying) is set by a weighting ``ω`` of its raw
scenario P&L (the binding scenario, or the VaR / ES tail); position ``i`` contributes
``−q_i·Σ_j ω_j W_ij`` (Tasche, "Risk contributions and performance measurement", 1999), so the
positions and the coin collateral add up to ``R``. Worked here by hand on small books and
checked to add up on every shipped model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import portmargin as pm
from portmargin.models import load_model
from portmargin.models.config import available_models
from portmargin.models.result import MarginResult

MARKET = pm.demo_market()
BOOK = pm.Portfolio.of(
    {
        "BTC-27MAR26-70000-C": -2,
        "BTC-27MAR26-60000-P": 1,
        "BTC-PERPETUAL": 1,
        "ETH-27MAR26-3000-P": -5,
        "ETH-26JUN26": 3,
    },
    {"BTC": 0.5, "ETH": 2.0, "USD": 1000.0},
)


def _add_up(r: MarginResult) -> None:
    for u in r.by_underlying:
        own = [
            p
            for p in r.positions
            if p.currency == u.currency and _und(p.instrument) == u.underlying
        ]
        total = sum(p.scanning_contribution for p in own) + u.collateral_contribution
        assert total == pytest.approx(u.scanning_risk, rel=1e-9, abs=1e-9)
        assert u.scanning_contribution == u.scanning_risk
    pools: dict[str, float] = {}
    for u in r.by_underlying:
        pools[u.currency] = pools.get(u.currency, 0.0) + u.scanning_contribution
    for p in r.by_currency:
        assert pools.get(p.currency, 0.0) == pytest.approx(
            p.components.get("scanning_risk", 0.0), rel=1e-12, abs=1e-12
        )


def _und(name: str) -> str:
    return name.split("-")[0].split("_")[0]


@pytest.mark.parametrize("model", available_models())
def test_contributions_add_up_to_the_scanning_risk(model: str) -> None:
    _add_up(load_model(model).margin(BOOK, MARKET))


def test_contributions_add_up_in_cross_mode_with_coin_collateral() -> None:
    r = load_model("deribit", cross=True).margin(BOOK, MARKET)
    _add_up(r)
    btc = next(u for u in r.by_underlying if u.underlying == "BTC")
    assert btc.collateral_contribution != 0.0  # 0.5 BTC moves with BTC's scenarios


def test_contribution_is_minus_the_binding_pnl_by_hand() -> None:
    # One pool, worst-case measure, no dampener (span16 in USD): c_i = −(binding P&L of i).
    # A short call and a long perpetual of BTC: the two contributions are the negated binding
    # scenario P&L of each line and sum to the scanning risk.
    book = pm.Portfolio.of({"BTC-27MAR26-70000-C": -1, "BTC-PERPETUAL": 0.3})
    r = load_model("span16").margin(book, MARKET)
    (u,) = r.by_underlying
    for p in r.positions:
        assert p.scanning_contribution == pytest.approx(-p.binding_pnl, rel=1e-12)
    assert sum(p.scanning_contribution for p in r.positions) == pytest.approx(
        u.scanning_risk, rel=1e-12
    )


def test_expected_shortfall_contributions_are_tail_means(tmp_path: Path) -> None:
    # ES at 80 % over the 35 Deribit scenarios: m = ⌈0.2·35⌉ = 7 worst raw scenarios; with
    # joint_underlyings the tail is chosen on BTC + ETH together (one USD pool).
    over = tmp_path / "es.toml"
    over.write_text(
        'risk_measure = "es"\nconfidence = 0.8\njoint_underlyings = true\ncurrency_mode = "cross"\n',
        encoding="utf-8",
    )
    r = load_model("deribit", params_file=str(over)).margin(BOOK, MARKET)
    _add_up(r)
    scan = r.by_currency[0].components["scanning_risk"]
    assert scan > 0.0
    # the pool's ES by hand: the mean of its 7 worst summed raw scenarios
    by = {u.underlying: [s.raw_pnl for s in u.scenarios] for u in r.by_underlying}
    total = sorted(a + b for a, b in zip(by["BTC"], by["ETH"], strict=True))
    assert scan == pytest.approx(-sum(total[:7]) / 7, rel=1e-9)


def test_risk_matrix_in_json_marks_the_binding_cell() -> None:
    r = load_model("deribit").margin(BOOK, MARKET)
    out = json.loads(json.dumps(r.to_dict()))
    assert set(out["risk_matrix"]) == set(out["by_underlying"])
    btc = out["risk_matrix"]["BTC"]
    # 9 standard moves + 8 extended moves; vol down / unchanged / up
    assert len(btc["price_moves"]) == 17 and btc["vol_shocks"] == [-0.25, 0.0, 0.5]
    u = next(x for x in r.by_underlying if x.underlying == "BTC")
    cell = btc["binding"]
    assert cell["index"] == u.worst_scenario.index
    assert btc["pnl"][cell["row"]][cell["col"]] == u.worst_scenario.raw_pnl
    assert (cell["price_move"], cell["vol_shock"]) == (
        u.worst_scenario.price_move,
        u.worst_scenario.vol_shock,
    )
    # an extended move is a row with only its vol-up cell
    row = btc["price_moves"].index(-0.66)
    assert btc["pnl"][row][0] is None and btc["pnl"][row][2] is not None
    # every scenario is somewhere, raw P&L gains included
    cells = {i for r_ in btc["scenario"] for i in r_ if i is not None}
    assert cells == set(range(len(u.scenarios)))
    assert max(v for r_ in btc["pnl"] for v in r_ if v is not None) > 0.0


def test_rules_results_have_an_empty_risk_matrix() -> None:
    r = pm.margin(BOOK, MARKET, "strategy")
    assert r.to_dict()["risk_matrix"] == {}


def test_matrix_renders_as_a_table_and_a_heatmap(tmp_path: Path) -> None:
    from rich.console import Console

    from portmargin.errors import InputError
    from portmargin.matrix import matrix_chart, matrix_tables

    r = load_model("span").margin(BOOK, MARKET)
    console = Console(record=True, width=200)
    console.print(matrix_tables(r))
    text = console.export_text()
    assert "BTC (USD pool)" in text and "ETH (USD pool)" in text
    assert text.count("*") >= 2  # one binding cell per (pool, underlying)
    for name in ("m.png", "m.html"):
        out = tmp_path / name
        matrix_chart(r, out, title="book")
        assert out.stat().st_size > 1000
    assert (tmp_path / "m.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    with pytest.raises(InputError, match=r"m\.txt: --plot needs a \.png or \.html file"):
        matrix_chart(r, tmp_path / "m.txt")
    rules = pm.margin(BOOK, MARKET, "strategy")
    with pytest.raises(InputError, match="no scenario grid"):
        matrix_chart(rules, tmp_path / "r.png")
