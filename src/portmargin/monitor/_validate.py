r"""Validation of input events, and how a market line updates an underlying's state.

Every input event is checked before anything is applied; a refused event is recorded as a
``rejected`` event with a one-line reason (:class:`RejectedError`) and the cursor moves past it.

=====================  =========================================================  ==========
field                  accepted                                                   unit
=====================  =========================================================  ==========
``seq``                an integer in ``[1, 2^63 − 1]``, above the last one        —
``time``               ISO-8601 with a zone, in ``[2000-01-01, 2100-01-01)``,     UTC
                       not before the feed time (the last accepted market time)
``underlying``         an underlying of the products (BTC, ETH, or the seed        —
                       market's ``products``)
``index``,             ``[1e-8, 1e9]`` (:mod:`portmargin.market.limits`)           USD
``perpetual``,
``forwards``,
``settlements``
``vols``               ``(0, 10]``, options of the line's underlying              decimal
``rate``               ``[−1, 1]``                                                /year
``quantity``           finite, non-zero, ``|q| ≤ 1e9``; the position after the     contracts
                       trade too
``amount``             finite, ``0 < amount ≤ 1e12``                               currency
                                                                                  units
balance after a        ``|balance| ≤ 1e12``; a withdrawal at most the balance      currency
change                                                                            units
=====================  =========================================================  ==========

Instruments must be parseable, listed by the market (options quoted or on the surface of a
quoted underlying, futures marked) and not expired; currencies must be one of
:data:`~portmargin.accounts.BALANCE_CURRENCIES`. The figures an event produces must be
finite (:func:`finite_figures`). The bounds keep every derived number finite in float64:
``1e9`` contracts × ``1e9`` USD is ``1e18``, far from the ``1.8e308`` overflow.

**Partial market updates.** A market line updates the underlying's previous state, with the
conventions of :func:`portmargin.market.shift` (the basis to the index kept, vols sticky
strike): with ``x = index₁ / index₀``::

    perpetual₁ = the line's perpetual,  else perpetual₀ · x
    F₁(e)      = the line's forward F(e), else F₀(e) · x          (the basis F/S is kept)
    σ₁(option) = the line's vol,        else σ₀(option)           (sticky strike)
    r₁         = the line's rate,       else r₀ (0 at first)

and forwards and vols of expiries at or before the line's time are dropped. A line that
restates every field (the replay and simulated feeds do) is the new state as it is.

**Settlement prices.** When a line of underlying ``u`` at ``t₁`` passes an expiry ``e`` of
``u`` (``t₀ < e ≤ t₁``, ``t₀`` the previous update), ``e`` settles at the line's
``settlements[e]`` if given, else at the index interpolated linearly in time::

    P(e) = S₀ + (S₁ − S₀) · (e − t₀) / (t₁ − t₀)

Deribit settles on the time-weighted average of the index over the 30 minutes before 08:00
UTC (https://support.deribit.com/hc/en-us/articles/25944751433757); a feed that knows the
delivery price (Deribit's ``public/get_delivery_prices``) should send it in
``settlements``. A settlement price, once applied, does not change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType

import numpy as np

from portmargin.accounts import (
    BALANCE_CURRENCIES,
    Account,
    AccountMargin,
    instrument_known,
    trade_cash,
)
from portmargin.errors import PortmarginError
from portmargin.instruments import Option, expiry_code
from portmargin.market import limits
from portmargin.market.snapshot import MarketSnapshot
from portmargin.monitor._events import SEQ_MAX, AccountChange, MarketUpdate, one_line
from portmargin.units import iso_z

__all__ = [
    "AMOUNT_MAX",
    "BALANCE_MAX",
    "QUANTITY_MAX",
    "RejectedError",
    "check_change",
    "check_market",
    "check_seq",
    "check_time",
    "finite_figures",
    "merged_state",
    "settlement_prices",
]

QUANTITY_MAX = 1e9
"""Largest absolute trade quantity and position, contracts."""
AMOUNT_MAX = 1e12
"""Largest deposit or withdrawal, units of its currency."""
BALANCE_MAX = 1e12
"""Largest absolute balance an account change may leave, units of the currency."""


class RejectedError(Exception):
    """An input event refused; the message is the one-line reason recorded with it."""


def _checked(check: Callable[[object, str], float], value: object, field: str) -> float:
    try:
        return check(value, field)
    except PortmarginError as exc:
        raise RejectedError(one_line(exc)) from None


def check_seq(seq: int, last_seq: int) -> None:
    """``seq`` is in ``[1, 2^63 − 1]`` and above ``last_seq`` (else :class:`RejectedError`)."""
    if not 1 <= seq <= SEQ_MAX:
        raise RejectedError(f"seq: {seq} is outside [1, 2^63 - 1]")
    if seq <= last_seq:
        raise RejectedError(f"seq: {seq} is not above the last sequence number {last_seq}")


def check_time(t: datetime, feed_time: datetime | None) -> datetime:
    """``t`` in ``[2000, 2100)`` with a zone, not before ``feed_time``; returned in UTC."""
    try:
        utc = limits.check_time(t, "time")
    except PortmarginError as exc:
        raise RejectedError(one_line(exc)) from None
    if feed_time is not None and utc < feed_time:
        when, feed = iso_z(utc), iso_z(feed_time)
        raise RejectedError(f"stale timestamp {when} is before the feed time {feed}")
    return utc


def check_market(
    item: MarketUpdate,
    *,
    underlyings: Collection[str],
    option_underlying: Callable[[str], str],
) -> None:
    """Bounds of a market line (module docstring); :class:`RejectedError` names the field.

    ``option_underlying(name)`` resolves an option name to its underlying (raising for a name
    that is not an option); it is only called for names to check.
    """
    u = item.underlying
    if u not in underlyings:
        known = ", ".join(sorted(underlyings))
        name = one_line(repr(u), 40)
        raise RejectedError(f"underlying: unknown underlying {name} (known: {known})")
    _checked(limits.check_price, item.index, f"{u}: index")
    if item.perpetual is not None:
        _checked(limits.check_price, item.perpetual, f"{u}: perpetual")
    if item.rate is not None:
        _checked(limits.check_rate, item.rate, f"{u}: rate")
    for e, f in item.forwards.items():
        _checked(limits.check_price, f, f"{u}: forwards.{expiry_code(e)}")
    for e, p in item.settlements.items():
        _checked(limits.check_price, p, f"{u}: settlements.{expiry_code(e)}")
        if e > item.time:
            raise RejectedError(
                f"{u}: settlements.{expiry_code(e)}: the expiry {iso_z(e)} is after the line's "
                f"time {iso_z(item.time)}"
            )
    vols = np.fromiter(item.vols.values(), dtype=np.float64, count=len(item.vols))
    bad = ~(np.isfinite(vols) & (vols > 0.0) & (vols <= limits.VOL_MAX))
    if bad.any():
        name = list(item.vols)[int(np.flatnonzero(bad)[0])]
        _checked(limits.check_vol, item.vols[name], f"{u}: vols.{one_line(name, 60)}")
    for name in item.vols:
        try:
            owner = option_underlying(name)
        except PortmarginError as exc:
            raise RejectedError(f"{u}: vols: {one_line(exc)}") from None
        if owner != u:
            raise RejectedError(f"{u}: vols: {name} is an option on {owner}, not on {u}")


def merged_state(
    prev: MarketUpdate | None, item: MarketUpdate, expiry_of: Callable[[str], datetime]
) -> MarketUpdate:
    """The underlying's state after ``item`` (partial update, module docstring).

    ``expiry_of(name)`` is an option's expiry. Forwards and vols of expiries at or before
    ``item.time`` are dropped. With no previous state the line is the state.
    """
    t = item.time
    if prev is None:
        forwards = dict(item.forwards)
        vols = dict(item.vols)
        perp, rate = item.perpetual, item.rate
    else:
        x = item.index / prev.index
        forwards = {e: f * x for e, f in prev.forwards.items() if e not in item.forwards}
        forwards.update(item.forwards)
        vols = {n: v for n, v in prev.vols.items() if n not in item.vols}
        vols.update(item.vols)
        perp = item.perpetual
        if perp is None and prev.perpetual is not None:
            perp = prev.perpetual * x
        rate = prev.rate if item.rate is None else item.rate
    forwards = {e: f for e, f in forwards.items() if e > t}
    if any(expiry_of(n) <= t for n in vols):
        vols = {n: v for n, v in vols.items() if expiry_of(n) > t}
    return MarketUpdate(
        item.seq,
        t,
        item.underlying,
        item.index,
        perp,
        MappingProxyType(forwards),
        MappingProxyType(vols),
        MappingProxyType({}),
        rate,
        item.position,
    )


def settlement_prices(
    prev: MarketUpdate | None,
    item: MarketUpdate,
    expiries: Iterable[datetime],
    known: Mapping[datetime, float],
) -> dict[datetime, float]:
    """New settlement prices (USD) of the underlying's expiries passed by ``item``.

    ``expiries`` are the underlying's expiries the monitor knows of (held, quoted or
    forwarded); ``known`` the settlement prices already applied, by expiry. The line's own
    ``settlements`` win; otherwise an expiry ``t₀ < e ≤ t₁`` settles at the index
    interpolated between the previous update ``(t₀, S₀)`` and this one ``(t₁, S₁)`` (module
    docstring), or at ``S₁`` if ``e = t₁``. With no previous update only the line's
    settlements and an expiry exactly at its time are known.

    Raises
    ------
    RejectedError
        If the line restates an applied settlement price with another value.
    """
    t1, s1 = item.time, item.index
    out: dict[datetime, float] = {}
    for e, p in item.settlements.items():
        have = known.get(e)
        if have is not None and have != p:
            raise RejectedError(
                f"{item.underlying}: settlements.{expiry_code(e)}: {p!r} differs from the "
                f"settlement price {have!r} already applied"
            )
        if have is None:
            out[e] = p
    for e in set(expiries):
        if e in known or e in out or e > t1:
            continue
        if e == t1:
            out[e] = s1
        elif prev is not None and prev.time < e:
            t0, s0 = prev.time, prev.index
            out[e] = s0 + (s1 - s0) * ((e - t0) / (t1 - t0))
    return out


def _balance_after(acct: Account, cash: Mapping[str, float]) -> None:
    for ccy, delta in cash.items():
        after = acct.balances.get(ccy, 0.0) + delta
        if not (math.isfinite(after) and abs(after) <= BALANCE_MAX):
            raise RejectedError(
                f"the {ccy} balance would be {after:.6g}, beyond ±{BALANCE_MAX:g} {ccy}"
            )


def check_change(acct: Account, item: AccountChange, market: MarketSnapshot) -> Account:
    """The account after ``item``, validated (module docstring); :class:`RejectedError` says why."""
    if item.kind == "trade":
        q = item.quantity
        if not (math.isfinite(q) and q != 0 and abs(q) <= QUANTITY_MAX):
            raise RejectedError(
                f"trade quantity {q!r} must be finite, non-zero and at most {QUANTITY_MAX:g} "
                "contracts in absolute value"
            )
        try:
            inst = market.instrument(item.instrument)
        except PortmarginError as exc:
            raise RejectedError(f"unknown instrument: {one_line(exc)}") from None
        if inst.expiry is not None and market.is_expired(inst):
            raise RejectedError(f"instrument {inst.name} expired at {iso_z(inst.expiry)}")
        if not instrument_known(inst.name, market):
            name = one_line(repr(item.instrument), 60)
            raise RejectedError(f"unknown instrument {name} (not listed in the market)")
        pos = acct.positions.get(inst.name, 0.0) + q
        if abs(pos) > QUANTITY_MAX:
            raise RejectedError(
                f"the position in {inst.name} would be {pos:.6g} contracts, beyond "
                f"±{QUANTITY_MAX:g}"
            )
        trades = {inst.name: q}
        cash = trade_cash(trades, market)
        _balance_after(acct, cash)
        return acct.with_trades(trades, cash)
    ccy = item.currency.upper()
    if ccy not in BALANCE_CURRENCIES:
        known = ", ".join(sorted(BALANCE_CURRENCIES))
        name = one_line(repr(item.currency), 40)
        raise RejectedError(f"unsupported currency {name} (use {known})")
    amount = item.amount
    if not (math.isfinite(amount) and 0 < amount <= AMOUNT_MAX):
        raise RejectedError(
            f"{item.kind} amount {amount!r} must be a finite number in (0, {AMOUNT_MAX:g}] {ccy}"
        )
    sign = 1.0 if item.kind == "deposit" else -1.0
    have = acct.balances.get(ccy, 0.0)
    if sign < 0 and have < amount:
        raise RejectedError(f"withdrawal of {amount:g} {ccy} exceeds the balance {have:g} {ccy}")
    _balance_after(acct, {ccy: sign * amount})
    return acct.with_trades({}, {ccy: sign * amount})


def finite_figures(m: AccountMargin) -> str | None:
    """``None`` if every pool figure of ``m`` is finite, else which one is not (one line)."""
    for p in m.pools:
        for name in ("initial_margin", "maintenance_margin", "equity", "haircut", "usd_rate"):
            v = getattr(p, name)
            if not math.isfinite(v):
                return f"pool {p.currency}: {name} is {v!r}, not a finite number"
    return None


def option_underlying_of(market: MarketSnapshot) -> Callable[[str], str]:
    """Resolve an option name to its underlying on ``market``'s products (raises otherwise)."""

    def resolve(name: str) -> str:
        inst = market.instrument(name)
        if not isinstance(inst, Option):
            raise RejectedError(f"{name} is not an option")
        return inst.underlying

    return resolve
