"""The market view the rules-based engine needs (a structural protocol)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from portmargin.instruments import Instrument

__all__ = ["RulesMarket"]


class RulesMarket(Protocol):
    """Prices the rules-based engine reads; any market snapshot with these members fits.

    Units: ``index_price`` and ``forward`` in USD per unit of underlying; ``mark_price`` of an
    option in its quote currency per unit of underlying (coin for inverse BTC/ETH products,
    USD for linear ones) and of a future, perpetual or spot pair in USD.
    """

    @property
    def valuation_time(self) -> datetime:
        """Valuation time (UTC)."""
        ...

    def index_price(self, underlying: str) -> float:
        """USD spot index of ``underlying``."""
        ...

    def forward(self, underlying: str, expiry: datetime) -> float:
        """USD forward of ``underlying`` for ``expiry``."""
        ...

    def mark_price(self, instrument: Instrument) -> float:
        """Mark of ``instrument`` (see the class docstring for units)."""
        ...
