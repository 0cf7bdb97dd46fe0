r"""Back-test statistics: coverage tests, the Basel traffic light, procyclicality.

With ``n`` days, ``x`` exceedances (``I_t = 1`` when the realised loss exceeds the margin)
and ``p = 1 − α`` the tail probability of the model's confidence ``α``:

**Kupiec's proportion of failures** (unconditional coverage; Kupiec, "Techniques for
verifying the accuracy of risk measurement models", *J. Derivatives* 3(2), 1995, 73–84)::

    LR_pof = −2·ln[(1 − p)^{n−x}·p^x] + 2·ln[(1 − x/n)^{n−x}·(x/n)^x]   ~ χ²(1)

**Christoffersen's independence test** (Christoffersen, "Evaluating interval forecasts",
*Int. Econ. Rev.* 39(4), 1998, 841–862), with ``n_ij`` the days in state ``j`` after a
day in state ``i`` (1 = exceedance)::

    π01 = n01/(n00 + n01)   π11 = n11/(n10 + n11)   π = (n01 + n11)/(n00 + n01 + n10 + n11)
    LR_ind = −2·ln[(1 − π)^{n00+n10}·π^{n01+n11}]
             + 2·ln[(1 − π01)^{n00}·π01^{n01}·(1 − π11)^{n10}·π11^{n11}]           ~ χ²(1)
    LR_cc  = LR_pof + LR_ind                                                         ~ χ²(2)

with ``0·ln 0 = 0``; p-values are the χ² survival functions.

**Basel traffic light** (Basel Committee, *Supervisory framework for the use of
"backtesting" in conjunction with the internal models approach to market risk capital
requirements*, January 1996): with ``X ~ Bin(n, p)``, green if ``P(X ≤ x) < 95 %``, yellow
if ``< 99.99 %``, red otherwise (for ``n = 250``, ``p = 1 %``: green 0–4, yellow 5–9, red
10 or more).

**Peak-to-trough** of the margin path (working definition after Eurex's margin-transparency
disclosures and Murphy, Vasios & Vause, "An investigation into the procyclicality of
risk-based initial margin models", Bank of England Financial Stability Paper 29, 2014)::

    peak_to_trough = max_t M_t / min_t M_t        (over days with M_t > 0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import bdtr, chdtrc

from portmargin._types import BoolArray, FloatArray

__all__ = [
    "Coverage",
    "christoffersen",
    "coverage",
    "kupiec",
    "peak_to_trough",
    "traffic_light",
]

Zone = Literal["green", "yellow", "red"]


def _xlogy(x: float, y: float) -> float:
    """``x·ln y`` with ``0·ln 0 = 0``."""
    return 0.0 if x == 0 else x * math.log(y)


def kupiec(n: int, x: int, p: float) -> tuple[float, float]:
    """Kupiec's ``LR_pof`` and its χ²(1) p-value (module docstring).

    Raises
    ------
    ValueError
        If ``n < 1``, ``x`` is outside ``[0, n]`` or ``p`` outside ``(0, 1)``.
    """
    if n < 1 or not 0 <= x <= n or not 0.0 < p < 1.0:
        raise ValueError(f"kupiec: needs n >= 1, 0 <= x <= n, 0 < p < 1 (n={n}, x={x}, p={p})")
    phat = x / n
    lr = -2.0 * (_xlogy(n - x, 1.0 - p) + _xlogy(x, p))
    lr += 2.0 * (_xlogy(n - x, 1.0 - phat) + _xlogy(x, phat))
    lr = max(lr, 0.0)
    return lr, float(chdtrc(1, lr))


def transitions(hits: Sequence[bool] | BoolArray) -> tuple[int, int, int, int]:
    """``(n00, n01, n10, n11)``: day-to-day transitions of the exceedance indicator."""
    h = np.asarray(hits, dtype=np.bool_)
    a, b = h[:-1], h[1:]
    return (
        int(np.sum(~a & ~b)),
        int(np.sum(~a & b)),
        int(np.sum(a & ~b)),
        int(np.sum(a & b)),
    )


def christoffersen(hits: Sequence[bool] | BoolArray) -> tuple[float, float]:
    """Christoffersen's ``LR_ind`` and its χ²(1) p-value (module docstring).

    Fewer than 2 days, or no transition out of one of the states, give ``(0, 1)``.
    """
    if len(hits) < 2:
        return 0.0, 1.0
    n00, n01, n10, n11 = transitions(hits)
    total = n00 + n01 + n10 + n11
    pi = (n01 + n11) / total
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    lr = -2.0 * (_xlogy(n00 + n10, 1.0 - pi) + _xlogy(n01 + n11, pi))
    lr += 2.0 * (
        _xlogy(n00, 1.0 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1.0 - pi11) + _xlogy(n11, pi11)
    )
    lr = max(lr, 0.0)
    return lr, float(chdtrc(1, lr))


def traffic_light(n: int, x: int, p: float) -> Zone:
    """The Basel zone of ``x`` exceedances in ``n`` days at tail probability ``p``."""
    cdf = float(_cdf(x, n, p))
    if cdf < 0.95:
        return "green"
    if cdf < 0.9999:
        return "yellow"
    return "red"


def _cdf(x: int, n: int, p: float) -> float:
    """``P(X ≤ x)`` for ``X ~ Bin(n, p)``."""
    return 1.0 if x >= n else float(bdtr(x, n, p))


def zone_bounds(n: int, p: float) -> tuple[int, int]:
    """``(first yellow, first red)`` exceedance counts for ``n`` days at ``p``."""
    yellow = 0
    while _cdf(yellow, n, p) < 0.95:
        yellow += 1
    red = yellow
    while _cdf(red, n, p) < 0.9999:
        red += 1
    return yellow, red


def peak_to_trough(margins: Sequence[float] | FloatArray) -> float:
    """``max M / min M`` over the positive margins (``nan`` when there are none)."""
    m = np.asarray(margins, dtype=np.float64)
    m = m[np.isfinite(m) & (m > 0)]
    if m.size == 0:
        return math.nan
    return float(m.max() / m.min())


@dataclass(frozen=True, slots=True)
class Coverage:
    """The statistics of one model's exceedance series (module docstring).

    ``coverage = 1 − exceedances/days``; the tests are at tail probability ``p``.
    """

    days: int
    exceedances: int
    coverage: float
    p: float
    kupiec_lr: float
    kupiec_pvalue: float
    christoffersen_lr: float
    christoffersen_pvalue: float
    conditional_coverage_pvalue: float
    zone: Zone


def coverage(hits: Sequence[bool] | BoolArray, confidence: float) -> Coverage:
    """All the statistics of an exceedance series at ``confidence``.

    Raises
    ------
    ValueError
        For an empty series or a confidence outside ``(0, 1)``.
    """
    h = np.asarray(hits, dtype=np.bool_)
    n, x = int(h.size), int(h.sum())
    if n == 0:
        raise ValueError("coverage: no days")
    p = 1.0 - confidence
    lr_pof, p_pof = kupiec(n, x, p)
    lr_ind, p_ind = christoffersen(h)
    p_cc = float(chdtrc(2, lr_pof + lr_ind))
    return Coverage(
        n, x, 1.0 - x / n, p, lr_pof, p_pof, lr_ind, p_ind, p_cc, traffic_light(n, x, p)
    )
