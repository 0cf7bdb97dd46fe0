r"""The back-test: each day's book margined under each method, against its realised loss.

For every day ``t`` of ``[from, to]`` (every ``step`` days) with ``t + h`` in the history:

1. the day's market (:func:`~portmargin.backtest.market.day_market`, a
   :class:`~portmargin.market.MarketSnapshot` from the close and DVOL) and the strategy's
   book struck on it (:mod:`portmargin.backtest.strategies`);
2. each method's requirement ``M_p`` per margin pool ``p`` at ``t`` (initial margin by
   default, maintenance with ``requirement = "mm"``); a VaR model is re-anchored to ``t``
   (:meth:`VarModel.at`: scenarios from the history up to ``t`` only);
3. the **realised loss** of the same book, frozen, from ``t`` to ``t + h`` (the hypothetical
   outcome: the market at ``t + h``, every option repriced on that day's smile at the later
   spot and vol, ``h`` days of time passed), in each pool's currency::

       USD pool:  L = −[Σ_opt q·(V_{t+h} − V_t) + Σ_perp q·M·(S_{t+h} − S_t)
                        + Σ_coin cash b·(S_{t+h} − S_t)]
       coin pool: L = −[Σ_opt q·(V_{t+h}/F_{t+h} − V_t/F_t) + Σ_perp q·M·(1 − S_t/S_{t+h})]

   (``V`` the Black-76 USD value of a contract, ``F = S`` on these markets: coin P&L valued
   at the later price, as the risk arrays do; coin cash is flat in its own pool);
4. the day is an **exceedance** when some pool's loss exceeds its requirement,
   ``I_t = 1{max_p (L_p − M_p) > 0}``.

Reported per method (:class:`ModelBacktest`): days, exceedances, coverage
``1 − exceedances/days``, Kupiec and Christoffersen p-values and the Basel zone at the
method's confidence (:mod:`portmargin.backtest.stats`; ``worst``-scenario models are tested at
99 %), the mean margin, its peak-to-trough ratio per unit of notional
(``max_t (M_t/N_t) / min_t (M_t/N_t)``, ``N_t = size·Σ_u S_u,t`` the USD value of one unit of
each underlying, so the price level's own trend is not counted as procyclicality), and the
worst exceedances. Amounts are
reported in USD at day ``t``'s index (``Σ_p M_p·usd_rate_p``); the exceedance test itself is
made in each pool's currency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np

from portmargin._types import BoolArray, FloatArray
from portmargin.backtest.market import DEFAULT_SMILE, DayState, Smile, day_market, day_state
from portmargin.backtest.stats import Coverage, coverage, peak_to_trough
from portmargin.backtest.strategies import Book, Strategy, build_book
from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import InstrumentKind, Option
from portmargin.market import MarketSnapshot
from portmargin.methods import Method
from portmargin.models.model import MarginModel
from portmargin.models.session import MarginSession
from portmargin.portfolio import Portfolio
from portmargin.risk import instrument_table
from portmargin.units import USD, usd_rate
from portmargin.var.history import History
from portmargin.var.model import VarModel

__all__ = [
    "BacktestResult",
    "Exceedance",
    "ModelBacktest",
    "book_pnl",
    "method_confidence",
    "run_backtest",
]

Requirement = Literal["im", "mm"]
Progress = Callable[[int, int], None]
DEFAULT_CONFIDENCE = 0.99


@dataclass(frozen=True, slots=True)
class Exceedance:
    """One exceedance: the day, the margin and the realised loss (USD at day t's index)."""

    day: date
    margin: float
    loss: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"date": self.day.isoformat(), "margin": self.margin, "loss": self.loss}


