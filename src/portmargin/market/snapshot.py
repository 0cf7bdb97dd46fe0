r"""The market snapshot: everything needed to value instruments at one valuation time.

A :class:`MarketSnapshot` is an immutable value built by :func:`build_market`, which
validates the inputs and derives what is missing:

* **Forwards per expiry**: an explicit forward (a dated future's mark, or a chain's forward)
  wins; otherwise the carry ``b = ln(F/S)/T`` implied by the known forwards of that
  underlying is interpolated linearly in T (flat beyond them) and ``F = S·e^{bT}``; with no
  known forward at all, ``F = S·e^{rT}`` with the underlying's rate ``r``.
* **Option marks**: each quote has a mark implied vol and/or a mark price in its quote
  currency (coin for inverse products, USD for linear). A missing price is Black-76 at the
  vol; a missing vol is the implied vol of the price. A price with no implied vol (outside
  the no-arbitrage bounds) is an error naming the option, never a silent NaN.
* **Unquoted options** take their vol from a :class:`~portmargin.market.surface.VolSurface`
  built from the quoted ones.

Time is ACT/365 from exact timestamps: ``τ = seconds / 31,536,000``. Discount factors are
``e^{−rT}`` with the underlying's rate (0 for Deribit, which reprices on forwards at r = 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import numpy as np

from portmargin._types import FloatArray
from portmargin.errors import MarketDataError
from portmargin.instruments import (
    BUILTIN_PRODUCTS,
    Future,
    Instrument,
    InstrumentKind,
    Option,
    Perpetual,
    ProductSpec,
    parse_instrument,
)
from portmargin.market.surface import VolSurface
from portmargin.pricing import black76_price, implied_vol

__all__ = [
    "SECONDS_PER_YEAR",
    "MarketSnapshot",
    "OptionQuote",
    "UnderlyingQuote",
    "build_market",
    "year_fraction",
]

SECONDS_PER_YEAR = 365.0 * 86400.0


def year_fraction(start: datetime, end: datetime) -> float:
    """ACT/365 year fraction between two aware timestamps (negative if ``end`` < ``start``)."""
    return (end - start).total_seconds() / SECONDS_PER_YEAR


@dataclass(frozen=True, slots=True)
class UnderlyingQuote:
    """Spot/index, rate and perpetual mark of one underlying.

    Attributes
    ----------
    spot
        Index price in USD, > 0.
    rate
        Continuously compounded annual rate for ``S·e^{rT}`` forwards and discounting.
    perpetual
        Perpetual mark in USD; the index when absent.
    """

    spot: float
    rate: float = 0.0
    perpetual: float | None = None


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """A mark implied vol and/or mark price (quote currency per unit of underlying)."""

    mark_iv: float | None = None
    mark_price: float | None = None


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Immutable market state at ``valuation_time``; build it with :func:`build_market`.

    Attributes
    ----------
    valuation_time
        The explicit "now" of every calculation on this snapshot (aware UTC).
    products
        Product specifications (built-in BTC/ETH plus any from the market file).
    underlyings
        Spot/rate/perp per underlying.
    forwards
        Explicit forwards: ``(underlying, expiry) → USD``.
    futures
        Dated-future marks in USD by canonical instrument name.
    option_iv, option_price
        Complete mark vol and mark price (quote currency) of every quoted option.
    surfaces
        Vol surface per underlying, built from the quoted options.
    source
        Where the snapshot came from (file name or ``"demo"``), for reports.
    """

    valuation_time: datetime
    products: Mapping[str, ProductSpec]
    underlyings: Mapping[str, UnderlyingQuote]
    forwards: Mapping[tuple[str, datetime], float]
    futures: Mapping[str, float]
    option_iv: Mapping[str, float]
    option_price: Mapping[str, float]
    surfaces: Mapping[str, VolSurface]
    source: str = "memory"
    _carry: Mapping[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict, repr=False)

    # -- instruments -------------------------------------------------------------------
    def instrument(self, name: str) -> Instrument:
        """Resolve an instrument name against this market's products (raises on unknown)."""
        return parse_instrument(name, self.products)

    def option_names(self, underlying: str | None = None) -> list[str]:
        """Names of the quoted options, optionally of one underlying."""
        names = sorted(self.option_iv)
        if underlying is None:
            return names
        return [n for n in names if self.instrument(n).underlying == underlying]

    # -- scalar look-ups ---------------------------------------------------------------
    def year_fraction(self, expiry: datetime) -> float:
        """ACT/365 years from the valuation time to ``expiry``."""
        return year_fraction(self.valuation_time, expiry)

    def _underlying(self, underlying: str) -> UnderlyingQuote:
        try:
            return self.underlyings[underlying]
        except KeyError:
            raise MarketDataError(f"no market data for underlying {underlying!r}") from None

    def index_price(self, underlying: str) -> float:
        """Spot index of ``underlying`` in USD."""
        return self._underlying(underlying).spot

    def rate(self, underlying: str) -> float:
        """Continuously compounded rate of ``underlying``."""
        return self._underlying(underlying).rate

    def perpetual_price(self, underlying: str) -> float:
        """Perpetual mark in USD (the index when no perpetual mark was given)."""
        q = self._underlying(underlying)
        return q.spot if q.perpetual is None else q.perpetual

    def forward(self, underlying: str, expiry: datetime) -> float:
        """Forward of ``underlying`` for ``expiry`` in USD (see the module docstring)."""
        return float(
            self.forwards_for(underlying, np.array([self.year_fraction(expiry)]), [expiry])[0]
        )

    def forwards_for(
        self, underlying: str, T: FloatArray, expiries: Iterable[datetime]
    ) -> FloatArray:
        """Vectorised forwards for expiries with year fractions ``T`` (same order)."""
        q = self._underlying(underlying)
        explicit = np.array(
            [self.forwards.get((underlying, e), np.nan) for e in expiries], dtype=np.float64
        )
        carry_T, carry_b = self._carry.get(underlying, (np.empty(0), np.empty(0)))
        b = np.interp(T, carry_T, carry_b) if carry_T.size else np.full(T.shape, q.rate)
        implied = q.spot * np.exp(b * np.maximum(T, 0.0))
        out: FloatArray = np.where(np.isfinite(explicit), explicit, implied)
        return out

    def discount_factor(self, underlying: str, T: FloatArray | float) -> FloatArray:
        """``e^{−r·max(T, 0)}`` with the underlying's rate."""
        out: FloatArray = np.exp(
            -self.rate(underlying) * np.maximum(np.asarray(T, np.float64), 0.0)
        )
        return out

    def option_vols(self, instruments: Sequence[Instrument]) -> FloatArray:
        """Mark vol of each option: its quote, else the underlying's surface.

        Raises
        ------
        MarketDataError
            If an instrument is not an option, or an unquoted option's underlying has no
            surface.
        """
        out = np.empty(len(instruments))
        missing: dict[str, list[int]] = {}
        options: list[Option] = []
        for i, inst in enumerate(instruments):
            if not isinstance(inst, Option):
                raise MarketDataError(f"{inst.name}: not an option, it has no volatility")
            options.append(inst)
            iv = self.option_iv.get(inst.name)
            if iv is None:
                missing.setdefault(inst.underlying, []).append(i)
            else:
                out[i] = iv
        for und, idx in missing.items():
            surface = self.surfaces.get(und)
            if surface is None or surface.is_empty:
                raise MarketDataError(
                    f"option {instruments[idx[0]].name!r}: no quote and no {und} option quotes "
                    "to interpolate a volatility from"
                )
            insts = [options[i] for i in idx]
            T = np.array([self.year_fraction(x.expiry) for x in insts])
            F = self.forwards_for(und, T, [x.expiry for x in insts])
            K = np.array([x.strike for x in insts], dtype=np.float64)
            out[idx] = surface.vol(T, np.log(K / F))
        return out

    def mark_price(self, instrument: Instrument) -> float:
        """Mark of one instrument.

        Options: quote currency per unit of underlying (coin for inverse, USD for linear),
        the quoted mark if any, else Black-76 at the surface vol. Futures, perpetuals and
        spot: USD price.
        """
        if isinstance(instrument, Option):
            quoted = self.option_price.get(instrument.name)
            if quoted is not None:
                return quoted
            return float(self.option_model_prices([instrument])[0])
        if isinstance(instrument, Future):
            mark = self.futures.get(instrument.name)
            return (
                mark if mark is not None else self.forward(instrument.underlying, instrument.expiry)
            )
        if isinstance(instrument, Perpetual):
            return self.perpetual_price(instrument.underlying)
        return self.index_price(instrument.underlying)

    def option_model_prices(self, instruments: Sequence[Option]) -> FloatArray:
        """Black-76 value at the mark vol, in each option's quote currency per unit."""
        vols = self.option_vols(instruments)
        out = np.empty(len(instruments))
        for und in {x.underlying for x in instruments}:
            idx = [i for i, x in enumerate(instruments) if x.underlying == und]
            insts = [instruments[i] for i in idx]
            T = np.array([self.year_fraction(x.expiry) for x in insts])
            F = self.forwards_for(und, T, [x.expiry for x in insts])
            K = np.array([x.strike for x in insts], dtype=np.float64)
            calls = np.array([x.is_call for x in insts])
            usd = black76_price(F, K, T, vols[idx], calls, df=self.discount_factor(und, T))
            inverse = np.array([x.is_inverse for x in insts])
            out[idx] = np.where(inverse, usd / F, usd)
        return out


