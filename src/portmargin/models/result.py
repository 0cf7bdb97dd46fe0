"""Margin results: immutable values with the stable JSON contract of ``portmargin margin``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from portmargin._tabular import Tabular

__all__ = [
    "Excess",
    "MarginResult",
    "PoolResult",
    "PositionLine",
    "RiskMatrix",
    "ScenarioLine",
    "UnderlyingResult",
    "risk_matrix",
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

    ``scanning_contribution`` is the position's Euler contribution to its (pool, underlying)'s
    scanning risk, in the pool currency: with the scanning risk ``R = −Σ_j ω_j v_j`` over the
    scenarios that set it (the binding scenario for the worst-case measure, ``ω = 1``; the tail
    for VaR / ES) and ``v_j = Σ_i q_i·W_ij`` (+ coin collateral), position ``i`` contributes
    ``−q_i·Σ_j ω_j W_ij`` (scaled by ``R / (−Σ_j ω_j v_j)`` where aggregation changes the
    binding loss, as the extended dampener does); the positions' and the collateral's
    contributions add up to ``R`` (Tasche, "Risk contributions and performance measurement",
    1999: for a measure homogeneous of degree 1, ``R = Σ_i q_i ∂R/∂q_i``).
    """

    instrument: str
    quantity: float
    currency: str
    mark_value: float
    delta: float
    binding_pnl: float
    quote: str = "quoted"
    scanning_contribution: float = 0.0

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
            "scanning_contribution": self.scanning_contribution,
        }


@dataclass(frozen=True, slots=True)
class UnderlyingResult:
    """Scanning risk of one underlying within one margin currency.

    ``scanning_contribution`` is the underlying's Euler contribution to its pool's scanning
    risk (the pool's is the sum over its underlyings, so it equals ``scanning_risk``; under a
    joint VaR / ES it is the engine's Euler allocation); ``collateral_contribution`` the part
    of it due to coin collateral moving with the underlying (cross mode), the rest being the
    positions' ``scanning_contribution``.
    """

    underlying: str
    currency: str
    scanning_risk: float
    components: Mapping[str, float]
    requirement: float
    worst_scenario: ScenarioLine
    scenarios: tuple[ScenarioLine, ...]
    details: Mapping[str, float] = field(default_factory=dict)
    scanning_contribution: float = 0.0
    collateral_contribution: float = 0.0

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
            "scanning_contribution": self.scanning_contribution,
            "collateral_contribution": self.collateral_contribution,
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
class MarginResult(Excess, Tabular):
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
            "risk_matrix": {
                _key(u, self.by_underlying): m.to_dict()
                for u, m in zip(self.by_underlying, self.risk_matrices(), strict=True)
            },
        }

    def risk_matrices(self) -> tuple[RiskMatrix, ...]:
        """The risk matrix of each (pool, underlying), in ``by_underlying`` order."""
        return tuple(risk_matrix(u) for u in self.by_underlying)


def _unique(items: tuple[UnderlyingResult, ...]) -> bool:
    names = [u.underlying for u in items]
    return len(names) == len(set(names))


def _key(u: UnderlyingResult, items: tuple[UnderlyingResult, ...]) -> str:
    return u.underlying if _unique(items) else f"{u.underlying}/{u.currency}"


@dataclass(frozen=True, slots=True)
class RiskMatrix:
    """The P&L grid of one (pool, underlying): price moves × vol shocks, binding cell marked.

    Rows are the distinct price moves (ascending), columns the distinct vol shocks
    (ascending); ``pnl[r][c]`` is the raw scenario P&L (weighted, gains included, in the pool
    currency) of the scenario at that move and shock, ``None`` where the grid has none (an
    extended or extreme move is a row with only its own shock); ``scenario[r][c]`` its index.
    Where two scenarios share a cell the one with the larger loss is shown. ``binding`` is the
    cell of the binding scenario (the underlying's ``worst_scenario``).
    """

    underlying: str
    currency: str
    price_moves: tuple[float, ...]
    vol_shocks: tuple[float, ...]
    pnl: tuple[tuple[float | None, ...], ...]
    scenario: tuple[tuple[int | None, ...], ...]
    binding: tuple[int, int] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (rows are price moves, columns vol shocks)."""
        out: dict[str, Any] = {
            "underlying": self.underlying,
            "currency": self.currency,
            "price_moves": list(self.price_moves),
            "vol_shocks": list(self.vol_shocks),
            "pnl": [list(r) for r in self.pnl],
            "scenario": [list(r) for r in self.scenario],
            "binding": None,
        }
        if self.binding is None:
            return out
        row, col = self.binding
        out["binding"] = {
            "row": row,
            "col": col,
            "index": self.scenario[row][col],
            "price_move": self.price_moves[row],
            "vol_shock": self.vol_shocks[col],
            "pnl": self.pnl[row][col],
        }
        return out


def risk_matrix(u: UnderlyingResult) -> RiskMatrix:
    """The :class:`RiskMatrix` of ``u`` from its scenario lines (nothing is recomputed)."""
    moves = tuple(sorted({s.price_move for s in u.scenarios}))
    vols = tuple(sorted({s.vol_shock for s in u.scenarios}))
    row = {m: i for i, m in enumerate(moves)}
    col = {v: j for j, v in enumerate(vols)}
    pnl: list[list[float | None]] = [[None] * len(vols) for _ in moves]
    idx: list[list[int | None]] = [[None] * len(vols) for _ in moves]
    for s in u.scenarios:
        i, j = row[s.price_move], col[s.vol_shock]
        have = pnl[i][j]
        if have is None or s.raw_pnl < have:
            pnl[i][j] = s.raw_pnl
            idx[i][j] = s.index
    w = u.worst_scenario
    binding: tuple[int, int] | None = None
    if w.price_move in row and w.vol_shock in col:
        binding = (row[w.price_move], col[w.vol_shock])
        if idx[binding[0]][binding[1]] != w.index:
            # the binding scenario shares its cell with a larger raw loss: show the binding one
            pnl[binding[0]][binding[1]] = w.raw_pnl
            idx[binding[0]][binding[1]] = w.index
    return RiskMatrix(
        u.underlying,
        u.currency,
        moves,
        vols,
        tuple(tuple(r) for r in pnl),
        tuple(tuple(r) for r in idx),
        binding,
    )
