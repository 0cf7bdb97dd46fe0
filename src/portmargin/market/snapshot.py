r"""The market snapshot: everything needed to value instruments at one valuation time.

A :class:`MarketSnapshot` is an immutable value built only by :func:`build_market`, which
validates every input against the bounds of :mod:`portmargin.market.limits` and derives what
is missing; :func:`~portmargin.market.shift` returns perturbed copies through the same
constructor. ``dataclasses.replace`` on a snapshot is refused (it would leave the derived
fields behind its primary ones).

* **Forwards per expiry**: an explicit forward (a dated future's mark, or a chain's forward)
  wins. Otherwise the annualised carry of each explicit forward ``F_i`` expiring after the
  settlement window (:data:`~portmargin.market.limits.SETTLEMENT_WINDOW`, 30 minutes: a
  future settling on the average index of its last half hour carries no information about
  later expiries)::

      b_i = (ln(F_i/S) − r·T_i) / max(T_i, 7 days) + r,      clipped to [−1, 1] per year

  is interpolated linearly in ``T`` (flat beyond the first and last points) and
  ``F = S·e^{b·T}``; with no such forward, ``F = S·e^{r·T}`` with the underlying's rate
  ``r``. Annualising over at least a week keeps a basis quoted minutes before expiry from
  turning into an exploding rate (``ln(F/S)/T`` grows without bound as ``T → 0``).
* **Option marks**: each quote has a mark implied vol and/or a mark price in its quote
  currency (coin for inverse products, USD for linear). A missing price is Black-76 at the
  vol; a missing vol is the implied vol of the price. A price above the no-arbitrage upper
  bound (``D·F`` for a call, ``D·K`` for a put, in USD) is an error naming the option. A price
  at or below the lower bound (the discounted intrinsic value ``D·max(±(F−K), 0)``), where no
  implied vol exists, is kept as the mark with a warning in :attr:`MarketSnapshot.warnings`;
  its vol is floored at :data:`~portmargin.market.limits.VOL_FLOOR` (1 %) and it does not
  enter the surface.
* **Unquoted options** take their vol from a :class:`~portmargin.market.surface.VolSurface`
  built from the quoted ones.
* **Settled instruments**: an option or dated future at or past its expiry is settled
  (:meth:`MarketSnapshot.is_expired`). An option is then worth its intrinsic value against the
  expiry's settlement price ``P`` (``max(P − K, 0)`` or ``max(K − P, 0)`` USD per unit,
  divided by ``P`` in coin for inverse products) and its value no longer moves; a future is
  worth its settlement price. Settlement prices come from the ``settlements`` input; an
  expiry at exactly the valuation time settles at the index. Quotes of instruments already
  expired are ignored with a warning.

Time is ACT/365 from exact timestamps: ``τ = seconds / 31,536,000``. Discount factors are
``e^{−rT}`` with the underlying's rate (0 for Deribit, which reprices on forwards at r = 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

import numpy as np

from portmargin._types import FloatArray
from portmargin.errors import InstrumentError, MarketDataError
from portmargin.instruments import (
    BUILTIN_PRODUCTS,
    Future,
    Instrument,
    Option,
    Perpetual,
    ProductSpec,
    Spot,
    expiry_code,
    parse_instrument,
)
from portmargin.market.limits import (
    CARRY_MAX,
    CARRY_MIN_YEARS,
    PRICE_MAX,
    SETTLEMENT_WINDOW,
    VOL_FLOOR,
    VOL_MAX,
    check_multiplier,
    check_option_price,
    check_price,
    check_rate,
    check_time,
    check_vol,
    fmt,
)
from portmargin.market.surface import VolSurface
from portmargin.pricing import black76_price, implied_vol

__all__ = [
    "SECONDS_PER_YEAR",
    "MarketSnapshot",
    "OptionQuote",
    "QuoteSource",
    "UnderlyingQuote",
    "build_market",
    "year_fraction",
]

SECONDS_PER_YEAR = 365.0 * 86400.0
_WINDOW_YEARS = SETTLEMENT_WINDOW.total_seconds() / SECONDS_PER_YEAR
_BUILD = object()  # the token that only build_market passes to the constructor


def year_fraction(start: datetime, end: datetime) -> float:
    """ACT/365 year fraction between two aware timestamps (negative if ``end`` < ``start``)."""
    return (end - start).total_seconds() / SECONDS_PER_YEAR


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%MZ")


class QuoteSource(StrEnum):
    """Where the mark of an instrument comes from (:meth:`MarketSnapshot.quote_source`).

    ``QUOTED``
        An option quoted in the market (mark vol and/or price), or a dated future with a
        mark or an explicit forward for its expiry.
    ``INTERPOLATED``
        An option whose vol comes from the surface, or a future whose price is the forward
        interpolated from the carry (or ``S·e^{rT}``).
    ``SETTLED``
        An option or future at or past expiry, valued at its expiry's settlement price.
    ``INDEX``
        A spot pair, or a perpetual without a mark (valued at the index).
    ``PERPETUAL``
        A perpetual with its own mark.
    """

    QUOTED = "quoted"
    INTERPOLATED = "interpolated"
    SETTLED = "settled"
    INDEX = "index"
    PERPETUAL = "perpetual"


@dataclass(frozen=True, slots=True)
class UnderlyingQuote:
    """Spot/index, rate and perpetual mark of one underlying.

    Attributes
    ----------
    spot
        Index price in USD, in ``[1e-8, 1e9]``.
    rate
        Continuously compounded annual rate for ``S·e^{rT}`` forwards and discounting, in
        ``[−1, 1]``.
    perpetual
        Perpetual mark in USD, in ``[1e-8, 1e9]``; the index when absent.
    """

    spot: float
    rate: float = 0.0
    perpetual: float | None = None


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """A mark implied vol (``(0, 10]``) and/or mark price (quote currency per unit, ``≥ 0``)."""

    mark_iv: float | None = None
    mark_price: float | None = None


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Immutable market state at ``valuation_time``; build it with :func:`build_market`.

    The constructor is private to :func:`build_market` (which validates the inputs) and
    ``dataclasses.replace`` raises: to perturb a snapshot use
    :func:`portmargin.market.shift`, which returns a new, validated one.

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
        Marks in USD of dated futures not yet expired, by canonical instrument name.
    settlements
        Settlement prices in USD of past expiries: ``(underlying, expiry) → USD``.
    quotes
        The option quotes as given (live options only), by canonical name.
    option_iv, option_price
        Complete mark vol and mark price (quote currency) of every quoted live option.
    surfaces
        Vol surface per underlying, built from the quoted options.
    warnings
        One line per accepted oddity of the inputs (a mark below its no-arbitrage bound,
        expired quotes ignored), for the caller to print.
    source
        Where the snapshot came from (file name or ``"demo"``), for reports.
    """

    valuation_time: datetime
    products: Mapping[str, ProductSpec]
    underlyings: Mapping[str, UnderlyingQuote]
    forwards: Mapping[tuple[str, datetime], float]
    futures: Mapping[str, float]
    settlements: Mapping[tuple[str, datetime], float]
    quotes: Mapping[str, OptionQuote]
    option_iv: Mapping[str, float]
    option_price: Mapping[str, float]
    surfaces: Mapping[str, VolSurface]
    warnings: tuple[str, ...] = ()
    source: str = "memory"
    _token: InitVar[object] = None
    _carry: Mapping[str, tuple[FloatArray, FloatArray]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self, _token: object) -> None:
        if _token is not _BUILD:
            raise TypeError(
                "MarketSnapshot is built by portmargin.market.build_market; to perturb one use "
                "portmargin.market.shift (dataclasses.replace would leave derived data stale)"
            )
        object.__setattr__(
            self, "_carry", _carry_curves(self.valuation_time, self.underlyings, self.forwards)
        )

    # -- instruments -------------------------------------------------------------------
    def instrument(self, name: str) -> Instrument:
        """Resolve an instrument name against this market's products.

        Raises
        ------
        InstrumentError
            For a malformed or unknown name, or a strike above 1e9 USD.
        """
        return _checked(parse_instrument(name, self.products))

    def option_names(self, underlying: str | None = None) -> list[str]:
        """Names of the quoted (live) options, optionally of one underlying."""
        names = sorted(self.option_iv)
        if underlying is None:
            return names
        return [n for n in names if self.instrument(n).underlying == underlying]

    # -- expiry and provenance ----------------------------------------------------------
    def is_expired(self, instrument: Instrument) -> bool:
        """True for an option or dated future at or past its expiry (it is settled)."""
        return instrument.expiry is not None and instrument.expiry <= self.valuation_time

    def settlement_price(
        self, underlying: str, expiry: datetime, *, instrument: str | None = None
    ) -> float:
        """Settlement price in USD of ``underlying`` for a past ``expiry``.

        The ``settlements`` input if given, else the index when ``expiry`` is exactly the
        valuation time. ``instrument`` only names the instrument asking, in the error.

        Raises
        ------
        MarketDataError
            If the expiry has not come yet, or is past with no settlement price given::

                BTC-5FEB26-70000-P expired at 2026-02-05T08:00Z; the market has no settlement
                price for BTC 5FEB26 (add "settlements" to the market file)
        """
        what = instrument or f"{underlying} {expiry_code(expiry)}"
        price = self.settlements.get((underlying, expiry))
        if price is not None:
            return price
        if expiry == self.valuation_time:
            return self.index_price(underlying)
        if expiry > self.valuation_time:
            raise MarketDataError(
                f"{what} expires at {_when(expiry)}, after the valuation time "
                f"{_when(self.valuation_time)}: it has no settlement price yet"
            )
        raise MarketDataError(
            f"{what} expired at {_when(expiry)}; the market has no settlement price for "
            f'{underlying} {expiry_code(expiry)} (add "settlements" to the market file)'
        )

    def quote_source(self, instrument: Instrument) -> QuoteSource:
        """Where ``instrument``'s mark comes from (see :class:`QuoteSource`).

        Raises
        ------
        MarketDataError
            If the market has no data for the instrument's underlying.
        """
        q = self._underlying(instrument.underlying)
        if isinstance(instrument, Spot):
            return QuoteSource.INDEX
        if isinstance(instrument, Perpetual):
            return QuoteSource.INDEX if q.perpetual is None else QuoteSource.PERPETUAL
        if self.is_expired(instrument):
            return QuoteSource.SETTLED
        if isinstance(instrument, Option):
            quoted = instrument.name in self.option_iv
        else:
            key = (instrument.underlying, instrument.expiry)
            quoted = instrument.name in self.futures or key in self.forwards
        return QuoteSource.QUOTED if quoted else QuoteSource.INTERPOLATED

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
        """Vectorised forwards for expiries with year fractions ``T`` (same order).

        ``F = S·e^{b(T)·max(T, 0)}`` where no explicit forward exists, ``b`` interpolated
        linearly in ``T`` between the carry points (module docstring), each clipped to
        ``[−1, 1]`` per year, so the result is finite for every ``T`` below 100 years.
        """
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
        """Mark vol of each option: its quote, else the underlying's surface; 0 if settled.

        Raises
        ------
        MarketDataError
            If an instrument is not an option, or an unquoted live option's underlying has
            no surface.
        """
        out = np.zeros(len(instruments))
        missing: dict[str, list[int]] = {}
        options: list[Option] = []
        for i, inst in enumerate(instruments):
            if not isinstance(inst, Option):
                raise MarketDataError(f"{inst.name}: not an option, it has no volatility")
            options.append(inst)
            iv = self.option_iv.get(inst.name)
            if iv is not None:
                out[i] = iv
            elif not self.is_expired(inst):
                missing.setdefault(inst.underlying, []).append(i)
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

    def settled_value(self, option: Option) -> float:
        """Value of a settled option in its quote currency per unit of underlying.

        ``max(P − K, 0)`` (call) or ``max(K − P, 0)`` (put) USD with ``P`` the settlement
        price, divided by ``P`` for inverse (coin-settled) products; not discounted (it is
        paid).

        Raises
        ------
        MarketDataError
            If the option has not expired, or no settlement price is known.
        """
        p = self.settlement_price(option.underlying, option.expiry, instrument=option.name)
        usd = max(p - option.strike, 0.0) if option.is_call else max(option.strike - p, 0.0)
        return usd / p if option.is_inverse else usd

    def mark_price(self, instrument: Instrument) -> float:
        """Mark of one instrument.

        Options: quote currency per unit of underlying (coin for inverse, USD for linear),
        the quoted mark if any, else Black-76 at the surface vol; a settled option is worth
        :meth:`settled_value`. Futures, perpetuals and spot: USD price (a settled future's is
        its settlement price).
        """
        if isinstance(instrument, Option):
            quoted = self.option_price.get(instrument.name)
            if quoted is not None:
                return quoted
            return float(self.option_model_prices([instrument])[0])
        if isinstance(instrument, Future):
            if self.is_expired(instrument):
                return self.settlement_price(
                    instrument.underlying, instrument.expiry, instrument=instrument.name
                )
            mark = self.futures.get(instrument.name)
            return (
                mark if mark is not None else self.forward(instrument.underlying, instrument.expiry)
            )
        if isinstance(instrument, Perpetual):
            return self.perpetual_price(instrument.underlying)
        return self.index_price(instrument.underlying)

    def option_model_prices(self, instruments: Sequence[Option]) -> FloatArray:
        """Black-76 value at the mark vol, in each option's quote currency per unit.

        Settled options are worth :meth:`settled_value`.
        """
        vols = self.option_vols(instruments)
        out = np.empty(len(instruments))
        live: list[int] = []
        for i, x in enumerate(instruments):
            if self.is_expired(x):
                out[i] = self.settled_value(x)
            else:
                live.append(i)
        for und in {instruments[i].underlying for i in live}:
            idx = [i for i in live if instruments[i].underlying == und]
            insts = [instruments[i] for i in idx]
            T = np.array([self.year_fraction(x.expiry) for x in insts])
            F = self.forwards_for(und, T, [x.expiry for x in insts])
            K = np.array([x.strike for x in insts], dtype=np.float64)
            calls = np.array([x.is_call for x in insts])
            usd = black76_price(F, K, T, vols[idx], calls, df=self.discount_factor(und, T))
            inverse = np.array([x.is_inverse for x in insts])
            out[idx] = np.where(inverse, usd / F, usd)
        return out


