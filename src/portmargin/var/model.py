r"""The VaR / ES margin model: a :class:`~portmargin.models.MarginModel` on historical scenarios.

:class:`VarModel` is the scenario-model pipeline of :mod:`portmargin.models` with scenario
sets drawn from the daily history (:mod:`portmargin.var.simulation`) instead of a grid: the
session, ``explain``, ``batch`` and what-if paths run unchanged. Its
:class:`~portmargin.models.config.ModelParams` are built from the VaR file:

* ``risk_measure``, ``confidence`` and ``joint_underlyings`` as the file says; a pool's
  underlyings are measured on their summed P&L per scenario (scenario ``s`` is the same
  day for BTC and ETH) and allocated back by Euler contributions
  (:func:`portmargin.models.engine.scanning_risk`);
* no P&L offset, no dampener, no extended scenarios (the grid entry is a placeholder the
  scenario sets replace);
* ``IM = (1 + buffer)·im_multiplier·Σ components``, ``MM = mm_multiplier·Σ components``
  with the EMIR anti-procyclicality buffer (option a), else ``buffer = 0``;
* the stressed-period floor as the pool credit ``var_stress_floor`` (a negative credit: a
  top-up) and the liquidity add-on as the charge ``var_liquidity``.

**Stressed-period floor** of a pool with pairs ``k`` (each an underlying)::

    V^s_kj  = Σ_i q_i·PnL^s_ij + c_k·m^s_kj         P&L of pair k in stress scenario j
    c_k     = Σ_j (v_kj − Σ_i q_i·PnL_ij)·m_kj / Σ_j m_kj²     coin collateral, in the pool
              currency per unit of move (cross mode; 0 otherwise): the part of the pair's
              scenario P&L v that its instruments do not explain is b·S·m_j
    T       = the m worst days of Σ_k V^s_kj (ES) or the m-th (VaR), m = ⌈(1 − α)·n_s⌉
    floor   = Σ_k −mean_{j∈T} V^s_kj        (Euler contributions, as the scanning risk)
    top-up  = max(floor − Σ_k scanning_k, 0), allocated to the pairs with a positive
              contribution in proportion to it

so each pool's scanning part is ``max(measure on current scenarios, measure on stress)``.

**As of.** A model is anchored to one day ``as_of`` of its history (the file's ``as_of``,
else the history's last day): its scenarios are the windows ending by that day and its
filter forecasts the next. :meth:`VarModel.at` re-anchors it (the back-test does, day by
day). A result whose market lies more than 3 days from ``as_of`` carries a note.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict

from portmargin._types import FloatArray, IntArray
from portmargin.errors import InputError, MarketDataError, ParameterError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models._common import params_of, pool_per_underlying_unit, project
from portmargin.models.config import ChargeParams, ModelParams
from portmargin.models.engine import CHARGES, CREDITS, ChargeContext, CreditContext
from portmargin.models.model import Family, MarginModel
from portmargin.models.result import MarginResult
from portmargin.portfolio import Portfolio
from portmargin.risk import InstrumentTable, RiskArray, risk_array
from portmargin.scenarios import ScenarioSet
from portmargin.units import USD
from portmargin.var.config import VarParams, load_var_params
from portmargin.var.history import History, load_history
from portmargin.var.simulation import FactorMoves, scenario_moves, scenario_set, stress_moves

__all__ = [
    "LIQUIDITY",
    "STRESS_FLOOR",
    "VarLiquidityParams",
    "VarModel",
    "VarStressFloorParams",
    "load_var_model",
]

STRESS_FLOOR = "var_stress_floor"
LIQUIDITY = "var_liquidity"
_STALE_DAYS = 3


class VarStressFloorParams(ChargeParams):
    """The stressed-period floor's inputs (built by :class:`VarModel`, not read from a file).

    ``stress`` holds each underlying's stress scenario set, ``moves`` each underlying's
    current-scenario price moves (to recover coin collateral, module docstring).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    kind: Literal["var_stress_floor"] = "var_stress_floor"
    role: Literal["add-on"] = "add-on"
    confidence: float = 0.99
    es: bool = True
    stress: Mapping[str, ScenarioSet] = {}
    moves: Mapping[str, Any] = {}


class VarLiquidityParams(ChargeParams):
    """The liquidity add-on's parameters (:class:`~portmargin.var.config.LiquiditySpec`)."""

    kind: Literal["var_liquidity"] = "var_liquidity"
    role: Literal["add-on"] = "add-on"
    threshold: float = 0.01
    eta: float = 1.0
    open_interest: Mapping[str, float] = {}


