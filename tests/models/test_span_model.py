"""SPAN: scan decomposition, intra/spot/inter spreads, SOM, composition (span_tims.md §1)."""

from __future__ import annotations

import numpy as np
import pytest

import portmargin as pm
from portmargin.market import MarketSnapshot
from portmargin.models import load_model
from portmargin.models.span import (
    inter_commodity_credit,
    intra_spreads,
    scan_decomposition,
)


@pytest.fixture(scope="module")
def demo() -> MarketSnapshot:
    """The built-in demo market (BTC 70,000, ETH 3,500)."""
    return pm.demo_market()


REL = 1e-12


def test_scan_decomposition_by_hand() -> None:
    # Losses L_j (positive = loss); the engine passes P&L = -L.
    L = np.zeros(16)
    L[0], L[1] = 10.0, 4.0  # unchanged price, vol up / down -> time risk (10 + 4)/2 = 7
    L[10], L[11] = 50.0, 30.0  # +1 PSR vol up / down: active 10, paired 11
    parts = scan_decomposition(-L[None, :])
    assert parts["scan_risk"][0] == 50.0
    assert parts["vol_risk"][0] == (50.0 - 30.0) / 2  # 10
    assert parts["time_risk"][0] == 7.0
    assert parts["price_risk"][0] == 50.0 - 7.0 - 10.0  # 33


def test_scan_decomposition_extreme_pairs_with_itself() -> None:
    L = np.zeros(16)
    L[14] = 20.0
    parts = scan_decomposition(-L[None, :])
    assert parts["vol_risk"][0] == 0.0
    assert parts["price_risk"][0] == 20.0


def test_intra_spreads_consume_delta_in_priority_order() -> None:
    # Tier deltas (+1.0, -0.6, -0.3): spread (0,1) forms 0.6 at 1 %, then (0,2) forms 0.3
    # at 2 % from what is left of tier 0 (0.4): charge 0.6 x 0.01 + 0.3 x 0.02 = 0.012.
    charge, consumed, rem = intra_spreads(
        np.array([[1.0, -0.6, -0.3]]), [(0, 1, 0.01), (0, 2, 0.02)]
    )
    assert charge[0] == pytest.approx(0.012, rel=REL)
    np.testing.assert_allclose(consumed[0], [0.9, 0.6, 0.3])
    np.testing.assert_allclose(rem[0], [0.1, 0.0, 0.0], atol=1e-15)


def test_intra_spreads_second_pass_is_a_short_b_long() -> None:
    charge, _, rem = intra_spreads(np.array([[-2.0, 0.5]]), [(0, 1, 0.01)])
    assert charge[0] == pytest.approx(0.005, rel=REL)
    np.testing.assert_allclose(rem[0], [-1.5, 0.0])


def test_inter_commodity_credit_by_hand() -> None:
    # BTC +100,000 USD delta, ETH -60,000 USD delta, 1:1: n = 60,000.
    # WFPR: BTC 12,000/100,000 = 0.12, ETH 10,800/60,000 = 0.18; rate 50 %.
    # credit BTC = 60,000 x 0.12 x 0.5 = 3,600; ETH = 60,000 x 0.18 x 0.5 = 5,400.
    delta = np.array([[100_000.0, -60_000.0]])
    risk = np.array([[12_000.0, 10_800.0]])
    wfpr = risk / np.abs(delta)
    credit = inter_commodity_credit(delta, wfpr, risk, [((0, 1), (1.0, 1.0), 0.5)])
    np.testing.assert_allclose(credit[0], [3_600.0, 5_400.0])


def test_inter_credit_needs_opposite_deltas() -> None:
    delta = np.array([[100_000.0, 60_000.0]])
    risk = np.array([[12_000.0, 10_800.0]])
    credit = inter_commodity_credit(delta, risk / delta, risk, [((0, 1), (1.0, 1.0), 0.5)])
    np.testing.assert_array_equal(credit, 0.0)


def test_futures_only_btc_eth_spread_through_the_model(demo: MarketSnapshot) -> None:
    # Long 1 BTC perp (70,000 USD), short 20 ETH perp (70,000 USD) in the span model:
    # price risk of a future = its scan loss (no vol, no time), composite delta = quantity,
    # WFPR = PriceRisk/|delta USD|; n = 70,000; credit = n x WFPR x 0.5 = PriceRisk x 0.5.
    r = load_model("span-2026.1").margin(
        pm.Portfolio.of({"BTC-PERPETUAL": 1, "ETH-PERPETUAL": -20}), demo
    )
    by = {u.underlying: u for u in r.by_underlying}
    for und in ("BTC", "ETH"):
        pr = by[und].details["price_risk"]
        assert by[und].components["span_inter_commodity"] == pytest.approx(-0.5 * pr, rel=1e-9)
    # BTC perpetual: worst of -3 PSR x 0.33 (extreme) and -1 PSR: 0.12 x perp price
    assert by["BTC"].scanning_risk == pytest.approx(0.12 * 70_000, rel=1e-9)


def test_short_option_minimum_binds_on_far_otm_shorts(demo: MarketSnapshot) -> None:
    # 2 short BTC 130,000 calls: SOM = 1 % x 2 x 70,000 = 1,400 USD (gross).
    book = pm.Portfolio.of({"BTC-27MAR26-130000-C": -2})
    r = load_model("span-2026.1").margin(book, demo)
    assert r.maintenance_margin == pytest.approx(1_400.0, rel=1e-9)
    assert r.initial_margin == pytest.approx(1.1 * 1_400.0, rel=1e-9)
    assert r.components["span_short_option_minimum"] == pytest.approx(
        1_400.0 - r.components["scanning_risk"], rel=1e-9
    )


def test_som_max_method(demo: MarketSnapshot, tmp_path: pytest.TempPathFactory) -> None:
    # Short 1 call + short 2 puts far OTM: gross 3 x 700 = 2,100; max = 2 x 700 = 1,400.
    book = pm.Portfolio.of({"BTC-27MAR26-130000-C": -1, "BTC-27MAR26-30000-P": -2})
    gross = load_model("span-2026.1").margin(book, demo).maintenance_margin
    assert gross == pytest.approx(2_100.0, rel=1e-9)
    over = tmp_path / "max.toml"  # type: ignore[operator]
    over.write_text(
        '[[charges]]\nkind = "span_short_option_minimum"\nrole = "minimum"\nmethod = "max"\n'
        "rate = 0.01\n",
        encoding="utf-8",
    )
    mx = load_model("span-2026.1", params_file=str(over)).margin(book, demo).maintenance_margin
    assert mx == pytest.approx(1_400.0, rel=1e-9)


def test_calendar_across_tiers_pays_the_intra_charge(demo: MarketSnapshot) -> None:
    # Long the perpetual (tier 0), short the 27MAR26 future (30 days ->
    # tier 3): spread (0, 3) at 1.24 % of 70,000 per coin = 868 USD.
    book = pm.Portfolio.of({"BTC-PERPETUAL": 1, "BTC-27MAR26": -1})
    r = load_model("span-2026.1").margin(book, demo)
    assert r.components["span_intra_commodity"] == pytest.approx(0.0124 * 70_000, rel=1e-9)
    assert r.maintenance_margin == pytest.approx(sum(r.components.values()), rel=1e-12)
