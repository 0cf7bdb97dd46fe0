"""Legs of one book (one settlement pool × one underlying) with their per-leg figures.

Every amount on a :class:`Leg` is per contract and in the pool currency (coin for inverse
products, USD for linear ones); USD prices are per unit of underlying.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from portmargin.rules._params import NakedLevel, RuleSet

__all__ = ["Book", "Leg", "LegKind", "naked_usd"]


class LegKind(Enum):
    """What a leg is: an option, a future/perpetual, a spot position or a pledgeable coin."""

    OPTION = "option"
    FUTURE = "future"
    PERPETUAL = "perpetual"
    SPOT = "spot"
    COIN = "coin"


@dataclass(frozen=True, slots=True)
class Leg:
    """One aggregated position of a book.

    Attributes
    ----------
    name
        Instrument name (``"<COIN> balance"`` for a coin balance).
    kind
        :class:`LegKind`.
    qty
        Signed quantity in contracts (coins for a coin balance).
    units
        Units of underlying per contract (the multiplier).
    is_call, strike, expiry
        Option data (``strike`` 0 and ``expiry`` ``inf`` where not applicable; ``expiry`` is
        POSIX seconds).
    spot
        Underlying price ``S`` (USD) the percentage rules use for this leg.
    price_usd
        Option mark in USD per unit of underlying; future/spot price in USD.
    value
        Mark value per contract in pool currency (0 for futures and coin covers).
    naked_im, naked_mm
        Gross naked requirement per contract of the leg if short (options only).
    single_im, single_mm
        Gross requirement per contract of the leg standing alone.
    proceeds
        Short-sale proceeds per contract (short options and short spot), pool currency.
    rate_im, rate_mm
        Underlying legs: margin rate as a fraction of notional (futures: size-scaled rate;
        spot/coin: the rule set's ``underlying`` fractions for the leg's side).
    """

    name: str
    kind: LegKind
    qty: float
    units: float
    is_call: bool
    strike: float
    expiry: float
    spot: float
    price_usd: float
    value: float
    naked_im: float
    naked_mm: float
    single_im: float
    single_mm: float
    proceeds: float
    rate_im: float = 0.0
    rate_mm: float = 0.0

    @property
    def is_short(self) -> bool:
        """True for short legs."""
        return self.qty < 0

    @property
    def sign(self) -> int:
        """+1 long, −1 short."""
        return 1 if self.qty > 0 else -1

    @property
    def is_option(self) -> bool:
        """True for options."""
        return self.kind is LegKind.OPTION

    @property
    def itm_usd(self) -> float:
        """Intrinsic value in USD per unit (options)."""
        diff = self.spot - self.strike if self.is_call else self.strike - self.spot
        return max(diff, 0.0)

    @property
    def otm_usd(self) -> float:
        """Out-of-the-money amount in USD per unit (options)."""
        diff = self.strike - self.spot if self.is_call else self.spot - self.strike
        return max(diff, 0.0)


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
    """

    currency: str
    underlying: str
    inverse: bool
    index: float
    legs: tuple[Leg, ...]
    rules: RuleSet

    def to_pool(self, usd: float) -> float:
        """Convert a USD amount to the pool currency (÷ index for coin pools)."""
        return usd / self.index if self.inverse else usd


def naked_usd(level: NakedLevel, *, is_call: bool, spot: float, strike: float, p: float) -> float:
    r"""Gross naked short-option requirement per unit of underlying, in USD.

    .. math::

        \text{req} = p + \max(a\,S - \delta\,\text{OTM},\; b\,\text{base},\; c\,p)

    with ``a = level.pct``, ``b = level.floor_pct``, ``δ = otm_offset``, ``c`` the mark
    percentage of the option type, and ``base = S`` or ``K``. Cboe Margin Manual naked rule
    (``rules_based.md`` §2.1); Deribit standard margin (``deribit.md`` §2.1), where the coin
    formula ``max(0.15 − OTM/S, 0.10) + mark`` is this one divided by ``S``.
    """
    otm = max(strike - spot, 0.0) if is_call else max(spot - strike, 0.0)
    basis = level.call_floor_basis if is_call else level.put_floor_basis
    base = spot if basis == "spot" else strike
    mark_pct = level.mark_pct_call if is_call else level.mark_pct_put
    offset = otm if level.otm_offset else 0.0
    return p + max(level.pct * spot - offset, level.floor_pct * base, mark_pct * p)


def finite(x: float) -> bool:
    """True for a finite float."""
    return math.isfinite(x)
