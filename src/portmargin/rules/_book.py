"""Legs of one book (one settlement pool × one underlying) with their per-leg figures.

Every amount on a leg is per contract and in the pool currency (coin for inverse products,
USD for linear ones); USD prices are per unit of underlying. Two leg kinds, each with only
the fields it has: :class:`OptionLeg` (strike, expiry, call/put) and :class:`UnderlyingLeg`
(futures, perpetuals, spot positions and pledgeable coin balances; an expiry only for dated
futures). Code narrows a :data:`Leg` with ``isinstance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, TypeAlias

import numpy as np

from portmargin.rules._params import NakedLevel, RuleSet

__all__ = [
    "Book",
    "BookArrays",
    "Leg",
    "LegKind",
    "OptionLeg",
    "UnderlyingLeg",
    "naked_usd",
]

FloatArray: TypeAlias = np.ndarray[tuple[int], np.dtype[np.float64]]
IntArray: TypeAlias = np.ndarray[tuple[int], np.dtype[np.int64]]
BoolArray: TypeAlias = np.ndarray[tuple[int], np.dtype[np.bool_]]


class LegKind(Enum):
    """What a leg is: an option, a future/perpetual, a spot position or a pledgeable coin."""

    OPTION = "option"
    FUTURE = "future"
    PERPETUAL = "perpetual"
    SPOT = "spot"
    COIN = "coin"


@dataclass(frozen=True, slots=True, kw_only=True)
class _LegBase:
    """Fields every leg has (see :class:`OptionLeg` for their meaning)."""

    name: str
    qty: float
    units: float
    spot: float
    price_usd: float
    value: float
    single_im: float
    single_mm: float
    proceeds: float

    @property
    def is_short(self) -> bool:
        """True for short legs."""
        return self.qty < 0

    @property
    def sign(self) -> int:
        """+1 long, −1 short."""
        return 1 if self.qty > 0 else -1


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionLeg(_LegBase):
    """One aggregated option position.

    Attributes
    ----------
    name
        Instrument name.
    qty
        Signed quantity in contracts.
    units
        Units of underlying per contract (the multiplier).
    is_call, strike, expiry
        Call or put, strike (USD per unit) and expiry (POSIX seconds).
    spot
        Underlying price ``S`` (USD) the percentage rules use for this leg.
    price_usd
        Option mark in USD per unit of underlying.
    value
        Mark value per contract in pool currency.
    naked_im, naked_mm
        Gross naked requirement per contract of the leg if short.
    single_im, single_mm
        Gross requirement per contract of the leg standing alone (naked if short; the
        premium, less any loan value, if long).
    proceeds
        Short-sale proceeds per contract (the value if short, else 0), pool currency.
    """

    is_call: bool
    strike: float
    expiry: float
    naked_im: float
    naked_mm: float
    kind: ClassVar[LegKind] = LegKind.OPTION

    @property
    def is_option(self) -> bool:
        """True."""
        return True

    @property
    def itm_usd(self) -> float:
        """Intrinsic value in USD per unit."""
        diff = self.spot - self.strike if self.is_call else self.strike - self.spot
        return max(diff, 0.0)

    @property
    def otm_usd(self) -> float:
        """Out-of-the-money amount in USD per unit."""
        diff = self.strike - self.spot if self.is_call else self.spot - self.strike
        return max(diff, 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnderlyingLeg(_LegBase):
    """A future, perpetual, spot position or pledgeable coin balance.

    Attributes
    ----------
    kind
        :attr:`LegKind.FUTURE`, ``PERPETUAL``, ``SPOT`` or ``COIN`` (a coin balance offered as
        a cover; its value is already cash of its own pool).
    expiry
        POSIX seconds for dated futures, ``None`` otherwise.
    price_usd
        Future/spot price in USD.
    value
        Mark value per contract in pool currency (0 for futures and coin covers).
    rate_im, rate_mm
        Margin rate as a fraction of notional (futures: size-scaled rate; spot/coin: the rule
        set's ``underlying`` fractions for the leg's side).
    """

    kind: LegKind
    expiry: float | None = None
    rate_im: float = 0.0
    rate_mm: float = 0.0

    def __post_init__(self) -> None:
        if self.kind is LegKind.OPTION:
            raise ValueError(f"leg {self.name!r}: options are OptionLeg")

    @property
    def is_option(self) -> bool:
        """False."""
        return False

    def outlives(self, expiry: float) -> bool:
        """True if this leg is still open at ``expiry`` (undated legs always are)."""
        return self.expiry is None or self.expiry >= expiry


Leg: TypeAlias = OptionLeg | UnderlyingLeg
"""A leg of a book: narrow with ``isinstance(leg, OptionLeg)``."""


@dataclass(frozen=True, slots=True)
class BookArrays:
    """Column arrays of a book's legs for vectorised candidate pricing (index = leg index).

    Option-only fields (``strike``, ``expiry``, ``is_call``, ``naked_im``, ``naked_mm``) are
    ``nan``/``False`` on underlying legs, which :attr:`is_option` masks out.
    """

    is_option: BoolArray
    is_short: BoolArray
    sign: FloatArray
    qty: FloatArray
    units: FloatArray
    is_call: BoolArray
    strike: FloatArray
    expiry: FloatArray
    spot: FloatArray
    price_usd: FloatArray
    value: FloatArray
    naked_im: FloatArray
    naked_mm: FloatArray
    single_im: FloatArray
    single_mm: FloatArray
    proceeds: FloatArray

    @staticmethod
    def of(legs: tuple[Leg, ...]) -> BookArrays:
        """Arrays of ``legs``."""
        nan = float("nan")
        opts = [leg if isinstance(leg, OptionLeg) else None for leg in legs]

        def col(values: list[float]) -> FloatArray:
            return np.array(values, dtype=np.float64).reshape(-1)

        return BookArrays(
            is_option=np.array([o is not None for o in opts], dtype=bool).reshape(-1),
            is_short=np.array([leg.is_short for leg in legs], dtype=bool).reshape(-1),
            sign=col([float(leg.sign) for leg in legs]),
            qty=col([leg.qty for leg in legs]),
            units=col([leg.units for leg in legs]),
            is_call=np.array([o is not None and o.is_call for o in opts], dtype=bool).reshape(-1),
            strike=col([o.strike if o is not None else nan for o in opts]),
            expiry=col([o.expiry if o is not None else nan for o in opts]),
            spot=col([leg.spot for leg in legs]),
            price_usd=col([leg.price_usd for leg in legs]),
            value=col([leg.value for leg in legs]),
            naked_im=col([o.naked_im if o is not None else nan for o in opts]),
            naked_mm=col([o.naked_mm if o is not None else nan for o in opts]),
            single_im=col([leg.single_im for leg in legs]),
            single_mm=col([leg.single_mm for leg in legs]),
            proceeds=col([leg.proceeds for leg in legs]),
        )


@dataclass(frozen=True, slots=True)
class Book:
    """The legs of one underlying in one settlement pool, sorted by name (a stable order).

    Attributes
    ----------
    currency
        Pool currency (``BTC``, ``ETH``, ``USD``).
    underlying
        Underlying index name.
    inverse
        True for a coin pool: amounts in USD are converted at ``index``.
    index
        USD index of the underlying.
    legs
        The legs.
    rules
        The rule set.
    arrays
        The legs as column arrays (derived).
    """

    currency: str
    underlying: str
    inverse: bool
    index: float
    legs: tuple[Leg, ...]
    rules: RuleSet
    arrays: BookArrays = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arrays", BookArrays.of(self.legs))

    def to_pool(self, usd: float) -> float:
        """Convert a USD amount to the pool currency (÷ index for coin pools)."""
        return usd / self.index if self.inverse else usd

    @property
    def usd_rate(self) -> float:
        """USD per unit of pool currency (the index for coin pools, 1 for USD)."""
        return self.index if self.inverse else 1.0


def naked_usd(level: NakedLevel, *, is_call: bool, spot: float, strike: float, p: float) -> float:
    r"""Gross naked short-option requirement per unit of underlying, in USD.

    .. math::

        \text{req} = p + \max(a\,S - \delta\,\text{OTM},\; b\,\text{base},\; c\,p)

    with ``a = level.pct``, ``b = level.floor_pct``, ``δ = otm_offset``, ``c`` the mark
    percentage of the option type, and ``base = S`` or ``K``. Cboe Margin Manual naked rule
    (https://www.cboe.com/us/options/margin/, "Short Put or Short Call"); Deribit standard
    margin (https://support.deribit.com/hc/en-us/articles/25944811528477-Standard-Margin),
    where the coin formula ``max(0.15 − OTM/S, 0.10) + mark`` is this one divided by ``S``.
    """
    otm = max(strike - spot, 0.0) if is_call else max(spot - strike, 0.0)
    basis = level.call_floor_basis if is_call else level.put_floor_basis
    base = spot if basis == "spot" else strike
    mark_pct = level.mark_pct_call if is_call else level.mark_pct_put
    offset = otm if level.otm_offset else 0.0
    return p + max(level.pct * spot - offset, level.floor_pct * base, mark_pct * p)
