r"""Scenario sets: the market shocks a portfolio is revalued under.

A :class:`ScenarioSet` is data: for each scenario ``j`` a relative price move ``m_j``
(``F → F·(1+m_j)`` for every forward and the index of the underlying), a vol direction
``v_j`` (+1 up, 0 unchanged, −1 down; fractions allowed), a weight ``w_j`` applied to P&L in
USD/linear terms and a weight ``w^coin_j`` applied to coin P&L of inverse products (they
differ only where a methodology re-denominates coin P&L, as Deribit's extended table does),
plus a look-ahead time (years) by which every expiry is shortened.

The vol shock is applied per instrument and grows for short expiries
(Deribit Portfolio Margin,
https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin ; Derive's
``derivexyz/v2-core:src/risk-managers/PMRMLib_2.sol`` ``_addVolShocks``)::

    scale  = (pivot / max(DTE, floor))^p,  p = short_term_power if DTE < pivot else long_term_power
    up     : σ' = max(σ·(1 + v·up·scale), min_vol_up)          (relative mode)
             σ' = max(σ + v·up·scale,    min_vol_up)           (absolute mode)
    down   : σ' = max(σ·(1 − |v|·down·scale), min_vol)          (relative)
             σ' = max(σ − |v|·down·scale,    min_vol)          (absolute)

With both powers 0 the shock is flat in expiry (SPAN's vol scan range).

**Price-range tiers** (SPAN's price scan range per contract month): a set may scale its moves
per expiry. With tiers ``(d_k, s_k)`` (from ``d_k`` days to expiry on, scale ``s_k``), a dated
instrument ``i`` with ``DTE_i`` days moves by ``m_j·s_k`` for the last ``k`` with
``d_k ≤ DTE_i`` (scale 1 below the first tier); undated instruments (perpetual, spot, coin
collateral) move by ``m_j``. A model file writes the tiers as price ranges; the scale is the
tier's range over the underlying's ``price_range`` (:mod:`portmargin.models.grids`).

**P&L base**: ``"model"`` (SPAN's convention: the unshocked scenario is exactly 0, P&L is
measured from the model value at the mark vol) or ``"mark"`` (P&L measured from the mark
price, as venues that report ``V(scenario) − mark`` do); :func:`portmargin.risk.risk_array`
reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np

from portmargin._types import BoolArray, FloatArray
from portmargin.errors import ParameterError

__all__ = ["PnlBase", "ScenarioSet", "VolShock", "VolShockMode"]

PnlBase = Literal["model", "mark"]
"""What scenario P&L is measured from: the model value at the mark vol, or the mark price."""


class VolShockMode(Enum):
    """Whether vol shocks multiply the vol (relative) or add vol points (absolute)."""

    RELATIVE = "relative"
    ABSOLUTE = "absolute"


@dataclass(frozen=True, slots=True)
class VolShock:
    """Term-structure-scaled implied-vol shock (see the module docstring).

    Attributes
    ----------
    up, down
        Shock sizes at the pivot expiry (relative fraction or absolute vol).
    mode
        Relative or absolute.
    short_term_power, long_term_power
        Exponents ``p`` below / at-or-above the pivot.
    pivot_days
        Expiry (days) at which ``scale = 1``.
    dte_floor_days
        Floor on days to expiry inside the scale, so the shock stays finite.
    min_vol_up
        Absolute floor for the up-shocked vol.
    min_vol
        Floor for the down-shocked vol.
    """

    up: float
    down: float
    mode: VolShockMode = VolShockMode.RELATIVE
    short_term_power: float = 0.0
    long_term_power: float = 0.0
    pivot_days: float = 30.0
    dte_floor_days: float = 1.0
    min_vol_up: float = 0.0
    min_vol: float = 0.0

    def __post_init__(self) -> None:
        for name in ("up", "down", "pivot_days", "dte_floor_days", "min_vol_up", "min_vol"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ParameterError(f"vol shock `{name}` must be finite and >= 0, got {value!r}")
        if self.dte_floor_days <= 0 or self.pivot_days <= 0:
            raise ParameterError("vol shock `dte_floor_days` and `pivot_days` must be > 0")

    def scale(self, dte_days: FloatArray) -> FloatArray:
        """``(pivot / max(DTE, floor))^p`` per instrument."""
        d = np.maximum(np.asarray(dte_days, dtype=np.float64), self.dte_floor_days)
        p = np.where(d < self.pivot_days, self.short_term_power, self.long_term_power)
        out: FloatArray = (self.pivot_days / d) ** p
        return out

    def shocked(self, sigma: FloatArray, dte_days: FloatArray, direction: FloatArray) -> FloatArray:
        """Shocked vols, shape ``(n_instruments, n_scenarios)``.

        Parameters
        ----------
        sigma
            Mark vols, shape ``(n,)``.
        dte_days
            Days to expiry, shape ``(n,)``.
        direction
            Vol direction of each scenario, shape ``(s,)``.
        """
        s = np.asarray(sigma, dtype=np.float64)[:, None]
        k = self.scale(dte_days)[:, None]
        v = np.asarray(direction, dtype=np.float64)[None, :]
        if self.mode is VolShockMode.RELATIVE:
            up = np.maximum(s * (1.0 + v * self.up * k), self.min_vol_up)
            down = np.maximum(s * (1.0 + v * self.down * k), self.min_vol)
        else:
            up = np.maximum(s + v * self.up * k, self.min_vol_up)
            down = np.maximum(s + v * self.down * k, self.min_vol)
        out: FloatArray = np.where(v > 0, up, np.where(v < 0, down, s))
        return out


@dataclass(frozen=True, slots=True)
class ScenarioSet:
    """The scenarios of one underlying (see the module docstring).

    Attributes
    ----------
    price_moves
        Relative moves ``m_j > −1``, shape ``(s,)``.
    vol_directions
        ``v_j``, shape ``(s,)``.
    weights
        ``w_j`` for USD / linear P&L.
    coin_weights
        ``w^coin_j`` for inverse products' coin P&L.
    vol_shock
        How ``v_j`` turns into a shocked vol per instrument.
    groups
        A label per scenario (``"standard"``, ``"extended"``, ...).
    lookahead_years
        Time by which every expiry is shortened in the scenarios (0 = none).
    pnl_base
        ``"model"`` or ``"mark"`` (see the module docstring).
    tier_from_days, tier_scales
        Price-range tiers: from ``tier_from_days[k]`` days to expiry on, dated instruments'
        moves are scaled by ``tier_scales[k]`` (empty: no tiers; module docstring).
    """

    price_moves: FloatArray
    vol_directions: FloatArray
    weights: FloatArray
    coin_weights: FloatArray
    vol_shock: VolShock
    groups: tuple[str, ...]
    lookahead_years: float = 0.0
    pnl_base: PnlBase = "model"
    tier_from_days: FloatArray | None = None
    tier_scales: FloatArray | None = None

    def __post_init__(self) -> None:
        arrays = ("price_moves", "vol_directions", "weights", "coin_weights")
        for name in (*arrays, "tier_from_days", "tier_scales"):
            # private read-only copies: a set is shared by every margin call
            value = getattr(self, name)
            a = np.array([] if value is None else value, dtype=np.float64).reshape(-1)
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        n = self.price_moves.shape[0]
        shapes = {a.shape for a in (self.vol_directions, self.weights, self.coin_weights)}
        if shapes != {(n,)} or len(self.groups) != n or n == 0:
            raise ParameterError("scenario set: all per-scenario arrays need the same length > 0")
        if not all(bool(np.all(np.isfinite(getattr(self, name)))) for name in arrays):
            raise ParameterError("scenario set: moves, directions and weights must be finite")
        if not np.all(self.price_moves > -1.0):
            raise ParameterError("scenario set: price moves must be > −100 %")
        if not (np.all(self.weights >= 0) and np.all(self.coin_weights >= 0)):
            raise ParameterError("scenario set: weights must be >= 0")
        if not (np.isfinite(self.lookahead_years) and self.lookahead_years >= 0):
            raise ParameterError("scenario set: lookahead must be finite and >= 0")
        if self.pnl_base not in ("model", "mark"):
            raise ParameterError(
                f"scenario set: pnl_base must be 'model' or 'mark', got {self.pnl_base!r}"
            )
        days, scales = self.tier_days, self.scales
        if days.shape != scales.shape:
            raise ParameterError("scenario set: one scale per price-range tier")
        if not (np.all(np.isfinite(days)) and np.all(np.isfinite(scales)) and np.all(scales > 0)):
            raise ParameterError("scenario set: tier days and scales must be finite, scales > 0")
        if days.size and not (days[0] >= 0 and np.all(np.diff(days) > 0)):
            raise ParameterError("scenario set: tier days must be >= 0 and strictly increasing")
        object.__setattr__(self, "groups", tuple(self.groups))

    @property
    def tier_days(self) -> FloatArray:
        """Start (days to expiry) of each price-range tier (empty without tiers)."""
        out: FloatArray = np.asarray(self.tier_from_days, dtype=np.float64)
        return out

    @property
    def scales(self) -> FloatArray:
        """Move scale of each price-range tier (empty without tiers)."""
        out: FloatArray = np.asarray(self.tier_scales, dtype=np.float64)
        return out

    def move_scale(self, dte_days: FloatArray, dated: BoolArray) -> FloatArray:
        """Scale of each instrument's moves: its tier's for dated rows, else 1 (module doc)."""
        d = np.asarray(dte_days, dtype=np.float64)
        out = np.ones(d.shape)
        days, scales = self.tier_days, self.scales
        if days.size:
            k = np.searchsorted(days, d, side="right") - 1
            tiered = np.asarray(dated, dtype=np.bool_) & (k >= 0)
            out = np.where(tiered, scales[np.maximum(k, 0)], 1.0)
        return out

    def row_moves(self, dte_days: FloatArray, dated: BoolArray) -> FloatArray:
        """Moves per instrument and scenario, ``m_j·scale_i``, shape ``(n, s)``."""
        out: FloatArray = self.move_scale(dte_days, dated)[:, None] * self.price_moves[None, :]
        return out

    def __len__(self) -> int:
        return int(self.price_moves.shape[0])

    @classmethod
    def build(
        cls,
        moves: list[float],
        directions: list[float],
        vol_shock: VolShock,
        *,
        weights: list[float] | None = None,
        coin_weights: list[float] | None = None,
        groups: list[str] | None = None,
        lookahead_years: float = 0.0,
        pnl_base: PnlBase = "model",
        tiers: list[tuple[float, float]] | None = None,
    ) -> ScenarioSet:
        """Build a scenario set from lists (weights default to 1; ``tiers``: (days, scale))."""
        n = len(moves)
        w = np.asarray(weights if weights is not None else [1.0] * n, dtype=np.float64)
        cw = np.asarray(coin_weights, dtype=np.float64) if coin_weights is not None else w.copy()
        tier_list = tiers or []
        return cls(
            np.asarray(moves, dtype=np.float64),
            np.asarray(directions, dtype=np.float64),
            w,
            cw,
            vol_shock,
            tuple(groups if groups is not None else ["standard"] * n),
            lookahead_years,
            pnl_base,
            np.asarray([t[0] for t in tier_list], dtype=np.float64),
            np.asarray([t[1] for t in tier_list], dtype=np.float64),
        )