def _checked(inst: Instrument) -> Instrument:
    """``inst`` if its strike is within the bounds of :mod:`portmargin.market.limits`."""
    if isinstance(inst, Option) and inst.strike > PRICE_MAX:
        raise InstrumentError(
            f"instrument {inst.name!r}: strike {inst.strike:g} is above {PRICE_MAX:g} USD"
        )
    return inst


def _carry_curves(
    valuation_time: datetime,
    underlyings: Mapping[str, UnderlyingQuote],
    forwards: Mapping[tuple[str, datetime], float],
) -> Mapping[str, tuple[FloatArray, FloatArray]]:
    """Carry points ``(T_i, b_i)`` per underlying (module docstring), read-only arrays."""
    carry: dict[str, tuple[FloatArray, FloatArray]] = {}
    for und, q in underlyings.items():
        pts = sorted(
            (t, f)
            for (u, e), f in forwards.items()
            if u == und and (t := year_fraction(valuation_time, e)) > _WINDOW_YEARS
        )
        if not pts:
            continue
        Ts = np.array([p[0] for p in pts])
        basis = np.log(np.array([p[1] for p in pts]) / q.spot) - q.rate * Ts
        bs = np.clip(basis / np.maximum(Ts, CARRY_MIN_YEARS) + q.rate, -CARRY_MAX, CARRY_MAX)
        Ts.flags.writeable = False
        bs.flags.writeable = False
        carry[und] = (Ts, bs)
    return MappingProxyType(carry)


