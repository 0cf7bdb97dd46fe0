"""TIMS: 10 valuation points, product-group offset, minimum per contract (span_tims.md §3)."""

from __future__ import annotations

import numpy as np
import pytest

import portmargin as pm
from portmargin.market import MarketSnapshot
from portmargin.models import load_model
from portmargin.models.tims import product_group_credit


@pytest.fixture(scope="module")
def demo() -> MarketSnapshot:
    """The built-in demo market (BTC 70,000, ETH 3,500)."""
    return pm.demo_market()


def test_ten_equally_spaced_points_without_zero() -> None:
    scen = load_model("tims-2026.1").scenario_set("BTC")
    np.testing.assert_allclose(
        scen.price_moves, 0.16 * np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]) / 5
    )
    assert np.all(scen.vol_directions == 0)


def test_product_group_credit_by_hand() -> None:
    # Two classes, three points. BTC P&L (-100, 0, 60), ETH P&L (40, -10, -80).
    # scan: BTC 100, ETH 80 -> 180. Per point with offset 0.5:
    #  j0: loss -100, gain 40 -> -100 + 0.5 x 40 = -80
    #  j1: loss -10,  gain 0  -> -10
    #  j2: loss -80,  gain 60 -> -80 + 30 = -50
    # group requirement 80, saving 100, split 100/180 and 80/180.
    btc = np.array([[-100.0, 0.0, 60.0]])
    eth = np.array([[40.0, -10.0, -80.0]])
    credit = product_group_credit([btc, eth], np.array([[100.0, 80.0]]), 0.5)
    np.testing.assert_allclose(credit[0], [100 * 100 / 180, 100 * 80 / 180])


def test_offset_zero_still_aligns_the_points() -> None:
    # Offset 0: gains count for nothing, but the classes move together, so the group needs
    # max_j -sum_c min(v_cj, 0) = max(100, 50) = 100, not 100 + 50 (saving 50, pro rata).
    btc = np.array([[-100.0, 50.0]])
    eth = np.array([[100.0, -50.0]])
    credit = product_group_credit([btc, eth], np.array([[100.0, 50.0]]), 0.0)
    np.testing.assert_allclose(credit[0], [50 * 100 / 150, 50 * 50 / 150])


def test_same_point_losses_get_no_credit() -> None:
    btc = np.array([[-100.0, 50.0]])
    eth = np.array([[-40.0, 10.0]])
    credit = product_group_credit([btc, eth], np.array([[100.0, 40.0]]), 0.5)
    np.testing.assert_array_equal(credit, 0.0)


def test_hedged_perpetuals_through_the_model(demo: MarketSnapshot) -> None:
    # Long 1 BTC perp, short 20 ETH perp: BTC P&L 70,000 m_j (ranges 16 %), ETH -70,000 m_j
    # (22 %). At down5: BTC -11,200, ETH +15,400 -> -11,200 + 0.5 x 11,200 = -5,600.
    # At up5: BTC +11,200, ETH -15,400 -> -15,400 + 0.5 x 11,200 = -9,800 -> requirement.
    r = load_model("tims-2026.1").margin(
        pm.Portfolio.of({"BTC-PERPETUAL": 1, "ETH-PERPETUAL": -20}), demo
    )
    assert r.maintenance_margin == pytest.approx(9_800.0, rel=1e-9)
    assert r.components["scanning_risk"] == pytest.approx(11_200 + 15_400, rel=1e-9)
    assert r.components["tims_product_group"] == pytest.approx(9_800 - 26_600, rel=1e-9)


def test_minimum_per_contract(demo: MarketSnapshot) -> None:
    # 4 far-OTM short BTC calls: 0.375 % x 4 x 70,000 = 1,050 USD.
    r = load_model("tims-2026.1").margin(pm.Portfolio.of({"BTC-27MAR26-130000-C": -4}), demo)
    assert r.maintenance_margin == pytest.approx(1_050.0, rel=1e-9)
