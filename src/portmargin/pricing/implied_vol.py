r"""Vectorised Black-76 implied volatility.

The solver works on the out-of-the-money side (a call price is turned into the put price by
parity when the call is in the money, and vice versa), where the price is least sensitive to
rounding, and runs a safeguarded Newton iteration on σ inside a shrinking bracket
``[σ_lo, σ_hi]``: each Newton step that would leave the bracket is replaced by bisection, so
the iteration always converges (Brent-style safeguarding, as in Press et al., *Numerical
Recipes*, 3rd ed., §9.4 "rtsafe").

Prices outside the no-arbitrage band ``D·intrinsic < V < D·F`` (call) / ``D·K`` (put) have no
implied volatility and are returned as NaN; callers must treat NaN as an error and say which
instrument caused it (the market layer does).
"""

from __future__ import annotations

import numpy as np

from portmargin._types import BoolArray, FloatArray
from portmargin.pricing.black76 import black76_price, black76_vega

__all__ = ["implied_vol"]

_SIGMA_MIN = 1e-8
_SIGMA_MAX = 20.0


def implied_vol(
    price: FloatArray | float,
    F: FloatArray | float,
    K: FloatArray | float,
    T: FloatArray | float,
    is_call: BoolArray | bool,
    *,
    df: FloatArray | float = 1.0,
    tol: float = 1e-13,
    max_iter: int = 200,
) -> FloatArray:
    """Black-76 implied volatility of USD option prices (vectorised).

    Parameters
    ----------
    price
        Option value in USD per unit of underlying (discounted by ``df``).
    F, K, T, is_call, df
        As in :func:`portmargin.pricing.black76_price`.
    tol
        Absolute tolerance on the price, relative to ``D·F``.
    max_iter
        Iteration cap; the bracket halves at least every second iteration.

    Returns
    -------
    FloatArray
        σ such that ``black76_price(F, K, T, σ) == price``; NaN where no σ exists
        (price at or outside the no-arbitrage bounds, T ≤ 0, non-positive inputs).
    """
    V, Fa, Ka, Ta, Da, Ca = np.broadcast_arrays(
        np.asarray(price, dtype=np.float64),
        np.asarray(F, dtype=np.float64),
        np.asarray(K, dtype=np.float64),
        np.asarray(T, dtype=np.float64),
        np.asarray(df, dtype=np.float64),
        np.asarray(is_call, dtype=np.bool_),
    )
    # Move to the OTM side by parity: C − P = D·(F − K).
    otm_is_call = Fa <= Ka
    fwd_intrinsic = Da * (Fa - Ka)
    V_otm = np.where(Ca == otm_is_call, V, np.where(Ca, V - fwd_intrinsic, V + fwd_intrinsic))
    upper = np.where(otm_is_call, Da * Fa, Da * Ka)
    valid = (
        np.isfinite(V_otm)
        & (Ta > 0)
        & (Fa > 0)
        & (Ka > 0)
        & (Da > 0)
        & (V_otm > 0)
        & (V_otm < upper)
    )
    scale = np.where(valid, Da * Fa, 1.0)
    target = np.where(valid, V_otm, 0.0)
    Fs = np.where(valid, Fa, 1.0)
    Ks = np.where(valid, Ka, 1.0)
    Ts = np.where(valid, Ta, 1.0)
    lo = np.full(V.shape, _SIGMA_MIN)
    hi = np.full(V.shape, _SIGMA_MAX)
    # Start from the Brenner–Subrahmanyam ATM approximation σ ≈ √(2π/T)·V/(D·F), clipped.
    sigma = np.clip(np.sqrt(2.0 * np.pi / Ts) * target / scale, 0.05, 3.0)
    done = ~valid
    for _ in range(max_iter):
        model = black76_price(Fs, Ks, Ts, sigma, otm_is_call, df=Da)
        err = model - target
        # Price is increasing in σ: shrink the bracket.
        hi = np.where(err > 0, np.minimum(hi, sigma), hi)
        lo = np.where(err < 0, np.maximum(lo, sigma), lo)
        vega = black76_vega(Fs, Ks, Ts, sigma, otm_is_call, df=Da)
        # A tiny vega (deep wings, short T) overflows err/vega to ±inf: rejected just below.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = sigma - err / vega
        use_newton = np.isfinite(newton) & (newton > lo) & (newton < hi)
        # An element within the price tolerance takes one last (in-bracket) Newton step and
        # stops: the price test alone leaves a σ error of up to tol·D·F/vega (~1e-9 in the
        # wings); the extra step squares it, down to the precision of the input price.
        converged = ~done & (np.abs(err) <= tol * scale)
        step = np.where(use_newton, newton, np.where(converged, sigma, 0.5 * (lo + hi)))
        sigma = np.where(done, sigma, step)
        done = done | converged
        if bool(done.all()):
            break
        # A bracket narrower than machine precision is as converged as it gets.
        done = done | (hi - lo <= 4 * np.finfo(np.float64).eps * hi)
    out: FloatArray = np.where(valid, sigma, np.nan)
    return out
