r"""OCC TIMS-style margin: class groups, product-group offsets, minimum per contract.

Each underlying is a *class group* (its options, futures, perpetual and spot offset 100 %):
the engine's scanning risk over the 10 valuation points
(:func:`portmargin.models.grids.tims10_grid`) is the class-group requirement. Parameters are
:class:`~portmargin.models.config.TimsMinimumParams` and
:class:`~portmargin.models.config.TimsProductGroupParams`, validated when the model loads
(members declared, each in one group, offsets and rates in [0, 1], equal point counts).

Product group (a credit across class groups of one pool), per valuation point ``j`` with
``v_cj`` the class group's P&L (gain > 0) and offset percentage ``o``::

    loss_j = Σ_c min(v_cj, 0);  gain_j = Σ_c max(v_cj, 0)
    pg_j   = loss_j + o·min(gain_j, −loss_j)
    credit = Σ_c scan_c − max(−min_j pg_j, 0)       (allocated to classes pro rata to scan_c)

Points are matched by index (``down5 … up5``), so every class moves in the same direction by
the same fraction of its own range. Even at offset 0 the group therefore needs only
``max_j Σ_c max(−v_cj, 0)``, which is below ``Σ_c scan_c`` when the classes lose at
different points (a BTC loss on the way up cannot coincide with an ETH loss on the way down).

Minimum per contract (a floor on each class)::

    minimum = rate · M · S / usd_rate · Σ |option contracts|

OCC's $0.375 × multiplier per contract is read as 0.375 % of the underlying's notional
(it is exactly that for a $100 stock) [inferred mapping].

Sources: OCC, "Customer Portfolio Margin"
(https://www.theocc.com/risk-management/customer-portfolio-margin) and the TIMS "RBH/CPM User
Guide" (v1.13, 2021: class groups, product groups and their offset parameters); FINRA Rule
4210(g) (https://www.finra.org/rules-guidance/rulebooks/finra-rules/4210): ten equidistant
valuation points and the $0.375 × multiplier minimum per contract.
"""

from __future__ import annotations

import numpy as np

from portmargin._types import FloatArray
from portmargin.instruments import InstrumentKind
from portmargin.models._common import params_of, pool_per_underlying_unit, rows_kind
from portmargin.models.config import TimsMinimumParams, TimsProductGroupParams
from portmargin.models.engine import CHARGES, CREDITS, ChargeContext, CreditContext

__all__ = ["minimum_per_contract", "product_group_credit"]


def product_group_credit(pnl: list[FloatArray], scanning: FloatArray, offset: float) -> FloatArray:
    """Product-group offset credit per class, vectorised over accounts.

    Parameters
    ----------
    pnl
        Per class group, scenario P&L ``(n_accounts, n_points)`` (points aligned).
    scanning
        Per class group scanning risk, ``(n_accounts, n_classes)``.
    offset
        Fraction of gains that offsets other classes' losses at the same point.

    Returns
    -------
    Credits ``(n_accounts, n_classes)``, non-negative, adding up to the group's saving.
    """
    stack = np.stack(pnl)  # (n_classes, n_accounts, n_points)
    loss = np.minimum(stack, 0.0).sum(axis=0)
    gain = np.maximum(stack, 0.0).sum(axis=0)
    pg = loss + offset * np.minimum(gain, -loss)
    group_req = np.maximum(-pg.min(axis=1), 0.0)
    total = scanning.sum(axis=1)
    saving = np.maximum(total - group_req, 0.0)
    share = np.divide(
        scanning, total[:, None], out=np.zeros_like(scanning), where=total[:, None] > 0
    )
    out: FloatArray = saving[:, None] * share
    return out


def _product_groups(ctx: CreditContext) -> FloatArray:
    n_acc, n_und = ctx.scanning.shape
    out = np.zeros((n_acc, n_und))
    for group in params_of(ctx.params, TimsProductGroupParams).groups:
        cols = [ctx.underlyings.index(m) for m in group.members if m in ctx.underlyings]
        if len(cols) < 2:
            continue
        pnl = [ctx.raw_pnl[c] for c in cols]  # same points: checked when the model loads
        out[:, cols] += product_group_credit(pnl, ctx.scanning[:, cols], group.offset)
    return out


def minimum_per_contract(ctx: ChargeContext) -> FloatArray:
    """TIMS minimum per option contract (a floor), ``(n_accounts,)`` in the pool currency."""
    tab = ctx.risk.table
    rate = params_of(ctx.params, TimsMinimumParams).for_key(tab.underlying).rate
    opt = rows_kind(ctx, InstrumentKind.OPTION) & ~ctx.risk.table.settled[ctx.rows]
    mult = np.where(opt, tab.multiplier[ctx.rows], 0.0)
    q = ctx.quantities
    gross = abs(q) @ mult
    out: FloatArray = rate * np.asarray(gross, dtype=np.float64).reshape(-1)
    return out * pool_per_underlying_unit(ctx)


CHARGES["tims_minimum_per_contract"] = minimum_per_contract
CREDITS["tims_product_group"] = _product_groups
