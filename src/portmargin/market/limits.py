r"""Bounds on market inputs: one validation for the Python API and every file loader.

Every number that enters a :class:`~portmargin.market.MarketSnapshot` passes through the
functions of this module, called by :func:`~portmargin.market.build_market` (so the Python API,
the JSON loader and the Deribit chain loader refuse exactly the same inputs). The bounds are
generous for any real market and tight enough that nothing derived from them overflows a
float64: with a price ``≤ 1e9``, a carry or rate ``|b| ≤ 1`` and ``T ≤ 100`` years, a forward
is at most ``1e9·e^{100} ≈ 2.7e52`` USD and a contract value at most ``1e6`` times that.

========================  =====================================  ===========================
input                     allowed range                          unit
========================  =====================================  ===========================
spot (index), perpetual,  ``[1e-8, 1e9]``                        USD per unit of underlying
future mark, forward,
settlement price, strike
option mark price         ``[0, 1e9]``                           quote currency per unit
                                                                 (coin for inverse products)
mark implied vol          ``(0, 10]``                            annualised decimal (10 =
                                                                 1,000 %)
rate                      ``[−1, 1]``                            continuously compounded, /yr
product multiplier        ``(0, 1e6]``                           units of underlying per
                                                                 contract
valuation time            ``[2000-01-01, 2100-01-01)`` UTC,      aware timestamp
                          with a time zone
========================  =====================================  ===========================

Derived quantities have fixed, documented guards (not inputs):

* :data:`VOL_FLOOR` — the implied vol given to an option whose mark is at or below its
  no-arbitrage lower bound (discounted intrinsic value), where no implied vol exists;
* :data:`SETTLEMENT_WINDOW` — a forward expiring within this window does not enter the carry
  curve (its expiry settles on a 30-minute average of the index, Deribit's delivery price:
  https://support.deribit.com/hc/en-us/articles/25944751433757);
* :data:`CARRY_MIN_YEARS` and :data:`CARRY_MAX` — the annualised carry implied by a forward
  is ``(ln(F/S) − r·T) / max(T, CARRY_MIN_YEARS) + r``, clipped to ``[−CARRY_MAX, CARRY_MAX]``.

Every error is a :class:`~portmargin.errors.MarketDataError` of one line, ``field: reason``,
with the offending value written as ``repr(float(x))``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from portmargin.errors import MarketDataError

__all__ = [
    "CARRY_MAX",
    "CARRY_MIN_YEARS",
    "MULTIPLIER_MAX",
    "OPTION_PRICE_MAX",
    "PRICE_MAX",
    "PRICE_MIN",
    "RATE_MAX",
    "SETTLEMENT_WINDOW",
    "TIME_MAX",
    "TIME_MIN",
    "VOL_FLOOR",
    "VOL_MAX",
    "check_multiplier",
    "check_option_price",
    "check_price",
    "check_rate",
    "check_time",
    "check_vol",
    "fmt",
]

PRICE_MIN = 1e-8
"""Smallest USD price accepted (spot, perpetual, future, forward, settlement, strike)."""
PRICE_MAX = 1e9
"""Largest USD price accepted (spot, perpetual, future, forward, settlement, strike)."""
OPTION_PRICE_MAX = 1e9
"""Largest option mark accepted, in the option's quote currency per unit of underlying."""
VOL_MAX = 10.0
"""Largest mark implied vol accepted (annualised decimal; 10 = 1,000 %)."""
VOL_FLOOR = 0.01
"""Implied vol (1 %) given to an option marked at or below its no-arbitrage lower bound."""
RATE_MAX = 1.0
"""Largest absolute continuously compounded rate accepted (per year)."""
MULTIPLIER_MAX = 1e6
"""Largest product multiplier accepted (units of underlying per contract)."""
TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
"""Earliest valuation time accepted."""
TIME_MAX = datetime(2100, 1, 1, tzinfo=UTC)
"""Valuation times must be before this instant."""
SETTLEMENT_WINDOW = timedelta(minutes=30)
"""A forward expiring within this window of the valuation time is not a carry point."""
CARRY_MIN_YEARS = 7.0 / 365.0
"""Shortest horizon (a week, ACT/365) over which a forward's basis is annualised."""
CARRY_MAX = 1.0
"""Largest absolute annualised carry interpolated between forwards (as :data:`RATE_MAX`)."""


def fmt(value: object) -> str:
    """A number for an error message: ``repr(float(x))`` (never ``np.float64(...)``)."""
    try:
        return repr(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return repr(value)


def _number(value: object, field: str) -> float:
    if isinstance(value, bool):
        raise MarketDataError(f"{field}: must be a number, got {value!r}")
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise MarketDataError(f"{field}: must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise MarketDataError(f"{field}: must be a finite number, got {fmt(out)}")
    return out


def check_price(value: object, field: str) -> float:
    """A USD price in ``[PRICE_MIN, PRICE_MAX]``, as a float.

    Raises
    ------
    MarketDataError
        ``field: must be in [1e-08, 1e+09] USD, got <value>``.
    """
    out = _number(value, field)
    if not PRICE_MIN <= out <= PRICE_MAX:
        raise MarketDataError(
            f"{field}: must be in [{PRICE_MIN:g}, {PRICE_MAX:g}] USD, got {fmt(out)}"
        )
    return out


def check_option_price(value: object, field: str) -> float:
    """An option mark in ``[0, OPTION_PRICE_MAX]`` (quote currency per unit of underlying)."""
    out = _number(value, field)
    if not 0.0 <= out <= OPTION_PRICE_MAX:
        raise MarketDataError(f"{field}: must be in [0, {OPTION_PRICE_MAX:g}], got {fmt(out)}")
    return out


def check_vol(value: object, field: str) -> float:
    """An implied vol in ``(0, VOL_MAX]`` (annualised decimal)."""
    out = _number(value, field)
    if not 0.0 < out <= VOL_MAX:
        raise MarketDataError(
            f"{field}: must be in (0, {VOL_MAX:g}] (a decimal: 0.55 = 55 %), got {fmt(out)}"
        )
    return out


def check_rate(value: object, field: str) -> float:
    """A continuously compounded annual rate in ``[−RATE_MAX, RATE_MAX]``."""
    out = _number(value, field)
    if not -RATE_MAX <= out <= RATE_MAX:
        raise MarketDataError(
            f"{field}: must be in [-{RATE_MAX:g}, {RATE_MAX:g}] (a decimal per year), "
            f"got {fmt(out)}"
        )
    return out


def check_multiplier(value: object, field: str) -> float:
    """A product multiplier in ``(0, MULTIPLIER_MAX]`` units of underlying per contract."""
    out = _number(value, field)
    if not 0.0 < out <= MULTIPLIER_MAX:
        raise MarketDataError(f"{field}: must be in (0, {MULTIPLIER_MAX:g}], got {fmt(out)}")
    return out


def check_time(value: datetime, field: str) -> datetime:
    """An aware timestamp in ``[TIME_MIN, TIME_MAX)``, converted to UTC.

    Raises
    ------
    MarketDataError
        If the timestamp is naive, cannot be expressed in UTC, or is out of range.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise MarketDataError(f"{field}: must carry a time zone (use ...Z for UTC)")
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not TIME_MIN <= utc < TIME_MAX:
        raise MarketDataError(
            f"{field}: {value.isoformat()} is outside [{TIME_MIN:%Y-%m-%d}, {TIME_MAX:%Y-%m-%d})"
        )
    return utc