def build_market(
    *,
    valuation_time: datetime,
    underlyings: Mapping[str, UnderlyingQuote],
    products: Mapping[str, ProductSpec] | None = None,
    futures: Mapping[str, float] | None = None,
    forwards: Mapping[tuple[str, datetime], float] | None = None,
    options: Mapping[str, OptionQuote] | None = None,
    settlements: Mapping[tuple[str, datetime], float] | None = None,
    source: str = "memory",
) -> MarketSnapshot:
    """Validate market inputs, derive missing marks, and return a :class:`MarketSnapshot`.

    Every number is checked against :mod:`portmargin.market.limits` (the file loaders call
    this function, so they accept exactly the same inputs): prices in ``[1e-8, 1e9]`` USD,
    option marks in ``[0, 1e9]``, vols in ``(0, 10]``, rates in ``[−1, 1]``, multipliers in
    ``(0, 1e6]``, strikes at most ``1e9``, the valuation time in ``[2000, 2100)`` with a zone.

    Parameters
    ----------
    valuation_time
        Aware timestamp of the snapshot (kept in UTC).
    underlyings
        Spot/rate/perpetual per underlying.
    products
        Extra product specifications (merged over :data:`BUILTIN_PRODUCTS`).
    futures
        Marks (USD) of dated futures and perpetuals by name; a dated future's mark is also
        its expiry's forward. Marks of futures at or past expiry are ignored (warning).
    forwards
        Explicit forwards by ``(underlying, expiry)`` (e.g. a chain's synthetic forwards).
    options
        Option quotes by name; quotes of options at or past expiry are ignored (warning).
    settlements
        Settlement prices (USD) by ``(underlying, expiry)`` of expiries at or before the
        valuation time; settled options and futures are valued at them.
    source
        A label for reports.

    Raises
    ------
    MarketDataError
        One line naming the field and reason: naive or out-of-range time, a price, vol,
        rate or multiplier out of bounds, a mark above the no-arbitrage upper bound, an
        option on an unknown underlying, a settlement of an expiry still to come, ...
    InstrumentError
        For a malformed or unknown instrument name, or a strike above 1e9.
    """
    t0 = check_time(valuation_time, "valuation_time")
    own: dict[str, ProductSpec] = dict(BUILTIN_PRODUCTS)
    for code, spec in (products or {}).items():
        check_multiplier(spec.multiplier, f"products.{code}.multiplier")
        own[code] = spec
    table = MappingProxyType(own)  # read-only: instrument parsing caches it by identity
    unds: dict[str, UnderlyingQuote] = {}
    for name, q in underlyings.items():
        spot = check_price(q.spot, f"underlyings.{name}.spot")
        rate = check_rate(q.rate, f"underlyings.{name}.rate")
        perp = None
        if q.perpetual is not None:
            perp = check_price(q.perpetual, f"underlyings.{name}.perpetual")
        unds[name] = UnderlyingQuote(spot, rate, perp)

    def known(und: str, where: str) -> None:
        if und not in unds:
            raise MarketDataError(f"{where}: no underlying {und!r} in market")

    fwd: dict[tuple[str, datetime], float] = {}
    for (und, expiry), value in (forwards or {}).items():
        where = f"forwards.{und}.{expiry_code(expiry)}"
        known(und, where)
        fwd[(und, expiry)] = check_price(value, where)
    settled: dict[tuple[str, datetime], float] = {}
    for (und, expiry), value in (settlements or {}).items():
        where = f"settlements.{und}.{expiry_code(expiry)}"
        known(und, where)
        if expiry > t0:
            raise MarketDataError(
                f"{where}: expiry {_when(expiry)} is after the valuation time {_when(t0)}"
            )
        settled[(und, expiry)] = check_price(value, where)
    warnings: list[str] = []
    fut: dict[str, float] = {}
    for name, mark in (futures or {}).items():
        inst = parse_instrument(name, table)
        value = check_price(mark, f"futures.{name}.mark_price")
        known(inst.underlying, f"futures.{name}")
        if isinstance(inst, Perpetual):
            q = unds[inst.underlying]
            unds[inst.underlying] = UnderlyingQuote(q.spot, q.rate, value)
        elif isinstance(inst, Future):
            if inst.expiry <= t0:
                warnings.append(
                    f"futures.{name}: expired at {_when(inst.expiry)}, its mark is ignored "
                    "(settled futures are valued at their settlement price)"
                )
                continue
            fut[inst.name] = value
            fwd.setdefault((inst.underlying, inst.expiry), value)
        else:
            raise MarketDataError(f"futures.{name}: not a future or perpetual")
    quotes, expired = _live_quotes(options or {}, table, unds, t0)
    warnings += [
        f"options: {n} quote(s) of {und} {expiry_code(e)} ignored, the expiry passed at "
        f"{_when(e)} (settled options are valued at their settlement price)"
        for (und, e), n in sorted(expired.items())
    ]
    base = MarketSnapshot(
        valuation_time=t0,
        products=table,
        underlyings=MappingProxyType(unds),
        forwards=MappingProxyType(fwd),
        futures=MappingProxyType(fut),
        settlements=MappingProxyType(settled),
        quotes=MappingProxyType(dict(quotes)),
        option_iv=MappingProxyType({}),
        option_price=MappingProxyType({}),
        surfaces=MappingProxyType({}),
        warnings=tuple(warnings),
        source=source,
        _token=_BUILD,
    )
    return _with_options(base) if quotes else base


