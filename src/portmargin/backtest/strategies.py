r"""Strategy templates: books defined relative to the day's market.

A template is a list of legs, each an option at a **target delta** (Black-76 forward delta
on the day's smile, :func:`~portmargin.backtest.market.strike_for_delta`) or at the money
(strike = the forward), a quantity per unit of ``size`` (contracts of one coin, long > 0),
plus optional coin cash and a perpetual delta hedge. Every leg expires ``tenor`` days after
the day's close (08:00 UTC on that date); strikes are rounded to three significant figures
of the forward (70,000 → a 100 USD grid). A new book is struck every day (a constant-maturity
book, as in Eurex's product-level back-tests), so each observation is comparable.

| name | legs (per unit of size) |
|---|---|
| ``short-straddle`` | −1 ATM call, −1 ATM put |
| ``long-straddle`` | +1 ATM call, +1 ATM put |
| ``short-strangle`` | −1 25Δ call, −1 25Δ put |
| ``short-put`` | −1 25Δ put |
| ``put-spread`` | −1 25Δ put, +1 10Δ put (a short put spread) |
| ``covered-call`` | −1 25Δ call, +1 coin of cash |
| ``iron-condor`` | −1 25Δ put, +1 10Δ put, −1 25Δ call, +1 10Δ call |
| ``risk-reversal`` | −1 25Δ put, +1 25Δ call |
| ``delta-hedged-short-gamma`` | −1 ATM call, −1 ATM put, perpetual against the options' delta |
| ``random`` | 2–6 legs, tenor 7–90 d (above the horizon), 10–50Δ, ±1–3, seeded by the day |
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from portmargin.backtest.market import (
    DEFAULT_SMILE,
    DayState,
    Smile,
    expiry_after,
    option_name,
    round_strike,
    strike_for_delta,
)
from portmargin.errors import InputError
from portmargin.pricing import black76_delta

__all__ = ["STRATEGIES", "Book", "Leg", "Strategy", "build_book", "strategy"]

_YEAR = 365.0 * 86400.0


@dataclass(frozen=True, slots=True)
class Leg:
    """One option leg: ``delta`` (``0`` = at the money; > 0 call, < 0 put) and quantity."""

    delta: float
    quantity: float
    call: bool = True


@dataclass(frozen=True, slots=True)
class Strategy:
    """A template (module docstring)."""

    name: str
    description: str
    legs: tuple[Leg, ...] = ()
    cash_coins: float = 0.0
    hedge: bool = False
    random: bool = False


@dataclass(frozen=True, slots=True)
class Book:
    """A book struck on one day: positions (name → contracts) and cash (currency → amount)."""

    positions: Mapping[str, float]
    cash: Mapping[str, float] = field(default_factory=dict)


def _atm(quantity: float, *, call: bool) -> Leg:
    return Leg(0.0, quantity, call)


STRATEGIES: Mapping[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "short-straddle", "short ATM call and put", (_atm(-1, call=True), _atm(-1, call=False))
        ),
        Strategy(
            "long-straddle", "long ATM call and put", (_atm(1, call=True), _atm(1, call=False))
        ),
        Strategy(
            "short-strangle",
            "short 25-delta call and put",
            (Leg(0.25, -1, True), Leg(-0.25, -1, False)),
        ),
        Strategy("short-put", "short 25-delta put", (Leg(-0.25, -1, False),)),
        Strategy(
            "put-spread",
            "short 25-delta put, long 10-delta put",
            (Leg(-0.25, -1, False), Leg(-0.10, 1, False)),
        ),
        Strategy(
            "covered-call", "short 25-delta call against one coin", (Leg(0.25, -1, True),), 1.0
        ),
        Strategy(
            "iron-condor",
            "short 25-delta strangle, long 10-delta wings",
            (Leg(-0.25, -1, False), Leg(-0.10, 1, False), Leg(0.25, -1, True), Leg(0.10, 1, True)),
        ),
        Strategy(
            "risk-reversal",
            "short 25-delta put, long 25-delta call",
            (Leg(-0.25, -1, False), Leg(0.25, 1, True)),
        ),
        Strategy(
            "delta-hedged-short-gamma",
            "short ATM straddle, delta hedged with the perpetual",
            (_atm(-1, call=True), _atm(-1, call=False)),
            hedge=True,
        ),
        Strategy("random", "2-6 random legs, seeded by the day", random=True),
    )
}


def strategy(name: str) -> Strategy:
    """The template called ``name``.

    Raises
    ------
    InputError
        For an unknown name, listing the known ones.
    """
    s = STRATEGIES.get(name)
    if s is None:
        raise InputError(f"--strategy {name!r}: unknown (known: {', '.join(STRATEGIES)})")
    return s


def _strike(state: DayState, und: str, years: float, leg: Leg, smile: Smile) -> tuple[float, bool]:
    f = state.spot[und]
    if leg.delta == 0.0:
        return round_strike(f, f), leg.call
    k = strike_for_delta(state, und, years, leg.delta, smile)
    return round_strike(k, f), leg.delta > 0


def build_book(
    strat: Strategy,
    state: DayState,
    underlyings: tuple[str, ...],
    *,
    tenor_days: int,
    size: float,
    horizon_days: int,
    seed: int = 0,
    smile: Smile = DEFAULT_SMILE,
) -> Book:
    """The book of ``strat`` struck on ``state`` for each of ``underlyings``.

    Raises
    ------
    InputError
        If the tenor does not outlive the horizon (a leg would expire inside it).
    """
    if tenor_days <= horizon_days:
        raise InputError(
            f"--tenor {tenor_days}: must exceed --horizon {horizon_days} (a leg would expire "
            "before the loss is measured)"
        )
    if not (math.isfinite(size) and size > 0):
        raise InputError(f"--size {size!r}: must be a positive number of contracts")
    positions: dict[str, float] = {}
    cash: dict[str, float] = {}
    for und in underlyings:
        legs: list[tuple[Leg, int]]
        if strat.random:
            rng = np.random.default_rng(
                np.random.SeedSequence([seed, state.day.toordinal(), sum(map(ord, und))])
            )
            tenors = [d for d in (7, 14, 30, 60, 90) if d > horizon_days] or [horizon_days + 1]
            legs = []
            for _ in range(int(rng.integers(2, 7))):
                call = bool(rng.integers(0, 2))
                d = float(rng.uniform(0.10, 0.50))
                q = float(rng.choice([-3, -2, -1, 1, 2, 3]))
                legs.append((Leg(d if call else -d, q, call), int(rng.choice(tenors))))
        else:
            legs = [(leg, tenor_days) for leg in strat.legs]
        book_delta = 0.0
        for leg, tenor in legs:
            expiry = expiry_after(state.time, tenor)
            tau = (expiry - state.time).total_seconds() / _YEAR
            strike, call = _strike(state, und, tau, leg, smile)
            name = option_name(und, expiry, strike, call=call)
            qty = leg.quantity * size
            positions[name] = positions.get(name, 0.0) + qty
            if strat.hedge:
                f = state.spot[und]
                sig = smile.vol(state.dvol[und], np.array([math.log(strike / f)]), np.array([tau]))
                book_delta += qty * float(black76_delta(f, strike, tau, sig, np.array([call]))[0])
        if strat.cash_coins:
            cash[und] = cash.get(und, 0.0) + strat.cash_coins * size
        if strat.hedge and book_delta != 0.0:
            positions[f"{und}-PERPETUAL"] = -book_delta
    positions = {k: v for k, v in positions.items() if v != 0.0}
    return Book(positions, cash)
