r"""What a SPAN risk-parameter file says, as immutable values (both formats read into these).

A :class:`SpanFile` is one point in time of one clearing organisation: its scan and delta
points, its contracts with their **published** risk arrays (16 values, loss of one long
contract positive, in the combined commodity's currency), composite deltas, prices and pricing
inputs, its combined commodities (tiers, intra spreads, short option minimum, I/M
adjustments) and its inter-commodity spreads. Readers: :func:`portmargin.spanfile.read_xml`
(SPAN 4 XML, ``.spn``) and :func:`portmargin.spanfile.read_pa2` (expanded positional,
``.pa2``); margining on it: :mod:`portmargin.spanfile.margin`.

**Instrument names** (one scheme for both formats)::

    EXCH:PRODUCT:TYPE:PERIOD                    futures (FUT) and physicals (PHY)
    EXCH:PRODUCT:TYPE:PERIOD:C|P:STRIKE         options (OOF on futures, OOP on physicals,
                                                OOE on equities, OOC on combinations)

``PERIOD`` is the file's contract period (``CCYYMM`` plus any day/week code, e.g.
``201605S0``; an option's own series period); ``STRIKE`` is the strike as a plain decimal with
no trailing zeros (``6.25``, ``6``; ``6.00`` is accepted and means the same). The exchange
prefix may be left out when the product code is unique in the file.

Sources: CME's SPAN XML schema (``marketcalls/marginism:spanrisk.xml@733c56d``), CME's record
layouts for the positional formats
(https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46301203), CME
"Components of SPAN" (http://www.cme.com/clearing/rmspan/span/components.html).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Literal

from portmargin.errors import InputError

__all__ = [
    "CombinedCommodity",
    "Contract",
    "DeltaPoint",
    "ScanPoint",
    "ScanningSpreadDef",
    "SpanFile",
    "Spread",
    "SpreadLeg",
    "Tier",
    "contract_name",
    "month_key",
    "strike_text",
]

Kind = Literal["FUT", "PHY", "OOF", "OOP", "OOE", "OOC"]
OPTION_KINDS = frozenset({"OOF", "OOP", "OOE", "OOC"})


def strike_text(strike: Decimal) -> str:
    """A strike as written in instrument names: plain decimal, no trailing zeros."""
    text = format(strike.normalize(), "f")
    return text


def contract_name(
    exchange: str, product: str, kind: str, period: str, right: str | None, strike: Decimal | None
) -> str:
    """The instrument name of a file contract (module docstring)."""
    base = f"{exchange}:{product}:{kind}:{period}"
    if right is None or strike is None:
        return base
    return f"{base}:{right}:{strike_text(strike)}"


def canonical_name(name: str) -> str:
    """``name`` with its strike normalised (``...:C:6.00`` → ``...:C:6``); other names as is."""
    parts = name.strip().split(":")
    if len(parts) >= 5 and parts[-2] in ("C", "P"):
        try:
            parts[-1] = strike_text(Decimal(parts[-1]))
        except InvalidOperation:
            return name.strip()
    return ":".join(parts)


def month_key(period: str) -> str:
    """``CCYYMM`` of a period code, ``000000`` when it has none (physicals: ``00000S``)."""
    head = period.strip()[:6]
    return head if len(head) == 6 and head.isdigit() else "000000"


@dataclass(frozen=True, slots=True)
class ScanPoint:
    """One scan point: price move and vol move in multiples of the scan ranges.

    ``weight`` is informational (the published arrays already include it); ``paired`` is
    the 0-based index of the point it pairs with for the vol/time split (itself for the
    extreme points).
    """

    price: float
    vol: float
    weight: float
    paired: int


@dataclass(frozen=True, slots=True)
class DeltaPoint:
    """One composite-delta point: price move (multiples of the scan range) and probability."""

    price: float
    weight: float


@dataclass(frozen=True, slots=True)
class Contract:
    """One contract of the file with its published risk figures and pricing inputs.

    Money amounts (``array``, ``price_scan``) are per contract in the combined commodity's
    currency; ``price`` and ``strike`` are in price units, ``cvf`` converts one price unit
    into money per contract. Pricing inputs are ``None`` where the file has none.
    """

    name: str
    exchange: str
    product: str
    kind: str
    period: str
    right: str | None
    strike: Decimal | None
    price: float
    cvf: float
    array: tuple[float, ...]
    composite_delta: float
    dsf: float
    cc: str
    currency: str
    premium_style: bool
    tier_period: str
    underlying: str | None = None
    vol: float | None = None
    time: float | None = None
    rate: float | None = None
    dividend_yield: float | None = None
    price_scan: float | None = None
    price_scan_pct: float | None = None
    vol_scan: float | None = None
    vol_scan_pct: float | None = None
    where: str = ""

    @property
    def is_option(self) -> bool:
        """True for options (``OOF``, ``OOP``, ``OOE``, ``OOC``)."""
        return self.kind in OPTION_KINDS


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier: tier number and the contract months ``[start, end]`` (``None``: all months)."""

    number: int
    start: str | None = None
    end: str | None = None

    def holds(self, period: str) -> bool:
        """True when ``period``'s month is inside the tier (compared as ``CCYYMM``)."""
        if self.start is None and self.end is None:
            return True
        m = month_key(period)
        lo = month_key(self.start) if self.start else "000000"
        hi = month_key(self.end) if self.end else "999999"
        return lo <= m <= hi


