"""Instruments: product specifications and Deribit-style instrument names.

Names follow Deribit's scheme for every product:

=====================  ==========================================================
``BTC-27MAR26-70000-C`` European option (``C``/``P``), expiry 08:00 UTC on the date
``XYZ-20MAR26-80.5-P``  decimal strikes allowed (Deribit writes ``d`` for the point
                        in some linear products: ``XRP_USDC-27MAR26-0d5-C`` is accepted)
``BTC-27MAR26``         dated future
``BTC-PERPETUAL``       perpetual swap
``BTC_USDC``            spot pair (base ``BTC`` quoted in ``USDC``)
=====================  ==========================================================

The product part (before the first ``-``) is looked up in a :class:`ProductSpec` table: a
built-in one for Deribit's inverse BTC and ETH books and their ``_USDC`` linear books,
extended by the ``products`` section of a market file. Quantities of BTC and ETH products
are in coins, as Deribit's ``size_currency``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from types import MappingProxyType
from typing import ClassVar, TypeAlias

from portmargin.errors import InstrumentError, ParameterError

__all__ = [
    "BUILTIN_PRODUCTS",
    "Dated",
    "Future",
    "Instrument",
    "InstrumentKind",
    "Option",
    "OptionType",
    "Perpetual",
    "ProductSpec",
    "Settlement",
    "Spot",
    "expiry_code",
    "expiry_from_code",
    "parse_instrument",
]

STABLE_CURRENCIES = frozenset({"USD", "USDC", "USDT"})
EXPIRY_HOUR_UTC = 8


class Settlement(Enum):
    """How a product settles: in the quote (USD-like) currency or in the underlying coin."""

    LINEAR = "linear"
    INVERSE = "inverse"


class InstrumentKind(Enum):
    """The four kinds of instrument the engine values."""

    SPOT = "spot"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    OPTION = "option"


class OptionType(Enum):
    """Call or put."""

    CALL = "C"
    PUT = "P"


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """Contract specification of one product family (``BTC``, ``BTC_USDC``, ``XYZ``).

    Attributes
    ----------
    name
        Product code as it appears before the first ``-`` of an instrument name.
    underlying
        Price source (index) the product is written on; ``BTC_USDC`` options are on ``BTC``.
    settlement
        :class:`Settlement.INVERSE` products are valued and settled in ``underlying`` coin;
        linear ones in ``quote_currency``.
    quote_currency
        Currency of option prices: the coin for inverse products, USD/USDC for linear.
    multiplier
        Units of underlying per contract (1 coin for Deribit BTC/ETH; 100 for a US equity).
    """

    name: str
    underlying: str
    settlement: Settlement
    quote_currency: str
    multiplier: float = 1.0

    def __post_init__(self) -> None:
        if not self.name or "-" in self.name:
            raise ParameterError(f"product `name` {self.name!r} must be non-empty without '-'")
        if not (self.multiplier > 0 and self.multiplier < float("inf")):
            raise ParameterError(f"product {self.name}: `multiplier` must be > 0")
        if self.settlement is Settlement.INVERSE and self.quote_currency != self.underlying:
            raise ParameterError(
                f"product {self.name}: inverse products quote in their coin "
                f"({self.underlying}), not {self.quote_currency}"
            )

    @property
    def settlement_currency(self) -> str:
        """Currency in which P&L and margin of this product are expressed."""
        return self.underlying if self.settlement is Settlement.INVERSE else self.quote_currency

    @property
    def is_inverse(self) -> bool:
        """True for coin-settled products."""
        return self.settlement is Settlement.INVERSE


BUILTIN_PRODUCTS: Mapping[str, ProductSpec] = MappingProxyType(
    {
        "BTC": ProductSpec("BTC", "BTC", Settlement.INVERSE, "BTC", 1.0),
        "ETH": ProductSpec("ETH", "ETH", Settlement.INVERSE, "ETH", 1.0),
        "BTC_USDC": ProductSpec("BTC_USDC", "BTC", Settlement.LINEAR, "USDC", 1.0),
        "ETH_USDC": ProductSpec("ETH_USDC", "ETH", Settlement.LINEAR, "USDC", 1.0),
        "BTC_USDT": ProductSpec("BTC_USDT", "BTC", Settlement.LINEAR, "USDT", 1.0),
        "ETH_USDT": ProductSpec("ETH_USDT", "ETH", Settlement.LINEAR, "USDT", 1.0),
    }
)

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH_INDEX = {m: i + 1 for i, m in enumerate(_MONTHS)}
_EXPIRY_RE = re.compile(r"^(\d{1,2})([A-Z]{3})(\d{2})$")
_STRIKE_RE = re.compile(r"^(\d+(?:[.dD]\d+)?)$")


def expiry_from_code(code: str, *, name: str | None = None) -> datetime:
    """Expiry timestamp (08:00 UTC) of a Deribit date code such as ``27MAR26``.

    Raises
    ------
    InstrumentError
        If the code is malformed or names a date that does not exist.
    """
    where = f"instrument {name!r}" if name else f"expiry {code!r}"
    m = _EXPIRY_RE.match(code)
    if m is None:
        raise InstrumentError(f"{where}: expiry {code!r} is not of the form 27MAR26")
    day, mon, yy = int(m.group(1)), m.group(2), int(m.group(3))
    if mon not in _MONTH_INDEX:
        raise InstrumentError(f"{where}: unknown month {mon!r} in expiry {code!r}")
    try:
        return datetime(2000 + yy, _MONTH_INDEX[mon], day, EXPIRY_HOUR_UTC, tzinfo=UTC)
    except ValueError:
        raise InstrumentError(f"{where}: expiry {code!r} is not a real date") from None


def expiry_code(expiry: datetime) -> str:
    """Deribit date code of an expiry: ``datetime(2026, 3, 27, 8)`` → ``27MAR26``."""
    return f"{expiry.day}{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"


@dataclass(frozen=True, slots=True)
class _Instrument:
    """What every resolved instrument has: its canonical name and its contract spec."""

    name: str
    product: ProductSpec

    @property
    def underlying(self) -> str:
        """Name of the underlying index (``BTC`` for ``BTC_USDC`` products too)."""
        return self.product.underlying

    @property
    def settlement_currency(self) -> str:
        """Currency of this instrument's P&L: the coin if inverse, else the quote currency."""
        return self.product.settlement_currency

    @property
    def is_inverse(self) -> bool:
        """True for coin-settled instruments."""
        return self.product.is_inverse

    @property
    def multiplier(self) -> float:
        """Units of underlying per contract."""
        return self.product.multiplier

    @property
    def is_option(self) -> bool:
        """True for options."""
        return False

    @property
    def is_call(self) -> bool:
        """True for calls (False for puts and non-options)."""
        return False


