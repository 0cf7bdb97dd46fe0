"""In-memory RulesMarket fake and small builders for the rules tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from portmargin.instruments import Instrument, ProductSpec, Settlement, parse_instrument

VALUATION = datetime(2026, 1, 2, 8, tzinfo=UTC)

# A US-equity-style product: 100 shares per contract, USD-settled (Cboe tests).
XYZ = ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 100.0)
PRODUCTS: Mapping[str, ProductSpec] = {"XYZ": XYZ}


@dataclass(frozen=True)
class FakeMarket:
    """Index, forwards (default: the index) and marks by instrument name."""

    index: Mapping[str, float]
    marks: Mapping[str, float] = field(default_factory=dict)
    forwards: Mapping[str, float] = field(default_factory=dict)
    valuation: datetime = VALUATION

    @property
    def valuation_time(self) -> datetime:
        return self.valuation

    def index_price(self, underlying: str) -> float:
        return self.index[underlying]

    def forward(self, underlying: str, expiry: datetime) -> float:
        return self.forwards.get(underlying, self.index[underlying])

    def mark_price(self, instrument: Instrument) -> float:
        if instrument.name in self.marks:
            return self.marks[instrument.name]
        if instrument.kind.value in ("future", "perpetual", "spot"):
            return self.index[instrument.underlying]
        raise KeyError(instrument.name)


def inst(name: str) -> Instrument:
    """Parse with the XYZ test product available."""
    return parse_instrument(name, PRODUCTS)


def book(
    legs: list[tuple[str, float, float]], index: Mapping[str, float]
) -> tuple[list[tuple[Instrument, float]], FakeMarket]:
    """Positions and a market from ``(name, quantity, mark)`` rows."""
    positions = [(inst(n), q) for n, q, _ in legs]
    marks = {inst(n).name: m for n, _, m in legs}
    return positions, FakeMarket(index, marks)
