"""TIMS product groups and minimum per contract: cases the mutation run showed untested.

Each expected value is worked by hand below from the formulas of OCC, "Customer Portfolio
Margin" (https://www.theocc.com/risk-management/customer-portfolio-margin) and the TIMS
RBH/CPM User Guide (class and product groups, offset per valuation point), as written in
``docs/models.md`` (``tims_product_group``, ``tims_minimum_per_contract``)::

    loss_j = Σ_c min(v_cj, 0);  gain_j = Σ_c max(v_cj, 0)
    pg_j   = loss_j + o·min(gain_j, −loss_j)
    credit = Σ_c scan_c − max(−min_j pg_j, 0)          (split pro rata to scan_c)
    minimum = rate · M · S / usd_rate · Σ |option contracts|

The amounts are in coin-sized units (below 1) on purpose: a floor or a threshold of 1 in
place of 0 must show.
"""

from __future__ import annotations

import numpy as np
import pytest

import portmargin as pm
from portmargin._types import FloatArray
from portmargin.models import CREDITS, ChargeContext, CreditContext, load_model
from portmargin.models.config import (
    ChargeParams,
    ProductGroup,
    TimsMinimumParams,
    TimsProductGroupParams,
)
from portmargin.models.tims import minimum_per_contract, product_group_credit

MARKET = pm.demo_market()
S_ETH = 3_500.0  # demo index (README)


def test_product_group_credit_account_by_account_with_small_amounts() -> None:
    # Three accounts, two classes (BTC, ETH), three points, offset o = 0.5.
    #
    # Account 0: BTC (−0.3, 0.1, 0.2), ETH (0.2, −0.4, 0.1); scan 0.3 and 0.4 (total 0.7).
    #   loss (−0.3, −0.4, 0), gain (0.2, 0.1, 0.3)
    #   pg = (−0.3 + 0.5·0.2, −0.4 + 0.5·0.1, 0 + 0.5·0) = (−0.2, −0.35, 0)
    #   group requirement 0.35, saving 0.7 − 0.35 = 0.35, credits 0.35·3/7 = 0.15, 0.35·4/7 = 0.2
    # Account 1: gains only, scan (0, 0): no credit (and no 0/0 in the pro-rata split).
    # Account 2: BTC (−2, 1, 0), ETH 0: pg = (−2, 0, 0), requirement 2 = its scan: no credit.
    btc = np.array([[-0.3, 0.1, 0.2], [0.1, 0.2, 0.3], [-2.0, 1.0, 0.0]])
    eth = np.array([[0.2, -0.4, 0.1], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0]])
    scan = np.array([[0.3, 0.4], [0.0, 0.0], [2.0, 0.0]])
    credit = product_group_credit([btc, eth], scan, 0.5)
    np.testing.assert_allclose(credit, [[0.15, 0.2], [0.0, 0.0], [0.0, 0.0]], rtol=1e-12, atol=0)


def test_product_group_with_no_loss_needs_nothing() -> None:
    # Gains at every point: pg_j ≥ 0, so the group needs max(−min_j pg_j, 0) = 0 and the whole
    # (small) scan is saved: credit = scan.
    btc = np.array([[0.05, 0.1]])
    eth = np.array([[0.02, -0.01]])
    credit = product_group_credit([btc, eth], np.array([[0.0, 0.01]]), 1.0)
    # pg = (0 + 0, −0.01 + 1·min(0.1, 0.01)) = (0, 0): requirement 0, saving 0.01
    np.testing.assert_allclose(credit, [[0.0, 0.01]], rtol=1e-12)


def _credit_context(
    underlyings: tuple[str, ...], raws: list[FloatArray], params: ChargeParams
) -> CreditContext:
    scan = np.stack([np.maximum(-r.min(axis=1), 0.0) for r in raws], axis=1)
    return CreditContext(
        pool="USD",
        usd_rate=1.0,
        underlyings=underlyings,
        contexts=(None,) * len(underlyings),
        raw_pnl=tuple(raws),
        scenario_pnl=tuple(raws),
        scanning=scan,
        market=MARKET,
        params=params,
    )


def test_a_group_missing_from_the_pool_does_not_stop_the_next_group() -> None:
    # Groups in order: (SOL, XRP) has no member in this pool and is skipped; (BTC, ETH) still
    # applies. BTC (−10, 6), ETH (4, −8), offset 0.5: pg = (−10 + 2, −8 + 3) = (−8, −5);
    # requirement 8, scans 10 + 8 = 18, saving 10, credits 10·10/18 and 10·8/18.
    params = TimsProductGroupParams(
        groups=(
            ProductGroup(members=("SOL", "XRP"), offset=0.5),
            ProductGroup(members=("BTC", "ETH"), offset=0.5),
        )
    )
    ctx = _credit_context(
        ("BTC", "ETH"), [np.array([[-10.0, 6.0]]), np.array([[4.0, -8.0]])], params
    )
    credit = CREDITS["tims_product_group"](ctx)
    np.testing.assert_allclose(credit, [[100 / 18, 80 / 18]], rtol=1e-12)


def _eth_context(quantities: FloatArray, params: ChargeParams) -> ChargeContext:
    names = ["ETH-27MAR26-7000-C", "ETH-27MAR26-1500-P", "ETH-PERPETUAL"]
    insts = [MARKET.instrument(n) for n in names]
    arr = pm.risk_array(pm.instrument_table(insts, MARKET), load_model("tims").scenario_set("ETH"))
    return ChargeContext(
        pool="USD",
        usd_rate=1.0,
        risk=arr,
        rows=np.arange(len(names), dtype=np.int64),
        quantities=quantities,
        scenario_pnl=np.zeros((quantities.shape[0], len(arr.scenarios))),
        market=MARKET,
        params=params,
    )


def test_minimum_per_contract_reads_the_underlying_sub_table() -> None:
    # rate 0.375 % at the top level, ETH = { rate = 1 % }: an ETH book pays ETH's rate.
    #   minimum = 0.01 · 1 (multiplier) · 3,500 · (|−2| + |+3|) = 175 USD (futures do not count)
    params = TimsMinimumParams.model_validate({"rate": 0.00375, "ETH": {"rate": 0.01}})
    out = minimum_per_contract(_eth_context(np.array([[-2.0, 3.0, 50.0]]), params))
    assert float(out[0]) == pytest.approx(0.01 * S_ETH * 5, rel=1e-12)
