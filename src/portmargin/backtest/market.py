r"""Each historical day as a market: spot and a DVOL-based vol surface with a smile.

For day ``d`` of the history (:class:`~portmargin.var.history.History`) the market is the
end of that UTC day (``d + 1``, 00:00 UTC), with for each underlying its close ``S`` as the
index, ``r = 0`` and no futures, so every forward is ``F = S`` (as Deribit reprices on
forwards at r = 0), and option quotes whose mark vols follow the **documented smile**::

    σ_ATM        = a·DVOL/100
    x            = clip( ln(K/F) / (σ_ATM·√T), −x_max, x_max )      standardised moneyness
    σ(K, T)      = σ_ATM·(1 + b·x + c·x²)                            flat beyond ±x_max
    a = 0.96, b = −0.10, c = 0.06, x_max = 2.5;  one level for every expiry (flat term)

The parameters are fitted to Deribit's BTC and ETH chains of 2026-02-04 21:33Z and
2026-02-05 21:29Z (every listed option 2 days to 11 months out, least squares of
``σ/σ_ATM`` on ``x`` within ``|x| < 2.5``): ``b`` from −0.08 (calm) to −0.16 (crash),
``c`` 0.05–0.07, and the 30-day ATM vol 0.95–1.0 × DVOL. DVOL is a 30-day variance-style
index over the whole smile, so it sits above the ATM vol (``a < 1``). The term structure is
flat: the chains show short expiries 10–50 % above the 30-day level on the crash day, which
a single index cannot carry (a limitation stated in ``docs/backtest.md``).

The market is built with :func:`portmargin.market.build_market`, so every method (scenario
models, rule sets) margins it as any other snapshot; the options quoted are the book's own
plus a reference smile per expiry (so unquoted strikes interpolate on the same smile).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from portmargin._types import FloatArray
from portmargin.errors import InputError
from portmargin.instruments import Option, expiry_code, parse_instrument
from portmargin.market import MarketSnapshot, OptionQuote, UnderlyingQuote, build_market
from portmargin.var.history import History

__all__ = [
    "DEFAULT_SMILE",
    "DayState",
    "Smile",
    "day_market",
    "day_state",
    "expiry_after",
    "option_name",
    "strike_for_delta",
]

_EXPIRY_HOUR = 8  # Deribit expiries: 08:00 UTC


@dataclass(frozen=True, slots=True)
class Smile:
    """The smile of the module docstring (``σ_ATM = a·DVOL``, ``1 + b·x + c·x²``)."""

    atm_ratio: float = 0.96
    skew: float = -0.10
    curvature: float = 0.06
    x_max: float = 2.5

    def vol(self, dvol_points: float, k: FloatArray, years: FloatArray) -> FloatArray:
        """Mark vol (decimal) at log-moneyness ``k = ln(K/F)`` and ``years`` to expiry."""
        atm = self.atm_ratio * dvol_points / 100.0
        t = np.maximum(np.asarray(years, dtype=np.float64), 1e-6)
        x = np.clip(np.asarray(k, dtype=np.float64) / (atm * np.sqrt(t)), -self.x_max, self.x_max)
        out: FloatArray = atm * (1.0 + self.skew * x + self.curvature * x * x)
        return out


DEFAULT_SMILE = Smile()


@dataclass(frozen=True, slots=True)
class DayState:
    """One day of the history as market inputs: its time, spots and DVOL levels."""

    day: date
    time: datetime
    spot: Mapping[str, float]
    dvol: Mapping[str, float]


def day_state(history: History, day: date, underlyings: Iterable[str]) -> DayState:
    """The inputs of day ``day`` for ``underlyings``.

    Raises
    ------
    InputError
        If the day is outside the history or an underlying has no DVOL that day.
    """
    i = history.index(day)
    spot: dict[str, float] = {}
    dvol: dict[str, float] = {}
    for u in underlyings:
        history.require(u)
        v = history.dvol.get(u)
        if v is None or not math.isfinite(float(v[i])):
            raise InputError(f"{history.source}: {u} has no DVOL on {day}")
        spot[u] = float(history.closes[u][i])
        dvol[u] = float(v[i])
    return DayState(day, History.close_time(day), spot, dvol)


def expiry_after(t: datetime, days: float) -> datetime:
    """The 08:00 UTC expiry on the date ``days`` after ``t`` (rounded to a whole date)."""
    d = (t + timedelta(days=days)).date()
    return datetime.combine(d, time(_EXPIRY_HOUR, 0), tzinfo=UTC)


def strike_step(forward: float) -> float:
    """Strike grid: three significant figures of the forward (70,000 → 100; 2,100 → 10)."""
    return float(10.0 ** (math.floor(math.log10(forward)) - 2))


def option_name(underlying: str, expiry: datetime, strike: float, *, call: bool) -> str:
    """Deribit-style name; the strike rounded to :func:`strike_step`'s grid beforehand."""
    text = str(int(strike)) if float(strike).is_integer() else f"{strike:.8g}"
    return f"{underlying}-{expiry_code(expiry)}-{text}-{'C' if call else 'P'}"