@dataclass(frozen=True, slots=True)
class ModelBacktest:
    """One method's back-test (module docstring); series are aligned with ``days``."""

    model: str
    version: str
    confidence: float
    requirement: Requirement
    days: tuple[date, ...]
    margin: FloatArray
    loss: FloatArray
    hits: BoolArray
    stats: Coverage
    notional: FloatArray
    skipped: int = 0
    skip_reason: str = ""

    @property
    def mean_margin(self) -> float:
        """Mean requirement, USD."""
        return float(np.mean(self.margin))

    @property
    def peak_to_trough(self) -> float:
        """``max / min`` of the requirement per unit of notional (``M_t / N_t``)."""
        return peak_to_trough(self.margin / self.notional)

    @property
    def mean_margin_of_notional(self) -> float:
        """Mean of ``M_t / N_t``: the requirement as a fraction of the book's notional."""
        return float(np.mean(self.margin / self.notional))

    def worst(self, n: int = 5) -> list[Exceedance]:
        """The ``n`` exceedances with the largest ``loss − margin``, largest first."""
        idx = np.flatnonzero(self.hits)
        order = idx[np.argsort(-(self.loss[idx] - self.margin[idx]), kind="stable")][:n]
        return [
            Exceedance(self.days[int(i)], float(self.margin[i]), float(self.loss[i])) for i in order
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract's model entry, plus the details after ``peak_to_trough``."""
        s = self.stats
        return {
            "model": self.model,
            "days": s.days,
            "exceedances": s.exceedances,
            "coverage": s.coverage,
            "kupiec_pvalue": s.kupiec_pvalue,
            "christoffersen_pvalue": s.christoffersen_pvalue,
            "zone": s.zone,
            "mean_margin": self.mean_margin,
            "peak_to_trough": _finite(self.peak_to_trough),
            "model_version": self.version,
            "confidence": self.confidence,
            "requirement": self.requirement,
            "currency": USD,
            "conditional_coverage_pvalue": s.conditional_coverage_pvalue,
            "mean_margin_of_notional": self.mean_margin_of_notional,
            "mean_loss": float(np.mean(self.loss)),
            "max_loss": float(np.max(self.loss)),
            "skipped_days": self.skipped,
            "worst_exceedances": [e.to_dict() for e in self.worst()],
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """A back-test of one strategy under several methods."""

    strategy: str
    underlyings: tuple[str, ...]
    horizon_days: int
    start: date
    end: date
    tenor_days: int
    size: float
    step_days: int
    history: str
    models: tuple[ModelBacktest, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``portmargin backtest --format json`` (docs/backtest.md)."""
        return {
            "strategy": self.strategy,
            "underlying": "+".join(self.underlyings),
            "horizon_days": self.horizon_days,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "models": [m.to_dict() for m in self.models],
            "tenor_days": self.tenor_days,
            "size": self.size,
            "step_days": self.step_days,
            "history": self.history,
        }


def method_confidence(method: Method, given: float | None = None) -> float:
    """The confidence a method is tested at: ``given``, its VaR/ES level, else 99 %."""
    if given is not None:
        return given
    if isinstance(method, MarginModel) and method.params.risk_measure != "worst":
        return float(method.params.confidence)
    return DEFAULT_CONFIDENCE


# ---------------------------------------------------------------------------------------
def book_pnl(book: Book, before: MarketSnapshot, after: MarketSnapshot) -> dict[str, float]:
    """The book's P&L from ``before`` to ``after`` per pool currency (module docstring, 3).

    Returns ``{"USD": usd_pnl, "BTC": coin_pnl_of_BTC_items, ...}`` for every underlying
    of the book (coin P&L for inverse products; a linear product counts in ``USD`` only).
    """
    usd = 0.0
    coin: dict[str, float] = {}
    groups: dict[str, list[tuple[Any, float]]] = {}
    for name, qty in book.positions.items():
        inst = before.instrument(name)
        groups.setdefault(inst.underlying, []).append((inst, qty))
    for und, items in groups.items():
        insts = [x for x, _ in items]
        q = np.array([v for _, v in items])
        t0 = instrument_table(insts, before)
        t1 = instrument_table(insts, after)
        s0, s1 = before.index_price(und), after.index_price(und)
        mult = t0.multiplier
        is_opt = np.array([isinstance(x, Option) for x in insts])
        d1 = np.array([x.kind in (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE) for x in insts])
        inverse = t0.inverse
        f0 = np.where(is_opt, t0.F, s0)
        f1 = np.where(is_opt, t1.F, s1)
        p_usd = np.where(is_opt, t1.value_usd - t0.value_usd, np.where(d1, mult * (f1 - f0), 0.0))
        p_coin = np.where(
            is_opt,
            t1.value_usd / f1 - t0.value_usd / f0,
            np.where(d1, mult * (1.0 - f0 / f1), 0.0),
        )
        usd += float(q @ p_usd)
        coin[und] = coin.get(und, 0.0) + float(q[inverse] @ p_coin[inverse])
    for ccy, bal in book.cash.items():
        if ccy in after.underlyings and ccy in before.underlyings:
            usd += bal * (after.index_price(ccy) - before.index_price(ccy))
            coin.setdefault(ccy, 0.0)
    return {USD: usd, **coin}


def _requirements(
    method: Method,
    book: Book,
    market: MarketSnapshot,
    day: date,
    requirement: Requirement,
) -> dict[str, tuple[float, float]]:
    """``pool → (requirement in the pool currency, USD per unit)`` of ``method`` on day t."""
    if isinstance(method, MarginModel):
        model: MarginModel = method.at(day) if isinstance(method, VarModel) else method
        session = MarginSession(market, model, tuple(book.positions))
        res = session.margin_positions(book.positions, book.cash)
        fig = res.initial_margin if requirement == "im" else res.maintenance_margin
        return {
            pool: (float(fig[0, p]), usd_rate(pool, market))
            for p, pool in enumerate(res.pools)
            if res.present[0, p]
        }
    result = method.margin(Portfolio.of(book.positions, book.cash), market)
    return {
        p.currency: (
            p.initial_margin if requirement == "im" else p.maintenance_margin,
            p.usd_rate,
        )
        for p in result.by_currency
    }


@dataclass
class _Series:
    days: list[date] = field(default_factory=list)
    margin: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    notional: list[float] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)
    skipped: int = 0
    reason: str = ""


def run_backtest(
    strat: Strategy,
    underlyings: Sequence[str],
    methods: Sequence[tuple[str, Method]],
    *,
    history: History,
    start: date | None = None,
    end: date | None = None,
    horizon_days: int = 1,
    tenor_days: int = 30,
    size: float = 1.0,
    step_days: int = 1,
    seed: int = 0,
    requirement: Requirement = "im",
    confidence: float | None = None,
    smile: Smile = DEFAULT_SMILE,
    progress: Progress | None = None,
) -> BacktestResult:
    """Back-test ``strat`` on ``underlyings`` under ``methods`` (module docstring).

    Parameters
    ----------
    methods
        ``(label, method)`` pairs; a :class:`VarModel` is re-anchored to each day.
    start, end
        First and last day ``t`` (default: the first day with every DVOL, and the last day
        with ``t + h`` in the history).
    horizon_days
        ``h``, calendar days from the margin to the loss.
    step_days
        Days between books (``h`` gives non-overlapping losses).
    confidence
        Test every method at this level instead of its own (:func:`method_confidence`).
    progress
        Called with ``(done, total)`` after each day.

    Raises
    ------
    InputError
        For an empty period, a bad horizon or step, or a method that cannot margin any day.
    """
    unds = tuple(dict.fromkeys(underlyings))
    if not unds:
        raise InputError("--underlying: give at least one underlying")
    if not 1 <= horizon_days <= 30:
        raise InputError(f"--horizon {horizon_days}: must be 1 to 30 days")
    if step_days < 1:
        raise InputError(f"--step {step_days}: must be >= 1")
    first = history.joint_start(unds)
    last = history.last - timedelta(days=horizon_days)
    t_from = start or first
    t_to = end or last
    if t_from < first:
        raise InputError(
            f"--from {t_from}: before the first day with DVOL of {', '.join(unds)} ({first})"
        )
    if t_to > last:
        raise InputError(
            f"--to {t_to}: the loss needs {t_to + timedelta(days=horizon_days)}, after the "
            f"history's last day {history.last}"
        )
    if t_to < t_from:
        raise InputError(f"--from {t_from} is after --to {t_to}")
    days = [t_from + timedelta(days=k) for k in range(0, (t_to - t_from).days + 1, step_days)]
    series = {label: _Series() for label, _ in methods}
    total = len(days)
    for n_done, day in enumerate(days, start=1):
        s0: DayState = day_state(history, day, unds)
        s1 = day_state(history, day + timedelta(days=horizon_days), unds)
        book = build_book(
            strat,
            s0,
            unds,
            tenor_days=tenor_days,
            size=size,
            horizon_days=horizon_days,
            seed=seed,
            smile=smile,
        )
        names = tuple(n for n in book.positions if "PERPETUAL" not in n)
        m0 = day_market(s0, names, smile=smile)
        m1 = day_market(s1, names, smile=smile)
        pnl = book_pnl(book, m0, m1)
        notional = size * sum(s0.spot.values())
        for label, method in methods:
            ser = series[label]
            try:
                reqs = _requirements(method, book, m0, day, requirement)
            except PortmarginError as exc:
                ser.skipped += 1
                ser.reason = ser.reason or f"{day}: {exc}"
                continue
            margin_usd = 0.0
            loss_usd = 0.0
            hit = False
            for pool, (req, rate) in reqs.items():
                loss = -pnl.get(pool, 0.0)
                margin_usd += req * rate
                loss_usd += loss * rate
                hit = hit or loss > req * (1.0 + 1e-12) + 1e-12
            ser.days.append(day)
            ser.margin.append(margin_usd)
            ser.loss.append(loss_usd)
            ser.hits.append(hit)
            ser.notional.append(notional)
        if progress is not None:
            progress(n_done, total)
    out: list[ModelBacktest] = []
    for label, method in methods:
        ser = series[label]
        if not ser.days:
            raise InputError(f"--model {label}: could not margin any day ({ser.reason})")
        conf = method_confidence(method, confidence)
        hits = np.asarray(ser.hits, dtype=np.bool_)
        out.append(
            ModelBacktest(
                label,
                method.version,
                conf,
                requirement,
                tuple(ser.days),
                np.asarray(ser.margin),
                np.asarray(ser.loss),
                hits,
                coverage(hits, conf),
                np.asarray(ser.notional),
                ser.skipped,
                ser.reason,
            )
        )
    return BacktestResult(
        strat.name,
        unds,
        horizon_days,
        t_from,
        t_to,
        tenor_days,
        size,
        step_days,
        history.source,
        tuple(out),
    )
