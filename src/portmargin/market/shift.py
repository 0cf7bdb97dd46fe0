r"""Market perturbations: functions from a snapshot to a new, validated snapshot.

As in OpenGamma Strata's scenario framework ("the original market data must not be altered;
instead a perturbed copy must be returned", ``OpenGamma/Strata:modules/data/src/main/java/
com/opengamma/strata/data/scenario/ScenarioPerturbation.java@39c46e3``), :func:`shift` never
mutates its input: it rebuilds a :class:`~portmargin.market.MarketSnapshot` through
:func:`~portmargin.market.build_market`, so every derived field (carry curve, option marks,
vol surfaces, warnings) is consistent with the moved inputs and every bound is checked again.

For an underlying ``u`` moved by a spot factor ``x_u``::

    S' = x_u·S        perpetual' = x_u·perpetual
    F'(expiry) = x_u·F(expiry)    for every dated-future mark and explicit forward of u
    σ'(option) = σ·vol_u + vol_add_u                   (sticky strike: the option's own vol)
    r' = r + rate_u

Options of a moved underlying (spot, vol, rate, or any underlying when the time moves) are
requoted by their mark vol ``σ'`` (their mark price is Black-76 again at the new inputs); the
options of an underlying that does not move keep their quotes exactly as given. Settlement
prices of past expiries never move. Moving the valuation time forward drops the quotes and
marks of instruments that expire on the way (they become settled; pass their settlement
prices in ``settlements``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

from portmargin.errors import MarketDataError
from portmargin.market.limits import fmt
from portmargin.market.snapshot import MarketSnapshot, OptionQuote, UnderlyingQuote, build_market

__all__ = ["shift"]

PerUnderlying = float | Mapping[str, float] | None
"""One number for every underlying, a number per underlying, or ``None`` (no change)."""


def _per_underlying(
    value: PerUnderlying, what: str, market: MarketSnapshot, neutral: float
) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        out = {str(u): float(v) for u, v in value.items()}
    else:
        out = dict.fromkeys(market.underlyings, float(value))
    for u, v in out.items():
        if u not in market.underlyings:
            raise MarketDataError(f"shift: {what}: no underlying {u!r} in market")
        if not math.isfinite(v) or (what == "spot" and v <= 0):
            raise MarketDataError(
                f"shift: {what}.{u}: must be a {'positive ' if what == 'spot' else ''}"
                f"finite number, got {fmt(v)}"
            )
    return {u: v for u, v in out.items() if v != neutral}


def shift(
    market: MarketSnapshot,
    *,
    spot: PerUnderlying = None,
    vol: PerUnderlying = None,
    vol_add: PerUnderlying = None,
    rate: PerUnderlying = None,
    time: timedelta | datetime | None = None,
    settlements: Mapping[tuple[str, datetime], float] | None = None,
) -> MarketSnapshot:
    """A new snapshot with ``market``'s inputs perturbed (see the module docstring).

    Parameters
    ----------
    market
        The snapshot to perturb; it is not changed.
    spot
        Price factor ``x`` (``0.97`` = −3 %) for every underlying, or per underlying: moves
        the index, the perpetual, the dated-future marks and the explicit forwards together.
    vol
        Factor on every option's mark vol (``1.1`` = vols up 10 % relative).
    vol_add
        Absolute shift added to every option's mark vol after ``vol`` (``0.05`` = +5 vol
        points).
    rate
        Absolute shift of the underlying's continuously compounded rate (per year).
    time
        A ``timedelta`` to move the valuation time by, or the new (aware) valuation time.
    settlements
        Settlement prices (USD) to add, by ``(underlying, expiry)``, for expiries passed
        when moving the time forward.

    Returns
    -------
    MarketSnapshot
        Built by :func:`~portmargin.market.build_market`, so bounds are checked again and
        derived data is consistent.

    Raises
    ------
    MarketDataError
        ``shift: ...`` for a bad factor, an unknown underlying, or a perturbed input out of
        the bounds of :mod:`portmargin.market.limits` (e.g. a vol pushed to 0 or below).
    """
    x = _per_underlying(spot, "spot", market, 1.0)
    vk = _per_underlying(vol, "vol", market, 1.0)
    va = _per_underlying(vol_add, "vol_add", market, 0.0)
    dr = _per_underlying(rate, "rate", market, 0.0)
    if time is None:
        t1 = market.valuation_time
    elif isinstance(time, timedelta):
        t1 = market.valuation_time + time
    else:
        t1 = time
    moved_time = t1 != market.valuation_time
    moved = set(market.underlyings) if moved_time else {*x, *vk, *va, *dr}

    underlyings = {
        u: UnderlyingQuote(
            q.spot * x.get(u, 1.0),
            q.rate + dr.get(u, 0.0),
            None if q.perpetual is None else q.perpetual * x.get(u, 1.0),
        )
        for u, q in market.underlyings.items()
    }
    futures: dict[str, float] = {}
    for name, mark in market.futures.items():
        inst = market.instrument(name)
        if inst.expiry is None or inst.expiry > t1:
            futures[name] = mark * x.get(inst.underlying, 1.0)
    forwards = {(u, e): f * x.get(u, 1.0) for (u, e), f in market.forwards.items()}
    settled = {k: p for k, p in market.settlements.items() if k[1] <= t1}
    settled.update(settlements or {})
    options: dict[str, OptionQuote] = {}
    for name, quote in market.quotes.items():
        inst = market.instrument(name)
        if inst.expiry is not None and inst.expiry <= t1:
            continue
        u = inst.underlying
        if u in moved:
            sigma = market.option_iv[name] * vk.get(u, 1.0) + va.get(u, 0.0)
            options[name] = OptionQuote(mark_iv=sigma)
        else:
            options[name] = quote
    try:
        return build_market(
            valuation_time=t1,
            underlyings=underlyings,
            products=market.products,
            futures=futures,
            forwards=forwards,
            options=options,
            settlements=settled,
            source=market.source,
        )
    except MarketDataError as exc:
        raise MarketDataError(f"shift: {exc}") from None
