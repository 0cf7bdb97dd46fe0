"""Hand-derived PMRM_2 values: tiny portfolios worked through the formulas in the test.

The expected numbers are computed here from the written formulas of the methodology
restated in ``docs/methodology/derive.md`` (section numbers in each test) with a scalar
Black-76 built on :class:`statistics.NormalDist`, independently of the engine's vectorised
code path. Parameters are the case-file baseline (§11) unless a test says otherwise.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from derive_builders import (
    DOWN,
    NONE,
    UP,
    baseline_params,
    collateral,
    feed,
    option,
    portfolio,
    scenario,
)

from portmargin.derive import PMRM2Params, StressScenario, VolShockDirection, evaluate

N = NormalDist().cdf
YEAR = 31_536_000.0
S30 = 2_592_000.0  # 30 days: vol-shock multiplier exactly 1
TAU30 = S30 / YEAR
REL = 1e-12


def b76_call(F: float, K: float, sigma: float, tau: float, D: float) -> float:
    w = sigma * math.sqrt(tau)
    d1 = (math.log(F / K) + w * w / 2.0) / w
    return D * (F * N(d1) - K * N(d1 - w))


def only(*scenarios: StressScenario) -> PMRM2Params:
    return baseline_params(scenarios=scenarios)


def close(a: object, b: float) -> bool:
    assert isinstance(a, float)
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


def test_perp_only_down_move() -> None:
    """§5, §8, §9: 2 perps, −10 % move: PnL = 2·(−0.1)·2000 = −400."""
    p = portfolio(spot=2000.0, perp=2.0, cash=1000.0, unrealised_pnl=50.0)
    r = evaluate(p, only(scenario(0.9)))
    assert close(r.min_span, -400.0)
    assert r.forward_contingency == 0.0
    # MM = 0.8·400 + 2·2000·1.5 % = 320 + 60;  IM = 1.0·400 + 60 + 2·2000·0.5 % = 480
    assert close(r.maintenance_margin, 380.0)
    assert close(r.initial_margin, 480.0)
    assert close(r.equity, 1050.0)
    assert close(r.maintenance_excess, 670.0)
    assert close(r.initial_excess, 570.0)
    assert r.worst_scenario["index"] == 0


def test_perp_uses_perp_mark_but_contingency_uses_spot() -> None:
    """§5 vs §8: scenario P&L uses P_p, the perp notional uses S."""
    p = portfolio(spot=2000.0, perp=-1.0, perp_price=2100.0)
    r = evaluate(p, only(scenario(1.1)))
    assert close(r.min_span, -210.0)
    assert close(r.components["mm_perp_contingency"], 30.0)


def test_short_atm_call_spot_up() -> None:
    """§3, §4, §7, §8: one short ATM call, 30 days, r = 5 %, one (1.1, None) scenario."""
    F, K, sig, r_ = 2000.0, 2000.0, 0.5, 0.05
    D = math.exp(-r_ * TAU30)
    v0 = -b76_call(F, K, sig, TAU30, D)
    v_up = -b76_call(1.1 * F, K, sig, TAU30, D)
    short_disc = min(1.0 / D, 1.04 * math.exp(TAU30 * (r_ * 0.5 + 0.08)))
    pnl = v_up * short_disc - v0  # net expiry value < 0 -> δ⁻
    basis = min(
        -b76_call(1.045 * F, K, sig, TAU30, D) - v0,
        -b76_call(0.955 * F, K, sig, TAU30, D) - v0,
        0.0,
    ) * (0.5 + 2.0 * TAU30)
    min_span = min(basis, pnl)

    p = portfolio(spot=F, options=(option(S30, K, -1.0, sig),), feeds=(feed(S30, F, rate=r_),))
    r = evaluate(p, only(scenario(1.1)))
    assert close(r.scenarios[0]["pnl"], pnl)
    assert close(r.forward_contingency, basis)
    assert close(r.equity, v0)
    assert close(r.maintenance_margin, -0.8 * min_span + 1.0 * F * 0.003)
    assert close(r.initial_margin, -min_span + F * 0.003 + F * 0.002)


def test_unshocked_scenario_costs_the_static_discount() -> None:
    """§4: (x = 1, None) on a long call is SD(V⁰) − V⁰ = V⁰·(δ⁺ − 1) < 0."""
    F, r_ = 2000.0, 0.05
    D = math.exp(-r_ * TAU30)
    v0 = b76_call(F, 2200.0, 0.6, TAU30, D)
    long_disc = 0.95 * math.exp(-TAU30 * (r_ * 1.0 + 0.08))
    p = portfolio(options=(option(S30, 2200.0, 1.0, 0.6),), feeds=(feed(S30, F, rate=r_),))
    r = evaluate(p, only(scenario(1.0)))
    assert close(r.scenarios[0]["pnl"], v0 * (long_disc - 1.0))


@pytest.mark.parametrize(
    ("direction", "vol", "shocked"),
    [
        (UP, 0.6, 0.6 * 1.5),  # m = 1 at 30 days: u = 1 + 0.5
        (UP, 0.2, 0.45),  # 0.2·1.5 = 0.3 < floor 0.45
        (DOWN, 0.6, 0.6 * (1.0 - 0.275)),
        (NONE, 0.6, 0.6),
    ],
)
def test_vol_shock_at_thirty_days(direction: VolShockDirection, vol: float, shocked: float) -> None:
    """§5: at exactly 30 days m_e = 1; up shocks are floored at minVolUpShock."""
    F = 2000.0
    v0 = b76_call(F, 2000.0, vol, TAU30, 1.0)
    v1 = b76_call(F, 2000.0, shocked, TAU30, 1.0)
    long_disc = 0.95 * math.exp(-TAU30 * 0.08)
    p = portfolio(options=(option(S30, 2000.0, 1.0, vol),), feeds=(feed(S30, F),))
    r = evaluate(p, only(scenario(1.0, direction)))
    assert close(r.scenarios[0]["pnl"], v1 * long_disc - v0)


def test_vol_multiplier_term_scaling() -> None:
    """§5: 120 days uses the long-term power: u = 1 + 0.5·(30/120)^0.13."""
    s = 4 * S30
    tau = s / YEAR
    u = 1.0 + 0.5 * (S30 / s) ** 0.13
    v0 = b76_call(2000.0, 2000.0, 0.6, tau, 1.0)
    v1 = b76_call(2000.0, 2000.0, 0.6 * u, tau, 1.0)
    p = portfolio(options=(option(s, 2000.0, 1.0, 0.6),), feeds=(feed(s, 2000.0),))
    r = evaluate(p, only(scenario(1.0, UP)))
    assert close(r.scenarios[0]["pnl"], v1 * 0.95 * math.exp(-tau * 0.08) - v0)


def test_linear_skew_single_otm_call() -> None:
    """§6: LINEAR skew on a long 2400 call, F = 2000, 30 days; P&L is −|SD(V') − V⁰|."""
    F, K, sig = 2000.0, 2400.0, 0.6
    a = math.sqrt(TAU30)
    cap = -0.05 * a + 0.15
    k_star = max(0.01, 4.0 * a * (0.6 - 0.1 * a))
    k = math.log(K / F)
    g = min(cap, k * cap / k_star)
    v0 = b76_call(F, K, sig, TAU30, 1.0)
    v1 = b76_call(F, K, sig * (1.0 + g), TAU30, 1.0)
    expected = -abs(2.0 * (v1 * 0.95 * math.exp(-TAU30 * 0.08) - v0))  # w = 2
    p = portfolio(options=(option(S30, K, 1.0, sig),), feeds=(feed(S30, F),))
    r = evaluate(p, only(scenario(1.0, VolShockDirection.LINEAR, 2.0)))
    assert close(r.scenarios[0]["pnl"], expected)
    assert r.scenarios[0]["kind"] == "skew"


@pytest.mark.parametrize(
    ("legs", "naked"),
    [
        (((2000.0, True, -1.0), (2000.0, False, 1.0)), 0.0),  # short call + long put: box leg
        (((2000.0, True, -1.0), (2000.0, False, -1.0)), 2.0),  # two shorts add
        (((2000.0, True, -1.0), (1800.0, False, 1.0)), 1.0),  # different strikes do not net
        (((2000.0, True, -3.0), (2000.0, True, 1.0)), 2.0),
    ],
)
def test_naked_short_netting(legs: tuple[tuple[float, bool, float], ...], naked: float) -> None:
    """§8: naked_e nets the call and the put at the same strike; charge = naked·S·pct."""
    opts = tuple(option(S30, k, n, 0.5, call=c) for k, c, n in legs)
    p = portfolio(spot=2100.0, options=opts, feeds=(feed(S30, 2000.0),))
    r = evaluate(p, only(scenario(1.0)))
    assert close(r.components["mm_option_contingency"], naked * 2100.0 * 0.003)
    assert close(r.components["im_option_contingency"], naked * 2100.0 * 0.002)


def test_peg_adjustment_and_collateral_conversion() -> None:
    """§2, §9: stable at 0.9 → f_IM = 1 + (0.98 − 0.9)·2 = 1.16; collateral /P_st."""
    p = portfolio(
        spot=1000.0,
        perp=1.0,
        stable_price=0.9,
        collaterals=(collateral(3.0, 90.0, mm_haircut=0.1, im_haircut=0.05),),
    )
    r = evaluate(p, only(scenario(0.8)))
    worst = 200.0
    assert close(r.components["im_peg_adjustment"], (0.98 - 0.9) * 2.0 * worst)
    v = 3.0 * 90.0 / 0.9  # 300 stable units
    assert close(r.equity_components["collateral_mtm"], v)
    assert close(r.components["mm_collateral_haircut"], 0.1 * v)
    assert close(r.components["im_collateral_haircut"], 0.05 * v)
    assert close(r.maintenance_margin, 0.8 * worst + 15.0 + 0.1 * v)
    assert close(r.initial_margin, 1.16 * worst + 15.0 + 5.0 + 0.1 * v + 0.05 * v)


def test_risk_cancelling_collateral_moves_with_spot() -> None:
    """§5: risk-cancelling collateral P&L = w·v·(x − 1); other collateral does not move."""
    p = portfolio(
        collaterals=(collateral(2.0, 1000.0, risk_cancelling=True), collateral(5.0, 1000.0))
    )
    r = evaluate(p, only(scenario(0.9, NONE, 0.5)))
    assert close(r.min_span, 0.5 * 2000.0 * -0.1)


def test_confidence_contingency_collateral_excludes_perp_confidence() -> None:
    """§8: c_j = min(c_collateral, c_S) (no perp confidence); c_port includes c_perp."""
    p = portfolio(
        spot=1000.0,
        perp=2.0,
        perp_confidence=0.1,
        collaterals=(collateral(10.0, 100.0, confidence=0.5),),
    )
    r = evaluate(p, only(scenario(1.0)))
    perp_charge = (1.0 - 0.1) * 1.0 * 2.0 * 1000.0
    coll_charge = (1.0 - 0.5) * 1.0 * 1000.0
    assert close(r.components["im_confidence_contingency"], perp_charge + coll_charge)


def test_expiry_confidence_on_gross_notional() -> None:
    """§8: conf(c_e, gross_e·S) with c_e = min(c_port, forward, rate, vol confidences)."""
    opts = (option(S30, 2000.0, -1.0, 0.5), option(S30, 2200.0, 2.0, 0.5))
    p = portfolio(spot=2000.0, options=opts, feeds=(feed(S30, 2000.0, confidence=0.3),))
    r = evaluate(p, only(scenario(1.0)))
    assert close(r.components["im_confidence_contingency"], 0.7 * 3.0 * 2000.0)


def test_settlement_window_forward_split() -> None:
    """§10: 900 s before expiry half the forward is locked: F(x) = F·(0.5·x + 0.5)."""
    s = 900.0
    tau = s / YEAR
    F, K, sig = 2000.0, 2000.0, 0.5
    v0 = b76_call(F, K, sig, tau, 1.0)
    v1 = b76_call(F * (0.5 * 1.1 + 0.5), K, sig, tau, 1.0)
    p = portfolio(options=(option(s, K, 1.0, sig),), feeds=(feed(s, F),))
    r = evaluate(p, only(scenario(1.1)))
    assert close(r.scenarios[0]["pnl"], v1 * 0.95 * math.exp(-tau * 0.08) - v0)


def test_expired_option_is_intrinsic_and_unshocked() -> None:
    """§10: s = 0 → τ = 0, D = 1, F^var = 0: value is intrinsic, spot moves do nothing."""
    p = portfolio(options=(option(0.0, 1900.0, -1.0, 0.5),), feeds=(feed(0.0, 2000.0, rate=0.1),))
    r = evaluate(p, only(scenario(1.2)))
    assert close(r.equity, -100.0)
    # SD at τ = 0: δ⁻ = min(1, 1.04) = 1, so the P&L is exactly 0
    assert close(r.scenarios[0]["pnl"], 0.0)


def test_wide_vol_prices_call_at_discounted_forward() -> None:
    """§3 edge case: σ√τ ≥ 24 → call = D·F."""
    r_ = 0.1
    D = math.exp(-r_ * TAU30)
    p = portfolio(options=(option(S30, 2500.0, 1.0, 100.0),), feeds=(feed(S30, 2000.0, rate=r_),))
    r = evaluate(p, only(scenario(1.0)))
    assert close(r.equity_components["option_mtm"], D * 2000.0)


def test_negative_rate_is_floored() -> None:
    """§3: r ← max(r, 0), so a negative rate gives D = 1."""
    p = portfolio(options=(option(S30, 2000.0, 1.0, 0.5),), feeds=(feed(S30, 2000.0, rate=-0.5),))
    r = evaluate(p, only(scenario(1.0)))
    assert close(r.equity_components["option_mtm"], b76_call(2000.0, 2000.0, 0.5, TAU30, 1.0))


def test_ties_go_to_forward_contingency_then_earlier_scenario() -> None:
    """§7: minSPAN starts at B; only strictly lower scenarios replace it."""
    r = evaluate(portfolio(cash=10.0), only(scenario(0.9), scenario(1.1)))
    assert r.worst_scenario["kind"] == "forward_contingency"
    r = evaluate(portfolio(perp=1.0), only(scenario(1.0), scenario(0.9), scenario(0.9, DOWN)))
    assert r.worst_scenario["index"] == 1


def test_dampening_zero_and_above_one() -> None:
    """§5: w scales the whole scenario P&L; w = 0 gives 0 and w > 1 amplifies."""
    p = portfolio(perp=1.0)
    params = only(scenario(0.5, UP, 0.0), scenario(0.9, UP, 3.0))
    r = evaluate(p, params)
    assert r.scenarios[0]["pnl"] == 0.0
    assert close(r.scenarios[1]["pnl"], 3.0 * -0.1 * 2000.0)
