r"""Deribit portfolio-margin add-ons: roll shock and delta shock.

Both are part of Deribit's risk-matrix margin, so both are scaled by ``mm_factor`` in MM.
Each is vectorised over accounts (``ctx.quantities`` of shape ``(n_accounts, n_rows)``) and
returns amounts in the pool currency. Deltas are forward deltas in units of the underlying
per contract (``InstrumentTable.delta_coin``); a unit of underlying is worth
``S / usd_rate`` in the pool currency (1 in a coin pool of its own coin, ``S`` in USD).

Roll shock, per expiry ``e`` of the underlying (perpetual: ``T = 0``; spot excluded),
parameters :class:`~portmargin.models.config.RollShockParams` of the *pool* currency::

    roll = Σ_e |Δ_e| · max(min_annualised_move, annualised_move_risk · T_e) · S / usd_rate

[verified] for the minimum branch and perpetual + future books against the example response
of Deribit's ``private/pme/simulate`` API; [inferred] for the ``a·T`` branch on dated
expiries (``exp(a·T) − 1`` fits the published data equally well) and for option deltas
entering their expiry.

Delta shock, on the underlying's total delta ``Δ`` in the pool, parameters
:class:`~portmargin.models.config.DeltaShockParams` of the underlying (our reading,
[inferred]; 0 in every published example)::

    delta_shock = |Δ| · min(m_inc · max(|Δ| − threshold_USD / S, 0), max_delta_shock) · S / usd_rate

Sources: Deribit, "Portfolio Margin"
(https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin), and the
``private/pme/simulate`` API reference
(https://docs.deribit.com/api-reference/account-management/private-simulate), whose
``model_params`` carry ``annualised_move_risk``, ``min_annualised_move`` (per currency),
``delta_total_liq_shock_threshold``, ``max_delta_shock`` and ``m_inc`` (per currency pair),
and whose ``risk_matrix_margin_details`` report ``roll_shock`` and ``delta_shock``.
"""

from __future__ import annotations

import numpy as np

from portmargin._types import FloatArray
from portmargin.instruments import InstrumentKind
from portmargin.models._common import (
    group_matrix,
    params_of,
    pool_per_underlying_unit,
    project,
    rows_kind,
)
from portmargin.models.config import DeltaShockParams, RollShockParams
from portmargin.models.engine import CHARGES, ChargeContext

__all__ = ["delta_shock", "roll_shock"]


def roll_shock(ctx: ChargeContext) -> FloatArray:
    """Deribit roll shock (see the module docstring), shape ``(n_accounts,)``.

    Rates are those of the pool currency (``RollShockParams.for_key(ctx.pool)``): a BTC
    coin pool uses BTC's, the USD pool (cross mode, linear books) USD's.
    """
    p = params_of(ctx.params, RollShockParams).for_key(ctx.pool)
    tab = ctx.risk.table
    rows = ctx.rows
    keep = ~rows_kind(ctx, InstrumentKind.SPOT)
    # per expiry of the table (undated: group 0, T = 0); expiries no row holds net to 0
    shock = np.maximum(p.min_annualised_move, p.annualised_move_risk * tab.expiry_years)
    delta = np.where(keep, tab.delta_coin[rows], 0.0)
    net = project(ctx.quantities, group_matrix(tab.expiry_group[rows], shock.size, delta))
    out: FloatArray = (np.abs(net) @ shock) * pool_per_underlying_unit(ctx)
    return out


def delta_shock(ctx: ChargeContext) -> FloatArray:
    """Deribit delta (liquidity) shock (see the module docstring), shape ``(n_accounts,)``."""
    tab = ctx.risk.table
    und = tab.underlying
    p = params_of(ctx.params, DeltaShockParams).for_key(und)
    spot = ctx.market.index_price(und)
    total = np.abs(project(ctx.quantities, tab.delta_coin[ctx.rows][:, None])[:, 0])
    frac = np.minimum(p.m_inc * np.maximum(total - p.threshold_usd / spot, 0.0), p.max_delta_shock)
    out: FloatArray = total * frac * pool_per_underlying_unit(ctx)
    return out


CHARGES["roll_shock"] = roll_shock
CHARGES["delta_shock"] = delta_shock