@dataclass(frozen=True, slots=True)
class Spot(_Instrument):
    """A spot pair (``BTC_USDC``): one unit of the base currency, valued at the index."""

    kind: ClassVar[InstrumentKind] = InstrumentKind.SPOT
    expiry: ClassVar[None] = None
    strike: ClassVar[None] = None
    option_type: ClassVar[None] = None


@dataclass(frozen=True, slots=True)
class Perpetual(_Instrument):
    """A perpetual swap (``BTC-PERPETUAL``), valued at the perpetual mark."""

    kind: ClassVar[InstrumentKind] = InstrumentKind.PERPETUAL
    expiry: ClassVar[None] = None
    strike: ClassVar[None] = None
    option_type: ClassVar[None] = None


@dataclass(frozen=True, slots=True)
class Future(_Instrument):
    """A dated future (``BTC-27MAR26``) expiring at ``expiry`` (aware UTC)."""

    expiry: datetime
    kind: ClassVar[InstrumentKind] = InstrumentKind.FUTURE
    strike: ClassVar[None] = None
    option_type: ClassVar[None] = None


@dataclass(frozen=True, slots=True)
class Option(_Instrument):
    """A European option (``BTC-27MAR26-70000-C``).

    Attributes
    ----------
    expiry
        Expiry, aware UTC (08:00 UTC on the named date for Deribit-style names).
    strike
        Strike in USD (the quote currency), > 0 and finite.
    option_type
        Call or put.
    """

    expiry: datetime
    strike: float
    option_type: OptionType
    kind: ClassVar[InstrumentKind] = InstrumentKind.OPTION

    def __post_init__(self) -> None:
        if not (self.strike > 0 and self.strike < float("inf")):
            raise InstrumentError(f"instrument {self.name!r}: strike must be > 0")

    @property
    def is_option(self) -> bool:
        """True for options."""
        return True

    @property
    def is_call(self) -> bool:
        """True for calls."""
        return self.option_type is OptionType.CALL


Instrument: TypeAlias = Option | Future | Perpetual | Spot
"""A resolved instrument: one of the four kinds, each with exactly the fields it has.

``isinstance(x, Option)`` narrows the type; every kind can be *read* uniformly: ``x.kind``
is its :class:`InstrumentKind`, and ``x.expiry``, ``x.strike``, ``x.option_type`` are class
constants ``None`` on the kinds that have no such field (they are not fields there, so no
instance can carry a wrong one).
"""

