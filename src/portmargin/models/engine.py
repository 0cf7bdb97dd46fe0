r"""The portfolio-margin pipeline shared by every scenario-based model.

Instruments and a market snapshot → a scenario set per underlying (from the model's
parameters) → risk arrays (:mod:`portmargin.risk`) → scenario P&L of each *margin pool* and
underlying as ``q @ RA`` → aggregation and add-on charges → requirement, equity, excess.

Margin pools
    ``segregated``: one pool per settlement currency (BTC, ETH in coin; USD, USDC and USDT
    pooled as USD at par), as Deribit S:PM. ``cross``: a single USD pool; coin collateral
    is revalued in every scenario of its underlying (``collateral = "scenario"``, as
    Deribit X:PM and Derive's risk-cancelling collateral) or counted at
    ``(1 − haircut)·S`` (``collateral = "haircut"``).

Aggregation (per pool and underlying, reference/deribit.md §1.5–1.6)::

    v_j      = Σ_i q_i·w_j·PnL_ij (+ collateral P&L in cross mode)
    agg_j    = min(v_j, 0) + pnl_offset·min(max(v_j, 0), max_offsetable_pnl)
    extended: agg_j += min(damp_j, |agg_j|) when agg_j < 0,
              damp_j = (max(|m_j|/PR, 1) − 1)·extended_dampener_USD / (S·(1 + sign(m_j)·PR))  (coin)
    scanning = max(−min_j agg_j, 0)

Requirement of a pool = Σ_underlyings (scanning + charges); IM = im_multiplier × it,
MM = mm_multiplier × it. Equity of a pool = cash + Σ q·mark value (in the pool currency).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from portmargin._types import FloatArray, IntArray
from portmargin.errors import InputError, ParameterError, PortmarginError
from portmargin.instruments import STABLE_CURRENCIES, Instrument
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.config import ChargeParams, ModelParams, load_model_params
from portmargin.models.grids import deribit_grid, span16_grid
from portmargin.models.result import (
    MarginResult,
    PoolResult,
    PositionLine,
    ScenarioLine,
    UnderlyingResult,
)
from portmargin.portfolio import Portfolio
from portmargin.risk import RiskArray, instrument_table, risk_array
from portmargin.scenarios import ScenarioSet

__all__ = ["CHARGES", "ChargeContext", "MarginModel", "load_model", "pool_currency"]

USD = "USD"


def pool_currency(currency: str) -> str:
    """Margin pool of a currency in segregated mode: stable coins pool as USD."""
    return USD if currency in STABLE_CURRENCIES else currency


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
    """

    pool: str
    usd_rate: float
    risk: RiskArray
    rows: IntArray
    quantities: Any
    scenario_pnl: FloatArray
    market: MarketSnapshot
    params: ChargeParams


# Add-on charges by kind: each returns non-negative amounts (n_accounts,) in the pool currency.
# Methodology issues register theirs here (roll/delta shock, SOM, calendar spreads, ...).
CHARGES: dict[str, Callable[[ChargeContext], FloatArray]] = {}

_GRIDS: dict[str, Callable[..., ScenarioSet]] = {"deribit": deribit_grid, "span16": span16_grid}


