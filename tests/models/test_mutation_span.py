"""SPAN: composite delta, scan decomposition, spreads, SOM and credits, cases the mutation run
showed untested.

Every expected value is worked by hand in the test from the formula it pins, as written in
``docs/models.md`` and ``docs/methodology/span.md``; only market inputs (forward, strike, time,
vol) are read from the engine, and the Black-76 delta is written out independently.

Sources: CME, "Components of SPAN" (http://www.cme.com/clearing/rmspan/span/components.html:
scanning risk, look-ahead, composite delta, intra-commodity spreads, spot charge, short option
minimum, inter-commodity credits); CME SPAN advisory 04-06 (composite delta: "probability-
weighted estimates of what each contract's delta will be one day in the future"); the seven
delta points and weights of ``deltaPointDef`` in
``martingale/spanTAKASBANK:src1/takas.spn@8e5d78bd4e2d8bfe8a745c6fe7db481cf971bcaa``; the PC-SPAN
report pages on intra and inter spreads
(http://www.cme-ch.com/span/span4/doc/RptDoc/R9intraspreads.htm,
http://www.cme-ch.com/span/span4/doc/RptDoc/R10interspreads.htm); WFPR methods as in
``LasagniAndrea/Data:SpheresRiskPerformance/RiskMethods/RiskMethodSPAN.cs@6474304``; CME's
Type 6 record, method 4 (scanning-based spreads,
https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46071819).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp

import portmargin as pm
from portmargin._types import FloatArray
from portmargin.instruments import ProductSpec, Settlement
from portmargin.market import MarketSnapshot, OptionQuote, UnderlyingQuote, build_market
from portmargin.models import CREDITS, ChargeContext, CreditContext, load_model
from portmargin.models.config import (
    ChargeParams,
    InterSpread,
    PriceRangeTier,
    ScanningSpread,
    ShortOptionMinimumParams,
    SpanInterParams,
    SpanIntraParams,
    SpanScanningSpreadParams,
    SpanSpotParams,
    UnderlyingParams,
)
from portmargin.models.engine import DETAILS
from portmargin.models.grids import span16_grid
from portmargin.models.span import (
    composite_delta,
    inter_commodity_credit,
    intra_commodity_charge,
    intra_spreads,
    scan_decomposition,
    scanning_spread_credit,
    short_option_minimum,
    spot_charge,
)
from portmargin.scenarios import ScenarioSet

DEMO = pm.demo_market()
S_BTC = 70_000.0  # demo index (README)
S_ETH = 3_500.0
YEAR = 365.0
WEIGHTS = (0.037, 0.111, 0.217, 0.270, 0.217, 0.111, 0.037)  # SPAN deltaPointDef
POINTS = (-3, -2, -1, 0, 1, 2, 3)  # point k moves the price by k/3 of the scan range
NO_PARAMS = ChargeParams(kind="x")


def _call_delta(F: float, K: float, T: float, sigma: float) -> float:
    """Black-76 forward delta of a call, ``N(d1)``; the intrinsic step once ``T = 0``."""
    if T <= 0.0:
        return 1.0 if F > K else (0.5 if F == K else 0.0)
    d1 = (math.log(F / K) + 0.5 * sigma * sigma * T) / (sigma * math.sqrt(T))
    return 0.5 * (1.0 + math.erf(d1 / math.sqrt(2.0)))


def _context(
    market: MarketSnapshot,
    names: list[str],
    scen: ScenarioSet,
    q: FloatArray | sp.csr_array,
    params: ChargeParams = NO_PARAMS,
    *,
    pool: str = "USD",
    usd_rate: float = 1.0,
) -> ChargeContext:
    insts = [market.instrument(n) for n in names]
    arr = pm.risk_array(pm.instrument_table(insts, market), scen)
    return ChargeContext(
        pool=pool,
        usd_rate=usd_rate,
        risk=arr,
        rows=np.arange(len(names), dtype=np.int64),
        quantities=q,
        scenario_pnl=np.zeros((q.shape[0], len(scen))),
        market=market,
        params=params,
    )


def _inputs(market: MarketSnapshot, name: str) -> tuple[float, float, float, float]:
    """(F, K, T, σ) of one option, as the market gives them."""
    tab = pm.instrument_table([market.instrument(name)], market)
    return float(tab.F[0]), float(tab.K[0]), float(tab.T[0]), float(tab.sigma[0])


# ----------------------------------------------------------------------------------------
# Composite delta


def test_composite_delta_with_weights_on_one_side_moves_the_price_up() -> None:
    # All the weight on the last point, k = +3: cd = N(d1(F·(1 + PSR), K, T − 1 day, σ)),
    # span-2026.1 BTC PSR 12 %. The first point (k = −3) would be F·(1 − PSR).
    name = "BTC-27MAR26-80000-C"
    F, K, T, sigma = _inputs(DEMO, name)
    scen = load_model("span-2026.1").scenario_set("BTC")
    ctx = _context(DEMO, [name], scen, np.ones((1, 1)))
    up = _call_delta(F * 1.12, K, T - 1 / YEAR, sigma)
    down = _call_delta(F * 0.88, K, T - 1 / YEAR, sigma)
    assert abs(up - down) > 0.1
    got = composite_delta(ctx, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    assert float(got[0]) == pytest.approx(up, rel=1e-12)


def test_composite_delta_uses_the_contract_month_scan_range() -> None:
    # price_range 12 %, and from 10 days to expiry on a tier of 6 %: the March call (30 days,
    # the table's first expiry) takes its points at F·(1 + k/3·6 %).
    p = UnderlyingParams(
        price_range=0.12,
        lookahead_days=1.0,
        price_range_tiers=(PriceRangeTier(from_days=10.0, price_range=0.06),),
    )
    name = "BTC-27MAR26-80000-C"
    F, K, T, sigma = _inputs(DEMO, name)
    ctx = _context(DEMO, [name], span16_grid(p), np.ones((1, 1)))

    def cd(psr: float) -> float:
        return sum(
            w * _call_delta(F * (1 + k / 3 * psr), K, T - 1 / YEAR, sigma)
            for w, k in zip(WEIGHTS, POINTS, strict=True)
        )

    assert abs(cd(0.06) - cd(0.12)) > 1e-3 and abs(cd(0.06) - cd(0.24)) > 1e-3
    assert float(composite_delta(ctx)[0]) == pytest.approx(cd(0.06), rel=1e-12)


T0 = datetime(2026, 2, 25, 8, 0, tzinfo=UTC)
XYZ = {"XYZ": ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 1.0)}


@pytest.fixture(scope="module")
def spot_quoted() -> MarketSnapshot:
    """XYZ at 100 USD with a 50 % rate and no futures: options roll their spot (docs/models.md)."""
    return build_market(
        valuation_time=T0,
        products=XYZ,
        underlyings={"XYZ": UnderlyingQuote(100.0, 0.5)},
        options={
            "XYZ-27MAR26-105-C": OptionQuote(mark_iv=0.4),
            "XYZ-26FEB26-99.95-C": OptionQuote(mark_iv=0.4),
        },
    )


def test_composite_delta_rolls_the_shifted_spot_over_the_look_ahead(
    spot_quoted: MarketSnapshot,
) -> None:
    # An option on a spot-quoted underlying: F' = S(1 + k/3·PSR)·e^{r(T − τ)} (docs/models.md,
    # "Look-ahead revaluation"), S = 100, r = 0.5, PSR 6 %, τ = 1 day, T = 30 days.
    S, r, psr, tau = 100.0, 0.5, 0.06, 1 / YEAR
    F, K, T, sigma = _inputs(spot_quoted, "XYZ-27MAR26-105-C")
    assert pytest.approx(S * math.exp(r * T), rel=1e-14) == F
    expected = sum(
        w * _call_delta(S * (1 + k / 3 * psr) * math.exp(r * (T - tau)), K, T - tau, sigma)
        for w, k in zip(WEIGHTS, POINTS, strict=True)
    )
    held = sum(  # the forward held instead of rolled
        w * _call_delta(F * (1 + k / 3 * psr), K, T - tau, sigma)
        for w, k in zip(WEIGHTS, POINTS, strict=True)
    )
    assert abs(expected - held) > 1e-3
    scen = span16_grid(UnderlyingParams(price_range=psr, lookahead_days=1.0))
    ctx = _context(spot_quoted, ["XYZ-27MAR26-105-C"], scen, np.ones((1, 1)))
    assert float(composite_delta(ctx)[0]) == pytest.approx(expected, rel=1e-12)


def test_composite_delta_rolls_an_option_expiring_inside_the_look_ahead_to_its_expiry(
    spot_quoted: MarketSnapshot,
) -> None:
    # T = 1 day, τ = 2 days: the spot rolls for min(τ, T) = T only, so F' = S(1 + k/3·PSR)
    # and every delta is the intrinsic step 1{F' > K}. K = 99.95 puts the k = 0 point
    # (100) in the money, as k = 1, 2, 3: cd = 0.270 + 0.217 + 0.111 + 0.037 = 0.635. Rolling
    # for the whole τ would put the k = 0 point at 100·e^{−0.5/365} = 99.86 < K.
    scen = span16_grid(UnderlyingParams(price_range=0.06, lookahead_days=2.0))
    ctx = _context(spot_quoted, ["XYZ-26FEB26-99.95-C"], scen, np.ones((1, 1)))
    assert 100.0 * math.exp(-0.5 / YEAR) < 99.95
    assert float(composite_delta(ctx)[0]) == pytest.approx(0.270 + 0.217 + 0.111 + 0.037, rel=1e-12)


def test_composite_delta_of_settled_rows_is_zero() -> None:
    # A settled option or future no longer moves (docs/conventions: zero delta at settlement),
    # even a deep in-the-money call whose intrinsic step would be 1.
    feb5 = datetime(2026, 2, 5, 8, tzinfo=UTC)
    market = build_market(
        valuation_time=datetime(2026, 2, 5, 21, 29, tzinfo=UTC),
        underlyings={"BTC": UnderlyingQuote(63_858.0, 0.0, 63_844.5)},
        options={"BTC-27MAR26-64000-P": OptionQuote(mark_iv=0.71)},
        settlements={("BTC", feb5): 71_234.5},
    )
    names = ["BTC-5FEB26-60000-C", "BTC-5FEB26", "BTC-PERPETUAL"]
    scen = load_model("span-2026.1").scenario_set("BTC")
    cd = composite_delta(_context(market, names, scen, np.ones((1, 3))))
    np.testing.assert_array_equal(cd, [0.0, 0.0, 1.0])  # the perpetual: delta one


# ----------------------------------------------------------------------------------------
# Scan decomposition: Scan = max L, Vol = (Scan − L_paired)/2 or (L_1 − L_2)/2 if Scan < 0,
# Time = (L_1 + L_2)/2, Price = max(Scan − Time − Vol, 0)   (L_1, L_2: CME's scenarios 1, 2)


def test_scan_decomposition_of_a_book_that_gains_everywhere() -> None:
    # L = −P&L: L_1 = −3, L_2 = −1, L_3 = −7, the rest −2: Scan = −1 < 0, floored at 0;
    # Vol = (L_1 − L_2)/2 = −1, Time = (L_1 + L_2)/2 = −2, Price = max(0 + 2 + 1, 0) = 3.
    pnl = np.full(16, 2.0)
    pnl[:3] = [3.0, 1.0, 7.0]
    parts = scan_decomposition(pnl[None, :])
    assert parts["scan_risk"][0] == 0.0
    assert parts["vol_risk"][0] == -1.0
    assert parts["time_risk"][0] == -2.0
    assert parts["price_risk"][0] == 3.0


def test_scan_decomposition_at_a_scan_of_exactly_zero() -> None:
    # L_1 = −1, L_2 = −5, worst L_3 = 0 (paired with L_4 = −2), the rest −9:
    # Scan = 0 is not below 0, so Vol = (0 − (−2))/2 = 1 (not (L_1 − L_2)/2 = 2);
    # Time = −3, Price = max(0 + 3 − 1, 0) = 2.
    L = np.full(16, -9.0)
    L[:4] = [-1.0, -5.0, 0.0, -2.0]
    parts = scan_decomposition(-L[None, :])
    assert (parts["scan_risk"][0], parts["vol_risk"][0]) == (0.0, 1.0)
    assert (parts["time_risk"][0], parts["price_risk"][0]) == (-3.0, 2.0)


def test_scan_decomposition_below_one_unit() -> None:
    # Coin-sized losses: L_1 = 0.1, L_2 = 0.05, L_11 = 0.5 (paired L_12 = 0.2), the rest 0:
    # Scan 0.5, Vol 0.15, Time 0.075, Price 0.275.
    L = np.zeros(16)
    L[[0, 1, 10, 11]] = [0.1, 0.05, 0.5, 0.2]
    parts = scan_decomposition(-L[None, :])
    got = [parts[k][0] for k in ("scan_risk", "vol_risk", "time_risk", "price_risk")]
    assert got == pytest.approx([0.5, 0.15, 0.075, 0.275], rel=1e-14)


# ----------------------------------------------------------------------------------------
# Intra-commodity and spot charges


def test_intra_spreads_and_inter_credit_leave_their_inputs_alone() -> None:
    tiers = np.array([[1.0, -0.6, -0.3]])
    intra_spreads(tiers, [(0, 1, 0.01), (0, 2, 0.02)])
    np.testing.assert_array_equal(tiers, [[1.0, -0.6, -0.3]])
    delta = np.array([[100.0, -60.0]])
    inter_commodity_credit(
        delta, np.ones((1, 2)), np.full((1, 2), 1e9), [((0, 1), (1.0, 1.0), 0.5)]
    )
    np.testing.assert_array_equal(delta, [[100.0, -60.0]])


def test_intra_and_spot_charges_read_the_underlying_sub_table() -> None:
    # ETH: +1 perpetual (tier 0) against −1 March future (30 days: tier 3 of [7, 30, 91]),
    # composite deltas +1 and −1. ETH's own spread (0, 3) at 3 % forms n = 1:
    #   intra = 1 · 0.03 · 3,500 = 105 USD  (the top level's 1 % would give 35)
    # Spot charge on tier 3 with ETH's rate_consumed 1 %: 1 · 0.01 · 3,500 = 35 USD (not 0.25 %).
    spreads = [{"a": 0, "b": 3, "rate": 0.01}]
    eth = [{"a": 0, "b": 3, "rate": 0.03}]
    intra = SpanIntraParams.model_validate({"spreads": spreads, "ETH": {"spreads": eth}})
    spot = SpanSpotParams.model_validate(
        {
            "spreads": spreads,
            "spot_tier": 3,
            "rate_consumed": 0.0025,
            "ETH": {"spreads": eth, "rate_consumed": 0.01},
        }
    )
    scen = load_model("span-2026.1").scenario_set("ETH")
    names = ["ETH-PERPETUAL", "ETH-27MAR26"]
    q = np.array([[1.0, -1.0]])
    got = intra_commodity_charge(_context(DEMO, names, scen, q, intra))
    assert float(got[0]) == pytest.approx(0.03 * S_ETH, rel=1e-12)
    got = spot_charge(_context(DEMO, names, scen, q, spot))
    assert float(got[0]) == pytest.approx(0.01 * S_ETH, rel=1e-12)


# ----------------------------------------------------------------------------------------
# Short option minimum


def test_short_option_minimum_per_contract_in_a_coin_pool() -> None:
    # per_contract_usd 700 USD per short option, BTC coin pool (usd_rate = S):
    #   SOM = 700 / 70,000 · (2 short calls + 1 short put) = 0.03 BTC; the long call is free.
    names = ["BTC-27MAR26-130000-C", "BTC-27MAR26-30000-P", "BTC-27MAR26-140000-C"]
    scen = load_model("span-2026.1").scenario_set("BTC")
    params = ShortOptionMinimumParams(per_contract_usd=700.0)
    q = np.array([[-2.0, -1.0, 4.0]])
    ctx = _context(DEMO, names, scen, q, params, pool="BTC", usd_rate=S_BTC)
    assert float(short_option_minimum(ctx)[0]) == pytest.approx(700.0 / S_BTC * 3, rel=1e-12)


def test_short_option_minimum_of_sparse_quantities() -> None:
    # Batches pass CSR quantities: the same amounts as dense ones. Rate 1 %, USD pool:
    #   account 0: 0.01 · 70,000 · (2 + 1) = 2,100;  account 1: 0.01 · 70,000 · 0.5 = 350.
    names = ["BTC-27MAR26-130000-C", "BTC-27MAR26-30000-P", "BTC-27MAR26-140000-C"]
    scen = load_model("span-2026.1").scenario_set("BTC")
    q = sp.csr_array(np.array([[-2.0, -1.0, 4.0], [0.0, -0.5, 1.0]]))
    ctx = _context(DEMO, names, scen, q, ShortOptionMinimumParams(rate=0.01))
    np.testing.assert_allclose(short_option_minimum(ctx), [2_100.0, 350.0], rtol=1e-12)


# ----------------------------------------------------------------------------------------
# Inter-commodity credit:  n = min over legs (available |Δ·S| / ratio), two passes,
# credit_leg = min(n · ratio · WFPR · rate, PriceRisk)

BIG = np.full((1, 3), 1e12)  # price risk so large that the cap never binds


def test_inter_credit_when_the_first_leg_is_the_smaller() -> None:
    # BTC +50,000, ETH −60,000 USD of delta, 1 : 1, WFPR 0.12 and 0.18, rate 50 %: n = 50,000,
    # credits 50,000 · 0.12 · 0.5 = 3,000 and 50,000 · 0.18 · 0.5 = 4,500.
    delta = np.array([[50_000.0, -60_000.0]])
    credit = inter_commodity_credit(
        delta, np.array([[0.12, 0.18]]), BIG[:, :2], [((0, 1), (1.0, 1.0), 0.5)]
    )
    np.testing.assert_allclose(credit, [[3_000.0, 4_500.0]], rtol=1e-14)


def test_inter_credit_short_first_leg_forms_in_the_second_pass() -> None:
    # BTC −50,000, ETH +40,000: the first pass (BTC long) forms nothing, the second forms
    # n = 40,000: credits 40,000 · 0.12 · 0.5 = 2,400 and 40,000 · 0.18 · 0.5 = 3,600.
    delta = np.array([[-50_000.0, 40_000.0]])
    credit = inter_commodity_credit(
        delta, np.array([[0.12, 0.18]]), BIG[:, :2], [((0, 1), (1.0, 1.0), 0.5)]
    )
    np.testing.assert_allclose(credit, [[2_400.0, 3_600.0]], rtol=1e-14)


def test_inter_credit_three_legs_alternate_sides() -> None:
    # Legs A, B, C are long / short / long: deltas (+30, −50, +20) form n = min(30, 50, 20)
    # = 20 spreads; WFPR (0.1, 0.2, 0.3), rate 0.5: credits 1, 2, 3.
    delta = np.array([[30.0, -50.0, 20.0]])
    credit = inter_commodity_credit(
        delta, np.array([[0.1, 0.2, 0.3]]), BIG, [((0, 1, 2), (1.0, 1.0, 1.0), 0.5)]
    )
    np.testing.assert_allclose(credit, [[1.0, 2.0, 3.0]], rtol=1e-14)


def test_inter_credit_ratios_and_the_delta_a_spread_consumes() -> None:
    # Deltas A +100, B −60, C +20; WFPR (0.1, 0.2, 0.3).
    # Spread 1: A long / B short, ratios 1 : 2, rate 0.5. Available A 100/1, B 60/2: n = 30;
    #   A keeps 100 − 30·1 = 70, B keeps −60 + 30·2 = 0;
    #   credits A 30·1·0.1·0.5 = 1.5, B 30·2·0.2·0.5 = 6.
    # Spread 2: B / C at 0.4: B has nothing left, so nothing forms.
    delta = np.array([[100.0, -60.0, 20.0]])
    spreads: list[tuple[tuple[int, ...], tuple[float, ...], float]] = [
        ((0, 1), (1.0, 2.0), 0.5),
        ((1, 2), (1.0, 1.0), 0.4),
    ]
    credit = inter_commodity_credit(delta, np.array([[0.1, 0.2, 0.3]]), BIG, spreads)
    np.testing.assert_allclose(credit, [[1.5, 6.0, 0.0]], rtol=1e-14, atol=0)


def test_inter_credit_is_capped_by_a_price_risk_below_one() -> None:
    # n = 0.5, WFPR 1, rate 1: credit 0.5 per leg, capped at the legs' price risk 0.2, 0.3.
    credit = inter_commodity_credit(
        np.array([[0.5, -0.5]]),
        np.ones((1, 2)),
        np.array([[0.2, 0.3]]),
        [((0, 1), (1.0, 1.0), 1.0)],
    )
    np.testing.assert_allclose(credit, [[0.2, 0.3]], rtol=1e-14)


def _perp_context(und: str, q: float) -> ChargeContext:
    scen = load_model("span-2026.1").scenario_set(und)
    return _context(DEMO, [f"{und}-PERPETUAL"], scen, np.array([[q]]))


def _inter_context(
    params: ChargeParams, q_btc: float, q_eth: float, *, usd_rate: float = 1.0
) -> CreditContext:
    """AAA (collateral only, no instrument), BTC and ETH perpetuals in one pool.

    The raw P&L is given: a loss of 5 in CME scenario 11 for BTC and of 8 for ETH, 0 elsewhere,
    so PriceRisk = Scan − Time − Vol = 5 − 0 − 5/2 = 2.5 and 8 − 4 = 4 (scan_decomposition).
    """
    raws = []
    for loss in (0.0, 5.0, 8.0):
        raw = np.zeros((1, 16))
        raw[0, 10] = -loss
        raws.append(raw)
    return CreditContext(
        pool="USD",
        usd_rate=usd_rate,
        underlyings=("AAA", "BTC", "ETH"),
        contexts=(None, _perp_context("BTC", q_btc), _perp_context("ETH", q_eth)),
        raw_pnl=tuple(raws),
        scenario_pnl=tuple(raws),
        scanning=np.array([[0.0, 5.0, 8.0]]),
        market=DEMO,
        params=params,
    )


def _inter(method: str) -> SpanInterParams:
    return SpanInterParams(
        wfpr_method=method,
        spreads=(InterSpread(legs=("BTC", "ETH"), rate=0.5),),
    )


@pytest.mark.parametrize("method", ["normal", "scanrange_cap", "scanrange"])
def test_inter_credit_wfpr_methods_by_hand(method: str) -> None:
    # +1 BTC perpetual (composite delta 1: 70,000 USD), −20 ETH (70,000 USD): n = 70,000.
    # Price risk 2.5 and 4 (see _inter_context). WFPR per USD of delta:
    #   normal:        2.5 / 70,000 and 4 / 70,000
    #   scanrange:     PSR / usd_rate = 0.12 and 0.18 (span-2026.1)
    #   scanrange_cap: min(normal, scanrange) = normal here
    # credit = min(n · WFPR · 0.5, PriceRisk): normal 1.25 and 2; scanrange capped: 2.5 and 4.
    want = {"normal": [1.25, 2.0], "scanrange_cap": [1.25, 2.0], "scanrange": [2.5, 4.0]}
    credit = CREDITS["span_inter_commodity"](_inter_context(_inter(method), 1.0, -20.0))
    np.testing.assert_allclose(credit, [[0.0, *want[method]]], rtol=1e-12, atol=0)


def test_inter_credit_scan_range_is_per_unit_of_the_pool_currency() -> None:
    # WFPR = PSR / usd_rate: in a pool worth 70,000 USD a unit, tiny positions, n = 0.07 USD:
    #   BTC 0.07 · 0.12 / 70,000 · 0.5 = 6e-8,  ETH 0.07 · 0.18 / 70,000 · 0.5 = 9e-8.
    ctx = _inter_context(_inter("scanrange"), 1e-6, -2e-5, usd_rate=S_BTC)
    credit = CREDITS["span_inter_commodity"](ctx)
    np.testing.assert_allclose(credit, [[0.0, 6e-8, 9e-8]], rtol=1e-9, atol=0)


def test_inter_credit_normal_wfpr_of_less_than_a_dollar_of_delta() -> None:
    # 1e-6 BTC (0.07 USD of delta) against −2e-5 ETH (0.07 USD): n = 0.07,
    # WFPR = 2.5 / 0.07 and 4 / 0.07, credits 0.07 · WFPR · 0.5 = 1.25 and 2 (below the caps).
    credit = CREDITS["span_inter_commodity"](_inter_context(_inter("normal"), 1e-6, -2e-5))
    np.testing.assert_allclose(credit, [[0.0, 1.25, 2.0]], rtol=1e-9, atol=0)


# ----------------------------------------------------------------------------------------
# Scanning-based spread: risk_j = Σ losses − rate·Σ gains, credit = Σ scan − max(max_j risk_j, 0)


def test_scanning_spread_credit_account_by_account_with_small_amounts() -> None:
    # Rate 0.5. Account 0: A (−0.3, 0.2), B (0.25, −0.1), scans 0.3 and 0.1:
    #   risk = (0.3 − 0.125, 0.1 − 0.1) = (0.175, 0); saving 0.4 − 0.175 = 0.225,
    #   credits 0.225 · 3/4 = 0.16875 and 0.225 · 1/4 = 0.05625.
    # Account 1: gains only, scans 0: nothing. Account 2: A (−3, 0): saving 3 − 3 = 0.
    a = np.array([[-0.3, 0.2], [0.1, 0.1], [-3.0, 0.0]])
    b = np.array([[0.25, -0.1], [0.1, 0.1], [0.0, 0.0]])
    scan = np.array([[0.3, 0.1], [0.0, 0.0], [3.0, 0.0]])
    credit = scanning_spread_credit([a, b], scan, 0.5)
    np.testing.assert_allclose(
        credit, [[0.16875, 0.05625], [0.0, 0.0], [0.0, 0.0]], rtol=1e-12, atol=0
    )


def test_a_scanning_spread_missing_from_the_pool_does_not_stop_the_next() -> None:
    # (SOL, XRP) is not in the pool; (BTC, ETH) at 0.5: BTC (−10, 6), ETH (4, −8):
    #   risk = (10 − 2, 8 − 3) = (8, 5); saving 18 − 8 = 10, credits 10·10/18 and 10·8/18.
    params = SpanScanningSpreadParams(
        spreads=(
            ScanningSpread(legs=("SOL", "XRP"), rate=0.5),
            ScanningSpread(legs=("BTC", "ETH"), rate=0.5),
        )
    )
    raws = (np.array([[-10.0, 6.0]]), np.array([[4.0, -8.0]]))
    ctx = CreditContext(
        pool="USD",
        usd_rate=1.0,
        underlyings=("BTC", "ETH"),
        contexts=(None, None),
        raw_pnl=raws,
        scenario_pnl=raws,
        scanning=np.array([[10.0, 8.0]]),
        market=DEMO,
        params=params,
    )
    credit = CREDITS["span_scanning_spread"](ctx)
    np.testing.assert_allclose(credit, [[100 / 18, 80 / 18]], rtol=1e-12)


# ----------------------------------------------------------------------------------------
# The figures SPAN reports per underlying (details)


def test_span_details_decompose_the_raw_pnl_and_name_the_delta_and_scan_range() -> None:
    # +2 BTC perpetuals on span16-2026.1 (BTC PSR 15 %): composite delta 2, PSR 0.15.
    # Raw P&L: a gain of 4 in CME scenario 1, a loss of 6 in scenario 11 (paired 12 at 0):
    #   Time = (−4 + 0)/2 = −2 from the raw P&L (the aggregated P&L, gains clipped, gives 0),
    #   Vol = (6 − 0)/2 = 3, Price = 6 + 2 − 3 = 5.
    scen = load_model("span16-2026.1").scenario_set("BTC")
    raw = np.zeros((1, 16))
    raw[0, 0], raw[0, 10] = 4.0, -6.0
    base = _context(DEMO, ["BTC-PERPETUAL"], scen, np.array([[2.0]]))
    ctx = ChargeContext(
        base.pool,
        base.usd_rate,
        base.risk,
        base.rows,
        base.quantities,
        np.minimum(raw, 0.0),
        DEMO,
        NO_PARAMS,
        raw,
    )
    details = DETAILS["span16"](ctx)
    assert details == pytest.approx(
        {
            "scan_risk": 6.0,
            "time_risk": -2.0,
            "vol_risk": 3.0,
            "price_risk": 5.0,
            "composite_delta": 2.0,
            "price_scan_range": 0.15,
        },
        rel=1e-12,
    )
    # without raw P&L the aggregated one is decomposed: Time 0, Price 6 − 0 − 3 = 3
    alone = DETAILS["span16"](
        ChargeContext(
            base.pool,
            base.usd_rate,
            base.risk,
            base.rows,
            base.quantities,
            np.minimum(raw, 0.0),
            DEMO,
            NO_PARAMS,
        )
    )
    assert (alone["time_risk"], alone["price_risk"]) == (0.0, 3.0)