def round_strike(strike: float, forward: float) -> float:
    """``strike`` on the grid of :func:`strike_step` (never below one step)."""
    step = strike_step(forward)
    k = max(round(strike / step), 1) * step
    return float(round(k, 10))


def strike_for_delta(
    state: DayState, underlying: str, years: float, delta: float, smile: Smile = DEFAULT_SMILE
) -> float:
    r"""The strike whose Black-76 forward delta on the smile is ``delta`` (unrounded).

    ``delta > 0`` a call delta (0.25: the 25-delta call), ``< 0`` a put delta. Bisection in
    log-moneyness on ``Δ(k) = N(d1)`` (call) or ``N(d1) − 1`` (put), ``σ = σ(k)`` of the
    smile, which is monotone in ``k`` over the smile's range.
    """
    if not (0.0 < abs(delta) < 1.0):
        raise InputError(f"delta {delta!r}: must be in (−1, 0) or (0, 1)")
    f = state.spot[underlying]
    atm = smile.atm_ratio * state.dvol[underlying] / 100.0
    sq = math.sqrt(max(years, 1e-6))
    target = delta if delta > 0 else 1.0 + delta  # N(d1) of the call with the same strike
    lo, hi = -5.0, 5.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        x = min(max(mid / (atm * sq), -smile.x_max), smile.x_max)
        sig = atm * (1.0 + smile.skew * x + smile.curvature * x * x)
        d1 = (-mid + 0.5 * sig * sig * years) / (sig * sq)
        if 0.5 * math.erfc(-d1 / math.sqrt(2.0)) > target:  # N(d1) falls as the strike rises
            lo = mid
        else:
            hi = mid
    return f * math.exp(0.5 * (lo + hi))


def day_market(
    state: DayState,
    options: Sequence[str] = (),
    *,
    smile: Smile = DEFAULT_SMILE,
    reference: bool = False,
    source: str = "history",
) -> MarketSnapshot:
    """The market of ``state`` with ``options`` quoted on the smile (module docstring).

    ``reference`` adds, for every expiry of ``options``, a reference smile of 13 strikes
    from −3 to +3 ATM standard deviations, so the surface of the snapshot is the smile.
    Options that expired by the state's time are skipped (the caller settles them).
    """
    t0 = state.time
    quotes: dict[str, OptionQuote] = {}
    insts = [parse_instrument(n) for n in options]
    expiries: dict[tuple[str, datetime], None] = {}
    for inst in insts:
        if not isinstance(inst, Option):
            continue
        if inst.expiry <= t0:
            continue
        expiries[(inst.underlying, inst.expiry)] = None
    names: list[str] = [x.name for x in insts if isinstance(x, Option) and x.expiry > t0]
    if reference:
        for und, exp in expiries:
            tau = (exp - t0).total_seconds() / (365.0 * 86400.0)
            f = state.spot[und]
            atm = smile.atm_ratio * state.dvol[und] / 100.0
            for z in np.linspace(-3.0, 3.0, 13):
                k = round_strike(f * math.exp(float(z) * atm * math.sqrt(tau)), f)
                for call in (True, False):
                    names.append(option_name(und, exp, k, call=call))
    for name in dict.fromkeys(names):
        inst = parse_instrument(name)
        assert isinstance(inst, Option)
        und = inst.underlying
        if und not in state.spot:
            raise InputError(f"{name}: no {und} in the day's market")
        tau = (inst.expiry - t0).total_seconds() / (365.0 * 86400.0)
        k = math.log(inst.strike / state.spot[und])
        vol = float(smile.vol(state.dvol[und], np.array([k]), np.array([tau]))[0])
        quotes[name] = OptionQuote(mark_iv=vol)
    return build_market(
        valuation_time=t0,
        underlyings={u: UnderlyingQuote(s) for u, s in state.spot.items()},
        options=quotes,
        source=f"{source} {state.day}",
    )
