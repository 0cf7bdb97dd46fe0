r"""CME SPAN on crypto: composite delta, scan decomposition, intra/spot/SOM charges, inter credit.

A *combined commodity* is an underlying (BTC, ETH); the scanning risk is the engine's worst
weighted scenario loss on the 16-scenario grid (:func:`portmargin.models.grids.span16_grid`).
Every function here is vectorised over accounts; deltas are in units of the underlying, and
a unit of underlying is worth ``S / usd_rate`` in the pool currency. Parameters are the typed
schemas of :mod:`portmargin.models.config` (``SpanIntraParams``, ``SpanSpotParams``,
``ShortOptionMinimumParams``, ``SpanInterParams``), validated when the model file loads
(tiers and legs exist, rates in [0, 1], the grid is ``span16``).

Composite delta, per contract, vol unchanged, after the look-ahead ``τ_look`` (one day)::

    cd = Σ_k w_k · M · Δ_B76(F·(1 + k/3·PSR_i)·e^{−c_i·min(τ, T)}, K, max(T − τ_look, 0), σ)
    w  = 0.037, 0.111, 0.217, 0.270, 0.217, 0.111, 0.037           (delta-one: cd = M)

with ``PSR_i`` the row's price scan range (its tier's, ``price_range_tiers``) and ``c_i`` its
roll rate (options on a spot-quoted underlying roll the shifted spot to ``T − τ``,
:mod:`portmargin.risk`; 0 otherwise).

Scan decomposition, ``L_j`` = loss in scenario j (positive = loss)::

    Scan = max_j L_j;  VolRisk = (Scan − L_paired(active))/2  (or (L_1 − L_2)/2 if Scan < 0)
    TimeRisk = (L_1 + L_2)/2;  PriceRisk = max(Scan − TimeRisk − VolRisk, 0)

Intra-commodity spread charge: the pool's composite delta is netted per *tier* (tier 0 =
undated perpetual/spot, tiers 1… = expiries by ``tier_bounds_days``); spreads
``(a, b, rate)`` are formed in priority order, each in two passes (a long/b short, then
a short/b long), consuming delta::

    n = min(max(±Δ_a, 0), max(∓Δ_b, 0));  charge += n·rate·S/usd_rate;  Δ_a ∓= n;  Δ_b ±= n

Spot charge on the delivery tier ``spot_tier``, after the same spreads (the spot charge
shares the intra charge's tiers and spreads)::

    spot = (|Δ consumed by spreads|·rate_consumed + |Δ remaining|·rate_remaining)·S/usd_rate

Short option minimum, per side (calls, puts), a rate on units and/or a fixed USD amount per
short contract (CME quotes SOM in $ per contract)::

    side = rate·S/usd_rate · Σ_i M_i·max(−q_i, 0) + per_contract_usd/usd_rate · Σ_i max(−q_i, 0)
    SOM  = side_calls + side_puts            (method "gross")
         = max(side_calls, side_puts)        (method "max")

Scanning-based inter-commodity spread (CME method 4), per spread of legs ``c`` with raw
scenario P&L ``v_cj`` (gain > 0) and credit rate ``ρ``::

    risk_j = Σ_c max(−v_cj, 0) − ρ·Σ_c max(v_cj, 0)            (losses − rate × gains)
    credit = max(Σ_c scan_c − max(max_j risk_j, 0), 0)          (split pro rata to scan_c)

Inter-commodity credit between underlyings of one pool, on the net composite delta in USD
(ratios are per USD of delta, so a BTC–ETH spread is 1 : 1 in notional)::

    WFPR_u = PriceRisk_u / |Δ_u·S_u|          (normal)
           = min(normal, PSR_u / usd_rate)    (scanrange_cap)
           = PSR_u / usd_rate                 (scanrange)
    n = min over legs (available |Δ_leg·S| / ratio_leg), two passes like intra spreads
    credit_leg = min(n·ratio_leg·WFPR_leg·rate, PriceRisk_leg)

Net option value is reported per pool (``details.net_option_value``); the engine's equity
already holds option marks, so ``excess = (cash + NOV) − Σ CC_risk`` [inferred].

Sources: CME, "Components of SPAN" (http://www.cme.com/clearing/rmspan/span/components.html:
risk arrays, look-ahead, scanning risk, intra-commodity spreads, spot charge, inter-commodity
credits, short option minimum); "CME SPAN Methodology Overview"
(https://www.cmegroup.com/clearing/risk-management/span-overview.html); PC-SPAN report
documentation for intra spreads (http://www.cme-ch.com/span/span4/doc/RptDoc/R9intraspreads.htm)
and inter spreads (http://www.cme-ch.com/span/span4/doc/RptDoc/R10interspreads.htm); CME
SPAN advisory 04-06 (2004), "composite deltas ... are probability-weighted estimates of what
each contract's delta will be one day in the future"; the seven delta points and weights in
a clearing house's SPAN file
(``martingale/spanTAKASBANK:src1/takas.spn@8e5d78bd4e2d8bfe8a745c6fe7db481cf971bcaa``,
``deltaPointDef``); the order of operations and the WFPR methods as implemented in
``LasagniAndrea/Data:SpheresRiskPerformance/RiskMethods/RiskMethodSPAN.cs@6474304``; the
scanning-based spread: CME's Type 6 record (method code 4, "Leg Required for Scanning-Based
Spread", https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46071819) and the
SPAN XML ``sSpread`` element (``marketcalls/marginism:spanrisk.xml@733c56d``); its per-scenario
"losses − rate × gains" is our reading [inferred].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from portmargin._types import FloatArray, IntArray
from portmargin.instruments import InstrumentKind
from portmargin.models._common import (
    group_matrix,
    params_of,
    pool_per_underlying_unit,
    project,
    rows_kind,
)
from portmargin.models.config import (
    ShortOptionMinimumParams,
    SpanInterParams,
    SpanIntraParams,
    SpanIntraRates,
    SpanScanningSpreadParams,
    SpanSpotParams,
)
from portmargin.models.engine import CHARGES, CREDITS, DETAILS, ChargeContext, CreditContext
from portmargin.pricing import black76_delta
from portmargin.scenarios import ScenarioSet

__all__ = [
    "COMPOSITE_DELTA_WEIGHTS",
    "composite_delta",
    "inter_commodity_credit",
    "intra_spreads",
    "price_scan_range",
    "scan_decomposition",
    "scanning_spread_credit",
    "tier_labels",
]

COMPOSITE_DELTA_WEIGHTS = (0.037, 0.111, 0.217, 0.270, 0.217, 0.111, 0.037)
_DAYS_PER_YEAR = 365.0


def price_scan_range(scen: ScenarioSet) -> float:
    """PSR of a 16-scenario set: its largest non-extreme move (a fraction of the price)."""
    std = np.array([g == "standard" for g in scen.groups])
    return float(np.max(np.abs(scen.price_moves[std])))


def composite_delta(ctx: ChargeContext, weights: tuple[float, ...] | None = None) -> FloatArray:
    """Composite delta per contract of the pool's rows (see the module docstring)."""
    w = np.asarray(weights or COMPOSITE_DELTA_WEIGHTS, dtype=np.float64)
    tab = ctx.risk.table
    rows = ctx.rows
    scen = ctx.risk.scenarios
    psr = price_scan_range(scen) * scen.move_scale(
        tab.T[rows] * _DAYS_PER_YEAR, tab.expiry_group[rows] > 0
    )
    k = np.linspace(-1.0, 1.0, w.shape[0])
    look = scen.lookahead_years
    roll = np.exp(-tab.carry[rows] * np.minimum(look, np.maximum(tab.T[rows], 0.0)))
    F = tab.F[rows][:, None] * (1.0 + k[None, :] * psr[:, None]) * roll[:, None]
    T_after = np.maximum(tab.T[rows] - look, 0.0)
    opt = tab.is_option[rows]
    K = np.where(opt, tab.K[rows], 1.0)[:, None]
    d = black76_delta(F, K, T_after[:, None], tab.sigma[rows][:, None], tab.is_call[rows][:, None])
    # a settled row (past expiry) no longer moves: no delta
    delta = np.where(opt[:, None], d, 1.0)
    per_point = np.where(tab.settled[rows][:, None], 0.0, delta) * tab.multiplier[rows][:, None]
    out: FloatArray = per_point @ w
    return out


