"""The numba kernels behind :mod:`portmargin.pricing._compiled` (imported on first use).

Module-level functions so that numba's on-disk cache can key them (see ``_compiled``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np


def _jit(parallel: bool = False) -> Callable[[Any], Any]:
    """``numba.njit`` with an on-disk cache when a cache directory can be written."""

    def wrap(fn: Any) -> Any:
        try:
            return numba.njit(cache=True, parallel=parallel, nogil=True)(fn)
        except RuntimeError:  # no writable cache locator: compile in memory each process
            return numba.njit(cache=False, parallel=parallel, nogil=True)(fn)

    return wrap


_SQRT1_2 = 0.7071067811865476


@_jit()
def _ndtr(a: float) -> float:  # pragma: no cover - compiled
    x = a * _SQRT1_2
    z = abs(x)
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0.0 else y


@_jit()
def _black76(
    F: float, K: float, T: float, sigma: float, call: bool, df: float
) -> float:  # pragma: no cover - compiled
    sd = sigma * math.sqrt(max(T, 0.0))
    if T > 0.0 and sd > 0.0 and F > 0.0 and K > 0.0:
        d1 = math.log(F / K) / sd + 0.5 * sd
        d2 = d1 - sd
        v: float = F * _ndtr(d1) - K * _ndtr(d2) if call else K * _ndtr(-d2) - F * _ndtr(-d1)
        return df * max(v, 0.0)
    if call:
        return df * max(F - K, 0.0)
    return df * max(K - F, 0.0)


@_jit()
def _black76_log(
    F: float, K: float, sqrt_t: float, sigma: float, call: bool, df: float, ln_fk: float
) -> float:  # pragma: no cover - compiled
    """:func:`_black76` with ``√T`` and ``ln(F/K)`` given (hoisted out of the scenario loop)."""
    sd = sigma * sqrt_t
    if sqrt_t > 0.0 and sd > 0.0 and F > 0.0 and K > 0.0:
        d1 = ln_fk / sd + 0.5 * sd
        d2 = d1 - sd
        v: float = F * _ndtr(d1) - K * _ndtr(d2) if call else K * _ndtr(-d2) - F * _ndtr(-d1)
        return df * max(v, 0.0)
    if call:
        return df * max(F - K, 0.0)
    return df * max(K - F, 0.0)


@_jit()
def _shocked(
    sigma: float,
    k: float,
    v: float,
    relative: bool,
    up: float,
    down: float,
    lo_up: float,
    lo_down: float,
) -> float:  # pragma: no cover - compiled
    if v > 0.0:
        x = sigma * (1.0 + v * up * k) if relative else sigma + v * up * k
        return x if x >= lo_up else lo_up
    if v < 0.0:
        x = sigma * (1.0 + v * down * k) if relative else sigma + v * down * k
        return x if x >= lo_down else lo_down
    return sigma


@_jit()
def _ln_moves(price_moves: Any) -> Any:  # pragma: no cover - compiled
    """``ln(1 + m_j)`` per scenario: ``ln F' = ln(F·roll) + ln(1 + m)`` for untiered rows."""
    s = price_moves.shape[0]
    ln_move = np.empty(s)
    for j in range(s):
        ln_move[j] = math.log(1.0 + price_moves[j]) if price_moves[j] > -1.0 else -np.inf
    return ln_move


@_jit()
def _risk_row(
    i: int,
    F: Any,
    K: Any,
    T: Any,
    df: Any,
    carry: Any,
    opt: Any,
    call: Any,
    inverse: Any,
    mult: Any,
    v0: Any,
    settled: Any,
    move_scale: Any,
    price_moves: Any,
    sigma: Any,
    vol_scale: Any,
    directions: Any,
    relative: bool,
    up: float,
    down: float,
    lo_up: float,
    lo_down: float,
    lookahead: float,
    out_settle: Any,
    out_usd: Any,
    ln_move: Any,
) -> None:  # pragma: no cover - compiled
    """Row ``i`` of :func:`risk_pnl` (every scenario of one instrument)."""
    s = out_usd.shape[1]
    if settled[i]:
        for j in range(s):
            out_settle[i, j] = 0.0
            out_usd[i, j] = 0.0
        return
    f = F[i]
    scale = move_scale[i]
    if opt[i]:
        t = T[i]
        t_after = max(t - lookahead, 0.0)
        df_after = df[i] ** (t_after / t) if t > 0.0 else df[i] ** 1.0
        roll = math.exp(-carry[i] * min(lookahead, max(t, 0.0)))
        sqrt_t = math.sqrt(t_after)
        k_i = K[i]
        ln_row = math.log(f * roll / k_i) if f > 0.0 and k_i > 0.0 else 0.0
        for j in range(s):
            m = scale * price_moves[j]
            sig = _shocked(
                sigma[i], vol_scale[i], directions[j], relative, up, down, lo_up, lo_down
            )
            fwd = f * (1.0 + m) * roll
            if scale == 1.0:
                ln_fk = ln_row + ln_move[j]
            elif fwd > 0.0 and k_i > 0.0:
                ln_fk = math.log(fwd / k_i)
            else:
                ln_fk = 0.0
            v = mult[i] * _black76_log(fwd, k_i, sqrt_t, sig, call[i], df_after, ln_fk)
            usd = v - v0[i]
            out_usd[i, j] = usd
            if inverse[i]:
                out_settle[i, j] = v / (f * (1.0 + m)) - v0[i] / f
            else:
                out_settle[i, j] = usd
    else:
        for j in range(s):
            m = scale * price_moves[j]
            usd = mult[i] * f * m
            out_usd[i, j] = usd
            if inverse[i]:
                out_settle[i, j] = mult[i] * (1.0 - 1.0 / (1.0 + m))
            else:
                out_settle[i, j] = usd