class MarginModel:
    """A scenario-based portfolio-margin model configured by :class:`ModelParams`.

    Parameters
    ----------
    params
        Validated model parameters.
    cross
        Override the file's ``currency_mode``: True for one USD pool, False for segregated.
    """

    def __init__(self, params: ModelParams, *, cross: bool | None = None) -> None:
        for charge in params.charges:
            if charge.kind not in CHARGES:
                raise ParameterError(
                    f"model {params.name}: unknown charge kind {charge.kind!r} "
                    f"(known: {', '.join(sorted(CHARGES)) or 'none'})"
                )
        self.params = params
        self.cross = params.currency_mode == "cross" if cross is None else cross
        self._grid = _GRIDS[params.grid]
        self._scenarios = lru_cache(maxsize=None)(self._build_scenarios)

    @property
    def name(self) -> str:
        """Model name."""
        return self.params.name

    def _build_scenarios(self, underlying: str) -> ScenarioSet:
        return self._grid(self.params.underlying(underlying))

    def scenario_set(self, underlying: str) -> ScenarioSet:
        """The scenarios applied to ``underlying``."""
        return self._scenarios(underlying)

    def pool_of(self, instrument: Instrument) -> str:
        """Margin pool of an instrument under this model."""
        return USD if self.cross else pool_currency(instrument.settlement_currency)

    def risk_arrays(
        self, instruments: Sequence[Instrument], market: MarketSnapshot
    ) -> dict[str, RiskArray]:
        """Risk arrays per underlying for ``instruments`` (one vectorised call each)."""
        groups: dict[str, list[Instrument]] = {}
        for inst in instruments:
            groups.setdefault(inst.underlying, []).append(inst)
        return {
            und: risk_array(instrument_table(insts, market), self.scenario_set(und))
            for und, insts in groups.items()
        }

    # ------------------------------------------------------------------------------
    def margin(self, portfolio: Portfolio, market: MarketSnapshot) -> MarginResult:
        """Margin ``portfolio`` on ``market`` (see the module docstring).

        Raises
        ------
        InputError
            Unknown instruments or currencies without a price, naming them.
        """
        net = portfolio.net_positions()
        insts: list[Instrument] = []
        for name in net:
            try:
                insts.append(market.instrument(name))
            except PortmarginError as exc:
                raise InputError(f"{portfolio.name}: positions: {exc}") from None
        qty_by_name = {inst.name: 0.0 for inst in insts}
        for inst, qty in zip(insts, net.values(), strict=True):
            qty_by_name[inst.name] += qty
        unique = {inst.name: inst for inst in insts}
        arrays = self.risk_arrays(list(unique.values()), market)

        usd_rates: dict[str, float] = {USD: 1.0}
        for und in market.underlyings:
            usd_rates[und] = market.index_price(und)

        def usd_rate(ccy: str) -> float:
            pool = pool_currency(ccy)
            if pool not in usd_rates:
                raise InputError(f"{portfolio.name}: cash.{ccy}: no {ccy} index in the market")
            return usd_rates[pool]

        # Cash by pool, and coin collateral moving with its scenario (cross mode).
        cash: dict[str, float] = {}
        collateral_coins: dict[str, float] = {}
        for ccy, amount in portfolio.cash.items():
            code = ccy.upper()
            rate = usd_rate(code)
            if self.cross:
                hc = (
                    self.params.currency(code).haircut
                    if self.params.collateral == "haircut"
                    else 0.0
                )
                cash[USD] = cash.get(USD, 0.0) + amount * rate * (1.0 - hc)
                if self.params.collateral == "scenario" and code not in STABLE_CURRENCIES:
                    collateral_coins[code] = collateral_coins.get(code, 0.0) + amount
            else:
                pool = pool_currency(code)
                cash[pool] = cash.get(pool, 0.0) + amount

        # Which (pool, underlying) pairs exist.
        pairs: dict[tuple[str, str], list[int]] = {}
        for und, und_array in arrays.items():
            for row, inst in enumerate(und_array.table.instruments):
                pairs.setdefault((self.pool_of(inst), und), []).append(row)
        for coin in collateral_coins:
            if coin not in arrays:
                arrays_key = (USD, coin)
                pairs.setdefault(arrays_key, [])

        und_results: list[UnderlyingResult] = []
        position_lines: list[PositionLine] = []
        pool_components: dict[str, dict[str, float]] = {}
        for (pool, und), rows_list in sorted(pairs.items()):
            rows = np.asarray(rows_list, dtype=np.int64)
            scen = self.scenario_set(und)
            arr: RiskArray | None = arrays.get(und)
            q: FloatArray = np.zeros(0)
            vec: FloatArray = np.zeros(len(scen))
            if arr is not None and rows.size:
                q = np.array([qty_by_name[arr.table.instruments[r].name] for r in rows])
                weighted = arr.weighted_usd() if self.cross else arr.weighted_settle()
                vec = q @ weighted[rows]
            spot = market.index_price(und)
            if self.cross and und in collateral_coins:
                vec = vec + collateral_coins[und] * spot * scen.price_moves * scen.weights
            rate = usd_rates.get(pool, 1.0)
            agg = self._aggregate(vec, scen, pool, rate)
            j = int(np.argmin(agg))
            scanning = max(-float(agg[j]), 0.0)
            charges: dict[str, float] = {}
            if arr is not None and rows.size:
                for cp in self.params.charges:
                    ctx = ChargeContext(pool, rate, arr, rows, q[None, :], agg[None, :], market, cp)
                    amount = float(np.asarray(CHARGES[cp.kind](ctx)).reshape(-1)[0])
                    charges[cp.kind] = charges.get(cp.kind, 0.0) + amount
            requirement = scanning + sum(charges.values())
            if arr is not None and rows.size and not (self.cross and und in collateral_coins):
                # A book of long options can lose at most its value: cap the requirement
                # there, so the I/M multiplier never asks a long for more than it is worth.
                tab = arr.table
                if bool(np.all(tab.is_option[rows])) and bool(np.all(q > 0)):
                    per_unit = tab.value_usd[rows]
                    if not self.cross:
                        per_unit = per_unit / np.where(tab.inverse[rows], tab.F[rows], 1.0)
                    cap = float(q @ per_unit) / max(
                        self.params.im_multiplier, self.params.mm_multiplier
                    )
                    if requirement > cap:
                        charges["long_option_value_cap"] = cap - requirement
                        requirement = cap
            lines = tuple(
                ScenarioLine(
                    und,
                    i,
                    scen.groups[i],
                    float(scen.price_moves[i]),
                    _vol_label(scen, i),
                    float(scen.coin_weights[i] if pool != USD else scen.weights[i]),
                    float(agg[i]),
                )
                for i in range(len(scen))
            )
            comps = {"scanning_risk": scanning, **charges}
            und_results.append(
                UnderlyingResult(und, pool, scanning, comps, requirement, lines[j], lines)
            )
            pc = pool_components.setdefault(pool, {})
            for k, v in comps.items():
                pc[k] = pc.get(k, 0.0) + v
            if arr is not None and rows.size:
                weighted_all = arr.weighted_usd() if self.cross else arr.weighted_settle()
                for r, qi in zip(rows.tolist(), q.tolist(), strict=True):
                    inst = arr.table.instruments[r]
                    mark = float(arr.table.mark_settle[r])
                    if self.cross and inst.is_inverse:
                        mark *= float(arr.table.F[r])
                    position_lines.append(
                        PositionLine(
                            inst.name,
                            qi,
                            pool,
                            qi * mark,
                            qi * float(arr.table.delta_coin[r]),
                            qi * float(weighted_all[r, j]),
                        )
                    )

        pools: list[PoolResult] = []
        for pool in sorted(set(pool_components) | set(cash)):
            comps = pool_components.get(pool, {"scanning_risk": 0.0})
            requirement = sum(comps.values())
            equity = cash.get(pool, 0.0) + sum(
                p.mark_value for p in position_lines if p.currency == pool
            )
            pools.append(
                PoolResult(
                    pool,
                    self.params.im_multiplier * requirement,
                    self.params.mm_multiplier * requirement,
                    equity,
                    comps,
                    tuple(u for u in und_results if u.currency == pool),
                    usd_rates.get(pool, 1.0),
                )
            )
        return self._combine(pools, und_results, position_lines, market)

    def _aggregate(self, vec: FloatArray, scen: ScenarioSet, pool: str, rate: float) -> FloatArray:
        cp = self.params.currency(pool)
        cap = cp.max_offsetable_pnl / rate if rate > 0 else 0.0
        agg = np.minimum(vec, 0.0) + cp.pnl_offset * np.minimum(np.maximum(vec, 0.0), cap)
        ext = np.array([g == "extended" for g in scen.groups])
        if ext.any() and cp.extended_dampener > 0:
            pr = self.params.underlying("default").price_range
            pr = float(np.max(np.abs(scen.price_moves[~ext]))) or pr
            m = scen.price_moves
            sign = np.sign(m)
            damp_usd = (np.maximum(np.abs(m) / pr, 1.0) - 1.0) * cp.extended_dampener
            damp = damp_usd / (rate * (1.0 + sign * pr)) if pool != USD else damp_usd
            lift = np.where(ext & (agg < 0), np.minimum(damp, -agg), 0.0)
            agg = agg + lift
        out: FloatArray = agg
        return out

    def _combine(
        self,
        pools: list[PoolResult],
        unds: list[UnderlyingResult],
        positions: list[PositionLine],
        market: MarketSnapshot,
    ) -> MarginResult:
        if len(pools) == 1:
            p = pools[0]
            ccy, im, mm, eq, comps = (
                p.currency,
                p.initial_margin,
                p.maintenance_margin,
                p.equity,
                dict(p.components),
            )
        else:
            ccy = USD
            im = sum(p.initial_margin * p.usd_rate for p in pools)
            mm = sum(p.maintenance_margin * p.usd_rate for p in pools)
            eq = sum(p.equity * p.usd_rate for p in pools)
            comps = {}
            for p in pools:
                for k, v in p.components.items():
                    comps[k] = comps.get(k, 0.0) + v * p.usd_rate
        worst: ScenarioLine | None = None
        if unds:
            rate = {p.currency: p.usd_rate for p in pools}
            top = max(
                unds, key=lambda u: u.requirement * (rate[u.currency] if len(pools) > 1 else 1.0)
            )
            worst = top.worst_scenario
        scenarios = tuple(s for u in unds for s in u.scenarios)
        notes = []
        if self.cross:
            notes.append("cross mode: all currencies in USD, coin collateral revalued per scenario")
        return MarginResult(
            model=self.name,
            model_version=self.params.version,
            currency=ccy,
            valuation_time=market.valuation_time.isoformat().replace("+00:00", "Z"),
            market_source=market.source,
            initial_margin=im,
            maintenance_margin=mm,
            equity=eq,
            components=comps,
            worst_scenario=worst,
            scenarios=scenarios,
            positions=tuple(positions),
            by_underlying=tuple(unds),
            by_currency=tuple(pools),
            notes=tuple(notes),
        )


def _vol_label(scen: ScenarioSet, i: int) -> float:
    d = float(scen.vol_directions[i])
    size = scen.vol_shock.up if d > 0 else scen.vol_shock.down
    return d * size


def load_model(
    name_or_path: str, *, params_file: str | None = None, cross: bool | None = None
) -> MarginModel:
    """Load a shipped model (``deribit``, ``span16``) or a model file, with overrides."""
    return MarginModel(load_model_params(name_or_path, overrides=params_file), cross=cross)
