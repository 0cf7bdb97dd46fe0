r"""Black-76 on forwards, vectorised over NumPy arrays.

All functions broadcast over their array arguments and never loop in Python.

Conventions
-----------
* ``F`` forward (USD per unit of underlying), ``K`` strike (USD), ``T`` time to expiry in
  years (ACT/365 from exact timestamps), ``sigma`` annualised decimal volatility,
  ``df`` discount factor :math:`e^{-rT}` (1.0 for Deribit, which reprices at r = 0).
* ``is_call`` is a boolean array (``True`` call, ``False`` put).
* Prices are in USD per unit of underlying. Inverse (coin) value is the USD value divided by
  the underlying price; that conversion lives in :mod:`portmargin.risk`, not here.
* At and after expiry (``T <= 0``) or with zero volatility the price is the discounted
  intrinsic value :math:`D\,\max(\pm(F-K), 0)`; delta is the intrinsic step and the other
  greeks are zero, except theta with zero volatility before expiry, which is the carry
  :math:`r\,V` of the discounted intrinsic value.

Formulas (Black 1976, "The pricing of commodity contracts", J. Financial Economics 3)::

    d1 = (ln(F/K) + σ²T/2) / (σ√T),   d2 = d1 − σ√T
    C  = D·(F·N(d1) − K·N(d2)),        P = D·(K·N(−d2) − F·N(−d1))
    Δ_C = D·N(d1),  Δ_P = −D·N(−d1)                        (per unit of forward)
    Γ   = D·n(d1) / (F·σ√T)
    vega = D·F·n(d1)·√T                                     (per 1.00 of vol, not per point)
    Θ    = −∂V/∂T = −D·F·n(d1)·σ/(2√T) + r·V                (per year; /365 for per day)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from portmargin._types import BoolArray, FloatArray

__all__ = [
    "Greeks",
    "black76_delta",
    "black76_gamma",
    "black76_greeks",
    "black76_price",
    "black76_theta",
    "black76_vega",
]

_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


def _pdf(x: FloatArray) -> FloatArray:
    out: FloatArray = np.exp(-0.5 * x * x) / _SQRT_2PI
    return out


@dataclass(frozen=True, slots=True)
class _Prepared:
    F: FloatArray
    K: FloatArray
    T: FloatArray
    sigma: FloatArray
    df: FloatArray
    is_call: BoolArray
    live: BoolArray
    sqrtT: FloatArray
    d1: FloatArray
    d2: FloatArray


def _prepare(
    F: FloatArray | float,
    K: FloatArray | float,
    T: FloatArray | float,
    sigma: FloatArray | float,
    is_call: BoolArray | bool,
    df: FloatArray | float,
) -> _Prepared:
    Fa, Ka, Ta, sa, dfa, ca = np.broadcast_arrays(
        np.asarray(F, dtype=np.float64),
        np.asarray(K, dtype=np.float64),
        np.asarray(T, dtype=np.float64),
        np.asarray(sigma, dtype=np.float64),
        np.asarray(df, dtype=np.float64),
        np.asarray(is_call, dtype=np.bool_),
    )
    sqrtT = np.sqrt(np.maximum(Ta, 0.0))
    sd = sa * sqrtT
    live = (Ta > 0.0) & (sd > 0.0) & (Fa > 0.0) & (Ka > 0.0)
    safe_sd = np.where(live, sd, 1.0)
    ratio = np.where(live, Fa / np.where(live, Ka, 1.0), 1.0)
    d1 = np.where(live, np.log(ratio) / safe_sd + 0.5 * safe_sd, 0.0)
    d2 = d1 - np.where(live, safe_sd, 0.0)
    return _Prepared(Fa, Ka, Ta, sa, dfa, ca, live, sqrtT, d1, d2)


def black76_price(
    F: FloatArray | float,
    K: FloatArray | float,
    T: FloatArray | float,
    sigma: FloatArray | float,
    is_call: BoolArray | bool,
    *,
    df: FloatArray | float = 1.0,
) -> FloatArray:
    """Black-76 option value in USD per unit of underlying.

    Parameters
    ----------
    F, K, T, sigma, is_call, df
        See the module docstring; all broadcast together.

    Returns
    -------
    FloatArray
        ``D·(F·N(d1) − K·N(d2))`` for calls, ``D·(K·N(−d2) − F·N(−d1))`` for puts, and the
        discounted intrinsic value where the option is dead (T ≤ 0 or σ√T = 0).
    """
    p = _prepare(F, K, T, sigma, is_call, df)
    call = p.F * ndtr(p.d1) - p.K * ndtr(p.d2)
    put = p.K * ndtr(-p.d2) - p.F * ndtr(-p.d1)
    live_val = np.where(p.is_call, call, put)
    intrinsic = np.where(p.is_call, np.maximum(p.F - p.K, 0.0), np.maximum(p.K - p.F, 0.0))
    out: FloatArray = p.df * np.where(p.live, np.maximum(live_val, 0.0), intrinsic)
    return out


def black76_delta(
    F: FloatArray | float,
    K: FloatArray | float,
    T: FloatArray | float,
    sigma: FloatArray | float,
    is_call: BoolArray | bool,
    *,
    df: FloatArray | float = 1.0,
) -> FloatArray:
    """Forward delta ``∂V/∂F`` (not premium-adjusted): ``D·N(d1)`` call, ``−D·N(−d1)`` put.

    Dead options take the intrinsic step (1/0 for calls, −1/0 for puts, 0.5 at the money).
    """
    p = _prepare(F, K, T, sigma, is_call, df)
    live_delta = np.where(p.is_call, ndtr(p.d1), -ndtr(-p.d1))
    step_call = np.where(p.F > p.K, 1.0, np.where(p.F == p.K, 0.5, 0.0))
    step = np.where(p.is_call, step_call, step_call - 1.0)
    out: FloatArray = p.df * np.where(p.live, live_delta, step)
    return out


def black76_gamma(
    F: FloatArray | float,
    K: FloatArray | float,
    T: FloatArray | float,
    sigma: FloatArray | float,
    is_call: BoolArray | bool,
    *,
    df: FloatArray | float = 1.0,
) -> FloatArray:
    """Gamma ``∂²V/∂F² = D·n(d1)/(F·σ√T)``, per USD of forward; zero for dead options."""
    p = _prepare(F, K, T, sigma, is_call, df)
    denom = np.where(p.live, p.F * p.sigma * p.sqrtT, 1.0)
    out: FloatArray = np.where(p.live, p.df * _pdf(p.d1) / denom, 0.0)
    return out


def black76_vega(
    F: FloatArray | float,
    K: FloatArray | float,
    T: FloatArray | float,
    sigma: FloatArray | float,
    is_call: BoolArray | bool,
    *,
    df: FloatArray | float = 1.0,
) -> FloatArray:
    """Vega ``∂V/∂σ = D·F·n(d1)·√T`` in USD per 1.00 of vol (divide by 100 for a vol point)."""
    p = _prepare(F, K, T, sigma, is_call, df)
    out: FloatArray = np.where(p.live, p.df * p.F * _pdf(p.d1) * p.sqrtT, 0.0)
    return out


def black76_theta(
    F: FloatArray | float,
    K: FloatArray | float,
    T: FloatArray | float,
    sigma: FloatArray | float,
    is_call: BoolArray | bool,
    *,
    df: FloatArray | float = 1.0,
    rate: FloatArray | float = 0.0,
) -> FloatArray:
    """Theta ``−∂V/∂T`` in USD per year, holding the forward fixed, with ``df = e^{−rT}``.

    ``Θ = −D·F·n(d1)·σ/(2√T) + r·V``. Divide by 365 for USD per calendar day.
    """
    p = _prepare(F, K, T, sigma, is_call, df)
    value = black76_price(F, K, T, sigma, is_call, df=df)
    sqrt_safe = np.where(p.live, p.sqrtT, 1.0)
    decay = -p.df * p.F * _pdf(p.d1) * p.sigma / (2.0 * sqrt_safe)
    carry = np.asarray(rate) * value
    # σ = 0 with T > 0: V = D·intrinsic still accrues its discount, −∂V/∂T = r·V.
    out: FloatArray = np.where(p.live, decay + carry, np.where(p.T > 0.0, carry, 0.0))
    return out


@dataclass(frozen=True, slots=True)
class Greeks:
    """Value and greeks of a set of options, all arrays of the same shape.

    Attributes
    ----------
    price
        USD per unit of underlying.
    delta
        ∂V/∂F, dimensionless.
    gamma
        ∂²V/∂F², per USD.
    vega
        USD per 1.00 of vol.
    theta
        USD per year (−∂V/∂T).
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray


def black76_greeks(
    F: FloatArray | float,
    K: FloatArray | float,
    T: FloatArray | float,
    sigma: FloatArray | float,
    is_call: BoolArray | bool,
    *,
    df: FloatArray | float = 1.0,
    rate: FloatArray | float = 0.0,
) -> Greeks:
    """All of :func:`black76_price`, delta, gamma, vega and theta in one call."""
    return Greeks(
        price=black76_price(F, K, T, sigma, is_call, df=df),
        delta=black76_delta(F, K, T, sigma, is_call, df=df),
        gamma=black76_gamma(F, K, T, sigma, is_call, df=df),
        vega=black76_vega(F, K, T, sigma, is_call, df=df),
        theta=black76_theta(F, K, T, sigma, is_call, df=df, rate=rate),
    )
