"""Charge formulas pinned by values worked by hand from their sources, plus properties.

Every expected value below is computed in the test from the formula it pins (written out in
the comment), with an independent scalar Black-76 delta; only market inputs (forward,
time to expiry, vol, discount factor, index) are read from the engine. Each hand value is
also checked to be far from what a plausible slip (no look-ahead, no price shift, the
wrong currency's rate, longs counted, ...) would give, so the test can tell them apart.

Sources: CME "Components of SPAN" (http://www.cme.com/clearing/rmspan/span/components.html),
CME SPAN advisory 04-06 (composite delta: one day ahead, probability-weighted), the
``deltaPointDef`` weights of
``martingale/spanTAKASBANK:src1/takas.spn@8e5d78bd4e2d8bfe8a745c6fe7db481cf971bcaa``;
Deribit's ``private/pme/simulate`` ``model_params``
(https://docs.deribit.com/api-reference/account-management/private-simulate).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import portmargin as pm
from portmargin._types import FloatArray
from portmargin.errors import ParameterError
from portmargin.models import ChargeContext, MarginModel, load_model
from portmargin.models.config import (
    ChargeParams,
    ShortOptionMinimumParams,
    load_model_params,
)
from portmargin.models.deribit_charges import delta_shock, roll_shock
from portmargin.models.span import (
    composite_delta,
    intra_commodity_charge,
    short_option_minimum,
    spot_charge,
)
from portmargin.models.tims import minimum_per_contract

MARKET = pm.demo_market()
S_BTC = 70_000.0  # demo index (README)
S_ETH = 3_500.0
YEAR_DAYS = 365.0
REL = 1e-12
WEIGHTS = (0.037, 0.111, 0.217, 0.270, 0.217, 0.111, 0.037)  # SPAN deltaPointDef


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _call_delta(F: float, K: float, T: float, sigma: float) -> float:
    """Black-76 forward delta of a call, ``N(d1)``, written out (no discounting)."""
    d1 = (math.log(F / K) + 0.5 * sigma * sigma * T) / (sigma * math.sqrt(T))
    return _norm_cdf(d1)


def _inputs(name: str) -> tuple[float, float, float, float, float]:
    """(F, K, T, σ, discount factor) of one option, as the market gives them."""
    inst = MARKET.instrument(name)
    tab = pm.instrument_table([inst], MARKET)
    return (
        float(tab.F[0]),
        float(tab.K[0]),
        float(tab.T[0]),
        float(tab.sigma[0]),
        float(tab.df[0]),
    )


def _context(
    model: MarginModel,
    names: list[str],
    quantities: FloatArray,
    params: ChargeParams,
    *,
    coin_pool: bool,
) -> ChargeContext:
    """A charge's view of ``names`` (one underlying) for the accounts in ``quantities``."""
    insts = [MARKET.instrument(n) for n in names]
    und = insts[0].underlying
    arr = pm.risk_array(pm.instrument_table(insts, MARKET), model.scenario_set(und))
    zeros = np.zeros((quantities.shape[0], len(arr.scenarios)))
    return ChargeContext(
        pool=und if coin_pool else "USD",
        usd_rate=MARKET.index_price(und) if coin_pool else 1.0,
        risk=arr,
        rows=np.arange(len(insts), dtype=np.int64),
        quantities=quantities,
        scenario_pnl=zeros,
        market=MARKET,
        params=params,
    )


def _charge(model_name: str, kind: str) -> ChargeParams:
    (cp,) = [c for c in load_model_params(model_name).charges if c.kind == kind]
    return cp


# ----------------------------------------------------------------------------------------
# SPAN composite delta: look-ahead and price shift


