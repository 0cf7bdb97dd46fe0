r"""Deribit portfolio-margin add-ons: roll shock and delta shock (reference/deribit.md §1.7–1.8).

Both are part of the risk-matrix margin, so both are scaled by ``mm_factor`` in MM. Each is
vectorised over accounts (``ctx.quantities`` of shape ``(n_accounts, n_rows)``) and returns
amounts in the pool currency. Deltas are forward deltas in units of the underlying per
contract (``InstrumentTable.delta_coin``); a unit of underlying is worth ``S / usd_rate`` in
the pool currency (1 in a coin pool of its own coin).

Roll shock, per expiry ``e`` of the underlying (perpetual: ``T = 0``; spot excluded)::

    roll = Σ_e |Δ_e| · max(min_annualised_move, annualised_move_risk · T_e) · S / usd_rate

with the two rates of the *pool* currency (``[[charges]] ... BTC = {...}``), [verified] for
the minimum branch and perpetual + future books, [inferred] for ``a·T`` on dated expiries.

Delta shock, on the underlying's total delta ``Δ`` in the pool (our reading, [inferred];
0 in every published example)::

    delta_shock = |Δ| · min(m_inc · max(|Δ| − threshold_USD / S, 0), max_delta_shock) · S / usd_rate
"""

from __future__ import annotations

import numpy as np

from portmargin._types import FloatArray
from portmargin.instruments import InstrumentKind
from portmargin.models._common import group_matrix, pool_per_underlying_unit, project, rows_kind
from portmargin.models.engine import CHARGES, ChargeContext

__all__ = ["delta_shock", "roll_shock"]


def roll_shock(ctx: ChargeContext) -> FloatArray:
    """Deribit roll shock (see the module docstring), shape ``(n_accounts,)``."""
    tab = ctx.risk.table
    rows = ctx.rows
    a = ctx.params.number("annualised_move_risk", ctx.pool)
    floor = ctx.params.number("min_annualised_move", ctx.pool)
    keep = ~rows_kind(ctx, InstrumentKind.SPOT)
    # per expiry of the table (undated: group 0, T = 0); expiries no row holds net to 0
    shock = np.maximum(floor, a * tab.expiry_years)
    delta = np.where(keep, tab.delta_coin[rows], 0.0)
    net = project(ctx.quantities, group_matrix(tab.expiry_group[rows], shock.size, delta))
    out: FloatArray = (np.abs(net) @ shock) * pool_per_underlying_unit(ctx)
    return out


def delta_shock(ctx: ChargeContext) -> FloatArray:
    """Deribit delta (liquidity) shock (see the module docstring), shape ``(n_accounts,)``."""
    tab = ctx.risk.table
    und = tab.underlying
    threshold = ctx.params.number("threshold_usd", und, 20_000_000.0)
    cap = ctx.params.number("max_delta_shock", und, 0.10)
    inc = ctx.params.number("m_inc", und, 0.0)
    spot = ctx.market.index_price(und)
    total = np.abs(project(ctx.quantities, tab.delta_coin[ctx.rows][:, None])[:, 0])
    frac = np.minimum(inc * np.maximum(total - threshold / spot, 0.0), cap)
    out: FloatArray = total * frac * pool_per_underlying_unit(ctx)
    return out


CHARGES["roll_shock"] = roll_shock
CHARGES["delta_shock"] = delta_shock