Dated: TypeAlias = Option | Future
"""Instruments with an expiry."""


def _format_strike(strike: float) -> str:
    return str(int(strike)) if float(strike).is_integer() else repr(float(strike))


def parse_instrument(name: str, products: Mapping[str, ProductSpec] | None = None) -> Instrument:
    """Resolve a Deribit-style instrument name against a product table.

    Parameters
    ----------
    name
        ``BTC-27MAR26-70000-C``, ``BTC-27MAR26``, ``BTC-PERPETUAL``, ``BTC_USDC``, ...
    products
        Product specifications by code; :data:`BUILTIN_PRODUCTS` is used for codes not in it.

    Raises
    ------
    InstrumentError
        If the name is malformed, its date does not exist, its strike is not positive, or its
        product is unknown. The message names the instrument.
    """
    return _parse_cached(name, _table_key(products))


class _TableKey:
    """A product table as an lru_cache key, its hash computed once (tuples re-hash)."""

    __slots__ = ("_hash", "items")

    def __init__(self, items: tuple[tuple[str, ProductSpec], ...]) -> None:
        self.items = items
        self._hash = hash(items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TableKey) and self.items == other.items


# Keys of read-only product tables (a snapshot's ``MappingProxyType``), by identity: the
# same table is looked up for every instrument of every market state.
_TABLE_KEYS: dict[int, tuple[Mapping[str, ProductSpec], _TableKey]] = {}


def _table_key(products: Mapping[str, ProductSpec] | None) -> _TableKey:
    src = products if products else BUILTIN_PRODUCTS
    hit = _TABLE_KEYS.get(id(src))
    if hit is not None and hit[0] is src:
        return hit[1]
    table = dict(BUILTIN_PRODUCTS)
    table.update(src)
    key = _TableKey(tuple(sorted(table.items(), key=lambda kv: kv[0])))
    if isinstance(src, MappingProxyType):
        if len(_TABLE_KEYS) >= 256:
            _TABLE_KEYS.clear()
        _TABLE_KEYS[id(src)] = (src, key)
    return key


@lru_cache(maxsize=65536)
def _parse_cached(name: str, table_key: _TableKey) -> Instrument:
    table = dict(table_key.items)
    if not name.strip():
        raise InstrumentError(f"instrument {name!r}: empty name")
    text = name.strip().upper()
    parts = text.split("-")
    code = parts[0]

    def product() -> ProductSpec:
        spec = table.get(code)
        if spec is None:
            raise InstrumentError(
                f"instrument {name!r}: unknown product {code!r} "
                "(add it to the `products` section of the market file)"
            )
        return spec

    if len(parts) == 1:
        base, sep, quote = code.partition("_")
        if not sep or not base or not quote:
            raise InstrumentError(
                f"instrument {name!r}: not a recognised name (expected e.g. BTC-27MAR26-70000-C,"
                " BTC-27MAR26, BTC-PERPETUAL or BTC_USDC)"
            )
        spec = ProductSpec(code, base, Settlement.LINEAR, quote, 1.0)
        return Spot(code, spec)
    if len(parts) == 2:
        if parts[1] == "PERPETUAL":
            return Perpetual(text, product())
        expiry = expiry_from_code(parts[1], name=name)
        spec = product()
        return Future(f"{code}-{expiry_code(expiry)}", spec, expiry)
    if len(parts) == 4:
        expiry = expiry_from_code(parts[1], name=name)
        m = _STRIKE_RE.match(parts[2])
        if m is None:
            raise InstrumentError(f"instrument {name!r}: strike {parts[2]!r} is not a number")
        strike = float(m.group(1).replace("D", ".").replace("d", "."))
        if strike <= 0:
            raise InstrumentError(f"instrument {name!r}: strike must be > 0")
        if parts[3] not in ("C", "P"):
            raise InstrumentError(f"instrument {name!r}: option type must be C or P")
        spec = product()
        canonical = f"{code}-{expiry_code(expiry)}-{_format_strike(strike)}-{parts[3]}"
        return Option(canonical, spec, expiry, strike, OptionType(parts[3]))
    raise InstrumentError(
        f"instrument {name!r}: not a recognised name (expected e.g. BTC-27MAR26-70000-C,"
        " BTC-27MAR26, BTC-PERPETUAL or BTC_USDC)"
    )
