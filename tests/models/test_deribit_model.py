"""Deribit PM: roll shock, delta shock, IM/MM composition and cross-mode haircuts.

Golden numbers are worked from reference/deribit.md §1.6-1.9 in each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import portmargin as pm
from portmargin.market import MarketSnapshot
from portmargin.models import load_model


@pytest.fixture(scope="module")
def demo() -> MarketSnapshot:
    """The built-in demo market (BTC 70,000, ETH 3,500)."""
    return pm.demo_market()


REL = 1e-12


def test_roll_shock_perpetual_takes_the_minimum(demo: MarketSnapshot) -> None:
    # 3 BTC perpetual, T = 0: roll = |3| x max(0.01, 0.075 x 0) = 0.03 BTC (deribit.md §1.7)
    r = load_model("deribit").margin(pm.Portfolio.of({"BTC-PERPETUAL": 3}), demo)
    assert r.components["roll_shock"] == pytest.approx(0.03, rel=REL)


def test_roll_shock_does_not_net_across_expiries(demo: MarketSnapshot) -> None:
    # +2 perpetual, -2 future: each expiry enters with |delta|:
    # roll = 2 x 0.01 + 2 x max(0.01, 0.075 T)
    book = pm.Portfolio.of({"BTC-PERPETUAL": 2, "BTC-27MAR26": -2})
    T = demo.year_fraction(demo.instrument("BTC-27MAR26").expiry)  # type: ignore[arg-type]
    r = load_model("deribit").margin(book, demo)
    assert r.components["roll_shock"] == pytest.approx(0.02 + 2 * max(0.01, 0.075 * T), rel=REL)


def test_mm_is_mm_factor_times_risk_matrix_margin(demo: MarketSnapshot) -> None:
    # deribit.md §1.6: IM = worst + roll + delta (no IM-only add-ons here); MM = 0.8 x that.
    book = pm.Portfolio.of({"BTC-27MAR26-70000-C": -1, "BTC-PERPETUAL": 0.5})
    r = load_model("deribit").margin(book, demo)
    rmm = r.components["scanning_risk"] + r.components["roll_shock"]
    rmm += r.components["delta_shock"]
    assert r.initial_margin == pytest.approx(rmm, rel=REL)
    assert r.maintenance_margin == pytest.approx(0.8 * rmm, rel=REL)


def test_delta_shock_above_threshold(demo: MarketSnapshot, tmp_path: Path) -> None:
    # threshold 1,000,000 USD at S = 70,000 -> 14.2857 BTC; 100 BTC perpetual:
    # shock = 100 x min(0.00005 x (100 - 14.2857), 0.10) = 0.428571 BTC
    over = tmp_path / "over.toml"
    over.write_text(
        '[[charges]]\nkind = "delta_shock"\nthreshold_usd = 1000000.0\n'
        "max_delta_shock = 0.10\nm_inc = 0.00005\n",
        encoding="utf-8",
    )
    model = load_model("deribit", params_file=str(over))
    r = model.margin(pm.Portfolio.of({"BTC-PERPETUAL": 100}), demo)
    expected = 100 * min(0.00005 * (100 - 1_000_000 / 70_000), 0.10)
    assert r.components["delta_shock"] == pytest.approx(expected, rel=REL)


def test_delta_shock_is_capped(demo: MarketSnapshot, tmp_path: Path) -> None:
    # m_inc large: shock = |delta| x max_delta_shock = 10 x 0.10 = 1 BTC
    over = tmp_path / "over.toml"
    over.write_text(
        '[[charges]]\nkind = "delta_shock"\nthreshold_usd = 0.0\nmax_delta_shock = 0.10\n'
        "m_inc = 1.0\n",
        encoding="utf-8",
    )
    r = load_model("deribit", params_file=str(over)).margin(
        pm.Portfolio.of({"BTC-PERPETUAL": -10}), demo
    )
    assert r.components["delta_shock"] == pytest.approx(1.0, rel=REL)


def test_cross_mode_haircut_is_im_only(demo: MarketSnapshot, tmp_path: Path) -> None:
    # deribit.md §1.9: X:PM collateral haircuts apply to IM. 2 BTC at 10 %: 0.1 x 2 x 70,000.
    over = tmp_path / "over.toml"
    over.write_text("[currencies.BTC]\nhaircut = 0.10\n", encoding="utf-8")
    model = load_model("deribit", params_file=str(over), cross=True)
    book = pm.Portfolio.of({"BTC-27MAR26-70000-C": -1}, {"BTC": 2.0})
    r = model.margin(book, demo)
    assert r.components["collateral_haircut"] == pytest.approx(14_000.0, rel=REL)
    risk = sum(v for k, v in r.components.items() if k != "collateral_haircut")
    assert r.initial_margin == pytest.approx(risk + 14_000.0, rel=REL)
    assert r.maintenance_margin == pytest.approx(0.8 * risk, rel=REL)
    assert r.by_currency[0].im_only_components == ("collateral_haircut",)


def test_segregated_is_default_and_in_coin(demo: MarketSnapshot) -> None:
    r = load_model("deribit").margin(pm.Portfolio.of({"ETH-27MAR26-3500-P": -1}), demo)
    assert r.currency == "ETH"