class VarModel(MarginModel):
    """A VaR / ES model as of one day of its history (module docstring).

    Parameters
    ----------
    spec
        The validated VaR file.
    history
        The daily history (default: the file's ``history``, else the shipped one).
    as_of
        The anchor day (default: the file's ``as_of``, else the history's last day).
    cross
        Override the file's ``currency_mode`` (True: one USD pool).

    Raises
    ------
    ParameterError
        If ``as_of`` is outside the history or too early for the look-back (one line).
    """

    def __init__(
        self,
        spec: VarParams,
        history: History | None = None,
        *,
        as_of: date | None = None,
        cross: bool | None = None,
    ) -> None:
        hist = history if history is not None else load_history(spec.history_path())
        day = as_of or spec.as_of or hist.last
        if not hist.has(day):
            raise ParameterError(
                f"model {spec.name}: as_of {day} is outside the history {hist.source} "
                f"({hist.first} to {hist.last})"
            )
        try:
            moves = scenario_moves(hist, spec, day)
            stress = None
            if spec.stress.enabled:
                stress = stress_moves(
                    hist,
                    moves.underlyings,
                    spec.stress.periods,
                    spec.horizon_days,
                    day,
                    vol_proxy=spec.stress.vol_proxy,
                )
        except InputError as exc:
            raise ParameterError(f"model {spec.name}: {exc}") from None
        self.spec = spec
        self.history = hist
        self.as_of = day
        self.moves = moves
        self.stress = stress
        self._cross_arg = cross
        super().__init__(_model_params(spec, moves, stress), cross=cross)

    @property
    def family(self) -> Family:
        """``var``: VaR / expected shortfall over historical or simulated scenarios."""
        return "var"

    def _build_scenarios(self, underlying: str) -> ScenarioSet:
        if underlying not in self.moves.spot:
            raise MarketDataError(
                f"model {self.name}: no history for {underlying} (its scenarios cover "
                f"{', '.join(self.moves.underlyings)}; add {underlying.lower()}_close and "
                f"{underlying.lower()}_dvol to the history)"
            )
        return scenario_set(self.moves, underlying, min_vol=self.spec.min_vol)

    def at(self, day: date) -> VarModel:
        """The same model anchored to ``day`` (same history and currency mode)."""
        return VarModel(self.spec, self.history, as_of=day, cross=self._cross_arg)

    def margin(self, portfolio: Portfolio, market: MarketSnapshot) -> MarginResult:
        """:meth:`MarginModel.margin`, with a note when the market is far from ``as_of``."""
        result = super().margin(portfolio, market)
        gap = (market.valuation_time.date() - History.close_time(self.as_of).date()).days
        if abs(gap) > _STALE_DAYS:
            why = "after" if gap > 0 else "before"
            note = (
                f"{self.name}: scenarios as of {self.as_of} (history {self.history.source}); "
                f"the market is {abs(gap)} days {why} it"
                + (" (look-ahead: pin as_of in the model file)" if gap < 0 else "")
            )
            result = dataclasses.replace(result, notes=(*result.notes, note))
        return result


def _model_params(spec: VarParams, moves: FactorMoves, stress: FactorMoves | None) -> ModelParams:
    buffer = spec.anti_procyclicality.buffer if spec.anti_procyclicality.mode == "buffer" else 0.0
    base = ModelParams(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        grid="deribit",  # placeholder: VarModel replaces the grid by historical scenario sets
        currency_mode=spec.currency_mode,
        collateral="scenario",
        im_multiplier=spec.im_multiplier * (1.0 + buffer),
        mm_multiplier=spec.mm_multiplier,
        risk_measure=spec.risk_measure,
        confidence=spec.confidence,
        joint_underlyings=spec.joint_underlyings,
        overrides=spec.overrides,
    )
    charges: tuple[ChargeParams, ...] = ()
    credits: tuple[ChargeParams, ...] = ()
    if spec.liquidity.enabled:
        lq = spec.liquidity
        charges = (
            VarLiquidityParams(
                threshold=lq.threshold, eta=lq.eta, open_interest=dict(lq.open_interest)
            ),
        )
    if stress is not None:
        credits = (
            VarStressFloorParams(
                confidence=spec.confidence,
                es=spec.risk_measure == "es",
                stress={u: scenario_set(stress, u, min_vol=spec.min_vol) for u in stress.spot},
                moves={u: np.expm1(moves.spot[u]) for u in moves.spot},
            ),
        )
    # the schema's kinds are closed unions; these two kinds are the VaR model's own
    return base.model_copy(update={"charges": charges, "credits": credits})


def load_var_model(
    name_or_path: str,
    *,
    params_file: str | None = None,
    cross: bool | None = None,
    history: History | None = None,
    as_of: date | None = None,
) -> VarModel:
    """Load a shipped VaR model (``var``, ``var-hs``, ...) or a VaR model file."""
    spec = load_var_params(name_or_path, overrides=params_file)
    return VarModel(spec, history, as_of=as_of, cross=cross)