def scan_decomposition(raw_pnl: FloatArray) -> dict[str, FloatArray]:
    """Scan, time, vol and price risk from 16-scenario P&L ``(n_accounts, 16)`` (gain > 0)."""
    L = -np.asarray(raw_pnl, dtype=np.float64)
    scan = L.max(axis=1)
    active = L.argmax(axis=1)
    paired = np.where(active < 14, active ^ 1, active)
    l_paired = np.take_along_axis(L, paired[:, None], axis=1)[:, 0]
    vol = np.where(scan < 0, (L[:, 0] - L[:, 1]) / 2.0, (scan - l_paired) / 2.0)
    scan = np.maximum(scan, 0.0)
    time = (L[:, 0] + L[:, 1]) / 2.0
    price = np.maximum(scan - time - vol, 0.0)
    return {"scan_risk": scan, "time_risk": time, "vol_risk": vol, "price_risk": price}


def tier_labels(ctx: ChargeContext, bounds_days: Sequence[float]) -> IntArray:
    """Tier of each pool row: 0 undated, then 1 + number of bounds ≤ days to expiry."""
    tab = ctx.risk.table
    undated = tab.expiry_group[ctx.rows] == 0
    days = tab.T[ctx.rows] * _DAYS_PER_YEAR
    dated = 1 + np.searchsorted(np.asarray(bounds_days, dtype=np.float64), days, side="right")
    out: IntArray = np.where(undated, 0, dated).astype(np.int64)
    return out


