"""Portfolios: positions in instruments plus multi-currency cash balances.

Quantities are in contracts, long > 0 and short < 0; one contract is ``multiplier`` units of
the underlying (one coin for Deribit BTC/ETH products). Spot holdings are cash balances
(``{"BTC": 1.0}``); how a coin balance enters the margin (moving with the scenario price, or
at a haircut) is a model setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from portmargin.errors import InputError
from portmargin.io.limits import check_balance, check_quantity

__all__ = ["Portfolio", "Position"]


@dataclass(frozen=True, slots=True)
class Position:
    """``quantity`` contracts of the instrument called ``instrument``."""

    instrument: str
    quantity: float

    def __post_init__(self) -> None:
        if not self.instrument:
            raise InputError("position: empty instrument name")
        if not math.isfinite(self.quantity):
            raise InputError(f"position {self.instrument}: quantity must be a finite number")
        check_quantity(self.quantity, f"position {self.instrument}: quantity")


@dataclass(frozen=True, slots=True)
class Portfolio:
    """An account's positions and cash balances (currency → amount)."""

    positions: tuple[Position, ...] = ()
    cash: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    name: str = "portfolio"

    def __post_init__(self) -> None:
        for ccy, amount in self.cash.items():
            if not math.isfinite(amount):
                raise InputError(f"{self.name}: cash.{ccy}: must be a finite number")
            check_balance(amount, f"{self.name}: cash.{ccy}")
        object.__setattr__(self, "cash", MappingProxyType(dict(self.cash)))

    @classmethod
    def of(
        cls,
        positions: Mapping[str, float] | None = None,
        cash: Mapping[str, float] | None = None,
        *,
        name: str = "portfolio",
    ) -> Portfolio:
        """Shorthand: ``Portfolio.of({"BTC-27MAR26-70000-C": -1}, {"BTC": 1.0})``."""
        return cls(
            tuple(Position(k, float(v)) for k, v in (positions or {}).items()),
            dict(cash or {}),
            name,
        )

    def net_positions(self) -> dict[str, float]:
        """Quantities summed per instrument name, zero totals dropped, order of first use."""
        out: dict[str, float] = {}
        for p in self.positions:
            out[p.instrument] = out.get(p.instrument, 0.0) + p.quantity
        return {k: v for k, v in out.items() if v != 0.0}

    def with_trades(self, trades: Mapping[str, float]) -> Portfolio:
        """A new portfolio with ``trades`` (instrument → signed quantity) added."""
        extra = tuple(Position(k, float(v)) for k, v in trades.items())
        return Portfolio(self.positions + extra, self.cash, self.name)