def test_composite_delta_is_taken_one_day_ahead_at_the_seven_shifted_forwards() -> None:
    # cd = Σ_k w_k · N(d1(F·(1 + k/3·PSR), K, T − 1 day, σ)), k = −3…3 (span.toml: BTC PSR
    # 12 %, look-ahead 1 day). A 2-day OTM call, where both the day and the shift matter.
    name = "BTC-27FEB26-74000-C"
    F, K, T, sigma, _ = _inputs(name)
    u = load_model_params("span-2026.1").underlying("BTC")
    psr, look = u.price_range, u.lookahead_days / YEAR_DAYS
    assert (psr, u.lookahead_days) == (0.12, 1.0)

    def weighted(shift: float, t: float) -> float:
        ks = (-3, -2, -1, 0, 1, 2, 3)
        return sum(
            w * _call_delta(F * (1 + k / 3 * shift), K, t, sigma)
            for w, k in zip(WEIGHTS, ks, strict=True)
        )

    expected = weighted(psr, T - look)
    model = load_model("span-2026.1")
    ctx = _context(model, [name], np.ones((1, 1)), ChargeParams(kind="x"), coin_pool=False)
    got = float(composite_delta(ctx)[0])
    assert got == pytest.approx(expected, rel=1e-12)
    # what a slip would give: no look-ahead, no shift, the full PSR per step
    for slip in (weighted(psr, T), weighted(0.0, T - look), weighted(3 * psr, T - look)):
        assert abs(slip - expected) > 1e-3


def test_composite_delta_of_an_option_expiring_within_the_look_ahead_is_its_intrinsic_step() -> (
    None
):
    # 1 day to expiry, 1 day of look-ahead: T − τ = 0, so each point's delta is the
    # intrinsic step 1{F·(1 + k/3·PSR) > K}: for K = 76,000 and F ≈ 70,000 only the
    # +PSR point (F·1.12 ≈ 78,400) is in the money, weight 0.037.
    name = "BTC-26FEB26-76000-C"
    F, K, _, _, _ = _inputs(name)
    inside = [F * (1 + k / 3 * 0.12) > K for k in (-3, -2, -1, 0, 1, 2, 3)]
    assert inside == [False] * 6 + [True]
    model = load_model("span-2026.1")
    ctx = _context(model, [name], np.ones((1, 1)), ChargeParams(kind="x"), coin_pool=False)
    assert float(composite_delta(ctx)[0]) == pytest.approx(0.037, rel=REL)


def test_intra_and_spot_charges_consume_the_option_composite_delta() -> None:
    # +1 two-day call (tier 1, [0, 7) days) against −2 perpetual (tier 0), span model,
    # one USD pool. Tier deltas (−2, cd). Spread (0, 1) at 0.25 %: first pass (tier 0 long)
    # forms nothing, the second forms n = min(2, cd) = cd:
    #   intra = cd · 0.0025 · S
    # The spot charge on tier 1 then sees cd consumed and 0 remaining:
    #   spot = cd · rate_consumed (0.25 %) · S + 0 · rate_remaining (0.5 %) · S
    name = "BTC-27FEB26-74000-C"
    F, K, T, sigma, _ = _inputs(name)
    cd = sum(
        w * _call_delta(F * (1 + k / 3 * 0.12), K, T - 1 / YEAR_DAYS, sigma)
        for w, k in zip(WEIGHTS, (-3, -2, -1, 0, 1, 2, 3), strict=True)
    )
    r = load_model("span-2026.1").margin(pm.Portfolio.of({name: 1, "BTC-PERPETUAL": -2}), MARKET)
    assert r.components["span_intra_commodity"] == pytest.approx(cd * 0.0025 * S_BTC, rel=1e-9)
    assert r.components["span_spot"] == pytest.approx(cd * 0.0025 * S_BTC, rel=1e-9)
    # charging the tier-1 delta as remaining (spreads ignored) would give twice that
    assert abs(r.components["span_spot"] - cd * 0.005 * S_BTC) > 10.0


def test_spot_charge_splits_consumed_and_remaining_delta() -> None:
    # +1 perpetual (tier 0) against −3 deep-ITM 2-day calls (tier 1, composite delta
    # cd3 = −3·cd). Tier deltas (1, cd3) with cd3 < −1: the first pass of spread (0, 1)
    # forms n = 1, leaving cd3 + 1 in tier 1:
    #   intra = 1 · 0.0025 · S;  spot = (1 · 0.0025 + |cd3 + 1| · 0.005) · S
    name = "BTC-27FEB26-60000-C"
    F, K, T, sigma, _ = _inputs(name)
    cd = sum(
        w * _call_delta(F * (1 + k / 3 * 0.12), K, T - 1 / YEAR_DAYS, sigma)
        for w, k in zip(WEIGHTS, (-3, -2, -1, 0, 1, 2, 3), strict=True)
    )
    cd3 = -3 * cd
    assert cd3 < -1
    r = load_model("span-2026.1").margin(pm.Portfolio.of({name: -3, "BTC-PERPETUAL": 1}), MARKET)
    assert r.components["span_intra_commodity"] == pytest.approx(0.0025 * S_BTC, rel=1e-9)
    expected = (1 * 0.0025 + abs(cd3 + 1) * 0.005) * S_BTC
    assert r.components["span_spot"] == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------------------