def intra_spreads(
    tier_delta: FloatArray, spreads: list[tuple[int, int, float]]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Delta-consuming calendar spreads in priority order, for many accounts.

    Parameters
    ----------
    tier_delta
        Net composite delta per tier, shape ``(n_accounts, n_tiers)``.
    spreads
        ``(tier a, tier b, rate per unit of delta)`` in priority order.

    Returns
    -------
    charge, consumed, remaining
        Charge in units of underlying × rate ``(n_accounts,)``, absolute delta consumed per
        tier and signed delta remaining per tier ``(n_accounts, n_tiers)``.
    """
    rem = np.array(tier_delta, dtype=np.float64, copy=True)
    consumed = np.zeros_like(rem)
    charge = np.zeros(rem.shape[0])
    for a, b, rate in spreads:
        for sign in (1.0, -1.0):
            n = np.minimum(np.maximum(sign * rem[:, a], 0.0), np.maximum(-sign * rem[:, b], 0.0))
            rem[:, a] -= sign * n
            rem[:, b] += sign * n
            consumed[:, a] += n
            consumed[:, b] += n
            charge += n * rate
    return charge, consumed, rem


def _intra_state(
    ctx: ChargeContext, rates: SpanIntraRates
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """:func:`intra_spreads` on the pool's composite delta netted by ``rates``' tiers."""
    labels = tier_labels(ctx, rates.tier_bounds_days)
    tier_delta = project(ctx.quantities, group_matrix(labels, rates.n_tiers, composite_delta(ctx)))
    return intra_spreads(tier_delta, [(x.a, x.b, x.rate) for x in rates.spreads])


def intra_commodity_charge(ctx: ChargeContext) -> FloatArray:
    """SPAN intra-commodity (calendar) spread charge, ``(n_accounts,)`` in the pool currency."""
    rates = params_of(ctx.params, SpanIntraParams).for_key(ctx.risk.table.underlying)
    charge, _, _ = _intra_state(ctx, rates)
    out: FloatArray = charge * pool_per_underlying_unit(ctx)
    return out


def spot_charge(ctx: ChargeContext) -> FloatArray:
    """SPAN spot (delivery-tier) charge, ``(n_accounts,)`` in the pool currency."""
    rates = params_of(ctx.params, SpanSpotParams).for_key(ctx.risk.table.underlying)
    _, consumed, rem = _intra_state(ctx, rates)
    tier = rates.spot_tier
    amount = consumed[:, tier] * rates.rate_consumed + np.abs(rem[:, tier]) * rates.rate_remaining
    out: FloatArray = amount * pool_per_underlying_unit(ctx)
    return out


def short_option_minimum(ctx: ChargeContext) -> FloatArray:
    """SPAN short option minimum (a floor), ``(n_accounts,)`` in the pool currency."""
    tab = ctx.risk.table
    p = params_of(ctx.params, ShortOptionMinimumParams).for_key(tab.underlying)
    rows = ctx.rows
    opt = rows_kind(ctx, InstrumentKind.OPTION) & ~ctx.risk.table.settled[ctx.rows]
    per_unit = p.rate * pool_per_underlying_unit(ctx)  # pool currency per unit of underlying
    per_contract = p.per_contract_usd / ctx.usd_rate  # pool currency per contract
    charge = tab.multiplier[rows] * per_unit + per_contract
    calls = np.where(opt & tab.is_call[rows], charge, 0.0)
    puts = np.where(opt & ~tab.is_call[rows], charge, 0.0)
    q = ctx.quantities
    shorts = -np.minimum(q.toarray() if hasattr(q, "toarray") else np.asarray(q), 0.0)
    short_calls = shorts @ calls
    short_puts = shorts @ puts
    total = short_calls + short_puts if p.method == "gross" else np.maximum(short_calls, short_puts)
    out: FloatArray = np.asarray(total, dtype=np.float64).reshape(-1)
    return out


def inter_commodity_credit(
    delta_usd: FloatArray,
    wfpr: FloatArray,
    price_risk: FloatArray,
    spreads: list[tuple[tuple[int, ...], tuple[float, ...], float]],
) -> FloatArray:
    """Delta-consuming inter-commodity credits, vectorised over accounts.

    Parameters
    ----------
    delta_usd
        Net composite delta in USD per underlying, ``(n_accounts, n_und)``.
    wfpr
        Weighted futures price risk per USD of delta, ``(n_accounts, n_und)``.
    price_risk
        Price risk per underlying (the cap of its credit), ``(n_accounts, n_und)``.
    spreads
        ``(leg columns, delta ratios, credit rate)`` in priority order; legs alternate
        sides (a spread is long the first leg and short the second, or the reverse).

    Returns
    -------
    Credits, ``(n_accounts, n_und)``, non-negative, each at most the leg's price risk.
    """
    rem = np.array(delta_usd, dtype=np.float64, copy=True)
    credit = np.zeros_like(rem)
    for legs, ratios, rate in spreads:
        sides = np.array([1.0 if i % 2 == 0 else -1.0 for i in range(len(legs))])
        for direction in (1.0, -1.0):
            avail = [
                np.maximum(direction * s * rem[:, c], 0.0) / r
                for c, r, s in zip(legs, ratios, sides, strict=True)
            ]
            n = np.minimum.reduce(avail)
            for c, r, s in zip(legs, ratios, sides, strict=True):
                rem[:, c] -= direction * s * n * r
                credit[:, c] += n * r * wfpr[:, c] * rate
    out: FloatArray = np.minimum(credit, np.maximum(price_risk, 0.0))
    return out


def _inter_credit(ctx: CreditContext) -> FloatArray:
    p = params_of(ctx.params, SpanInterParams)
    n_acc = ctx.scanning.shape[0]
    n_und = len(ctx.underlyings)
    delta_usd = np.zeros((n_acc, n_und))
    wfpr = np.zeros((n_acc, n_und))
    price_risk = np.zeros((n_acc, n_und))
    for u, (cctx, raw) in enumerate(zip(ctx.contexts, ctx.raw_pnl, strict=True)):
        if cctx is None:
            continue
        spot = ctx.market.index_price(ctx.underlyings[u])
        delta_usd[:, u] = project(cctx.quantities, composite_delta(cctx)[:, None])[:, 0] * spot
        price_risk[:, u] = scan_decomposition(raw)["price_risk"]
        psr = price_scan_range(cctx.risk.scenarios) / ctx.usd_rate
        normal = price_risk[:, u] / np.maximum(np.abs(delta_usd[:, u]), 1e-300)
        wfpr[:, u] = {
            "normal": normal,
            "scanrange_cap": np.minimum(normal, psr),
            "scanrange": np.full(n_acc, psr),
        }[p.wfpr_method]
    spreads = [
        (tuple(ctx.underlyings.index(x) for x in s.legs), s.leg_ratios, s.rate)
        for s in p.spreads
        if all(x in ctx.underlyings for x in s.legs)  # a spread needs every leg in the pool
    ]
    return inter_commodity_credit(delta_usd, wfpr, price_risk, spreads)


def scanning_spread_credit(pnl: list[FloatArray], scanning: FloatArray, rate: float) -> FloatArray:
    """Scanning-based spread credit per leg, vectorised over accounts (module docstring).

    Parameters
    ----------
    pnl
        Per leg, raw scenario P&L ``(n_accounts, n_scen)`` (gain > 0; scenarios aligned).
    scanning
        Per leg scanning risk, ``(n_accounts, n_legs)``.
    rate
        Fraction of the legs' gains that offsets their losses in the same scenario.

    Returns
    -------
    Credits ``(n_accounts, n_legs)``, non-negative, adding up to the spread's saving.
    """
    stack = np.stack(pnl)  # (n_legs, n_accounts, n_scen)
    loss = np.maximum(-stack, 0.0).sum(axis=0)
    gain = np.maximum(stack, 0.0).sum(axis=0)
    spread_risk = np.maximum((loss - rate * gain).max(axis=1), 0.0)
    total = scanning.sum(axis=1)
    saving = np.maximum(total - spread_risk, 0.0)
    share = np.divide(
        scanning, total[:, None], out=np.zeros_like(scanning), where=total[:, None] > 0
    )
    out: FloatArray = saving[:, None] * share
    return out


def _scanning_credit(ctx: CreditContext) -> FloatArray:
    n_acc, n_und = ctx.scanning.shape
    out = np.zeros((n_acc, n_und))
    for spread in params_of(ctx.params, SpanScanningSpreadParams).spreads:
        cols = [ctx.underlyings.index(x) for x in spread.legs if x in ctx.underlyings]
        if len(cols) < len(spread.legs):  # a spread needs every leg in the pool
            continue
        pnl = [ctx.raw_pnl[c] for c in cols]  # same points: checked when the model loads
        out[:, cols] += scanning_spread_credit(pnl, ctx.scanning[:, cols], spread.rate)
    return out


def _details(ctx: ChargeContext) -> dict[str, float]:
    raw = ctx.raw_pnl if ctx.raw_pnl is not None else ctx.scenario_pnl
    parts = scan_decomposition(raw)
    out = {k: float(v[0]) for k, v in parts.items()}
    cd = project(ctx.quantities, composite_delta(ctx)[:, None])[:, 0]
    out["composite_delta"] = float(cd[0])
    out["price_scan_range"] = price_scan_range(ctx.risk.scenarios)
    return out


CHARGES["span_intra_commodity"] = intra_commodity_charge
CHARGES["span_spot"] = spot_charge
CHARGES["span_short_option_minimum"] = short_option_minimum
CREDITS["span_inter_commodity"] = _inter_credit
CREDITS["span_scanning_spread"] = _scanning_credit
DETAILS["span16"] = _details
