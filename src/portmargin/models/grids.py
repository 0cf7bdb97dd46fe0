r"""Scenario grids of the shipped methodologies, built from model parameters.

``deribit``: moves ``PR·k/B`` for ``k = −B…B`` (B = 4, 9 buckets) × vol up / unchanged /
down, price-major, weight 1; then the extended moves ``m ∈ {−66 %, …, +500 %}`` with vol up,
weighted by the fraction of simulated P&L::

    w_usd(m)  = f · PR/|m|
    w_coin(m) = f · PR/|m| · (1+m)/(1 + sign(m)·PR)       (coin P&L re-denominated at the edge)

Sources: Deribit, "Portfolio Margin"
(https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin) for the
9 buckets × 3 vols and the extended table "with a fraction of simulated P&L"; the
``private/pme/simulate`` API reference
(https://docs.deribit.com/api-reference/account-management/private-simulate) for
``buckets_count = 4``, ``vol_scenarios_count = 3``, ``price_range``,
``extended_table_factor`` and the 27 + 8 layout. The coin weight ``(1+m)/(1+sign(m)·PR)``
reproduces that API's published example [verified on delta-one positions].

``span16``: scenario ``j`` moves the price by ``m_j·PSR`` with
``m = 0, +1/3, −1/3, +2/3, −2/3, +1, −1`` each with vol +1 and −1 (14 scenarios, weight 1),
then ``±X·PSR`` with vol unchanged at weight ``c`` (cover fraction), look-ahead one day.
CME's pairing: scenarios ``2k`` and ``2k+1`` (0-based) differ only in the vol direction; the
extreme scenarios 14 and 15 pair with themselves. Sources: CME, "Components of SPAN"
(http://www.cme.com/clearing/rmspan/span/components.html) and "CME SPAN Methodology
Overview" (https://www.cmegroup.com/clearing/risk-management/span-overview.html); the
16-point layout with ``X = 3``, ``c = 0.32`` in a clearing house's SPAN file
(``martingale/spanTAKASBANK:src1/takas.spn@8e5d78bd4e2d8bfe8a745c6fe7db481cf971bcaa``,
``scanPointDef``).

``tims10``: OCC TIMS / customer portfolio margin, 10 valuation points equally spaced over the
class range, 5 down and 5 up, no zero point, vol unchanged::

    m = −R_down·k/5 (k = 5…1), then +R_up·k/5 (k = 1…5)      R_up defaults to R_down

Sources: OCC, "Customer Portfolio Margin"
(https://www.theocc.com/risk-management/customer-portfolio-margin); FINRA Rule 4210(g)
(https://www.finra.org/rules-guidance/rulebooks/finra-rules/4210), which sets the ten
equidistant valuation points and the ranges (±15 % for equities).

``custom``: a venue's grid written in the model file alone: every price move × every vol
shift (move-major), each move's weight, then ``extra_scenarios`` (a venue's tails)::

    scenarios = [(m_i, v_k, w_i) for m_i in price_moves for v_k in vol_shifts]
              + [(x.move, x.vol_shift, x.weight) for x in extra_scenarios]   group "extended"

A vol shift is in the underlying's ``vol_mode`` units, scaled by the term structure
(:class:`~portmargin.scenarios.VolShock` with ``up = down = 1``):
``σ' = σ·(1 + v·scale)`` (relative) or ``σ + v·scale`` (absolute), floored by ``min_vol_up``
/ ``min_vol``. Coin weights equal the USD weights (no re-denomination).

Every grid: the look-ahead is ``lookahead_days / lookahead_basis`` years (365 calendar or 252
trading days per year: SPAN's "Lookahead Time (in years)", CME Type B record,
https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46989313); ``pnl_base``
says what scenario P&L is measured from. ``span16`` also reads ``price_range_tiers``: a dated
instrument with at least ``from_days`` days to expiry moves by ``m_j·PSR_tier/PSR``, so each
contract month is scanned at its own price scan range (as a SPAN file gives one per month).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from portmargin.models.config import UnderlyingParams
from portmargin.scenarios import ScenarioSet, VolShock, VolShockMode

__all__ = ["GRIDS", "custom_grid", "deribit_grid", "span16_grid", "tims10_grid"]


def deribit_grid(p: UnderlyingParams) -> ScenarioSet:
    """Deribit's standard 9×3 grid plus the extended table (see the module docstring)."""
    pr, b = p.price_range, p.buckets_per_side
    moves: list[float] = []
    dirs: list[float] = []
    groups: list[str] = []
    for k in range(-b, b + 1):
        for v in (1.0, 0.0, -1.0):
            moves.append(pr * k / b)
            dirs.append(v)
            groups.append("standard")
    weights = [1.0] * len(moves)
    coin_weights = [1.0] * len(moves)
    for m in p.extended_moves:
        s = 1.0 if m > 0 else -1.0
        frac = p.extended_factor * pr / abs(m)
        moves.append(m)
        dirs.append(1.0)
        groups.append("extended")
        weights.append(frac)
        coin_weights.append(frac * (1.0 + m) / (1.0 + s * pr))
    return ScenarioSet.build(
        moves,
        dirs,
        p.vol_shock(),
        weights=weights,
        coin_weights=coin_weights,
        groups=groups,
        lookahead_years=p.lookahead_years,
        pnl_base=p.pnl_base,
    )