def _positive(value: float, what: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise MarketDataError(f"{what}: must be a positive finite number, got {value!r}")
    return float(value)


def build_market(
    *,
    valuation_time: datetime,
    underlyings: Mapping[str, UnderlyingQuote],
    products: Mapping[str, ProductSpec] | None = None,
    futures: Mapping[str, float] | None = None,
    forwards: Mapping[tuple[str, datetime], float] | None = None,
    options: Mapping[str, OptionQuote] | None = None,
    source: str = "memory",
) -> MarketSnapshot:
    """Validate market inputs, derive missing marks, and return a :class:`MarketSnapshot`.

    Parameters
    ----------
    valuation_time
        Aware timestamp of the snapshot.
    underlyings
        Spot/rate/perpetual per underlying.
    products
        Extra product specifications (merged over :data:`BUILTIN_PRODUCTS`).
    futures
        Marks (USD) of dated futures and perpetuals by name; a dated future's mark is also
        its expiry's forward.
    forwards
        Explicit forwards by ``(underlying, expiry)`` (e.g. a chain's synthetic forwards).
    options
        Option quotes by name.
    source
        A label for reports.

    Raises
    ------
    MarketDataError
        Naming the field and reason: naive time, non-positive spot, negative/NaN vol, a
        price outside the no-arbitrage bounds, an option on an unknown underlying, ...
    InstrumentError
        For a malformed or unknown instrument name.
    """
    if valuation_time.tzinfo is None:
        raise MarketDataError("valuation_time: must carry a time zone (use ...Z for UTC)")
    table: dict[str, ProductSpec] = dict(BUILTIN_PRODUCTS)
    table.update(products or {})
    unds: dict[str, UnderlyingQuote] = {}
    for name, q in underlyings.items():
        _positive(q.spot, f"underlyings.{name}.spot")
        if not math.isfinite(q.rate):
            raise MarketDataError(f"underlyings.{name}.rate: must be finite")
        if q.perpetual is not None:
            _positive(q.perpetual, f"underlyings.{name}.perpetual")
        unds[name] = q
    fwd: dict[tuple[str, datetime], float] = {}
    for (und, expiry), value in (forwards or {}).items():
        fwd[(und, expiry)] = _positive(value, f"forwards.{und}.{expiry:%d%b%y}")
    fut: dict[str, float] = {}
    for name, mark in (futures or {}).items():
        inst = parse_instrument(name, table)
        _positive(mark, f"futures.{name}.mark_price")
        if inst.underlying not in unds:
            raise MarketDataError(f"futures.{name}: no underlying {inst.underlying!r} in market")
        if inst.kind is InstrumentKind.PERPETUAL:
            unds[inst.underlying] = UnderlyingQuote(
                unds[inst.underlying].spot, unds[inst.underlying].rate, float(mark)
            )
        elif inst.kind is InstrumentKind.FUTURE:
            assert inst.expiry is not None
            fut[inst.name] = float(mark)
            fwd.setdefault((inst.underlying, inst.expiry), float(mark))
        else:
            raise MarketDataError(f"futures.{name}: not a future or perpetual")
    carry: dict[str, tuple[FloatArray, FloatArray]] = {}
    for und in unds:
        pts = sorted(
            (year_fraction(valuation_time, e), f)
            for (u, e), f in fwd.items()
            if u == und and year_fraction(valuation_time, e) > 0
        )
        if pts:
            Ts = np.array([p[0] for p in pts])
            bs = np.log(np.array([p[1] for p in pts]) / unds[und].spot) / Ts
            carry[und] = (Ts, bs)

    snap = MarketSnapshot(
        valuation_time=valuation_time,
        products=MappingProxyType(table),
        underlyings=MappingProxyType(unds),
        forwards=MappingProxyType(fwd),
        futures=MappingProxyType(fut),
        option_iv=MappingProxyType({}),
        option_price=MappingProxyType({}),
        surfaces=MappingProxyType({}),
        source=source,
        _carry=MappingProxyType(carry),
    )
    return _with_options(snap, options or {})


def _with_options(snap: MarketSnapshot, options: Mapping[str, OptionQuote]) -> MarketSnapshot:
    insts: list[Option] = []
    ivs: list[float] = []
    prices: list[float] = []
    for name, q in options.items():
        inst = snap.instrument(name)
        if not isinstance(inst, Option):
            raise MarketDataError(f"options.{name}: not an option")
        if inst.underlying not in snap.underlyings:
            raise MarketDataError(f"options.{name}: no underlying {inst.underlying!r} in market")
        if q.mark_iv is None and q.mark_price is None:
            raise MarketDataError(f"options.{name}: needs mark_iv or mark_price")
        if q.mark_iv is not None and not (math.isfinite(q.mark_iv) and q.mark_iv > 0):
            raise MarketDataError(f"options.{name}.mark_iv: must be > 0, got {q.mark_iv!r}")
        if q.mark_price is not None and not (math.isfinite(q.mark_price) and q.mark_price >= 0):
            raise MarketDataError(f"options.{name}.mark_price: must be >= 0, got {q.mark_price!r}")
        insts.append(inst)
        ivs.append(np.nan if q.mark_iv is None else float(q.mark_iv))
        prices.append(np.nan if q.mark_price is None else float(q.mark_price))
    if not insts:
        return snap
    iv = np.array(ivs)
    px = np.array(prices)
    # Year fractions once per expiry, forwards and discount factors once per underlying.
    expiries = [x.expiry for x in insts]
    by_expiry = {e: snap.year_fraction(e) for e in set(expiries)}
    T = np.array([by_expiry[e] for e in expiries])
    live = T > 0
    unds = np.array([x.underlying for x in insts])
    F = np.empty(len(insts))
    df = np.empty(len(insts))
    for und in set(unds.tolist()):
        idx = np.flatnonzero(unds == und)
        F[idx] = snap.forwards_for(und, T[idx], [expiries[i] for i in idx])
        df[idx] = snap.discount_factor(und, T[idx])
    K = np.array([x.strike for x in insts], dtype=np.float64)
    calls = np.array([x.is_call for x in insts])
    inverse = np.array([x.is_inverse for x in insts])
    to_usd = np.where(inverse, F, 1.0)
    need_iv = np.isnan(iv) & live
    if need_iv.any():
        solved = implied_vol(px * to_usd, F, K, T, calls, df=df)
        bad = need_iv & ~np.isfinite(solved)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MarketDataError(
                f"options.{insts[i].name}.mark_price: {px[i]!r} is outside the no-arbitrage "
                "bounds, no implied volatility exists"
            )
        iv = np.where(need_iv, solved, iv)
    # Expired options keep whatever vol they had (irrelevant: they are worth intrinsic).
    iv = np.where(np.isnan(iv), 0.0, iv)
    model = black76_price(F, K, T, iv, calls, df=df) / to_usd
    px = np.where(np.isnan(px), model, px)
    names = [x.name for x in insts]
    surfaces: dict[str, VolSurface] = {}
    for und in set(unds.tolist()):
        sel = (unds == und) & live & (iv > 0)
        surfaces[und] = VolSurface.from_points(T[sel], np.log(K[sel] / F[sel]), iv[sel])
    return MarketSnapshot(
        valuation_time=snap.valuation_time,
        products=snap.products,
        underlyings=snap.underlyings,
        forwards=snap.forwards,
        futures=snap.futures,
        option_iv=MappingProxyType(dict(zip(names, iv.tolist(), strict=True))),
        option_price=MappingProxyType(dict(zip(names, px.tolist(), strict=True))),
        surfaces=MappingProxyType(surfaces),
        source=snap.source,
        _carry=snap._carry,
    )