@_jit(parallel=True)
def risk_pnl(
    F: Any,
    K: Any,
    T: Any,
    df: Any,
    carry: Any,
    opt: Any,
    call: Any,
    inverse: Any,
    mult: Any,
    v0: Any,
    settled: Any,
    move_scale: Any,
    price_moves: Any,
    sigma: Any,
    vol_scale: Any,
    directions: Any,
    relative: bool,
    up: float,
    down: float,
    lo_up: float,
    lo_down: float,
    lookahead: float,
    out_settle: Any,
    out_usd: Any,
) -> None:  # pragma: no cover - compiled
    """Every row of the risk array, rows in parallel (numba's threads)."""
    ln_move = _ln_moves(price_moves)
    for i in numba.prange(out_usd.shape[0]):
        _risk_row(
            i,
            F,
            K,
            T,
            df,
            carry,
            opt,
            call,
            inverse,
            mult,
            v0,
            settled,
            move_scale,
            price_moves,
            sigma,
            vol_scale,
            directions,
            relative,
            up,
            down,
            lo_up,
            lo_down,
            lookahead,
            out_settle,
            out_usd,
            ln_move,
        )


@_jit()
def risk_pnl_serial(
    F: Any,
    K: Any,
    T: Any,
    df: Any,
    carry: Any,
    opt: Any,
    call: Any,
    inverse: Any,
    mult: Any,
    v0: Any,
    settled: Any,
    move_scale: Any,
    price_moves: Any,
    sigma: Any,
    vol_scale: Any,
    directions: Any,
    relative: bool,
    up: float,
    down: float,
    lo_up: float,
    lo_down: float,
    lookahead: float,
    out_settle: Any,
    out_usd: Any,
) -> None:  # pragma: no cover - compiled
    """:func:`risk_pnl` on the calling thread (small arrays: no parallel region to launch)."""
    ln_move = _ln_moves(price_moves)
    for i in range(out_usd.shape[0]):
        _risk_row(
            i,
            F,
            K,
            T,
            df,
            carry,
            opt,
            call,
            inverse,
            mult,
            v0,
            settled,
            move_scale,
            price_moves,
            sigma,
            vol_scale,
            directions,
            relative,
            up,
            down,
            lo_up,
            lo_down,
            lookahead,
            out_settle,
            out_usd,
            ln_move,
        )


@_jit()
def _csr_row(
    i: int, indptr: Any, indices: Any, data: Any, w: Any, out: Any
) -> None:  # pragma: no cover - compiled
    """Row ``i`` of ``Q @ W``: its entries in stored order, as SciPy's ``csr_matvecs``."""
    k = out.shape[1]
    acc = np.zeros(k)  # the row's sums in registers/L1, stored once
    for e in range(indptr[i], indptr[i + 1]):
        a = data[e]
        r = indices[e]
        for c in range(k):
            acc[c] += a * w[r, c]
    for c in range(k):
        out[i, c] = acc[c]


@_jit(parallel=True)
def csr_dense(
    indptr: Any, indices: Any, data: Any, w: Any, out: Any
) -> None:  # pragma: no cover - compiled
    """``out = Q @ W``, rows in parallel."""
    for i in numba.prange(out.shape[0]):
        _csr_row(i, indptr, indices, data, w, out)


@_jit()
def csr_dense_serial(
    indptr: Any, indices: Any, data: Any, w: Any, out: Any
) -> None:  # pragma: no cover - compiled
    """``out = Q @ W`` on the calling thread."""
    for i in range(out.shape[0]):
        _csr_row(i, indptr, indices, data, w, out)
