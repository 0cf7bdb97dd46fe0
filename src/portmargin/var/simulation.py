r"""Joint scenario moves from the daily history: historical, filtered historical, Monte Carlo.

Risk factors of each underlying ``u`` on day ``t`` (:class:`~portmargin.var.history.History`)::

    x^S_t = ln(S_t / S_{t−1})            daily spot log return
    x^V_t = ln(DVOL_t / DVOL_{t−1})      daily log change of the implied-vol level

**EWMA volatility** (RiskMetrics, J.P. Morgan/Reuters, *RiskMetrics Technical Document*,
1996, §5.2; λ = 0.94 daily), per factor, seeded with the mean square of the first
``burn_in`` shocks (which are then not used as scenarios)::

    σ²_t = λ·σ²_{t−1} + (1 − λ)·x²_{t−1}       (a forecast for day t from shocks up to t−1)
    z_t  = x_t / σ_t                           standardised shock
    σ_T+ = σ_{T+1}                             today's forecast, from shocks up to the as-of day T

**Scenario ``s``** is a start day ``t_s`` of an ``h``-day window ``t_s … t_s + h − 1`` ending by
``T`` (the same day for every underlying, so BTC and ETH move jointly as they did). Windows
overlap (every day) or not (every h-th day back from T). The h-day log move of a factor::

    hs   : X_s = Σ_{k<h} x_{t_s+k}                          (raw; = ln(S_{t_s+h−1}/S_{t_s−1}))
    fhs  : X_s = σ̂_T · Σ_{k<h} z_{t_s+k}                    (Hull & White 1998; Barone-Adesi,
                                                             Giannopoulos & Vosper 1999)
    σ̂_T = max(σ_T+, σ_floor)                                (APC floor, else σ̂_T = σ_T+)
    σ_floor = √(mean of x² over the last floor_lookback_days)   (EMIR RTS 153/2013 Art. 28(1)(c))

Monte Carlo (``n`` draws, ``SeedSequence([seed, T.toordinal()])``): each h-day move is the
sum of ``h`` independent daily draws of the standardised factor vector, times ``σ̂_T``:

* ``mc-t``: multivariate Student-t, ``Y = A·Z·√(ν/W)``, ``Z ~ N(0, I)``, ``W ~ χ²_ν``,
  ``A·Aᵀ = R·(ν − 2)/ν`` with ``R`` the correlation matrix of the window's ``z`` (so each
  factor has unit variance), ``ν`` by maximum likelihood over the window unless given;
  each daily draw clipped to ``±truncate·max|z|`` of the window (``truncate = 1.5``);
* ``mc-bootstrap``: whole cross-sections ``z_t`` drawn with replacement from the window
  (filtered bootstrap; the dependence between factors of one day is kept).

The engine's scenario set of ``u`` (:class:`~portmargin.scenarios.ScenarioSet`): price move
``m_s = e^{X^S_s} − 1`` of every forward and the index, and vol direction
``v_s = e^{X^V_s} − 1`` with ``VolShock(up=1, down=1, mode=relative)``, so each option's vol
becomes ``σ·e^{X^V_s}`` (floored at ``min_vol``): the DVOL change applied to the whole
surface, the smile kept in relative terms. Every expiry is shortened by ``h`` days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

import numpy as np
from scipy.special import gammaln

from portmargin._types import FloatArray, IntArray
from portmargin.errors import InputError
from portmargin.scenarios import ScenarioSet, VolShock, VolShockMode
from portmargin.var.config import StressPeriod, VarParams
from portmargin.var.history import History

__all__ = [
    "FactorMoves",
    "FilterState",
    "ewma_variance",
    "fit_student_t_dof",
    "scenario_moves",
    "scenario_set",
    "stress_moves",
]

_DAYS_PER_YEAR = 365.0


def ewma_variance(x: FloatArray, lam: float, seed_var: float) -> FloatArray:
    r"""EWMA variance forecasts ``σ²_t`` for ``t = 0 … n`` (``n + 1`` values).

    ``σ²_0 = seed_var``; ``σ²_t = λ·σ²_{t−1} + (1 − λ)·x²_{t−1}``: ``σ²_t`` uses shocks up to
    ``t − 1``, and the last value is the forecast after the last shock. A linear recursion,
    computed in closed form: ``σ²_t = λ^t·σ²_0 + (1 − λ)·Σ_{k<t} λ^{t−1−k}·x²_k``.
    """
    x2 = np.asarray(x, dtype=np.float64) ** 2
    n = x2.size
    out = np.empty(n + 1)
    out[0] = seed_var
    # blocks keep λ^{-k} far from overflow (λ ≥ 0.5: 0.5^-500 = 3e150)
    block = 500
    prev = seed_var
    for a in range(0, n, block):
        seg = x2[a : a + block]
        k = np.arange(1, seg.size + 1, dtype=np.float64)
        pw = lam**k  # λ^1 … λ^m
        acc = np.cumsum(seg / pw)  # Σ x²_j λ^{-(j+1)}
        out[a + 1 : a + 1 + seg.size] = pw * (prev + (1.0 - lam) * acc)
        prev = out[a + seg.size]
    return out


@dataclass(frozen=True, slots=True)
class FilterState:
    """The EWMA filter of one factor at the as-of day (for reports and tests).

    ``sigma_forecast`` is ``σ_T+`` (daily, dimensionless); ``sigma_floor`` the APC floor
    (0 without one); ``sigma_used = max(forecast, floor)`` scales the filtered scenarios.
    """

    sigma_forecast: float
    sigma_floor: float
    sigma_used: float


@dataclass(frozen=True, slots=True)
class FactorMoves:
    """Joint h-day log moves of every underlying's spot and DVOL, one row per scenario.

    Attributes
    ----------
    underlyings
        The underlyings, in order.
    labels
        One label per scenario: the window's first day (``2022-11-09``), ``mc`` for Monte
        Carlo draws or ``stress:2022-11-09`` for stress scenarios.
    spot, vol
        ``u → (n,)`` h-day log moves ``X^S``, ``X^V`` (read-only).
    horizon_days
        ``h``.
    filters
        ``(u, "spot" | "vol") →`` :class:`FilterState` (filtered methods only).
    """

    underlyings: tuple[str, ...]
    labels: tuple[str, ...]
    spot: Mapping[str, FloatArray]
    vol: Mapping[str, FloatArray]
    horizon_days: int
    filters: Mapping[tuple[str, str], FilterState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name in ("spot", "vol"):
            frozen: dict[str, FloatArray] = {}
            for u, given in getattr(self, name).items():
                a = np.array(given, dtype=np.float64)
                if a.shape != (n,) or not np.all(np.isfinite(a)):
                    raise InputError(f"scenario moves of {u}: need {n} finite values")
                a.setflags(write=False)
                frozen[u] = a
            object.__setattr__(self, name, MappingProxyType(frozen))
        object.__setattr__(self, "filters", MappingProxyType(dict(self.filters)))

    def __len__(self) -> int:
        return len(self.labels)


def scenario_set(moves: FactorMoves, underlying: str, *, min_vol: float) -> ScenarioSet:
    """The engine's :class:`ScenarioSet` of ``underlying`` (module docstring), weights 1."""
    m = np.expm1(moves.spot[underlying])
    v = np.expm1(moves.vol[underlying])
    n = m.size
    return ScenarioSet(
        m,
        v,
        np.ones(n),
        np.ones(n),
        VolShock(up=1.0, down=1.0, mode=VolShockMode.RELATIVE, min_vol_up=min_vol, min_vol=min_vol),
        moves.labels,
        moves.horizon_days / _DAYS_PER_YEAR,
    )


