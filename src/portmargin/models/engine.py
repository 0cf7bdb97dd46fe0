r"""Stage 2 of the one margin pipeline: aggregation, charges, credits and requirements.

Instruments and a market snapshot → a scenario set per underlying (from the model's
parameters) → risk arrays (:mod:`portmargin.risk`) → scenario P&L of each *margin pool* and
underlying as ``q @ RA`` → aggregation and add-on charges → requirement, equity, excess.

Margin pools
    ``segregated``: one pool per settlement currency (BTC, ETH in coin; USD, USDC and USDT
    pooled as USD at par), as Deribit S:PM. ``cross``: a single USD pool; coin collateral
    is revalued in every scenario of its underlying (``collateral = "scenario"``, as
    Deribit X:PM and Derive's risk-cancelling collateral) or counted at
    ``(1 − haircut)·S`` (``collateral = "haircut"``).

Aggregation (per pool and underlying; Deribit Portfolio Margin,
https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin , and the
API changelog of 13 Jan 2026 on ``pre_aggregated_risk_vectors``, https://docs.deribit.com )::

    v_j      = Σ_i q_i·w_j·PnL_ij (+ collateral P&L in cross mode)
    agg_j    = min(v_j, 0) + pnl_offset·min(max(v_j, 0), max_offsetable_pnl)
    extended: agg_j += min(damp_j, |agg_j|) when agg_j < 0,
              damp_j = (max(|m_j|/PR, 1) − 1)·extended_dampener_USD / (S·(1 + sign(m_j)·PR))  (coin)
    scanning = max(−min_j agg_j, 0)

Components of one (pool, underlying), see :func:`compose`::

    requirement_u = max(scanning + Σ add-on charges − Σ credits, max(minimum charges))

Add-on and minimum charges are per underlying (``CHARGES``, ``[[charges]]``); credits are
cross-underlying within a pool (``CREDITS``, ``[[credits]]``: SPAN inter-commodity, TIMS
product groups). Charges marked ``in_maintenance = false`` (and X:PM collateral haircuts)
are IM-only. Per pool (Deribit: MM = ``mm_factor`` × the risk-matrix margin)::

    IM = im_multiplier·Σ_u (risk components) + Σ IM-only add-ons
    MM = mm_multiplier·Σ_u (risk components)

Equity of a pool = cash + Σ q·mark value (in the pool currency).

Everything after aggregation (charges, credits, :func:`compose`, the long-option value cap,
IM-only vs risk components, the multipliers) is written once, vectorised over accounts:
:func:`pool_components` and :func:`pool_requirements`. Their only caller is stage 1,
:class:`portmargin.models.session.MarginSession`, with a group of accounts (one account for
``portmargin margin`` and a what-if, many for ``portmargin batch`` and the monitor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from typing import Any

import numpy as np

from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.config import ChargeParams, CurrencyParams, ModelParams
from portmargin.models.grids import GRIDS
from portmargin.risk import InstrumentTable, RiskArray
from portmargin.scenarios import ScenarioSet

__all__ = [
    "CHARGES",
    "COLLATERAL_HAIRCUT",
    "CREDITS",
    "DETAILS",
    "GRIDS",
    "LONG_OPTION_CAP",
    "Aggregation",
    "ChargeContext",
    "CreditContext",
    "PoolInputs",
    "aggregate_scenarios",
    "compose",
    "im_only_kinds",
    "option_value_per_unit",
    "pool_components",
    "pool_requirements",
    "scanning_risk",
]

_NO_PARAMS = ChargeParams(kind="scanning_risk")


@dataclass(frozen=True, slots=True)
class ChargeContext:
    """What an add-on charge sees for one (pool, underlying), for many accounts at once.

    Charges are vectorised over accounts: a single-account margin is the case
    ``n_accounts = 1``. A charge returns an array of shape ``(n_accounts,)`` of
    non-negative amounts in the pool currency.

    Attributes
    ----------
    pool
        Margin currency of the pool.
    usd_rate
        USD per unit of the pool currency.
    risk
        The underlying's risk array (its instruments, pricing inputs and scenario P&L).
    rows
        Row indices of ``risk`` that belong to this pool, shape ``(n_rows,)``.
    quantities
        Quantities, shape ``(n_accounts, n_rows)`` (dense or ``scipy.sparse`` CSR).
    scenario_pnl
        The pool's aggregated scenario P&L before charges, shape ``(n_accounts, n_scen)``.
    market
        The market snapshot.
    params
        The charge's own parameters.
    raw_pnl
        The pool's scenario P&L before aggregation (gains not yet clipped), same shape
        as ``scenario_pnl``; ``None`` means "same as ``scenario_pnl``".
    """

    pool: str
    usd_rate: float
    risk: RiskArray
    rows: IntArray
    quantities: Any
    scenario_pnl: FloatArray
    market: MarketSnapshot
    params: ChargeParams
    raw_pnl: FloatArray | None = None


# Per-underlying charges by kind: each returns non-negative amounts (n_accounts,) in the pool
# currency. ``role = "minimum"`` charges are floors (see :func:`compose`).
CHARGES: dict[str, Callable[[ChargeContext], FloatArray]] = {}


@dataclass(frozen=True, slots=True)
class CreditContext:
    """What a cross-underlying credit sees: every underlying of one pool, many accounts.

    Attributes
    ----------
    pool, usd_rate, market
        As in :class:`ChargeContext`.
    underlyings
        The pool's underlyings, in column order.
    contexts
        The :class:`ChargeContext` of each underlying (``None`` for an underlying held
        only as collateral).
    raw_pnl, scenario_pnl
        Per underlying, the scenario P&L before / after aggregation, ``(n_accounts, n_scen)``.
    scanning
        Scanning risk, shape ``(n_accounts, n_underlyings)``.
    params
        The credit's own parameters.
    """

    pool: str
    usd_rate: float
    underlyings: tuple[str, ...]
    contexts: tuple[ChargeContext | None, ...]
    raw_pnl: tuple[FloatArray, ...]
    scenario_pnl: tuple[FloatArray, ...]
    scanning: FloatArray
    market: MarketSnapshot
    params: ChargeParams


# Cross-underlying credits by kind: each returns non-negative amounts (n_accounts, n_und).
CREDITS: dict[str, Callable[[CreditContext], FloatArray]] = {}

# Explanatory figures per grid (SPAN's time/vol/price split, ...): a dict of floats for one
# account (they are reported, never added to the requirement).
DETAILS: dict[str, Callable[[ChargeContext], dict[str, float]]] = {}


def replace_params(ctx: ChargeContext, params: ChargeParams) -> ChargeContext:
    """``ctx`` with the parameters of another charge."""
    # the constructor, not dataclasses.replace: this is on the what-if path (2x faster)
    return ChargeContext(
        ctx.pool,
        ctx.usd_rate,
        ctx.risk,
        ctx.rows,
        ctx.quantities,
        ctx.scenario_pnl,
        ctx.market,
        params,
        ctx.raw_pnl,
    )


def replace_credit(ctx: CreditContext, params: ChargeParams) -> CreditContext:
    """``ctx`` with the parameters of another credit."""
    return dc_replace(ctx, params=params)


def aggregate_scenarios(
    vec: FloatArray,
    scen: ScenarioSet,
    cp: CurrencyParams,
    *,
    rate: float,
    in_usd: bool,
) -> FloatArray:
    r"""Aggregate scenario P&L of one pool and underlying, for many accounts at once.

    A pure, element-wise function of ``vec`` (shape ``(n_accounts, n_scen)`` or
    ``(n_scen,)``), as in the module docstring::

        agg_j = min(v_j, 0) + pnl_offset·min(max(v_j, 0), max_offsetable_pnl / rate)
        extended j with agg_j < 0:  agg_j += min(damp_j, −agg_j)
        damp_j = (max(|m_j|/PR, 1) − 1)·dampener_USD / (rate·(1 + sign(m_j)·PR))   (coin pool)

    Parameters
    ----------
    vec
        Weighted scenario P&L in the pool currency.
    scen
        The underlying's scenario set (``PR`` = its largest non-extended move).
    cp
        The pool currency's parameters.
    rate
        USD per unit of the pool currency.
    in_usd
        True when the pool is USD (the dampener is then not re-denominated).
    """
    return Aggregation.of(scen, cp, rate=rate, in_usd=in_usd)(vec)


@dataclass(frozen=True, slots=True)
class Aggregation:
    """:func:`aggregate_scenarios` with its per-scenario constants computed once.

    ``cap`` is ``max_offsetable_pnl / rate``; ``extended`` indexes the extended scenarios
    and ``damp`` holds their dampener in the pool currency (``None`` when there is none).
    """

    pnl_offset: float
    cap: float
    extended: IntArray | slice | None
    damp: FloatArray | None

    @staticmethod
    def of(scen: ScenarioSet, cp: CurrencyParams, *, rate: float, in_usd: bool) -> Aggregation:
        """The constants of one pool and underlying (see :func:`aggregate_scenarios`)."""
        cap = cp.max_offsetable_pnl / rate if rate > 0 else 0.0
        ext = np.array([g == "extended" for g in scen.groups], dtype=np.bool_)
        if not (ext.any() and cp.extended_dampener > 0):
            return Aggregation(cp.pnl_offset, cap, None, None)
        pr = float(np.max(np.abs(scen.price_moves[~ext])))
        m = scen.price_moves
        sign = np.sign(m)
        damp_usd = (np.maximum(np.abs(m) / pr, 1.0) - 1.0) * cp.extended_dampener
        damp = damp_usd if in_usd else damp_usd / (rate * (1.0 + sign * pr))
        idx = np.flatnonzero(ext).astype(np.int64)
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        cols: IntArray | slice = slice(lo, hi) if hi - lo == idx.size else idx  # a view if it can
        return Aggregation(cp.pnl_offset, cap, cols, damp[idx])

    def __call__(self, vec: FloatArray) -> FloatArray:
        """Aggregated ``vec`` (``(..., n_scen)``)."""
        agg = np.minimum(vec, 0.0)
        if self.pnl_offset != 0.0 and self.cap != 0.0:  # else the offset term is 0
            agg += self.pnl_offset * np.minimum(np.maximum(vec, 0.0), self.cap)
        if self.extended is not None and self.damp is not None:  # only those columns move
            sub = agg[..., self.extended]
            # = where(sub < 0, min(damp, −sub), 0): damp ≥ 0, and −sub ≤ 0 where sub ≥ 0
            sub += np.maximum(np.minimum(self.damp, -sub), 0.0)
            if not isinstance(self.extended, slice):  # a copy, not a view: write it back
                agg[..., self.extended] = sub
        out: FloatArray = agg
        return out


def compose(
    scanning: FloatArray,
    addons: dict[str, FloatArray],
    credits: dict[str, FloatArray],
    minimums: dict[str, FloatArray],
) -> dict[str, FloatArray]:
    r"""Combine scanning risk, add-ons, credits and minimums into named components.

    Pure and element-wise over arrays of one shape (``(n_accounts, n_underlyings)``)::

        base        = scanning + Σ add-ons − Σ credits
        requirement = max(base, max_k minimum_k)          (SPAN §1.9: max(·, SOM))

    Returns components that add up to the requirement: ``scanning_risk``, each add-on,
    each credit (negative) and, for the binding minimum only, the top-up
    ``max(minimum − base, 0)``.
    """
    out: dict[str, FloatArray] = {"scanning_risk": scanning}
    base = scanning.copy()
    for k, v in addons.items():
        out[k] = v
        base = base + v
    for k, v in credits.items():
        out[k] = 0.0 - v
        base = base - v
    if minimums:
        names = list(minimums)
        stack = np.stack([minimums[k] for k in names])
        top = np.argmax(stack, axis=0)
        topup = np.maximum(np.max(stack, axis=0) - base, 0.0)
        for i, k in enumerate(names):
            out[k] = np.where(top == i, topup, 0.0)
    return out


LONG_OPTION_CAP = "long_option_value_cap"
COLLATERAL_HAIRCUT = "collateral_haircut"


@dataclass(frozen=True, slots=True)
class PoolInputs:
    """Stage 2's input: the (pool, underlying) pairs of one margin pool, for many accounts.

    Built by :meth:`MarginModel.margin` for one account (``n_accounts = 1``, only the pairs
    the account has) and by :class:`~portmargin.batch.MarginSession` for a chunk of accounts
    (a pair an account does not have is all zeros there and masked out afterwards).

    Attributes
    ----------
    pool, usd_rate
        As in :class:`ChargeContext`.
    underlyings
        The pool's underlyings, one per pair, in column order (``k`` of them).
    contexts
        The :class:`ChargeContext` of each pair; ``None`` where the pair has no instrument
        (coin collateral only), which charges none.
    raw_pnl, scenario_pnl
        Per pair, scenario P&L before / after aggregation, ``(n_accounts, n_scen)``.
    option_value
        ``(n_accounts, k)``: value of the pair's positions in the pool currency,
        ``q @ option_value_per_unit`` (used only where ``cap_eligible``).
    cap_eligible
        ``(n_accounts, k)``: the pair holds only long options and no coin collateral moves
        with it, so the long-option value cap applies.
    """

    pool: str
    usd_rate: float
    underlyings: tuple[str, ...]
    contexts: tuple[ChargeContext | None, ...]
    raw_pnl: tuple[FloatArray, ...]
    scenario_pnl: tuple[FloatArray, ...]
    option_value: FloatArray
    cap_eligible: BoolArray


def option_value_per_unit(table: InstrumentTable, rows: IntArray, *, cross: bool) -> FloatArray:
    """Model value per contract of ``rows`` in their pool currency (USD in cross mode)."""
    per_unit = table.value_usd[rows]
    if not cross:
        per_unit = per_unit / np.where(table.inverse[rows], table.F[rows], 1.0)
    out: FloatArray = per_unit
    return out


def pool_components(
    params: ModelParams, inputs: PoolInputs, market: MarketSnapshot
) -> dict[str, FloatArray]:
    r"""Stage 2 of one pool: named components ``(n_accounts, k)`` of each (pool, underlying).

    The one implementation of the per-pool rules, vectorised over accounts::

        scanning_u  = max(−min_j agg_uj, 0)
        charges     = CHARGES[kind](context_u) per pair    (add-ons and minimums)
        credits     = CREDITS[kind](pool)                  (cross-underlying)
        components  = compose(scanning, add-ons, credits, minimums)
        long cap    : where cap_eligible and Σ components > value / max(im, mm multiplier),
                      long_option_value_cap = value / max(...) − Σ components   (< 0)

    A book of long options can lose at most its value, so the cap keeps the I/M multiplier
    from asking a long for more than it is worth. ``long_option_value_cap`` is present only
    if it binds somewhere (and is exactly 0 where it does not).
    """
    n, k = inputs.option_value.shape
    scanning = scanning_risk(params, inputs)
    addons: dict[str, FloatArray] = {}
    minimums: dict[str, FloatArray] = {}
    for cp in params.charges:
        out = np.zeros((n, k))
        for u, ctx in enumerate(inputs.contexts):
            if ctx is not None:
                val = CHARGES[cp.kind](replace_params(ctx, cp))
                out[:, u] = np.asarray(val, dtype=np.float64).reshape(-1)
        target = minimums if cp.role == "minimum" else addons
        target[cp.kind] = target[cp.kind] + out if cp.kind in target else out
    credits: dict[str, FloatArray] = {}
    if params.credits:
        cctx = CreditContext(
            inputs.pool,
            inputs.usd_rate,
            inputs.underlyings,
            inputs.contexts,
            inputs.raw_pnl,
            inputs.scenario_pnl,
            scanning,
            market,
            _NO_PARAMS,
        )
        for credit in params.credits:
            amount = np.asarray(CREDITS[credit.kind](replace_credit(cctx, credit)), np.float64)
            kind = credit.kind
            credits[kind] = credits[kind] + amount if kind in credits else amount
    comps = compose(scanning, addons, credits, minimums)
    cap = inputs.option_value / max(params.im_multiplier, params.mm_multiplier)
    total = sum(comps.values())
    over = inputs.cap_eligible & (total > cap)
    if over.any():
        comps[LONG_OPTION_CAP] = np.where(over, cap - total, 0.0)
    return comps


def scanning_risk(params: ModelParams, inputs: PoolInputs) -> FloatArray:
    r"""Scanning risk of each (pool, underlying) pair, shape ``(n_accounts, k)``.

    ``risk_measure = "worst"`` (SPAN, Deribit, TIMS): ``max(−min_j agg_j, 0)`` on the
    aggregated P&L of each pair.

    ``"var"`` / ``"es"`` at confidence ``α`` over ``n`` equally likely scenarios (historical
    or Monte Carlo sets), on the raw P&L (gains offset losses within a scenario), with
    ``m = ⌈(1 − α)·n⌉`` tail scenarios (the empirical estimators of McNeil, Frey & Embrechts,
    *Quantitative Risk Management*, 2015, §2.2)::

        VaR_α = the m-th largest loss          ES_α = mean of the m largest losses

    With ``joint_underlyings`` the pool's pairs are measured on their sum
    ``V_j = Σ_k v_kj`` (aligned sets: scenario ``j`` is one day for every underlying) and
    the result is allocated by Euler contributions (Tasche, "Risk contributions and
    performance measurement", 1999): the tail ``T`` is chosen on ``V`` and pair ``k``
    contributes ``−mean_{j∈T} v_kj`` (ES) or ``−v_{k,j*}`` at the VaR scenario ``j*``, so
    the contributions add up to the pool's measure; a pool with no loss in its tail needs
    nothing (every contribution 0). Otherwise each pair is measured on its own, floored at 0.
    """
    n, k = inputs.option_value.shape
    out = np.zeros((n, k))
    if params.risk_measure == "worst":
        for u, agg in enumerate(inputs.scenario_pnl):
            out[:, u] = np.maximum(-np.min(agg, axis=1), 0.0)
        return out
    es = params.risk_measure == "es"
    raws = inputs.raw_pnl
    lengths = {r.shape[1] for r in raws}
    if params.joint_underlyings and k > 1 and len(lengths) == 1:
        total = np.sum(np.stack(raws), axis=0)  # (n, s)
        tail = _tail(total, params.confidence, es=es)  # (n, m) scenario indices
        rows = np.arange(n)[:, None]
        for u, raw in enumerate(raws):
            out[:, u] = -np.mean(raw[rows, tail], axis=1)
        loss = out.sum(axis=1)
        out[loss <= 0.0] = 0.0
        return out
    for u, raw in enumerate(raws):
        tail = _tail(raw, params.confidence, es=es)
        out[:, u] = np.maximum(-np.mean(raw[np.arange(n)[:, None], tail], axis=1), 0.0)
    return out


def _tail(pnl: FloatArray, confidence: float, *, es: bool) -> IntArray:
    """Indices of the tail scenarios of each row: the ``m`` worst (ES) or the m-th (VaR)."""
    s = pnl.shape[1]
    m = max(1, int(np.ceil((1.0 - confidence) * s - 1e-9)))
    part = np.argpartition(pnl, m - 1, axis=1)  # the m worst first, O(s) per row
    out: IntArray = part[:, :m] if es else part[:, m - 1 : m]
    return out


def im_only_kinds(params: ModelParams) -> frozenset[str]:
    """Components added to IM as they are, outside the multipliers (and absent from MM)."""
    kinds = {cp.kind for cp in params.charges if not cp.in_maintenance}
    return frozenset({*kinds, COLLATERAL_HAIRCUT})


def pool_requirements(params: ModelParams, components: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(IM, MM)`` of a pool from its components summed over underlyings.

    ``components`` maps names to floats (one account) or arrays (many)::

        IM = im_multiplier·Σ risk components + Σ IM-only components
        MM = mm_multiplier·Σ risk components
    """
    im_only = im_only_kinds(params)
    risk_part = sum(v for k, v in components.items() if k not in im_only)
    im_part = sum(v for k, v in components.items() if k in im_only)
    return (
        params.im_multiplier * risk_part + im_part,
        params.mm_multiplier * risk_part,
    )