def span16_grid(p: UnderlyingParams) -> ScenarioSet:
    """The 16 CME SPAN scenarios in CME's order (see the module docstring)."""
    psr = p.price_range
    moves: list[float] = []
    dirs: list[float] = []
    for frac in (0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0):
        for v in (1.0, -1.0):
            moves.append(frac * psr)
            dirs.append(v)
    x = p.extreme_multiplier
    moves += [x * psr, -x * psr]
    dirs += [0.0, 0.0]
    weights = [1.0] * 14 + [p.cover_fraction, p.cover_fraction]
    groups = ["standard"] * 14 + ["extreme", "extreme"]
    return ScenarioSet.build(
        moves,
        dirs,
        p.vol_shock(),
        weights=weights,
        groups=groups,
        lookahead_years=p.lookahead_years,
        pnl_base=p.pnl_base,
        tiers=p.range_tiers(),
    )


def tims10_grid(p: UnderlyingParams) -> ScenarioSet:
    """OCC TIMS' 10 equally spaced valuation points (see the module docstring)."""
    down = p.price_range
    up = p.price_range_up if p.price_range_up is not None else down
    moves = [-down * k / 5 for k in range(5, 0, -1)] + [up * k / 5 for k in range(1, 6)]
    return ScenarioSet.build(
        moves,
        [0.0] * 10,
        p.vol_shock(),
        groups=[f"down{k}" for k in range(5, 0, -1)] + [f"up{k}" for k in range(1, 6)],
        lookahead_years=p.lookahead_years,
        pnl_base=p.pnl_base,
    )


def custom_grid(p: UnderlyingParams) -> ScenarioSet:
    """A venue's grid from the model file: moves × vol shifts, then extra scenarios."""
    moves: list[float] = []
    shifts: list[float] = []
    weights: list[float] = []
    groups: list[str] = []
    move_weights = p.move_weights if p.move_weights is not None else (1.0,) * len(p.price_moves)
    for m, w in zip(p.price_moves, move_weights, strict=True):
        for v in p.vol_shifts:
            moves.append(m)
            shifts.append(v)
            weights.append(w)
            groups.append("standard")
    for x in p.extra_scenarios:
        moves.append(x.move)
        shifts.append(x.vol_shift)
        weights.append(x.weight)
        groups.append("extended")
    shock = VolShock(
        up=1.0,
        down=1.0,
        mode=VolShockMode(p.vol_mode),
        short_term_power=p.short_term_power,
        long_term_power=p.long_term_power,
        pivot_days=p.pivot_days,
        dte_floor_days=p.dte_floor_days,
        min_vol_up=p.min_vol_up,
        min_vol=p.min_vol,
    )
    return ScenarioSet.build(
        moves,
        shifts,
        shock,
        weights=weights,
        groups=groups,
        lookahead_years=p.lookahead_years,
        pnl_base=p.pnl_base,
    )


GRIDS: Mapping[str, Callable[[UnderlyingParams], ScenarioSet]] = {
    "deribit": deribit_grid,
    "span16": span16_grid,
    "tims10": tims10_grid,
    "custom": custom_grid,
}
"""The grid of each ``grid`` value of a model file."""