# ---------------------------------------------------------------------------------------
def _window_starts(
    first: int, last_end: int, h: int, window: int, *, overlapping: bool
) -> IntArray:
    """Start rows ``t`` of the h-day windows with ``first ≤ t`` and ``t + h − 1 ≤ last_end``."""
    last_start = last_end - h + 1
    step = 1 if overlapping else h
    starts = np.arange(last_start, first - 1, -step, dtype=np.int64)[::-1]
    if window:
        starts = starts[starts >= last_end - window + 1]
    return starts


def _h_sum(x: FloatArray, starts: IntArray, h: int) -> FloatArray:
    """``Σ_{k<h} x[t + k]`` for each start ``t``."""
    out = np.zeros(starts.size)
    for k in range(h):
        out += x[starts + k]
    return out


def scenario_moves(history: History, params: VarParams, as_of: date) -> FactorMoves:
    """The model's scenario moves as of the end of day ``as_of`` (module docstring).

    Raises
    ------
    InputError
        If an underlying has no DVOL, or fewer than ``min_window_days`` scenario days exist
        up to ``as_of``.
    """
    unds = _underlyings(history, params)
    t_idx = history.index(as_of)
    s0 = history.index(history.joint_start(unds))  # first day with every DVOL
    if s0 >= t_idx:
        raise InputError(
            f"{history.source}: no day with every DVOL of {', '.join(unds)} up to {as_of}"
        )
    h = params.horizon_days
    filtered = params.method != "hs"
    # daily shocks are defined from row s0 + 1 (a return needs the day before)
    first = s0 + 1 + (params.ewma_burn_in_days if filtered else 0)
    x: dict[tuple[str, str], FloatArray] = {}
    for u in unds:
        x[(u, "spot")] = history.log_returns(u)
        x[(u, "vol")] = history.dvol_log_changes(u)
    n_days = t_idx - first + 1
    if n_days < params.min_window_days:
        raise InputError(
            f"{history.source}: {params.name} needs {params.min_window_days} days of scenarios "
            f"up to {as_of}, the history has {max(n_days, 0)} (DVOL of {', '.join(unds)} from "
            f"{history.dates[s0]}{', after the EWMA burn-in' if filtered else ''})"
        )
    filters: dict[tuple[str, str], FilterState] = {}
    z: dict[tuple[str, str], FloatArray] = {}
    scale: dict[tuple[str, str], float] = {}
    if filtered:
        for key, series in x.items():
            z[key], filters[key] = _filter(series, s0, t_idx, params, history, key)
            scale[key] = filters[key].sigma_used
    if params.method in ("hs", "fhs"):
        starts = _window_starts(first, t_idx, h, params.window_days, overlapping=params.overlapping)
        if starts.size < 1:
            raise InputError(f"{history.source}: no {h}-day window ends by {as_of}")
        labels = tuple(history.dates[int(t)].isoformat() for t in starts)
        spot: dict[str, FloatArray] = {}
        vol: dict[str, FloatArray] = {}
        for u in unds:
            for kind, out in (("spot", spot), ("vol", vol)):
                key = (u, kind)
                if filtered:
                    out[u] = scale[key] * _h_sum(z[key], starts, h)
                else:
                    out[u] = _h_sum(x[key], starts, h)
        return FactorMoves(unds, labels, spot, vol, h, filters)
    return _monte_carlo(unds, z, scale, first, t_idx, params, as_of, filters)


