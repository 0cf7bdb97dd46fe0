r"""The explanation of one margined account: every line behind its figures.

:meth:`MarginSession.explain <portmargin.models.session.MarginSession.explain>` margins one
account on the session's one pipeline and records, per evaluated (pool, underlying) pair,
its components, scenario P&L and charge context (:class:`~portmargin.models.session.PairTrace`).
:func:`explain_row` turns that record into a :class:`~portmargin.models.result.MarginResult`:
nothing is computed again, the figures are the pipeline's own.

Per pair ``k`` of pool ``p`` (amounts in the pool currency)::

    requirement_k   = Σ components_k                    (before the pool's multipliers)
    binding j_k     = argmin_j aggregated_kj
    position i ∈ k  : mark value q_i·W[i, equity_p], delta q_i·Δ_i,
                      P&L in the binding scenario q_i·W[i, j_k]

Per pool, the components are summed over its pairs (plus the IM-only collateral haircut in
cross mode); IM, MM and equity are the pipeline's. With several pools, the headline figures
are their sum in USD at each pool's USD rate (:func:`portmargin.units.usd_rate`) and the
binding scenario is that of the pair with the largest requirement in USD.

**Euler contributions** to the scanning risk ``R_k`` of pair ``k`` (Tasche, "Risk
contributions and performance measurement", 1999). ``R_k`` is set by a weighting ``ω`` of the
pair's raw scenario P&L ``v_j = Σ_i q_i·W[i, j]`` (+ coin collateral): the binding scenario
``j_k`` (``ω = e_{j_k}``, risk measure ``worst``) or the tail ``T`` of the VaR / ES
(``ω = 1/|T|`` on ``T``, chosen on the pool's summed P&L under ``joint_underlyings``, as
:func:`~portmargin.models.engine.scanning_risk` does)::

    c_i = −q_i·Σ_j ω_j·W[i, j] · f        f = R_k / (−Σ_j ω_j v_j)   (0 when either is ≤ 0)

``f`` is 1 unless aggregation moves the binding loss (Deribit's extended dampener); the
positions' ``c_i`` and the collateral's add up to ``R_k`` exactly. Each underlying contributes
its ``R_k`` to the pool's scanning risk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from portmargin._types import FloatArray, IntArray
from portmargin.models.engine import COLLATERAL_HAIRCUT, DETAILS, im_only_kinds
from portmargin.models.result import (
    MarginResult,
    PoolResult,
    PositionLine,
    ScenarioLine,
    UnderlyingResult,
)
from portmargin.scenarios import ScenarioSet
from portmargin.units import USD, iso_z, usd_rate, usd_totals

if TYPE_CHECKING:
    from portmargin.models.config import ModelParams
    from portmargin.models.session import BatchResult, MarginSession, PairTrace

__all__ = ["combine_pools", "explain_row"]


def explain_row(
    session: MarginSession,
    cols: IntArray,
    q: FloatArray,
    result: BatchResult,
    trace: Sequence[PairTrace],
) -> MarginResult:
    """The :class:`MarginResult` of one account margined by ``session`` (see the module).

    Parameters
    ----------
    session
        The session that margined it.
    cols, q
        The account's own session columns and its quantities on them, shape ``(k,)``.
    result
        The one-row result of that evaluation.
    trace
        The evaluated pairs of that evaluation, in pool order.
    """
    model = session.model
    params = model.params
    market = session.market
    n_pools = len(session.pools)
    n_scen_total = session.weights.shape[1] - n_pools - len(session.pairs)
    detail_fn = DETAILS.get(params.grid)
    col_pair = session._col_pair[cols]
    unds: list[UnderlyingResult] = []
    positions: list[PositionLine] = []
    components: dict[str, dict[str, float]] = {}
    details: dict[str, dict[str, float]] = {}
    omegas = _scan_weights(params, [session.pairs[t.pair].pool for t in trace], trace)
    for t, omega in zip(trace, omegas, strict=True):
        pr = session.pairs[t.pair]
        scen = pr.scen
        j = int(np.argmin(t.aggregated))
        weights = scen.weights if pr.pool == USD else scen.coin_weights
        lines = tuple(
            ScenarioLine(pr.und, i, g, m, v, w, a, r)
            for i, (g, m, v, w, a, r) in enumerate(
                zip(
                    scen.groups,
                    scen.price_moves.tolist(),
                    _vol_labels(scen).tolist(),
                    weights.tolist(),
                    t.aggregated.tolist(),
                    t.raw.tolist(),
                    strict=True,
                )
            )
        )
        own = dict(t.components)
        extra = detail_fn(t.context) if t.context is not None and detail_fn is not None else {}
        scan = own["scanning_risk"]
        block = slice(pr.start, pr.start + len(scen))
        base = -float(t.raw @ omega)
        factor = scan / base if scan > 0.0 and base > 0.0 else 0.0
        per_col = -q * (session.weights[cols, block] @ omega) * factor  # (k,) contributions
        collateral = float(per_col[col_pair < 0].sum())
        unds.append(
            UnderlyingResult(
                pr.und,
                pr.pool,
                scan,
                own,
                sum(own.values()),
                lines[j],
                lines,
                extra,
                scan,
                collateral,
            )
        )
        pooled = components.setdefault(pr.pool, {})
        for name, value in own.items():
            pooled[name] = pooled.get(name, 0.0) + value
        if pr.risk is None:
            continue
        tab = pr.risk.table
        equity_col = n_scen_total + session.pools.index(pr.pool)
        pdet = details.setdefault(pr.pool, {})
        for i in np.flatnonzero(col_pair == t.pair).tolist():
            c, qi = int(cols[i]), float(q[i])
            r = int(session._col_row[c])
            mark = float(session.weights[c, equity_col])
            if tab.is_option[r]:
                pdet["net_option_value"] = pdet.get("net_option_value", 0.0) + qi * mark
            positions.append(
                PositionLine(
                    tab.instruments[r].name,
                    qi,
                    pr.pool,
                    qi * mark,
                    qi * float(tab.delta_coin[r]),
                    qi * float(session.weights[c, pr.start + j]),
                    str(tab.quote_source[r]),
                    float(per_col[i]),
                )
            )
    haircut = float(np.maximum(q, 0.0) @ session._haircut[cols]) if model.cross else 0.0
    if haircut > 0.0:
        components.setdefault(USD, {"scanning_risk": 0.0})[COLLATERAL_HAIRCUT] = haircut
    im_only = im_only_kinds(params)
    pools = []
    for p, pool in enumerate(session.pools):
        if not result.present[0, p]:
            continue
        comps = components.get(pool, {"scanning_risk": 0.0})
        pools.append(
            PoolResult(
                pool,
                float(result.initial_margin[0, p]),
                float(result.maintenance_margin[0, p]),
                float(result.equity[0, p]),
                comps,
                tuple(u for u in unds if u.currency == pool),
                usd_rate(pool, market),
                details.get(pool, {}),
                tuple(sorted(k for k in comps if k in im_only)),
            )
        )
    notes = []
    if model.cross:
        notes.append("cross mode: all currencies in USD, coin collateral revalued per scenario")
    return combine_pools(
        pools,
        unds,
        positions,
        model=model.name,
        version=model.version,
        valuation_time=iso_z(market.valuation_time),
        source=market.source,
        notes=notes,
    )


def _scan_weights(
    params: ModelParams, pools: Sequence[str], trace: Sequence[PairTrace]
) -> list[FloatArray]:
    """``ω`` of each traced pair: the scenarios that set its scanning risk (module docstring).

    ``worst``: the binding scenario ``argmin_j aggregated_j``. ``var`` / ``es``: the tail of
    ``m = ⌈(1 − confidence)·n⌉`` scenarios in stable ascending order of the raw P&L (its m-th
    for VaR, its m first for ES), of the pool's summed P&L when ``joint_underlyings`` applies
    (several pairs with aligned scenarios), as :func:`portmargin.models.engine.scanning_risk`.
    """
    out: list[FloatArray] = []
    if params.risk_measure == "worst":
        for t in trace:
            w = np.zeros(t.raw.shape[0])
            w[int(np.argmin(t.aggregated))] = 1.0
            out.append(w)
        return out
    es = params.risk_measure == "es"
    members: dict[str, list[int]] = {}
    for k, pool in enumerate(pools):
        members.setdefault(pool, []).append(k)
    joint_tail: dict[str, FloatArray] = {}
    for pool, ks in members.items():
        lengths = {trace[k].raw.shape[0] for k in ks}
        if params.joint_underlyings and len(ks) > 1 and len(lengths) == 1:
            total = np.sum([trace[k].raw for k in ks], axis=0)
            joint_tail[pool] = _tail_weights(total, params.confidence, es=es)
    for k, t in enumerate(trace):
        shared = joint_tail.get(pools[k])
        out.append(shared if shared is not None else _tail_weights(t.raw, params.confidence, es=es))
    return out


def _tail_weights(pnl: FloatArray, confidence: float, *, es: bool) -> FloatArray:
    """Equal weights on the VaR scenario (``es`` False) or the ES tail of ``pnl``."""
    s = pnl.shape[0]
    m = max(1, math.ceil((1.0 - confidence) * s - 1e-9))
    order = np.argsort(pnl, kind="stable")
    tail = order[:m] if es else order[m - 1 : m]
    w = np.zeros(s)
    w[tail] = 1.0 / tail.shape[0]
    return w


def combine_pools(
    pools: Sequence[PoolResult],
    unds: Sequence[UnderlyingResult],
    positions: Sequence[PositionLine],
    *,
    model: str,
    version: str,
    valuation_time: str,
    source: str,
    notes: Sequence[str] = (),
) -> MarginResult:
    """A :class:`MarginResult` from its pools: one pool as it is, several summed in USD.

    With several pools every headline amount is ``Σ_pools amount·usd_rate`` and the binding
    scenario is that of the underlying with the largest requirement in USD.
    """
    if len(pools) == 1:
        only = pools[0]
        ccy, im, mm, eq = only.currency, only.initial_margin, only.maintenance_margin, only.equity
        comps: dict[str, float] = dict(only.components)
    else:
        ccy = USD
        im, mm, eq = usd_totals(pools)
        comps = {}
        for p in pools:
            for k, v in p.components.items():
                comps[k] = comps.get(k, 0.0) + v * p.usd_rate
    worst: ScenarioLine | None = None
    if unds:
        rate: Mapping[str, float] = {p.currency: p.usd_rate for p in pools}
        top = max(unds, key=lambda u: u.requirement * (rate[u.currency] if len(pools) > 1 else 1.0))
        worst = top.worst_scenario
    return MarginResult(
        model=model,
        model_version=version,
        currency=ccy,
        valuation_time=valuation_time,
        market_source=source,
        initial_margin=im,
        maintenance_margin=mm,
        equity=eq,
        components=comps,
        worst_scenario=worst,
        scenarios=tuple(s for u in unds for s in u.scenarios),
        positions=tuple(positions),
        by_underlying=tuple(unds),
        by_currency=tuple(pools),
        notes=tuple(notes),
    )


def _vol_labels(scen: ScenarioSet) -> FloatArray:
    """Each scenario's vol shock at the pivot expiry (signed: +0.5 = vol up 50 %)."""
    d = scen.vol_directions
    out: FloatArray = d * np.where(d > 0, scen.vol_shock.up, scen.vol_shock.down)
    return out
