"""Tests for the vectorised Black-76 kernels in :mod:`portmargin.pricing.black76`.

Three layers (style guide §8):

1. golden values from published worked examples, one ``parametrize`` case per row, checked to
   the precision the source prints;
2. agreement with an independent pricer (QuantLib's ``BlackCalculator``) over a seeded grid,
   and with a stdlib ``math.erfc`` reference over a wide grid, plus invariants (parity, bounds,
   monotonicity, expiry, finite-difference greeks) with declared tolerances;
3. hypothesis properties for bounds, parity and monotonicity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import ndtr

from portmargin.pricing import (
    black76_delta,
    black76_gamma,
    black76_greeks,
    black76_price,
    black76_theta,
    black76_vega,
)

F64 = npt.NDArray[np.float64]
EPS = float(np.finfo(np.float64).eps)

# Declared tolerances -------------------------------------------------------------------------
#: Kernel vs QuantLib on a grid where QuantLib's own normal CDF is accurate (see below).
QL_RTOL = 1e-12
#: Algebraic identities (parity, bounds) in units of the price scale D·max(F, K): a few ulps.
IDENTITY_TOL = 16 * EPS
#: Central finite differences: relative step and tolerance (truncation O(h²) ≈ 1e-8 relative,
#: rounding O(eps/h) ≈ 1e-12 relative, so 1e-6 leaves two orders of margin either way).
FD_REL_STEP = 1e-4
FD_RTOL = 1e-6


def _rng_grid(seed: int, n: int) -> dict[str, Any]:
    """A seeded grid of realistic inputs; moneyness is drawn in standard deviations."""
    rng = np.random.default_rng(seed)
    F = 100.0 * np.exp(rng.uniform(-2.0, 2.0, n))
    sigma = rng.uniform(0.05, 2.0, n)
    T = np.exp(rng.uniform(np.log(1.0 / 365.0), np.log(2.0), n))
    sd = sigma * np.sqrt(T)
    K = F * np.exp(rng.uniform(-1.5, 1.5, n) * sd)
    rate = rng.uniform(0.0, 0.10, n)
    df = np.exp(-rate * T)
    is_call = rng.random(n) < 0.5
    return {"F": F, "K": K, "T": T, "sigma": sigma, "rate": rate, "df": df, "is_call": is_call}


# 1. Golden values ----------------------------------------------------------------------------

# Haug, E. G. (2007), "The Complete Guide to Option Pricing Formulas", 2nd ed., McGraw-Hill,
# §1.1.4 (Black-76, options on futures), worked example: F = 19, X = 19, T = 0.75, r = 0.10,
# σ = 0.28 gives c = p = 1.7011 (published to 4 decimals).
# Hull, J. C., "Options, Futures, and Other Derivatives", chapter "Futures Options", section
# "Black's model for valuing futures options", worked example (Example 17.7 in the 8th ed.):
# European put on a crude-oil future, F0 = K = 20, T = 4/12, r = 9 %, σ = 25 % gives
# p = 1.12 (published to 2 decimals).
GOLDEN_PRICES = [
    pytest.param(19.0, 19.0, 0.75, 0.28, 0.10, True, 1.7011, 5e-5, id="haug-black76-call"),
    pytest.param(19.0, 19.0, 0.75, 0.28, 0.10, False, 1.7011, 5e-5, id="haug-black76-put"),
    pytest.param(20.0, 20.0, 4.0 / 12.0, 0.25, 0.09, False, 1.12, 5e-3, id="hull-futures-put"),
]


@pytest.mark.parametrize(
    ("F", "K", "T", "sigma", "r", "is_call", "expected", "half_ulp"), GOLDEN_PRICES
)
def test_price_golden(
    F: float,
    K: float,
    T: float,
    sigma: float,
    r: float,
    is_call: bool,
    expected: float,
    half_ulp: float,
) -> None:
    # The published figure is rounded, so the tolerance is half a unit of its last digit.
    value = float(black76_price(F, K, T, sigma, is_call, df=math.exp(-r * T)))
    assert abs(value - expected) <= half_ulp


# Haug (2007), 2nd ed., §2.1.1 (delta), futures-option example: F = 105, X = 100, T = 0.5,
# r = 0.10, σ = 0.36 gives call delta 0.5946 and put delta −0.3566 (4 decimals). Haug's
# futures-option delta is e^{−rT}·N(d1), i.e. the discounted forward delta the kernel returns.
GOLDEN_DELTAS = [
    pytest.param(True, 0.5946, id="haug-futures-call-delta"),
    pytest.param(False, -0.3566, id="haug-futures-put-delta"),
]


@pytest.mark.parametrize(("is_call", "expected"), GOLDEN_DELTAS)
def test_delta_golden(is_call: bool, expected: float) -> None:
    delta = float(black76_delta(105.0, 100.0, 0.5, 0.36, is_call, df=math.exp(-0.10 * 0.5)))
    assert abs(delta - expected) <= 5e-5


# 2a. Independent pricers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ql() -> Any:
    """QuantLib, or a clean skip when it is not installed."""
    return pytest.importorskip("QuantLib")


def test_agrees_with_quantlib_black_calculator(ql: Any) -> None:
    # Grid: σ ∈ [0.05, 2], T ∈ [1 day, 2 y], |ln(K/F)| ≤ 1.5·σ√T, so |d1|, |d2| ≤ 2.9. On that
    # range QuantLib's CumulativeNormalDistribution, which evaluates ½(1 + erf(z/√2)) and thus
    # loses ~eps/N(z) relative accuracy in the lower tail, is itself good to ~1e-13. Outside it
    # the comparison measures QuantLib's CDF, not the kernel (see the erfc test below).
    g = _rng_grid(seed=19760101, n=400)
    expected: dict[str, list[float]] = {
        "price": [],
        "delta": [],
        "gamma": [],
        "vega": [],
        "theta": [],
    }
    for F, K, T, sigma, df, is_call in zip(
        g["F"], g["K"], g["T"], g["sigma"], g["df"], g["is_call"], strict=True
    ):
        kind = ql.Option.Call if is_call else ql.Option.Put
        calc = ql.BlackCalculator(
            ql.PlainVanillaPayoff(kind, float(K)), float(F), float(sigma * math.sqrt(T)), float(df)
        )
        # blackFormula is QuantLib's other entry point; it must agree with the calculator.
        assert ql.blackFormula(
            kind, float(K), float(F), float(sigma * math.sqrt(T)), float(df)
        ) == (pytest.approx(calc.value(), rel=1e-14))
        expected["price"].append(calc.value())
        expected["delta"].append(calc.deltaForward())
        expected["gamma"].append(calc.gammaForward())
        expected["vega"].append(calc.vega(float(T)))  # ∂V/∂σ per 1.00 of vol
        # theta(spot=F, T): with spot = forward the carry term vanishes and QuantLib returns
        # ∂V/∂t = r·V − ½σ²F²Γ, the same forward-fixed quantity as the kernel's −∂V/∂T.
        expected["theta"].append(calc.theta(float(F), float(T)))
    got = black76_greeks(
        g["F"], g["K"], g["T"], g["sigma"], g["is_call"], df=g["df"], rate=g["rate"]
    )
    for name, values in expected.items():
        np.testing.assert_allclose(
            getattr(got, name), np.array(values), rtol=QL_RTOL, atol=0.0, err_msg=name
        )


def _erfc_reference(F: float, K: float, T: float, sigma: float, is_call: bool, df: float) -> float:
    """Textbook Black-76 in scalar stdlib floats, with N(x) = ½·erfc(−x/√2) (tail-accurate)."""
    sd = sigma * math.sqrt(T)
    d1 = math.log(F / K) / sd + 0.5 * sd
    d2 = d1 - sd

    def N(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    if is_call:
        return df * (F * N(d1) - K * N(d2))
    return df * (K * N(-d2) - F * N(-d1))


def test_agrees_with_erfc_reference_on_wide_grid() -> None:
    # Deep ITM/OTM (±4 standard deviations), one hour to 5 years, vol 2 %–300 %. The only
    # error source is the cancellation F·N(d1) − K·N(d2) that both sides share, so the declared
    # tolerance is a few ulps of the gross terms D·(F·N(±d1) + K·N(±d2)).
    rng = np.random.default_rng(20260204)
    n = 2000
    F = 100.0 * np.exp(rng.uniform(-3.0, 3.0, n))
    T = np.exp(rng.uniform(np.log(1.0 / (365.0 * 24.0)), np.log(5.0), n))
    sigma = np.exp(rng.uniform(np.log(0.02), np.log(3.0), n))
    K = F * np.exp(rng.uniform(-4.0, 4.0, n) * sigma * np.sqrt(T))
    df = np.exp(-rng.uniform(0.0, 0.1, n) * T)
    is_call = rng.random(n) < 0.5
    got = black76_price(F, K, T, sigma, is_call, df=df)
    ref = np.array(
        [
            _erfc_reference(*args)
            for args in zip(
                F.tolist(),
                K.tolist(),
                T.tolist(),
                sigma.tolist(),
                is_call.tolist(),
                df.tolist(),
                strict=True,
            )
        ]
    )
    sd = sigma * np.sqrt(T)
    d1 = np.log(F / K) / sd + 0.5 * sd
    sign = np.where(is_call, 1.0, -1.0)
    gross = df * (F * ndtr(sign * d1) + K * ndtr(sign * (d1 - sd)))
    assert np.all(np.abs(got - ref) <= 64 * EPS * gross + 1e-300)


# 2b. Invariants ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid() -> dict[str, Any]:
    return _rng_grid(seed=1973, n=1000)


def test_put_call_parity(grid: dict[str, Any]) -> None:
    g = grid
    call = black76_price(g["F"], g["K"], g["T"], g["sigma"], True, df=g["df"])
    put = black76_price(g["F"], g["K"], g["T"], g["sigma"], False, df=g["df"])
    scale = g["df"] * np.maximum(g["F"], g["K"])
    assert np.all(np.abs((call - put) - g["df"] * (g["F"] - g["K"])) <= IDENTITY_TOL * scale)


def test_no_arbitrage_bounds(grid: dict[str, Any]) -> None:
    g = grid
    F, K, df = g["F"], g["K"], g["df"]
    call = black76_price(F, K, g["T"], g["sigma"], True, df=df)
    put = black76_price(F, K, g["T"], g["sigma"], False, df=df)
    tol = IDENTITY_TOL * df * np.maximum(F, K)
    assert np.all(call >= np.maximum(df * (F - K), 0.0) - tol)
    assert np.all(call <= df * F + tol)
    assert np.all(put >= np.maximum(df * (K - F), 0.0) - tol)
    assert np.all(put <= df * K + tol)


def _assert_increasing(prices: F64, slope: F64, x: F64) -> None:
    """Non-decreasing along axis 1 up to rounding; strictly increasing where the analytic slope
    moves the price by more than 1e-10 USD per step (deep ITM at low vol the time value is
    below one ulp of the intrinsic value, so the price is legitimately flat there)."""
    steps = np.diff(prices, axis=1)
    assert np.all(steps >= -IDENTITY_TOL * 100.0)
    visible = (slope[:, :-1] * np.diff(x)) > 1e-10
    assert visible.mean() > 0.9
    assert np.all(steps[visible] > 0.0)


@pytest.mark.parametrize("is_call", [True, False], ids=["call", "put"])
def test_increasing_in_vol(is_call: bool) -> None:
    sigma = np.linspace(0.01, 3.0, 300)
    K = np.array([[60.0], [100.0], [150.0]])
    prices = black76_price(100.0, K, 0.5, sigma, is_call, df=0.98)
    _assert_increasing(prices, black76_vega(100.0, K, 0.5, sigma, is_call, df=0.98), sigma)


@pytest.mark.parametrize("is_call", [True, False], ids=["call", "put"])
def test_increasing_in_time_with_unit_discount(is_call: bool) -> None:
    T = np.linspace(1.0 / 365.0, 5.0, 300)
    K = np.array([[60.0], [100.0], [150.0]])
    prices = black76_price(100.0, K, T, 0.6, is_call)
    # ∂V/∂T = −Θ with r = 0.
    _assert_increasing(prices, -black76_theta(100.0, K, T, 0.6, is_call), T)


def test_call_decreasing_and_put_increasing_in_strike() -> None:
    K = np.linspace(20.0, 400.0, 500)
    call = black76_price(100.0, K, 0.5, 0.8, True, df=0.97)
    put = black76_price(100.0, K, 0.5, 0.8, False, df=0.97)
    assert np.all(np.diff(call) < 0.0)
    assert np.all(np.diff(put) > 0.0)


DEAD = [
    pytest.param(0.0, 0.6, id="at-expiry"),
    pytest.param(-0.1, 0.6, id="after-expiry"),
    pytest.param(0.5, 0.0, id="zero-vol"),
]


@pytest.mark.parametrize(("T", "sigma"), DEAD)
def test_intrinsic_when_dead(T: float, sigma: float) -> None:
    F = 100.0
    K = np.array([80.0, 100.0, 120.0])
    df = 0.99
    for is_call, payoff in ((True, np.maximum(F - K, 0.0)), (False, np.maximum(K - F, 0.0))):
        assert np.array_equal(black76_price(F, K, T, sigma, is_call, df=df), df * payoff)
        assert np.array_equal(black76_gamma(F, K, T, sigma, is_call, df=df), np.zeros(3))
        assert np.array_equal(black76_vega(F, K, T, sigma, is_call, df=df), np.zeros(3))
    step = np.array([1.0, 0.5, 0.0])
    assert np.array_equal(black76_delta(F, K, T, sigma, True, df=df), df * step)
    assert np.array_equal(black76_delta(F, K, T, sigma, False, df=df), df * (step - 1.0))


def test_expiry_limit_is_continuous() -> None:
    # Just before expiry the live formula must approach the intrinsic value used at T = 0.
    K = np.array([80.0, 100.0, 120.0])
    near = black76_price(100.0, K, 1e-12, 0.6, True)
    at = black76_price(100.0, K, 0.0, 0.6, True)
    np.testing.assert_allclose(near, at, rtol=0.0, atol=1e-4)


# Finite differences. Points are away from expiry and from |d| large so that O(h²) truncation
# is ~1e-8 relative.
FD_POINTS = [
    pytest.param(100.0, 100.0, 0.5, 0.6, True, 0.0, id="atm-call-r0"),
    pytest.param(100.0, 80.0, 0.25, 0.8, False, 0.0, id="otm-put-r0"),
    pytest.param(100.0, 130.0, 1.0, 0.5, True, 0.05, id="otm-call-r5"),
    pytest.param(2000.0, 1800.0, 0.1, 0.9, True, 0.03, id="itm-call-r3"),
    pytest.param(70000.0, 75000.0, 2.0, 0.45, False, 0.04, id="itm-put-r4"),
]
FD_ARGS = ("F", "K", "T", "sigma", "is_call", "r")


@pytest.mark.parametrize(FD_ARGS, FD_POINTS)
def test_delta_and_gamma_match_finite_differences(
    F: float, K: float, T: float, sigma: float, is_call: bool, r: float
) -> None:
    df = math.exp(-r * T)
    h = FD_REL_STEP * F
    up = float(black76_price(F + h, K, T, sigma, is_call, df=df))
    mid = float(black76_price(F, K, T, sigma, is_call, df=df))
    dn = float(black76_price(F - h, K, T, sigma, is_call, df=df))
    delta = float(black76_delta(F, K, T, sigma, is_call, df=df))
    gamma = float(black76_gamma(F, K, T, sigma, is_call, df=df))
    assert delta == pytest.approx((up - dn) / (2 * h), rel=FD_RTOL, abs=FD_RTOL * df)
    # Gamma from the central difference of the analytic delta (O(h²), no 1/h² rounding blow-up)
    d_up = float(black76_delta(F + h, K, T, sigma, is_call, df=df))
    d_dn = float(black76_delta(F - h, K, T, sigma, is_call, df=df))
    assert gamma == pytest.approx((d_up - d_dn) / (2 * h), rel=FD_RTOL)
    # and, more loosely, from the second difference of prices (rounding ~eps·V/h² ≈ 1e-8·Γ).
    assert gamma == pytest.approx((up - 2 * mid + dn) / (h * h), rel=1e-4)


@pytest.mark.parametrize(FD_ARGS, FD_POINTS)
def test_vega_matches_finite_difference(
    F: float, K: float, T: float, sigma: float, is_call: bool, r: float
) -> None:
    df = math.exp(-r * T)
    h = FD_REL_STEP * sigma
    up = float(black76_price(F, K, T, sigma + h, is_call, df=df))
    dn = float(black76_price(F, K, T, sigma - h, is_call, df=df))
    vega = float(black76_vega(F, K, T, sigma, is_call, df=df))  # per 1.00 of vol
    assert vega == pytest.approx((up - dn) / (2 * h), rel=FD_RTOL)


@pytest.mark.parametrize(FD_ARGS, FD_POINTS)
def test_theta_matches_finite_difference(
    F: float, K: float, T: float, sigma: float, is_call: bool, r: float
) -> None:
    # Θ = −∂V/∂T with the forward held fixed and df = e^{−rT} moving with T.
    h = FD_REL_STEP * T
    up = float(black76_price(F, K, T + h, sigma, is_call, df=math.exp(-r * (T + h))))
    dn = float(black76_price(F, K, T - h, sigma, is_call, df=math.exp(-r * (T - h))))
    theta = float(black76_theta(F, K, T, sigma, is_call, df=math.exp(-r * T), rate=r))
    assert theta == pytest.approx(-(up - dn) / (2 * h), rel=FD_RTOL)


ZERO_VOL_THETA = [
    pytest.param(100.0, 80.0, True, id="itm-call"),
    pytest.param(100.0, 120.0, False, id="itm-put"),
    pytest.param(100.0, 120.0, True, id="otm-call"),
]


@pytest.mark.parametrize(("F", "K", "is_call"), ZERO_VOL_THETA)
def test_theta_with_zero_vol_is_the_carry_of_the_discounted_intrinsic(
    F: float, K: float, is_call: bool
) -> None:
    # With σ = 0 and T > 0 the value is e^{−rT}·intrinsic, so −∂V/∂T = r·V, not 0.
    r, T = 0.05, 0.5
    h = FD_REL_STEP * T
    up = float(black76_price(F, K, T + h, 0.0, is_call, df=math.exp(-r * (T + h))))
    dn = float(black76_price(F, K, T - h, 0.0, is_call, df=math.exp(-r * (T - h))))
    theta = float(black76_theta(F, K, T, 0.0, is_call, df=math.exp(-r * T), rate=r))
    assert theta == pytest.approx(-(up - dn) / (2 * h), rel=FD_RTOL, abs=1e-12)


def test_greeks_bundle_matches_individual_functions(grid: dict[str, Any]) -> None:
    g = grid
    args = (g["F"], g["K"], g["T"], g["sigma"], g["is_call"])
    bundle = black76_greeks(*args, df=g["df"], rate=g["rate"])
    assert np.array_equal(bundle.price, black76_price(*args, df=g["df"]))
    assert np.array_equal(bundle.delta, black76_delta(*args, df=g["df"]))
    assert np.array_equal(bundle.gamma, black76_gamma(*args, df=g["df"]))
    assert np.array_equal(bundle.vega, black76_vega(*args, df=g["df"]))
    assert np.array_equal(bundle.theta, black76_theta(*args, df=g["df"], rate=g["rate"]))


def test_broadcasting_shapes() -> None:
    F = np.full((4, 1, 1), 100.0)
    K = np.linspace(50.0, 150.0, 5).reshape(1, 5, 1)
    T = np.array([0.1, 0.5, 1.0]).reshape(1, 1, 3)
    is_call = np.array([True, False, True]).reshape(1, 1, 3)
    g = black76_greeks(F, K, T, 0.5, is_call)
    for name in ("price", "delta", "gamma", "vega", "theta"):
        assert np.shape(getattr(g, name)) == (4, 5, 3), name
    assert np.shape(black76_price(100.0, 100.0, 0.5, 0.5, True)) == ()
    # Every element equals the scalar evaluation at the same inputs.
    assert float(g.price[2, 1, 0]) == float(black76_price(100.0, 75.0, 0.1, 0.5, True))


# 2c. Inverse (coin-settled) convention -------------------------------------------------------


def test_inverse_call_value_in_coin_never_exceeds_one_coin() -> None:
    # Deribit options are inverse: the coin value is the USD value divided by the underlying.
    # A call on 1 coin can never be worth more than that coin, whatever the strike or vol.
    F = 73000.0
    K = np.concatenate([[1e-6, 1.0, 100.0], np.linspace(1000.0, 400000.0, 400)])
    sigma = np.array([[0.05], [0.5], [1.5], [5.0]])
    coin = black76_price(F, K, 1.0, sigma, True) / F
    assert np.all(coin <= 1.0)
    assert np.all(coin >= 0.0)
    # and it tends to one coin as the strike tends to zero.
    assert coin[:, 0] == pytest.approx(1.0, abs=1e-9)


# 3. Hypothesis properties --------------------------------------------------------------------

forwards = st.floats(min_value=1.0, max_value=1e6, allow_nan=False, allow_infinity=False)
log_moneyness = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False)
expiries = st.floats(min_value=1.0 / (365.0 * 24.0), max_value=10.0, allow_nan=False)
vols = st.floats(min_value=0.01, max_value=3.0, allow_nan=False)
discounts = st.floats(min_value=0.5, max_value=1.0, allow_nan=False)


@given(F=forwards, x=log_moneyness, T=expiries, sigma=vols, df=discounts)
def test_property_bounds_and_parity(F: float, x: float, T: float, sigma: float, df: float) -> None:
    K = F * math.exp(x)
    call = float(black76_price(F, K, T, sigma, True, df=df))
    put = float(black76_price(F, K, T, sigma, False, df=df))
    tol = IDENTITY_TOL * df * max(F, K)
    assert max(df * (F - K), 0.0) - tol <= call <= df * F + tol
    assert max(df * (K - F), 0.0) - tol <= put <= df * K + tol
    assert abs((call - put) - df * (F - K)) <= tol
    # Inverse convention: a call on one coin is worth at most one coin.
    assert call / F <= 1.0 + IDENTITY_TOL


@given(
    F=forwards,
    x=log_moneyness,
    T=expiries,
    sigma=vols,
    bump=st.floats(min_value=1e-3, max_value=1.0),
    is_call=st.booleans(),
)
def test_property_monotone_in_vol_and_time(
    F: float, x: float, T: float, sigma: float, bump: float, is_call: bool
) -> None:
    K = F * math.exp(x)
    tol = IDENTITY_TOL * max(F, K)  # allow for flat regions where both round to intrinsic
    base = float(black76_price(F, K, T, sigma, is_call))
    assert float(black76_price(F, K, T, sigma + bump, is_call)) >= base - tol
    assert float(black76_price(F, K, T * (1.0 + bump), sigma, is_call)) >= base - tol
    # Vega and gamma are never negative; theta (r = 0) is never positive.
    assert float(black76_vega(F, K, T, sigma, is_call)) >= 0.0
    assert float(black76_gamma(F, K, T, sigma, is_call)) >= 0.0
    assert float(black76_theta(F, K, T, sigma, is_call)) <= 0.0


@given(F=forwards, x=log_moneyness, T=expiries, sigma=vols, bump=st.floats(1e-3, 1.0))
def test_property_call_decreasing_in_strike(
    F: float, x: float, T: float, sigma: float, bump: float
) -> None:
    K = F * math.exp(x)
    tol = IDENTITY_TOL * F * math.exp(x + bump)
    lower_k = float(black76_price(F, K, T, sigma, True))
    higher_k = float(black76_price(F, K * math.exp(bump), T, sigma, True))
    assert higher_k <= lower_k + tol