@dataclass(frozen=True, slots=True)
class SpreadLeg:
    """A spread leg: its combined commodity, tier (or period), side A/B and delta per spread."""

    cc: str
    side: Literal["A", "B"]
    ratio: float
    tier: int | None = None
    period: str | None = None


@dataclass(frozen=True, slots=True)
class Spread:
    """A delta-based spread: priority, charge method and rate, legs.

    ``method``: ``"F"`` flat (``rate`` money per spread, an intra charge or a flat inter
    credit shared by the legs) or ``"W"`` weighted price risk (``rate`` a fraction of each
    leg's weighted futures price risk).
    """

    priority: int
    method: Literal["F", "W"]
    rate: float
    legs: tuple[SpreadLeg, ...]


@dataclass(frozen=True, slots=True)
class ScanningSpreadDef:
    """A scanning-based spread (CME method 4): its legs' combined commodities and rate."""

    priority: int
    rate: float
    legs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CombinedCommodity:
    """A combined commodity: currency, tiers, spreads, SOM, WFPR method, I/M adjustment.

    ``maintenance_factor`` and ``initial_factor`` turn the SPAN risk into the maintenance and
    initial requirements (``MM = risk·maintenance_factor``, ``IM = risk·initial_factor``).
    ``som_tiers`` pair a tier with its rate per short option (money, before the DSF).
    ``spot_months`` are delivery months with spot charges (``period, per consumed delta, per
    remaining delta``), reported but not charged (:mod:`portmargin.spanfile.margin`).
    """

    code: str
    currency: str
    intra_tiers: tuple[Tier, ...] = (Tier(0),)
    inter_tiers: tuple[Tier, ...] = (Tier(0),)
    scan_tiers: tuple[Tier, ...] = ()
    som_tiers: tuple[tuple[Tier, float], ...] = ()
    som_method: Literal["gross", "max"] = "gross"
    wfpr_method: Literal["normal", "scanrange_cap", "scanrange"] = "normal"
    intra_spreads: tuple[Spread, ...] = ()
    spot_months: tuple[tuple[str, float, float], ...] = ()
    maintenance_factor: float = 1.0
    initial_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class SpanFile:
    """A SPAN risk-parameter file (module docstring).

    Attributes
    ----------
    source
        The file read (for messages and reports).
    format
        ``"xml"`` (SPAN 4) or ``"pa2"`` (expanded positional).
    clearing_org
        Exchange complex / clearing organisation code.
    business_date, settlement
        The point in time and whether it is an end-of-day settlement file.
    points, delta_points
        The 16 (or more) scan points and the composite-delta points.
    contracts
        Contracts by instrument name.
    ccs
        Combined commodities by code.
    inter_spreads, scanning_spreads
        Inter-commodity spreads in priority order (delta-based; scanning-based).
    usd_rates
        USD per unit of each currency the file can convert (``curConv`` / type T records).
    lookahead_years
        The file's look-ahead time, where it states one.
    notes
        What the reader skipped or assumed, one line each.
    """

    source: str
    format: Literal["xml", "pa2"]
    clearing_org: str
    business_date: date
    settlement: bool
    points: tuple[ScanPoint, ...]
    delta_points: tuple[DeltaPoint, ...]
    contracts: Mapping[str, Contract]
    ccs: Mapping[str, CombinedCommodity]
    inter_spreads: tuple[Spread, ...] = ()
    scanning_spreads: tuple[ScanningSpreadDef, ...] = ()
    usd_rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    lookahead_years: float | None = None
    notes: tuple[str, ...] = ()
    _short: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "contracts", MappingProxyType(dict(self.contracts)))
        object.__setattr__(self, "ccs", MappingProxyType(dict(self.ccs)))
        object.__setattr__(self, "usd_rates", MappingProxyType(dict(self.usd_rates)))
        codes: dict[str, list[str]] = {}
        for name in self.contracts:
            codes.setdefault(name.split(":", 1)[1], []).append(name)
        object.__setattr__(
            self, "_short", MappingProxyType({k: tuple(v) for k, v in codes.items()})
        )

    def contract(self, name: str) -> Contract:
        """The contract called ``name`` (module docstring; the exchange prefix may be omitted).

        Raises
        ------
        InputError
            For a name the file does not have, or a short name two exchanges share.
        """
        key = canonical_name(name)
        found = self.contracts.get(key)
        if found is not None:
            return found
        matches = self._short.get(key, ())
        if len(matches) == 1:
            return self.contracts[matches[0]]
        if matches:
            raise InputError(f"{name!r}: several exchanges have it ({', '.join(matches)})")
        raise InputError(
            f"{name!r}: not a contract of {self.source} (names read EXCH:PRODUCT:TYPE:PERIOD"
            "[:C|P:STRIKE], e.g. "
            f"{next(iter(self.contracts), 'none in this file')})"
        )

    @property
    def label(self) -> str:
        """``<clearing org> <date> (<format>)``, the result's model version."""
        kind = "settlement" if self.settlement else "intraday"
        return f"{self.clearing_org} {self.business_date.isoformat()} {kind} ({self.format})"
