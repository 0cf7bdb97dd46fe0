r"""Derive PMRM_2 portfolio margin, reproduced from the on-chain maths.

Source: ``derivexyz/v2-core:src/risk-managers/PMRMLib_2.sol`` (margin maths) and
``derivexyz/v2-core:src/risk-managers/PMRM_2.sol`` (portfolio arrangement) at commit
``7736900d395703c4f675376caa4c315402943831``; restated in ``docs/methodology/derive.md``
(section numbers below follow the methodology's restatement cited there).

Outline (all amounts in USD / stable units, P&L positive = gain)::

    V_e(x, σ')   = Σ_{i∈e} n_i · B76(F^var_e·x + F^fix_e, K_i, σ'_i, τ_e, D_e)      §3
    SD_e(V)      = V·δ⁺_e if V ≥ 0 else V·δ⁻_e                                     §4
    PnL(x,dir,w) = w·q_p·(x−1)·P_p + Σ_e w·(SD_e(V_e(x,σ'^dir)) − V⁰_e)
                   + Σ_{j risk-cancelling} w·v_j·(x−1)                              §5
    PnL_skew     = Σ_e −|w·(SD_e(V_e(1,σ'^skew)) − V⁰_e)|                          §6
    B            = Σ_e min(V_e(x_up)−V⁰_e, V_e(x_dn)−V⁰_e, 0)·(add + mult·τ_e)     §7
    minSPAN      = min(B, min_s PnL_s)
    MM excess    = f_MM·minSPAN − MMCont + MtM + C                                  §9
    IM excess    = f_IM·minSPAN − MMCont − IMCont + MtM + C

All options of all scenarios are priced in one vectorised Black-76 call
(:func:`portmargin.pricing.black76_price`) on a ``(n_scenarios, n_options)`` grid and reduced
to per-expiry values with a matrix product, because the static discount and the skew
``−|·|`` act on expiry totals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.derive.case import DeriveCase, DerivePortfolio
from portmargin.derive.params import (
    PMRM2Params,
    SkewShockParams,
    VolShockDirection,
)
from portmargin.errors import ParameterError
from portmargin.pricing import black76_delta, black76_price

__all__ = [
    "SECONDS_PER_YEAR",
    "SETTLEMENT_TWAP_SECONDS",
    "DeriveResult",
    "WorstAttribution",
    "evaluate",
    "evaluate_case",
]

SECONDS_PER_YEAR = 31_536_000.0
"""ACT/365 year in seconds: ``τ = seconds / 31,536,000``."""

SETTLEMENT_TWAP_SECONDS = 1_800.0
"""Settlement TWAP window (``LyraForwardFeed.SETTLEMENT_TWAP_DURATION``)."""

_THIRTY_DAYS_SECONDS = 2_592_000.0
_SECONDS_PER_DAY = 86_400.0
_MAX_STD_DEV = 24.0  # Black76.sol: σ√τ >= 24 prices the call at D·F


@dataclass(frozen=True, slots=True)
class WorstAttribution:
    r"""The binding P&L (``minSPAN``) split by holding; the parts add up to it exactly.

    For a configured scenario ``j`` (§5, §6) with the expiry's static-discount factor
    ``δ_e`` chosen by the sign of the expiry's shocked total (as :func:`evaluate` does)::

        option i  : w·(n_i·B76_i(x, σ')·δ_e − n_i·B76_i⁰)      (× −sign of the expiry's
                                                               total for LINEAR/ABS, §6)
        perp      : w·(x − 1)·P_p per unit, × q_p
        collateral: w·(x − 1)·v_j if risk-cancelling, else 0

    For the forward contingency (§7) each option takes the branch its expiry took,
    ``n_i·(B76_i(x_branch) − B76_i⁰)·(add + mult·τ_e)`` (0 where the expiry's term is 0),
    and the perp and collateral take 0.

    Attributes
    ----------
    options
        P&L of each option holding, in ``portfolio.options`` order (USD).
    perp_per_unit
        P&L of one unit of perp (``w·(x − 1)·P_p``; 0 for the forward contingency).
    collaterals
        P&L of each collateral holding, in ``portfolio.collaterals`` order (stable units).
    """

    options: tuple[float, ...]
    perp_per_unit: float
    collaterals: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class DeriveResult:
    """PMRM_2 margin of one portfolio, in the engine convention.

    The excesses are Derive's own outputs (``MM``/``IM`` of the manager, negative = deficit).
    Requirements and equity split them as ``excess = equity − requirement``.

    Attributes
    ----------
    currency
        Currency of every amount: ``"USD"`` (the stable quote asset).
    maintenance_margin
        ``−f_MM·minSPAN + MMCont``. Non-negative by construction (``minSPAN ≤ 0`` and the
        loss factors and contingency rates are validated ``≥ 0``). Should it ever be
        negative (it cannot with validated parameters), treat it as a bug: it is **not**
        floored, so that ``equity − requirement == excess`` always holds.
    initial_margin
        ``−f_IM·minSPAN + MMCont + IMCont`` (``f_IM`` peg-adjusted); same sign rule.
    equity
        ``MtM + C = U_p + Σ_e V⁰_e + Σ_j v_j + cash``.
    maintenance_excess
        ``equity − maintenance_margin`` (= the case file's ``Result.MM``).
    initial_excess
        ``equity − initial_margin`` (= the case file's ``Result.IM``).
    min_span
        ``minSPAN ≤ 0``: the worst of the scenario P&Ls and the forward contingency.
    forward_contingency
        ``B ≤ 0`` (§7, ``Result.ForwardContingency``).
    components
        Non-negative named parts. They add up as::

            maintenance_margin = mm_scenario_loss + mm_perp_contingency
                                 + mm_option_contingency + mm_collateral_haircut
            initial_margin     = im_scenario_loss + im_peg_adjustment
                                 + mm_perp_contingency + mm_option_contingency
                                 + mm_collateral_haircut
                                 + im_perp_contingency + im_option_contingency
                                 + im_collateral_haircut + im_confidence_contingency

        with ``mm_scenario_loss = −f_MM·minSPAN``, ``im_scenario_loss = −imFactor·minSPAN``
        and ``im_peg_adjustment = −(f_IM − imFactor)·minSPAN``. ``worst_loss = −minSPAN``
        is included for information and is not a summand.
    equity_components
        ``cash + option_mtm + collateral_mtm + perp_unrealised_pnl + perp_unrealised_funding
        = equity``.
    worst_scenario
        The scenario that set ``minSPAN``: ``kind`` (regular/tail/skew or
        ``forward_contingency``), ``index`` (position in the configured list, ``None`` for the
        forward contingency), ``spot_shock``, ``price_move`` (``x − 1``; ``None`` for the
        forward contingency, which mixes both moves per expiry), ``vol_shock``,
        ``dampening`` and ``pnl``. Ties go to the forward contingency, then to the earlier
        scenario.
    scenarios
        One mapping per configured scenario, in order, with the same keys.
    forward_contingency_move
        ``x − 1`` of the basis move behind ``B``: the branch (``x_up`` or ``x_dn``) of the
        expiry with the largest loss term, 0 when ``B = 0`` (``B`` mixes both moves across
        expiries; this names the one that weighs most).
    option_values
        ``V⁰`` of each option holding, ``n_i·B76_i⁰`` (USD, ``portfolio.options`` order);
        they add up to ``equity_components["option_mtm"]``.
    option_deltas
        Spot sensitivity of each option holding in units of underlying:
        ``n_i·Δ_i·F^var_e/F_e`` with ``Δ`` the Black-76 forward delta.
    attribution
        The binding P&L split by holding (:class:`WorstAttribution`).
    """

    currency: str
    maintenance_margin: float
    initial_margin: float
    equity: float
    maintenance_excess: float
    initial_excess: float
    min_span: float
    forward_contingency: float
    components: Mapping[str, float]
    equity_components: Mapping[str, float]
    worst_scenario: Mapping[str, object]
    scenarios: Sequence[Mapping[str, object]]
    forward_contingency_move: float
    option_values: tuple[float, ...]
    option_deltas: tuple[float, ...]
    attribution: WorstAttribution

    def to_dict(self) -> dict[str, object]:
        """Return plain ``dict``/``list``/``float`` data (ready for ``json.dumps``)."""
        return {
            "currency": self.currency,
            "maintenance_margin": self.maintenance_margin,
            "initial_margin": self.initial_margin,
            "equity": self.equity,
            "maintenance_excess": self.maintenance_excess,
            "initial_excess": self.initial_excess,
            "min_span": self.min_span,
            "forward_contingency": self.forward_contingency,
            "components": dict(self.components),
            "equity_components": dict(self.equity_components),
            "worst_scenario": dict(self.worst_scenario),
            "scenarios": [dict(s) for s in self.scenarios],
            "forward_contingency_move": self.forward_contingency_move,
            "option_values": list(self.option_values),
            "option_deltas": list(self.option_deltas),
            "attribution": {
                "options": list(self.attribution.options),
                "perp_per_unit": self.attribution.perp_per_unit,
                "collaterals": list(self.attribution.collaterals),
            },
        }


@dataclass(frozen=True, slots=True)
class _Expiries:
    """Per-expiry arrays (length E), in ``portfolio.feeds`` order."""

    tau: FloatArray
    seconds: FloatArray
    forward: FloatArray
    f_var: FloatArray
    f_fix: FloatArray
    rate: FloatArray
    df: FloatArray
    confidence: FloatArray


@dataclass(frozen=True, slots=True)
class _Options:
    """Per-option arrays (length n)."""

    expiry: IntArray
    strike: FloatArray
    is_call: BoolArray
    amount: FloatArray
    vol: FloatArray


def _expiries(p: DerivePortfolio) -> _Expiries:
    r"""Time, forward split, floored rate, discount and confidence per expiry (§3, §8, §10).

    ``τ = s/31,536,000``; ``r ← max(r, 0)``; ``D = e^{−rτ}``; inside the settlement window
    (``s < 1800``) ``F^fix = F·(1800 − s)/1800`` and ``F^var = F·s/1800``.
    """
    seconds = np.array([f.expiry_seconds for f in p.feeds], dtype=np.float64)
    forward = np.array([f.forward for f in p.feeds], dtype=np.float64)
    rate = np.maximum(np.array([f.rate for f in p.feeds], dtype=np.float64), 0.0)
    tau = seconds / SECONDS_PER_YEAR
    in_window = seconds < SETTLEMENT_TWAP_SECONDS
    f_var = np.where(in_window, forward * seconds / SETTLEMENT_TWAP_SECONDS, forward)
    f_fix = np.where(in_window, forward - f_var, 0.0)
    c_port = _portfolio_confidence(p)
    conf = np.array(
        [min(c_port, f.forward_confidence, f.rate_confidence, f.vol_confidence) for f in p.feeds],
        dtype=np.float64,
    )
    return _Expiries(
        tau=tau,
        seconds=seconds,
        forward=forward,
        f_var=f_var,
        f_fix=f_fix,
        rate=rate,
        df=np.exp(-rate * tau),
        confidence=conf.reshape(-1),
    )


def _options(p: DerivePortfolio) -> _Options:
    index = {f.expiry_seconds: e for e, f in enumerate(p.feeds)}
    return _Options(
        expiry=np.array([index[o.expiry_seconds] for o in p.options], dtype=np.int64),
        strike=np.array([o.strike for o in p.options], dtype=np.float64),
        is_call=np.array([o.is_call for o in p.options], dtype=np.bool_),
        amount=np.array([o.amount for o in p.options], dtype=np.float64),
        vol=np.array([o.vol for o in p.options], dtype=np.float64),
    )


def _portfolio_confidence(p: DerivePortfolio) -> float:
    """``c_port = min(c_S, c_perp)``, the perp confidence only if ``q_p ≠ 0`` (§8)."""
    if p.perp_position != 0.0:
        return min(p.spot_confidence, p.perp_confidence)
    return p.spot_confidence


def _static_discounts(ex: _Expiries, params: PMRM2Params) -> tuple[FloatArray, FloatArray]:
    r"""Return the static discount factors ``(δ⁺, δ⁻)`` per expiry (§4).

    ``δ⁺ = longBase·exp(−τ(r·longMult + longAdd))``,
    ``δ⁻ = min(1/D, shortBase·exp(τ(r·shortMult + shortAdd)))``.
    """
    m = params.margin
    long_ = m.long_base_discount * np.exp(-ex.tau * (ex.rate * m.long_rate_mult + m.long_rate_add))
    short = np.minimum(
        1.0 / ex.df,
        m.short_base_discount * np.exp(ex.tau * (ex.rate * m.short_rate_mult + m.short_rate_add)),
    )
    return long_, short


def _vol_multipliers(ex: _Expiries, params: PMRM2Params) -> tuple[FloatArray, FloatArray]:
    r"""Up and down vol multipliers per expiry (§5).

    ``m = (2,592,000 / max(s, dteFloor))^p`` with ``p`` the short-term power when
    ``s ≤ 30 days`` (inclusive), else the long-term power; ``u = 1 + up·m``,
    ``d = max(0, 1 − down·m)``.
    """
    v = params.vol_shock
    floor = v.dte_floor_days * _SECONDS_PER_DAY
    effective = np.maximum(ex.seconds, floor)
    if np.any(effective <= 0.0):
        raise ParameterError(
            "VolShockParams.dte_floor_days: must be > 0 when an option is expired "
            "(time to expiry 0 makes the vol-shock multiplier infinite)"
        )
    power = np.where(ex.seconds <= _THIRTY_DAYS_SECONDS, v.short_term_power, v.long_term_power)
    mult = (_THIRTY_DAYS_SECONDS / effective) ** power
    return 1.0 + v.vol_range_up * mult, np.maximum(0.0, 1.0 - v.vol_range_down * mult)


def _skew_vols(
    ex: _Expiries, opt: _Options, skew: SkewShockParams, direction: VolShockDirection
) -> FloatArray:
    r"""Skew-shocked vols ``σ' = σ·max(0, 1 + g)`` for LINEAR or ABS (§6).

    ``a = √τ``; ``cap = cBase·a + baseCap``; ``k* = max(minKStar, width·a·(static + scale·a))``;
    ``k = ln(K/F)`` (``|ln(K/F)|`` for ABS); ``g = min(cap, k·cap/k*)`` if ``k ≥ 0`` else
    ``max(−cap, k·cap/k*)`` (asymmetric on purpose: ``cap`` may be negative).
    Options with ``K = 0`` or ``F = 0`` keep their vol (their price does not depend on it).
    """
    if direction is VolShockDirection.LINEAR:
        base_cap, c_base = skew.linear_base_cap, skew.linear_c_base
    else:
        base_cap, c_base = skew.abs_base_cap, skew.abs_c_base
    a = np.sqrt(ex.tau)[opt.expiry]
    cap = c_base * a + base_cap
    k_star = np.maximum(
        skew.min_k_star, skew.width_scale * a * (skew.vol_param_static + skew.vol_param_scale * a)
    )
    fwd = ex.forward[opt.expiry]
    priced = (opt.strike > 0.0) & (fwd > 0.0)
    k = np.log(np.where(priced, opt.strike, 1.0) / np.where(priced, fwd, 1.0))
    if direction is VolShockDirection.ABS:
        k = np.abs(k)
    safe_k_star = np.where(k_star > 0.0, k_star, 1.0)
    scaled = np.where(k_star > 0.0, k * cap / safe_k_star, np.where(k > 0.0, np.inf, -np.inf))
    scaled = np.where(k == 0.0, 0.0, scaled)
    g = np.where(k >= 0.0, np.minimum(cap, scaled), np.maximum(-cap, scaled))
    out: FloatArray = np.where(priced, opt.vol * np.maximum(0.0, 1.0 + g), opt.vol)
    return out


def _shocked_vols(
    ex: _Expiries,
    opt: _Options,
    params: PMRM2Params,
    direction: VolShockDirection,
    up_e: FloatArray,
    down_e: FloatArray,
) -> FloatArray:
    r"""Per-option vols under one vol direction (§5 Up/Down/None, §6 LINEAR/ABS).

    ``Up: max(minVolUpShock, σ·u_e)``, ``Down: σ·d_e``, ``None: σ``, skew: :func:`_skew_vols`.
    """
    if direction is VolShockDirection.UP:
        out: FloatArray = np.maximum(params.vol_shock.min_vol_up_shock, opt.vol * up_e[opt.expiry])
        return out
    if direction is VolShockDirection.DOWN:
        out = opt.vol * down_e[opt.expiry]
        return out
    if direction.is_skew:
        return _skew_vols(ex, opt, params.skew, direction)
    return opt.vol


def _option_prices(
    ex: _Expiries, opt: _Options, spot_mult: FloatArray, vols: FloatArray
) -> FloatArray:
    r"""``B76(F_e(x), K_i, σ'_i, τ_e, D_e)`` per unit: shape ``(n_rows, n)`` from ``vols``.

    Black-76 with the on-chain edge rule: where ``σ√τ ≥ 24`` the call is ``D·F``
    (``lyra-utils:src/math/Black76.sol``); the put is then ``D·K`` by parity (our inference).
    """
    e = opt.expiry
    fwd = ex.f_var[e][None, :] * spot_mult[:, None] + ex.f_fix[e][None, :]
    tau = ex.tau[e][None, :]
    df = ex.df[e][None, :]
    price = black76_price(fwd, opt.strike[None, :], tau, vols, opt.is_call[None, :], df=df)
    wide = vols * np.sqrt(tau) >= _MAX_STD_DEV
    out: FloatArray = np.where(
        wide, df * np.where(opt.is_call[None, :], fwd, opt.strike[None, :]), price
    )
    return out


def _expiry_values(prices: FloatArray, opt: _Options, n_expiries: int) -> FloatArray:
    r"""``V_e = Σ_{i∈e} n_i·price_i`` for every row: shape ``(n_rows, E)``."""
    onehot = np.zeros((opt.amount.size, n_expiries), dtype=np.float64)
    onehot[np.arange(opt.amount.size), opt.expiry] = opt.amount
    out: FloatArray = prices @ onehot
    return out


def _option_deltas(ex: _Expiries, opt: _Options) -> FloatArray:
    r"""Spot sensitivity of each holding in units of underlying: ``n_i·Δ_i·F^var_e/F_e``.

    ``Δ`` is the Black-76 forward delta (:func:`portmargin.pricing.black76_delta`, ``D·N(d1)``
    for a call, ``−D·N(−d1)`` for a put) at the unshocked inputs; ``F^var/F`` is 1 away from
    expiry and falls to 0 across the settlement window, as the scenarios move only
    ``F^var`` (§10). Where ``σ√τ ≥ 24`` the call is ``D·F`` (delta ``D``) and the put ``D·K``
    (delta 0).
    """
    e = opt.expiry
    fwd, tau, df = ex.forward[e], ex.tau[e], ex.df[e]
    delta = black76_delta(fwd, opt.strike, tau, opt.vol, opt.is_call, df=df)
    wide = opt.vol * np.sqrt(tau) >= _MAX_STD_DEV
    delta = np.where(wide, np.where(opt.is_call, df, 0.0), delta)
    share = np.where(fwd > 0.0, ex.f_var[e] / np.where(fwd > 0.0, fwd, 1.0), 0.0)
    out: FloatArray = opt.amount * delta * share
    return out


def _confidence_charge(
    confidence: FloatArray | float, notional: FloatArray | float, params: PMRM2Params
) -> FloatArray:
    """``conf(c, N) = (1 − c)·confMargin·N`` if ``c < confThreshold`` else 0 (§8)."""
    o = params.other
    c = np.asarray(confidence, dtype=np.float64)
    out: FloatArray = np.where(
        c < o.conf_threshold, (1.0 - c) * o.conf_margin * np.asarray(notional), 0.0
    )
    return out


def _naked_shorts(opt: _Options, n_expiries: int) -> FloatArray:
    r"""``naked_e = Σ_K max(0, −Σ_{i: K_i = K} n_i)``: call and put at one strike net (§8)."""
    if opt.amount.size == 0:
        return np.zeros(n_expiries, dtype=np.float64)
    keys = np.stack([opt.expiry.astype(np.float64), opt.strike], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    net = np.bincount(inverse.reshape(-1), weights=opt.amount, minlength=len(uniq))
    out: FloatArray = np.asarray(
        np.bincount(
            uniq[:, 0].astype(np.int64), weights=np.maximum(0.0, -net), minlength=n_expiries
        ),
        dtype=np.float64,
    )
    return out


def evaluate(portfolio: DerivePortfolio, params: PMRM2Params) -> DeriveResult:
    r"""Compute PMRM_2 maintenance and initial margin of one portfolio.

    Parameters
    ----------
    portfolio
        Holdings and market data of one sub-account (one underlying).
    params
        Parameters and configured scenarios.

    Returns
    -------
    DeriveResult
        Requirements, equity, excesses and the per-scenario P&L.

    Raises
    ------
    ParameterError
        If an expired option meets ``DTE_FLOOR = 0`` (infinite vol-shock multiplier).

    Notes
    -----
    Contingencies (§8), with ``N_p = |q_p|·S`` and ``v_j = a_j·p_j/P_st``::

        MMCont = N_p·mmPerp + Σ_e naked_e·S·mmOption + Σ_j v_j·mmHaircut_j
        IMCont = N_p·imPerp + conf(c_port, N_p)
                 + Σ_e [naked_e·S·imOption + conf(c_e, gross_e·S)]
                 + Σ_j [v_j·imHaircut_j + conf(min(c_j, c_S), v_j)]
        f_IM   = imFactor + (pegThreshold − P_st)·pegLossFactor   if P_st < pegThreshold

    Source: ``derivexyz/v2-core:src/risk-managers/PMRMLib_2.sol@7736900d``.
    """
    p = portfolio
    ex = _expiries(p)
    opt = _options(p)
    n_expiries = ex.tau.size
    scen = params.scenarios
    n_scen = len(scen)

    # --- scenario grid: configured scenarios, then V⁰ (x=1), then the basis moves --------
    x = np.array([s.spot_shock for s in scen], dtype=np.float64)
    w = np.array([s.dampening for s in scen], dtype=np.float64)
    is_skew = np.array([s.direction.is_skew for s in scen], dtype=np.bool_)
    up_e, down_e = _vol_multipliers(ex, params)
    sigma = opt.vol
    # one row of shocked vols per direction, then gather a row per grid scenario
    directions = tuple(VolShockDirection)
    vol_table = np.stack(
        [
            _shocked_vols(ex, opt, params, d, up_e, down_e)
            if d is VolShockDirection.NONE or any(s.direction is d for s in scen)
            else sigma
            for d in directions
        ]
    ).reshape(len(directions), opt.amount.size)
    row = np.array(
        [directions.index(s.direction) for s in scen]
        + [directions.index(VolShockDirection.NONE)] * 3,
        dtype=np.int64,
    )
    vols = vol_table[row]
    # skew scenarios reprice on the unshocked forward (§6)
    grid_x = np.concatenate(
        [np.where(is_skew, 1.0, x), [1.0, params.basis.spot_up, params.basis.spot_down]]
    )
    prices = _option_prices(ex, opt, grid_x, vols)
    values = _expiry_values(prices, opt, n_expiries)
    v0 = values[n_scen]
    v_up = values[n_scen + 1]
    v_dn = values[n_scen + 2]
    shocked = values[:n_scen]

    # --- §4 static discount on expiry totals, §5/§6 scenario P&L ---------------------------
    d_long, d_short = _static_discounts(ex, params)
    discounted = np.where(shocked >= 0.0, shocked * d_long, shocked * d_short)
    raw_expiry = w[:, None] * (discounted - v0[None, :])
    per_expiry = np.where(is_skew[:, None], -np.abs(raw_expiry), raw_expiry)
    rc_value = sum(
        (c.amount * c.price / p.stable_price for c in p.collaterals if c.is_risk_cancelling),
        start=0.0,
    )
    linear = w * (x - 1.0) * (p.perp_position * p.perp_price + rc_value)
    pnl = per_expiry.sum(axis=1) + linear

    # --- §7 forward contingency and minSPAN -------------------------------------------------
    basis_scale = params.basis.add_factor + params.basis.mult_factor * ex.tau
    forward_cont = float(np.sum(np.minimum(np.minimum(v_up - v0, v_dn - v0), 0.0) * basis_scale))
    min_span = forward_cont
    worst_index: int | None = None
    if n_scen:
        first_min = int(np.argmin(pnl))  # first occurrence: ties go to the earlier one
        if pnl[first_min] < forward_cont:
            min_span = float(pnl[first_min])
            worst_index = first_min

    # --- the binding P&L split by holding ---------------------------------------------------
    unit0 = prices[n_scen]
    held0 = opt.amount * unit0
    coll_all = np.array(
        [c.amount * c.price / p.stable_price for c in p.collaterals], dtype=np.float64
    )
    rc = np.array([c.is_risk_cancelling for c in p.collaterals], dtype=np.bool_)
    up_e, dn_e = v_up - v0, v_dn - v0
    use_up = (up_e <= dn_e) & (up_e < 0.0)
    use_dn = ~use_up & (dn_e < 0.0)
    fwd_terms = np.minimum(np.minimum(up_e, dn_e), 0.0) * basis_scale
    fwd_move = 0.0
    if n_expiries and float(np.min(fwd_terms)) < 0.0:
        top = int(np.argmin(fwd_terms))
        fwd_move = (params.basis.spot_up if use_up[top] else params.basis.spot_down) - 1.0
    if worst_index is None:
        e = opt.expiry
        branch = np.where(
            use_up[e], prices[n_scen + 1], np.where(use_dn[e], prices[n_scen + 2], unit0)
        )
        opt_part = opt.amount * (branch - unit0) * basis_scale[e]
        perp_unit = 0.0
        coll_part = np.zeros(len(p.collaterals), dtype=np.float64)
    else:
        j = worst_index
        factor = np.where(shocked[j] >= 0.0, d_long, d_short)[opt.expiry]
        opt_part = w[j] * (opt.amount * prices[j] * factor - held0)
        if is_skew[j]:
            opt_part = -np.sign(raw_expiry[j])[opt.expiry] * opt_part
        perp_unit = float(w[j] * (x[j] - 1.0) * p.perp_price)
        coll_part = np.where(rc, w[j] * (x[j] - 1.0) * coll_all, 0.0)
    attribution = WorstAttribution(
        options=tuple(float(v) for v in opt_part),
        perp_per_unit=perp_unit,
        collaterals=tuple(float(v) for v in coll_part),
    )

    # --- §8 contingencies -------------------------------------------------------------------
    o = params.other
    spot = p.spot
    perp_notional = abs(p.perp_position) * spot
    naked = _naked_shorts(opt, n_expiries)
    gross: FloatArray = np.asarray(
        np.bincount(opt.expiry, weights=np.abs(opt.amount), minlength=n_expiries),
        dtype=np.float64,
    )
    coll_value = coll_all
    coll_conf = np.array(
        [min(c.confidence, p.spot_confidence) for c in p.collaterals], dtype=np.float64
    )
    mm_haircut = np.array([c.mm_haircut for c in p.collaterals], dtype=np.float64)
    im_haircut = np.array([c.im_haircut for c in p.collaterals], dtype=np.float64)

    mm_perp = perp_notional * o.mm_perp_pct
    mm_option = float(np.sum(naked)) * spot * o.mm_option_pct
    mm_coll = float(np.sum(coll_value * mm_haircut))
    im_perp = perp_notional * o.im_perp_pct
    im_option = float(np.sum(naked)) * spot * o.im_option_pct
    im_coll = float(np.sum(coll_value * im_haircut))
    im_conf = (
        float(np.sum(_confidence_charge(_portfolio_confidence(p), perp_notional, params)))
        + float(np.sum(_confidence_charge(ex.confidence, gross * spot, params)))
        + float(np.sum(_confidence_charge(coll_conf, coll_value, params)))
    )

    # --- §9 combination ----------------------------------------------------------------------
    m = params.margin
    f_mm = m.mm_loss_factor
    peg_add = 0.0
    if p.stable_price < o.peg_loss_threshold:
        peg_add = (o.peg_loss_threshold - p.stable_price) * o.peg_loss_factor
    worst_loss = -min_span
    components = {
        "worst_loss": worst_loss,
        "mm_scenario_loss": f_mm * worst_loss,
        "im_scenario_loss": m.im_loss_factor * worst_loss,
        "im_peg_adjustment": peg_add * worst_loss,
        "mm_perp_contingency": mm_perp,
        "mm_option_contingency": mm_option,
        "mm_collateral_haircut": mm_coll,
        "im_perp_contingency": im_perp,
        "im_option_contingency": im_option,
        "im_collateral_haircut": im_coll,
        "im_confidence_contingency": im_conf,
    }
    mm_cont = mm_perp + mm_option + mm_coll
    im_cont = im_perp + im_option + im_coll + im_conf
    mm_req = f_mm * worst_loss + mm_cont
    im_req = (m.im_loss_factor + peg_add) * worst_loss + mm_cont + im_cont

    option_mtm = float(np.sum(v0))
    equity_components = {
        "cash": p.cash,
        "option_mtm": option_mtm,
        "collateral_mtm": float(np.sum(coll_value)),
        "perp_unrealised_pnl": p.perp_unrealised_pnl,
        "perp_unrealised_funding": p.perp_unrealised_funding,
    }
    equity = (
        p.cash
        + p.perp_unrealised_pnl
        + p.perp_unrealised_funding
        + option_mtm
        + equity_components["collateral_mtm"]
    )

    rows: list[Mapping[str, object]] = [
        MappingProxyType(
            {
                "index": i,
                "kind": s.kind.value,
                "spot_shock": s.spot_shock,
                "price_move": s.spot_shock - 1.0,
                "vol_shock": s.direction.value.lower(),
                "dampening": s.dampening,
                "pnl": float(pnl[i]),
            }
        )
        for i, s in enumerate(scen)
    ]
    worst: Mapping[str, object]
    if worst_index is None:
        worst = MappingProxyType(
            {
                "index": None,
                "kind": "forward_contingency",
                "spot_shock": None,
                "price_move": None,
                "vol_shock": VolShockDirection.NONE.value.lower(),
                "dampening": 1.0,
                "pnl": forward_cont,
            }
        )
    else:
        worst = rows[worst_index]

    return DeriveResult(
        currency="USD",
        maintenance_margin=mm_req,
        initial_margin=im_req,
        equity=equity,
        maintenance_excess=equity - mm_req,
        initial_excess=equity - im_req,
        min_span=min_span,
        forward_contingency=forward_cont,
        components=MappingProxyType(components),
        equity_components=MappingProxyType(equity_components),
        worst_scenario=worst,
        scenarios=tuple(rows),
        forward_contingency_move=fwd_move,
        option_values=tuple(float(v) for v in held0),
        option_deltas=tuple(float(v) for v in _option_deltas(ex, opt)),
        attribution=attribution,
    )


def evaluate_case(case: DeriveCase) -> DeriveResult:
    """Evaluate a loaded case file (see :func:`evaluate`); ``case.expected`` is not used."""
    return evaluate(case.portfolio, case.params)