# SPAN short option minimum


def test_short_option_minimum_counts_short_options_only() -> None:
    # −2 far-OTM calls, −1 far-OTM put, +3 far-OTM calls, −5 futures (span, USD pool).
    # SOM (gross) = 1 % · S · (short calls 2 + short puts 1) = 0.01 · 70,000 · 3 = 2,100;
    # longs and futures do not count. The scan risk of this book is below that, so SOM binds:
    # MM = CC_risk = max(scan + ..., SOM) = 2,100.
    book = {
        "BTC-27MAR26-130000-C": -2,
        "BTC-27MAR26-30000-P": -1,
        "BTC-27MAR26-140000-C": 3,
    }
    r = load_model("span-2026.1").margin(pm.Portfolio.of(book), MARKET)
    som = 0.01 * S_BTC * (2 + 1)
    assert r.components["span_short_option_minimum"] > 0  # it binds
    assert r.maintenance_margin == pytest.approx(som, rel=1e-9)
    assert r.initial_margin == pytest.approx(1.1 * som, rel=1e-9)
    for slip in (0.01 * S_BTC * 6, 0.01 * S_BTC * 0, 0.01 * 3):
        assert abs(slip - som) > 1.0


@pytest.mark.parametrize(("coin_pool", "unit"), [(True, 1.0), (False, S_BTC)])
def test_short_option_minimum_amounts_per_account(coin_pool: bool, unit: float) -> None:
    # Rows: call 130k, put 30k, call 140k, future. Per account, with rate 1 %:
    #   gross = 0.01 · unit · (Σ short calls + Σ short puts)
    #   max   = 0.01 · unit · max(Σ short calls, Σ short puts)
    # unit = S / usd_rate: 1 in the BTC coin pool, S = 70,000 in the USD pool.
    names = ["BTC-27MAR26-130000-C", "BTC-27MAR26-30000-P", "BTC-27MAR26-140000-C", "BTC-26JUN26"]
    q = np.array(
        [
            [-2.0, -1.0, 3.0, -5.0],  # calls 2, puts 1
            [1.0, -4.0, 0.0, 0.0],  # calls 0, puts 4
            [-0.5, -0.5, -1.5, 7.0],  # calls 2, puts 0.5
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    shorts = [(2.0, 1.0), (0.0, 4.0), (2.0, 0.5), (0.0, 0.0)]
    model = load_model("span-2026.1")
    gross = short_option_minimum(
        _context(model, names, q, ShortOptionMinimumParams(rate=0.01), coin_pool=coin_pool)
    )
    np.testing.assert_allclose(gross, [0.01 * unit * (c + p) for c, p in shorts], rtol=REL)
    largest = short_option_minimum(
        _context(
            model,
            names,
            q,
            ShortOptionMinimumParams(rate=0.01, method="max"),
            coin_pool=coin_pool,
        )
    )
    np.testing.assert_allclose(largest, [0.01 * unit * max(c, p) for c, p in shorts], rtol=REL)


def test_short_option_minimum_rate_per_underlying() -> None:
    # span.toml: rate 1 %, ETH = { rate = 1.5 % }: 4 short far-OTM ETH calls in the USD pool
    # need 0.015 · 3,500 · 4 = 210.
    model = load_model("span-2026.1")
    cp = _charge("span", "span_short_option_minimum")
    ctx = _context(model, ["ETH-27MAR26-7000-C"], np.array([[-4.0]]), cp, coin_pool=False)
    assert float(short_option_minimum(ctx)[0]) == pytest.approx(0.015 * S_ETH * 4, rel=REL)


def test_tims_minimum_counts_every_option_contract() -> None:
    # TIMS minimum per contract (FINRA 4210(g): $0.375 × multiplier per listed option
    # contract, read as 0.375 % of the index): long and short options alike, futures not.
    #   minimum = 0.00375 · S · (|−2| + |+3|) = 1,312.5 USD; the scan risk is below it.
    book = {"BTC-27MAR26-130000-C": -2, "BTC-27MAR26-140000-C": 3, "BTC-PERPETUAL": 0.001}
    r = load_model("tims-2026.1").margin(pm.Portfolio.of(book), MARKET)
    expected = 0.00375 * S_BTC * (2 + 3)
    assert r.components["tims_minimum_per_contract"] > 0  # it binds
    assert r.maintenance_margin == pytest.approx(expected, rel=1e-9)
    assert abs(0.00375 * S_BTC * 2 - expected) > 1.0  # shorts only would be 525


# ----------------------------------------------------------------------------------------
# Deribit roll shock and delta shock: scaling and the currency whose rates apply


def test_roll_shock_in_the_usd_pool_uses_usd_rates_times_the_index() -> None:
    # Cross mode (one USD pool): rates of USD, a = 10 %, floor 1 %; amounts × S / usd_rate = S.
    #   roll = (|+2| · max(0.01, 0.10 · 0) + |−3| · max(0.01, 0.10 · T_jun)) · S
    book = pm.Portfolio.of({"BTC-PERPETUAL": 2, "BTC-26JUN26": -3})
    T = MARKET.year_fraction(MARKET.instrument("BTC-26JUN26").expiry)  # type: ignore[arg-type]
    assert 0.10 * T > 0.01  # the a·T branch
    r = load_model("deribit", cross=True).margin(book, MARKET)
    expected = (2 * 0.01 + 3 * 0.10 * T) * S_BTC
    assert r.components["roll_shock"] == pytest.approx(expected, rel=REL)
    # BTC's rates (7.5 %) or coin units would be far off
    assert abs((2 * 0.01 + 3 * 0.075 * T) * S_BTC - expected) > 100
    assert abs(expected / S_BTC - expected) > 100


def test_roll_shock_nets_an_option_delta_inside_its_expiry() -> None:
    # Segregated BTC pool (coin): +1 June call, −0.25 June future. Net June delta
    # Δ = D·N(d1) − 0.25;  roll = |Δ| · max(0.01, 0.075 · T) BTC.
    name = "BTC-26JUN26-70000-C"
    F, K, T, sigma, df = _inputs(name)
    net = df * _call_delta(F, K, T, sigma) - 0.25
    book = pm.Portfolio.of({name: 1, "BTC-26JUN26": -0.25})
    r = load_model("deribit").margin(book, MARKET)
    assert r.currency == "BTC"
    expected = abs(net) * max(0.01, 0.075 * T)
    assert r.components["roll_shock"] == pytest.approx(expected, rel=1e-12)
    # legs charged separately (no netting inside the expiry) would be far above
    assert (abs(net + 0.25) + 0.25) * 0.075 * T > 1.5 * expected


def test_roll_shock_in_an_eth_pool_uses_eth_rates() -> None:
    # 3 ETH perpetual, ETH pool: 3 · max(0.005, 0.05 · 0) = 0.015 ETH (BTC's floor: 0.03).
    r = load_model("deribit").margin(pm.Portfolio.of({"ETH-PERPETUAL": 3}), MARKET)
    assert r.components["roll_shock"] == pytest.approx(0.015, rel=REL)


def test_delta_shock_in_the_usd_pool_is_scaled_by_the_index(
    tmp_path: pytest.TempPathFactory,
) -> None:
    # Cross mode, threshold 1,000,000 USD, BTC m_inc 0.00005 (deribit.toml), cap 10 %:
    #   shock = |Δ| · min(m_inc · max(|Δ| − threshold / S, 0), 0.10) · S
    over = tmp_path / "t.toml"  # type: ignore[operator]
    over.write_text('[[charges]]\nkind = "delta_shock"\nthreshold_usd = 1000000.0\n')
    model = load_model("deribit", params_file=str(over), cross=True)
    r = model.margin(pm.Portfolio.of({"BTC-PERPETUAL": 100}), MARKET)
    expected = 100 * min(0.00005 * (100 - 1_000_000 / S_BTC), 0.10) * S_BTC
    assert r.components["delta_shock"] == pytest.approx(expected, rel=REL)
    assert abs(expected / S_BTC - expected) > 100


def test_delta_shock_uses_the_underlying_m_inc(tmp_path: pytest.TempPathFactory) -> None:
    # ETH pool, ETH m_inc 0.000004 (deribit.toml), threshold 1,000,000 USD at S = 3,500:
    #   shock = 5,000 · min(0.000004 · (5,000 − 1,000,000 / 3,500), 0.10)  ETH
    over = tmp_path / "t.toml"  # type: ignore[operator]
    over.write_text('[[charges]]\nkind = "delta_shock"\nthreshold_usd = 1000000.0\n')
    r = load_model("deribit", params_file=str(over)).margin(
        pm.Portfolio.of({"ETH-PERPETUAL": -5000}), MARKET
    )
    expected = 5000 * min(0.000004 * (5000 - 1_000_000 / S_ETH), 0.10)
    assert r.components["delta_shock"] == pytest.approx(expected, rel=REL)
    assert abs(5000 * min(0.00005 * (5000 - 1_000_000 / S_ETH), 0.10) - expected) > 1


def test_a_charge_given_another_kind_of_parameters_says_so() -> None:
    model = load_model("deribit")
    ctx = _context(
        model, ["BTC-PERPETUAL"], np.ones((1, 1)), ChargeParams(kind="x"), coin_pool=True
    )
    with pytest.raises(ParameterError, match="needs RollShockParams"):
        roll_shock(ctx)


# ----------------------------------------------------------------------------------------
# Properties: non-negative, one account at a time = all at once, linear where homogeneous

BTC_ROWS = [
    "BTC-26FEB26-70000-P",
    "BTC-27FEB26-72000-C",
    "BTC-27MAR26-60000-P",
    "BTC-27MAR26-80000-C",
    "BTC-26JUN26-70000-C",
    "BTC-PERPETUAL",
    "BTC-27MAR26",
    "BTC-25DEC26",
    "BTC_USDC",
]
Charge = Callable[[ChargeContext], FloatArray]
CASES: list[tuple[str, str, Charge, bool]] = [
    # (model, kind, function, homogeneous of degree 1 in the quantities)
    ("deribit", "roll_shock", roll_shock, True),
    ("deribit", "delta_shock", delta_shock, False),
    ("span", "span_intra_commodity", intra_commodity_charge, True),
    ("span", "span_spot", spot_charge, True),
    ("span", "span_short_option_minimum", short_option_minimum, True),
    ("tims", "tims_minimum_per_contract", minimum_per_contract, True),
]
MODELS = {name: load_model(name) for name in ("deribit", "span", "tims")}
QTY = arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.just(len(BTC_ROWS))),
    elements=st.floats(-500, 500, allow_nan=False).map(lambda x: round(x, 1)),
)
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(("model", "kind", "fn", "homogeneous"), CASES, ids=[c[1] for c in CASES])
@FAST
@given(q=QTY, coin_pool=st.booleans(), scale=st.sampled_from([0.5, 2.0, 3.0]))
def test_charges_are_non_negative_per_account_and_linear_where_homogeneous(
    model: str,
    kind: str,
    fn: Charge,
    homogeneous: bool,
    q: FloatArray,
    coin_pool: bool,
    scale: float,
) -> None:
    cp = _charge(model, kind)
    m = MODELS[model]
    out = fn(_context(m, BTC_ROWS, q, cp, coin_pool=coin_pool))
    assert out.shape == (q.shape[0],)
    assert np.all(np.isfinite(out))
    assert np.all(out >= 0.0)
    for i in range(q.shape[0]):  # the batch is the accounts one by one
        one = fn(_context(m, BTC_ROWS, q[i : i + 1], cp, coin_pool=coin_pool))
        assert one[0] == pytest.approx(out[i], rel=1e-12, abs=1e-9)
    if homogeneous:
        scaled = fn(_context(m, BTC_ROWS, scale * q, cp, coin_pool=coin_pool))
        np.testing.assert_allclose(scaled, scale * out, rtol=1e-9, atol=1e-9)


@FAST
@given(q=QTY)
def test_coin_pool_charges_are_usd_pool_charges_over_the_index(q: FloatArray) -> None:
    # Every charge is (amount in units of the underlying) × S / usd_rate: the USD pool
    # figure is S times the BTC coin pool figure (same rates: span and tims charges are
    # per underlying, delta shock too).
    for model, kind, fn, _ in CASES:
        if kind == "roll_shock":
            continue  # its rates are the pool currency's, not the underlying's
        cp = _charge(model, kind)
        m = MODELS[model]
        coin = fn(_context(m, BTC_ROWS, q, cp, coin_pool=True))
        usd = fn(_context(m, BTC_ROWS, q, cp, coin_pool=False))
        np.testing.assert_allclose(usd, coin * S_BTC, rtol=1e-12, atol=1e-9)