# ---------------------------------------------------------------------------------------
# The stressed-period floor (a pool credit) and the liquidity add-on (a charge)

_CACHE: dict[tuple[int, int], tuple[InstrumentTable, ScenarioSet, RiskArray]] = {}
_CACHE_SIZE = 16


def _stress_array(table: InstrumentTable, scen: ScenarioSet) -> RiskArray:
    """``risk_array(table, scen)``, cached while the same table and set are in use."""
    key = (id(table), id(scen))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is table and hit[1] is scen:
        return hit[2]
    arr = risk_array(table, scen)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (table, scen, arr)  # holding the objects keeps their ids from being reused
    return arr


def _pnl(arr: RiskArray, pool: str) -> FloatArray:
    out: FloatArray = arr.weighted_usd() if pool == USD else arr.weighted_settle()
    return out


def _tail(pnl: FloatArray, confidence: float, *, es: bool) -> IntArray:
    """The engine's tail (``portmargin.models.engine``): m worst (ES) or the m-th (VaR)."""
    s = pnl.shape[1]
    m = max(1, math.ceil((1.0 - confidence) * s - 1e-9))
    order = np.argsort(pnl, axis=1, kind="stable")
    out: IntArray = order[:, :m] if es else order[:, m - 1 : m]
    return out


def stress_floor(ctx: CreditContext) -> FloatArray:
    """The stressed-period floor as a top-up, ``(n_accounts, k)`` (module docstring).

    Returned as a negative credit: ``compose`` subtracts credits, so the pool's requirement
    rises by the top-up.
    """
    p = params_of(ctx.params, VarStressFloorParams)
    n, k = ctx.scanning.shape
    pair_pnl: list[FloatArray] = []
    for i, und in enumerate(ctx.underlyings):
        scen = p.stress.get(und)
        main_moves = p.moves.get(und)
        if scen is None or main_moves is None:
            raise MarketDataError(f"{STRESS_FLOOR}: no stress scenarios for {und}")
        raw = ctx.raw_pnl[i]
        c = ctx.contexts[i]
        explained = np.zeros_like(raw)
        stressed = np.zeros((n, len(scen)))
        if c is not None:
            main = _pnl(c.risk, ctx.pool)[c.rows]
            explained = project(c.quantities, main)
            stressed = project(
                c.quantities, _pnl(_stress_array(c.risk.table, scen), ctx.pool)[c.rows]
            )
        m = np.asarray(main_moves, dtype=np.float64)
        denom = float(m @ m)
        coll = (raw - explained) @ m / denom if denom > 0 else np.zeros(n)
        pair_pnl.append(stressed + coll[:, None] * scen.price_moves[None, :])
    total = np.sum(np.stack(pair_pnl), axis=0)
    tail = _tail(total, p.confidence, es=p.es)
    rows = np.arange(n)[:, None]
    contrib = np.stack([-np.mean(v[rows, tail], axis=1) for v in pair_pnl], axis=1)  # (n, k)
    floor = np.maximum(contrib.sum(axis=1), 0.0)
    top = np.maximum(floor - ctx.scanning.sum(axis=1), 0.0)
    pos = np.maximum(contrib, 0.0)
    weight = pos.sum(axis=1, keepdims=True)
    share = np.where(weight > 0, pos / np.where(weight > 0, weight, 1.0), 1.0 / k)
    out: FloatArray = -top[:, None] * share
    return out


def liquidity_add_on(ctx: ChargeContext) -> FloatArray:
    r"""Square-root-impact liquidity add-on, ``(n_accounts,)`` (``LiquiditySpec``)."""
    p = params_of(ctx.params, VarLiquidityParams)
    tab = ctx.risk.table
    oi = p.open_interest.get(tab.underlying)
    n = ctx.scenario_pnl.shape[0]
    if oi is None:
        return np.zeros(n)
    rows = ctx.rows
    opt = tab.is_option[rows].astype(np.float64)
    q = abs(ctx.quantities)
    gross = project(q, (tab.multiplier[rows] * opt)[:, None])[:, 0]
    daily = tab.multiplier[rows] * tab.sigma[rows] / math.sqrt(365.0) * opt
    notional_risk = project(q, daily[:, None])[:, 0] * pool_per_underlying_unit(ctx)
    share = gross / oi
    out: FloatArray = np.where(share > p.threshold, p.eta * np.sqrt(share) * notional_risk, 0.0)
    return out


CREDITS[STRESS_FLOOR] = stress_floor
CHARGES[LIQUIDITY] = liquidity_add_on
