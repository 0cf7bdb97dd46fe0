"""Margin results: immutable values with the stable JSON contract of ``portmargin margin``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Excess",
    "MarginResult",
    "PoolResult",
    "PositionLine",
    "ScenarioLine",
    "UnderlyingResult",
]


class Excess:
    """``excess = equity − requirement`` for any result carrying those three figures.

    A slot-free mixin for frozen dataclasses, so every result derives its excess the same
    way instead of storing it (reference/README.md: requirement, equity, excess).
    """

    __slots__ = ()
    equity: float
    initial_margin: float
    maintenance_margin: float

    @property
    def initial_excess(self) -> float:
        """Equity − initial margin."""
        return self.equity - self.initial_margin

    @property
    def maintenance_excess(self) -> float:
        """Equity − maintenance margin."""
        return self.equity - self.maintenance_margin


@dataclass(frozen=True, slots=True)
class ScenarioLine:
    """One scenario of one (pool, underlying): move, vol shock at the pivot, P&L.

    ``pnl`` is the aggregated P&L the model charges on (gains clipped or offset as the
    model says, reference: Deribit's ``pnl_offset``); ``raw_pnl`` is the weighted P&L
    before aggregation, gains included. Both are in the pool currency.
    """

    underlying: str
    index: int
    group: str
    price_move: float
    vol_shock: float
    weight: float
    pnl: float
    raw_pnl: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PositionLine:
    """A position with its mark value (quantity × multiplier × mark) in its margin currency.

    ``quote`` says where the mark comes from (:class:`portmargin.market.QuoteSource`):
    ``quoted``, ``interpolated`` (from the smile or the carry), ``settled`` (past expiry),
    ``index`` or ``perpetual``.
    """

    instrument: str
    quantity: float
    currency: str
    mark_value: float
    delta: float
    binding_pnl: float
    quote: str = "quoted"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "instrument": self.instrument,
            "quantity": self.quantity,
            "currency": self.currency,
            "mark_value": self.mark_value,
            "delta": self.delta,
            "binding_scenario_pnl": self.binding_pnl,
            "quote": self.quote,
        }


@dataclass(frozen=True, slots=True)
class UnderlyingResult:
    """Scanning risk of one underlying within one margin currency."""

    underlying: str
    currency: str
    scanning_risk: float
    components: Mapping[str, float]
    requirement: float
    worst_scenario: ScenarioLine
    scenarios: tuple[ScenarioLine, ...]
    details: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self, *, with_scenarios: bool = False) -> dict[str, Any]:
        """JSON-ready mapping (``details``: explanatory figures, not added to the total)."""
        out: dict[str, Any] = {
            "underlying": self.underlying,
            "currency": self.currency,
            "scanning_risk": self.scanning_risk,
            "requirement": self.requirement,
            "components": dict(self.components),
            "details": dict(self.details),
            "worst_scenario": self.worst_scenario.to_dict(),
        }
        if with_scenarios:
            out["scenarios"] = [s.to_dict() for s in self.scenarios]
        return out


@dataclass(frozen=True, slots=True)
class PoolResult(Excess):
    """Margin of one margin currency (a settlement currency, or USD in cross mode).

    ``components`` add up to the requirement before the I/M multipliers:
    ``IM = im_multiplier·Σ(risk components) + Σ(IM-only components)`` and
    ``MM = mm_multiplier·Σ(risk components)``, the IM-only ones named in
    ``im_only_components``.
    """

    currency: str
    initial_margin: float
    maintenance_margin: float
    equity: float
    components: Mapping[str, float]
    underlyings: tuple[UnderlyingResult, ...]
    usd_rate: float
    details: Mapping[str, float] = field(default_factory=dict)
    im_only_components: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "currency": self.currency,
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
            "equity": self.equity,
            "initial_excess": self.initial_excess,
            "maintenance_excess": self.maintenance_excess,
            "components": dict(self.components),
            "im_only_components": list(self.im_only_components),
            "details": dict(self.details),
            "usd_rate": self.usd_rate,
        }


@dataclass(frozen=True, slots=True)
class MarginResult(Excess):
    """The margin of a portfolio under one method (the result family of every method).

    Amounts are in ``currency``: the single margin currency when there is one, otherwise
    USD with every pool converted at its index price (``by_currency`` keeps each pool in
    its own currency). Requirements are non-negative; ``excess = equity − requirement``.
    """

    model: str
    model_version: str
    currency: str
    valuation_time: str
    market_source: str
    initial_margin: float
    maintenance_margin: float
    equity: float
    components: Mapping[str, float]
    worst_scenario: ScenarioLine | None
    scenarios: tuple[ScenarioLine, ...]
    positions: tuple[PositionLine, ...]
    by_underlying: tuple[UnderlyingResult, ...]
    by_currency: tuple[PoolResult, ...]
    notes: tuple[str, ...] = field(default=())
    detail: Any = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON contract of ``portmargin margin --format json`` (docs/json.md).

        ``detail`` (a method's own explanation: the rules' strategy decomposition, Derive's
        PMRM_2 result) is not part of it; each method documents its own.
        """
        return {
            "model": self.model,
            "model_version": self.model_version,
            "currency": self.currency,
            "valuation_time": self.valuation_time,
            "market": self.market_source,
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
            "equity": self.equity,
            "initial_excess": self.initial_excess,
            "maintenance_excess": self.maintenance_excess,
            "components": dict(self.components),
            "worst_scenario": None
            if self.worst_scenario is None
            else self.worst_scenario.to_dict(),
            "scenarios": [s.to_dict() for s in self.scenarios],
            "positions": [p.to_dict() for p in self.positions],
            "by_underlying": {
                f"{u.underlying}"
                if _unique(self.by_underlying)
                else f"{u.underlying}/{u.currency}": u.to_dict()
                for u in self.by_underlying
            },
            "by_currency": {p.currency: p.to_dict() for p in self.by_currency},
            "notes": list(self.notes),
        }


def _unique(items: tuple[UnderlyingResult, ...]) -> bool:
    names = [u.underlying for u in items]
    return len(names) == len(set(names))