def _underlyings(history: History, params: VarParams) -> tuple[str, ...]:
    if params.underlyings:
        for u in params.underlyings:
            history.require(u)
        return params.underlyings
    unds = tuple(u for u in history.underlyings if history.dvol_start(u) is not None)
    if not unds:
        raise InputError(f"{history.source}: no underlying has a DVOL up to its last day")
    return unds


def _filter(
    series: FloatArray,
    s0: int,
    t_idx: int,
    params: VarParams,
    history: History,
    key: tuple[str, str],
) -> tuple[FloatArray, FilterState]:
    """Standardised shocks ``z`` (nan outside the filtered range) and the filter state."""
    lam, b = params.ewma_lambda, params.ewma_burn_in_days
    xs = series[s0 + 1 : t_idx + 1]  # shocks s0+1 … T
    seed = float(np.mean(xs[:b] ** 2))
    var = ewma_variance(xs, lam, seed)  # var[k] forecasts shock k (row s0+1+k); var[-1]: T+1
    z = np.full(series.shape, np.nan)
    z[s0 + 1 + b : t_idx + 1] = xs[b:] / np.sqrt(var[b:-1])
    forecast = math.sqrt(float(var[-1]))
    floor = 0.0
    apc = params.anti_procyclicality
    if apc.mode == "floor":
        # the longest history of the factor, up to floor_lookback_days (spot: pre-DVOL too)
        start = max(t_idx - apc.floor_lookback_days + 1, 1)
        tail = series[start : t_idx + 1]
        tail = tail[np.isfinite(tail)]
        floor = math.sqrt(float(np.mean(tail**2))) if tail.size else 0.0
    del history, key
    return z, FilterState(forecast, floor, max(forecast, floor))


def _monte_carlo(
    unds: tuple[str, ...],
    z: Mapping[tuple[str, str], FloatArray],
    scale: Mapping[tuple[str, str], float],
    first: int,
    t_idx: int,
    params: VarParams,
    as_of: date,
    filters: Mapping[tuple[str, str], FilterState],
) -> FactorMoves:
    keys = [(u, k) for u in unds for k in ("spot", "vol")]
    lo = first if not params.window_days else max(first, t_idx - params.window_days + 1)
    sample = np.stack([z[k][lo : t_idx + 1] for k in keys], axis=1)  # (days, factors)
    mc = params.monte_carlo
    rng = np.random.default_rng(np.random.SeedSequence([mc.seed, as_of.toordinal()]))
    n, h, d = mc.n_scenarios, params.horizon_days, len(keys)
    total = np.zeros((n, d))
    cap = mc.truncate * np.max(np.abs(sample), axis=0) if mc.truncate > 0 else None
    if params.method == "mc-bootstrap":
        for _ in range(h):
            total += sample[rng.integers(0, sample.shape[0], size=n)]
    else:
        corr: FloatArray = np.atleast_2d(np.corrcoef(sample, rowvar=False))
        nu = mc.dof if mc.dof > 0 else fit_student_t_dof(sample, corr)
        shape = corr * (nu - 2.0) / nu
        a = np.linalg.cholesky(shape + 1e-12 * np.eye(d))
        for _ in range(h):
            g = rng.standard_normal((n, d)) @ a.T
            w = rng.chisquare(nu, size=n)
            y = g * np.sqrt(nu / w)[:, None]
            total += y if cap is None else np.clip(y, -cap, cap)
    spot = {u: scale[(u, "spot")] * total[:, 2 * i] for i, u in enumerate(unds)}
    vol = {u: scale[(u, "vol")] * total[:, 2 * i + 1] for i, u in enumerate(unds)}
    return FactorMoves(unds, ("mc",) * n, spot, vol, h, filters)