def _live_quotes(
    options: Mapping[str, OptionQuote],
    table: Mapping[str, ProductSpec],
    unds: Mapping[str, UnderlyingQuote],
    t0: datetime,
) -> tuple[dict[str, OptionQuote], dict[tuple[str, datetime], int]]:
    """Validated quotes of live options by canonical name; counts of expired ones ignored."""
    live: dict[str, OptionQuote] = {}
    expired: dict[tuple[str, datetime], int] = {}
    for name, q in options.items():
        inst = _checked(parse_instrument(name, table))
        if not isinstance(inst, Option):
            raise MarketDataError(f"options.{name}: not an option")
        if inst.underlying not in unds:
            raise MarketDataError(f"options.{name}: no underlying {inst.underlying!r} in market")
        if q.mark_iv is None and q.mark_price is None:
            raise MarketDataError(f"options.{name}: needs mark_iv or mark_price")
        iv = None if q.mark_iv is None else check_vol(q.mark_iv, f"options.{name}.mark_iv")
        px = None
        if q.mark_price is not None:
            px = check_option_price(q.mark_price, f"options.{name}.mark_price")
        if inst.expiry <= t0:
            key = (inst.underlying, inst.expiry)
            expired[key] = expired.get(key, 0) + 1
            continue
        live[inst.name] = OptionQuote(iv, px)
    return live, expired


