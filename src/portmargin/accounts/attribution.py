r"""Margin attribution: which positions drive an account's requirement.

For each position ``i`` of a portfolio margined by :meth:`MarginModel.margin`:

``binding_scenario_pnl``
    Its weighted P&L in the binding scenario of its (pool, underlying), in the pool currency
    (the engine's ``positions[].binding_scenario_pnl``); a loss is negative.
``binding_share``
    ``−binding_scenario_pnl / Σ_{k ∈ pool,und} −binding_scenario_pnl_k``: its share of that
    scenario's loss (shares of one pool and underlying sum to 1; hedges are negative).
``marginal_im_usd``
    Remove-one marginal margin: ``IM(portfolio) − IM(portfolio without i)`` in USD. Positive
    means the position adds margin; negative means it hedges. Marginals do not sum to IM.

:func:`attribute` margins the ``n`` remove-one books as ``n`` rows of one batch on the
portfolio's session (the pipeline of ``portmargin batch``), not as ``n`` separate calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portmargin.accounts._account import margin_usd
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel, MarginResult
from portmargin.models.session import BatchResult
from portmargin.portfolio import Portfolio
from portmargin.units import usd_rate

__all__ = ["Attribution", "PositionAttribution", "attribute"]


@dataclass(frozen=True, slots=True)
class PositionAttribution:
    """One position's contribution to the binding scenario and its remove-one margin."""

    instrument: str
    quantity: float
    underlying: str
    currency: str
    binding_scenario_pnl: float
    binding_share: float
    marginal_im_usd: float
    marginal_mm_usd: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "instrument": self.instrument,
            "quantity": self.quantity,
            "underlying": self.underlying,
            "currency": self.currency,
            "binding_scenario_pnl": self.binding_scenario_pnl,
            "binding_share": self.binding_share,
            "marginal_initial_margin_usd": self.marginal_im_usd,
            "marginal_maintenance_margin_usd": self.marginal_mm_usd,
        }


@dataclass(frozen=True, slots=True)
class Attribution:
    """The engine result and the per-position attribution (positions in result order)."""

    result: MarginResult
    initial_margin_usd: float
    maintenance_margin_usd: float
    positions: tuple[PositionAttribution, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "initial_margin_usd": self.initial_margin_usd,
            "maintenance_margin_usd": self.maintenance_margin_usd,
            "positions": [p.to_dict() for p in self.positions],
        }


def attribute(portfolio: Portfolio, market: MarketSnapshot, model: MarginModel) -> Attribution:
    """Attribute ``portfolio``'s margin to its positions (see the module docstring).

    Raises
    ------
    InputError
        As :meth:`MarginModel.margin` (unknown instruments, unpriced currencies).
    """
    result = model.margin(portfolio, market)
    im, mm, _ = margin_usd(result)
    held: dict[str, float] = {}
    for name, qty in portfolio.net_positions().items():
        canonical = market.instrument(name).name
        held[canonical] = held.get(canonical, 0.0) + qty
    lines = result.positions
    session = model.session(market, tuple(held))
    rows = {
        str(i): {k: v for k, v in held.items() if k != line.instrument}
        for i, line in enumerate(lines)
    }
    cash = {str(i): dict(portfolio.cash) for i in range(len(lines))}
    without = session.margin(session.book_from_positions(rows, cash)) if lines else None
    loss: dict[tuple[str, str], float] = {}
    und_of: dict[str, str] = {}
    for line in lines:
        und = market.instrument(line.instrument).underlying
        und_of[line.instrument] = und
        key = (line.currency, und)
        loss[key] = loss.get(key, 0.0) - line.binding_pnl
    out: list[PositionAttribution] = []
    for i, line in enumerate(lines):
        und = und_of[line.instrument]
        total = loss[(line.currency, und)]
        share = -line.binding_pnl / total if total != 0 else 0.0
        assert without is not None
        im_wo, mm_wo = _usd_row(without, i, market)
        out.append(
            PositionAttribution(
                line.instrument,
                line.quantity,
                und,
                line.currency,
                line.binding_pnl,
                share,
                im - im_wo,
                mm - mm_wo,
            )
        )
    return Attribution(result, im, mm, tuple(out))


def _usd_row(result: BatchResult, row: int, market: MarketSnapshot) -> tuple[float, float]:
    """``(IM, MM)`` in USD of one row of a batch result, summed in pool order."""
    im = mm = 0.0
    for p, pool in enumerate(result.pools):
        if result.present[row, p]:
            rate = usd_rate(pool, market)
            im += float(result.initial_margin[row, p]) * rate
            mm += float(result.maintenance_margin[row, p]) * rate
    return im, mm