def fit_student_t_dof(sample: FloatArray, corr: FloatArray) -> float:
    r"""Degrees of freedom ``ν`` of a multivariate Student-t by maximum likelihood.

    The shape is tied to the correlation ``R`` of the (unit-variance) sample,
    ``Σ = R·(ν − 2)/ν``, and ``ν`` maximises the log-likelihood (McNeil, Frey & Embrechts,
    *Quantitative Risk Management*, 2015, §6.2)::

        ℓ(ν) = n·[lnΓ((ν+d)/2) − lnΓ(ν/2) − (d/2)·ln(νπ) − ½·ln|Σ|]
               − (ν+d)/2 · Σ_t ln(1 + z_tᵀ Σ⁻¹ z_t / ν)

    over a grid of ``ν`` in (2, 100], refined once around the best point.
    """
    n, d = sample.shape
    inv_r = np.linalg.inv(corr)
    q = np.einsum("ij,jk,ik->i", sample, inv_r, sample)  # z' R^-1 z
    _, logdet_r = np.linalg.slogdet(corr)

    def loglik(nu: float) -> float:
        c = (nu - 2.0) / nu
        quad = q / c  # z' Σ^-1 z
        logdet = logdet_r + d * math.log(c)
        return float(
            n * (gammaln((nu + d) / 2) - gammaln(nu / 2) - d / 2 * math.log(nu * math.pi))
            - n * logdet / 2
            - (nu + d) / 2 * np.sum(np.log1p(quad / nu))
        )

    grid = np.exp(np.linspace(math.log(2.05), math.log(100.0), 60))
    vals = [loglik(float(g)) for g in grid]
    i = int(np.argmax(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    fine = np.linspace(lo, hi, 41)
    best = max(fine, key=lambda g: loglik(float(g)))
    return float(best)


# ---------------------------------------------------------------------------------------
def stress_moves(
    history: History,
    underlyings: Sequence[str],
    periods: Sequence[StressPeriod],
    horizon_days: int,
    as_of: date,
    *,
    vol_proxy: str,
) -> FactorMoves | None:
    """Raw h-day moves of the stress periods' windows ended by ``as_of`` (``None``: none).

    Every overlapping window ``t … t+h−1`` inside a period (and ending by ``as_of``) is one
    scenario, labelled ``stress:<t>``. Where a day has no DVOL the vol move comes from the
    proxy (``regression``: daily ``x^V = b0 + b1·x^S + b2·|x^S|``, least squares over every
    day with both factors up to ``as_of``; ``zero``: 0).
    """
    t_idx = history.index(as_of)
    h = horizon_days
    starts: list[int] = []
    for p in periods:
        if p.end < history.first or p.start > as_of:
            continue
        a = history.index(max(p.start, history.dates[1]))
        b = history.index(min(p.end, as_of))
        starts += range(a, b - h + 2)
    starts = sorted(set(starts))
    if not starts:
        return None
    idx = np.asarray(starts, dtype=np.int64)
    spot: dict[str, FloatArray] = {}
    vol: dict[str, FloatArray] = {}
    for u in underlyings:
        xs = history.log_returns(u)
        xv = history.dvol_log_changes(u) if u in history.dvol else np.full(xs.shape, np.nan)
        missing = ~np.isfinite(xv)
        if missing[idx.min() : idx.max() + h].any():
            xv = xv.copy()
            if vol_proxy == "regression":
                b0, b1, b2 = _vol_regression(xs[: t_idx + 1], xv[: t_idx + 1])
                xv[missing] = b0 + b1 * xs[missing] + b2 * np.abs(xs[missing])
            else:
                xv[missing] = 0.0
        spot[u] = _h_sum(xs, idx, h)
        vol[u] = _h_sum(xv, idx, h)
    labels = tuple(f"stress:{history.dates[int(t)].isoformat()}" for t in idx)
    return FactorMoves(tuple(underlyings), labels, spot, vol, h)


def _vol_regression(xs: FloatArray, xv: FloatArray) -> tuple[float, float, float]:
    """Least squares ``x^V = b0 + b1·x^S + b2·|x^S|`` over the days with both (0s if < 30)."""
    ok = np.isfinite(xs) & np.isfinite(xv)
    if ok.sum() < 30:
        return 0.0, 0.0, 0.0
    a = np.column_stack([np.ones(int(ok.sum())), xs[ok], np.abs(xs[ok])])
    coef, *_ = np.linalg.lstsq(a, xv[ok], rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])