def _with_options(snap: MarketSnapshot) -> MarketSnapshot:
    """``snap`` with the mark vols, prices, surfaces and floor warnings of its quotes."""
    names = list(snap.quotes)
    opts = [x for x in map(snap.instrument, names) if isinstance(x, Option)]
    iv = np.array([np.nan if q.mark_iv is None else q.mark_iv for q in snap.quotes.values()])
    px = np.array([np.nan if q.mark_price is None else q.mark_price for q in snap.quotes.values()])
    # Year fractions once per expiry, forwards and discount factors once per underlying.
    expiries = [x.expiry for x in opts]
    by_expiry = {e: snap.year_fraction(e) for e in set(expiries)}
    T = np.array([by_expiry[e] for e in expiries])
    und_of = np.array([x.underlying for x in opts])
    F = np.empty(len(opts))
    df = np.empty(len(opts))
    for und in dict.fromkeys(und_of.tolist()):
        idx = np.flatnonzero(und_of == und)
        F[idx] = snap.forwards_for(und, T[idx], [expiries[i] for i in idx])
        df[idx] = snap.discount_factor(und, T[idx])
    K = np.array([x.strike for x in opts], dtype=np.float64)
    calls = np.array([x.is_call for x in opts])
    inverse = np.array([x.is_inverse for x in opts])
    to_usd = np.where(inverse, F, 1.0)
    # No-arbitrage band of the USD price: D·max(±(F−K), 0) ≤ V < D·F (call) / D·K (put).
    lower = df * np.where(calls, np.maximum(F - K, 0.0), np.maximum(K - F, 0.0))
    upper = df * np.where(calls, F, K)
    usd = px * to_usd
    above = np.isfinite(px) & (usd >= upper)
    if above.any():
        i = int(np.flatnonzero(above)[0])
        raise MarketDataError(
            f"options.{names[i]}.mark_price: {fmt(px[i])} is above the no-arbitrage upper bound "
            f"{upper[i] / to_usd[i]:g} {opts[i].product.quote_currency}, no implied "
            "volatility exists"
        )
    need_iv = np.isnan(iv)
    floored = np.zeros(len(opts), dtype=np.bool_)
    warnings: list[str] = []
    if need_iv.any():
        solved = implied_vol(usd, F, K, T, calls, df=df)
        floored = need_iv & ~np.isfinite(solved)
        for i in np.flatnonzero(floored).tolist():
            warnings.append(
                f"options.{names[i]}.mark_price: {fmt(px[i])} is at or below the no-arbitrage "
                f"lower bound {lower[i] / to_usd[i]:g} {opts[i].product.quote_currency} "
                f"(discounted intrinsic value); implied vol floored at {VOL_FLOOR:g}, the mark "
                "is kept"
            )
        too_high = need_iv & (solved > VOL_MAX)
        if too_high.any():
            i = int(np.flatnonzero(too_high)[0])
            raise MarketDataError(
                f"options.{names[i]}.mark_price: {fmt(px[i])} implies a volatility of "
                f"{solved[i]:g}, above {VOL_MAX:g}"
            )
        iv = np.where(need_iv, np.where(floored, VOL_FLOOR, solved), iv)
    model = black76_price(F, K, T, iv, calls, df=df) / to_usd
    px = np.where(np.isnan(px), model, px)
    surfaces: dict[str, VolSurface] = {}
    for und in dict.fromkeys(und_of.tolist()):
        sel = (und_of == und) & ~floored
        surfaces[und] = VolSurface.from_points(T[sel], np.log(K[sel] / F[sel]), iv[sel])
    return MarketSnapshot(
        valuation_time=snap.valuation_time,
        products=snap.products,
        underlyings=snap.underlyings,
        forwards=snap.forwards,
        futures=snap.futures,
        settlements=snap.settlements,
        quotes=snap.quotes,
        option_iv=MappingProxyType(dict(zip(names, iv.tolist(), strict=True))),
        option_price=MappingProxyType(dict(zip(names, px.tolist(), strict=True))),
        surfaces=MappingProxyType(surfaces),
        warnings=snap.warnings + tuple(warnings),
        source=snap.source,
        _token=_BUILD,
    )
