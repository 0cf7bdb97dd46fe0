r"""Margin a portfolio on a SPAN file's **published** risk arrays, as SPAN software does.

Nothing is repriced: the file's risk arrays, composite deltas, delta scaling factors, prices,
spreads and rates are used as published. Per combined commodity (CC), with ``q_i`` contracts
of contract ``i`` (loss positive, money in the CC's currency)::

    L_j      = Σ_i q_i·a_ij                                      scenario loss, j = 1…16
    Scan     = max(max_j L_j, 0)                   (Σ over scan tiers when the CC has several)
    VolRisk  = (Scan − L_paired(active))/2, or (L_1 − L_2)/2 when every L_j < 0
    TimeRisk = (L_1 + L_paired(1))/2;  PriceRisk = max(Scan − TimeRisk − VolRisk, 0)
    Δ_i      = q_i·d_i·DSF_i                       composite delta × delta scaling factor

**Intra-commodity spreads.** Deltas are netted per contract month; a tier's pool holds the sum
of its months' long deltas and of their short deltas (so a tier-to-itself spread pairs the
months of one tier). Spreads are formed in priority order, two passes each (side A long / B
short, then the reverse), ``n = min_leg(available delta of the leg / delta per spread)``;
a flat (``F``) spread charges ``n·rate``, a weighted (``W``) one
``Σ_leg n·ratio_leg·WFPR·rate``; the deltas are consumed.

**Short option minimum**: ``Σ |short option contracts|·DSF·rate(tier)``, calls and puts added
(``gross``) or the larger side (``max``).

**Inter-commodity spreads** between CCs (priority order), on each CC's net delta (per inter
tier)::

    WFPR  = PriceRisk/|Δ_CC|  (NORMAL);  min(NORMAL, PSR) (SCANRANGE_CAP);  PSR (SCANRANGE)
    n     = min_leg(available |Δ_leg| / ratio_leg)  (legs on their sides, both directions)
    credit_leg = n·ratio_leg·WFPR_leg·rate   (W)        n·rate / number of legs   (F)

with ``PSR`` the price scan range (money per contract) of the CC's front futures month.
Scanning-based spreads (``sSpread``) come first: per scenario ``losses − rate × gains`` of the
legs' ``L_j``, the saving split pro rata to the legs' scan risk; their CCs take no
delta-based inter credit [inferred].

**Combination**: ``Risk_CC = max(Scan + Intra − Inter, SOM)``;
``MM = Risk·maintenance_factor``, ``IM = Risk·initial_factor`` per CC (:mod:`.xml`,
:mod:`.pa2`); per currency, ``equity = cash + NOV`` with ``NOV = Σ q·p·cvf`` over
premium-style options (SPAN's ``max(Risk − NOV, 0)`` seen from the equity side, as the rest of
portmargin). Spot (delivery-month) charges are not applied (reported in ``notes`` when the
file has them).

Sources: CME, "Components of SPAN" (http://www.cme.com/clearing/rmspan/span/components.html);
PC-SPAN report pages on intra and inter spreads
(https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46727296,
https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46923800); the order of
operations, WFPR methods and DSF as in
``LasagniAndrea/Data:SpheresRiskPerformance/RiskMethods/RiskMethodSPAN.cs@6474304``; tier pools
of long and short deltas as in
``martingale/spanTAKASBANK:src/SpanNative.cpp@f36617861ec9bcb063c2cff12243caf4b18df587``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from portmargin._types import FloatArray
from portmargin.errors import InputError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.engine import compose
from portmargin.models.explain import combine_pools
from portmargin.models.result import (
    MarginResult,
    PoolResult,
    PositionLine,
    ScenarioLine,
    UnderlyingResult,
)
from portmargin.portfolio import Portfolio
from portmargin.spanfile.model import CombinedCommodity, Contract, SpanFile, Spread, month_key
from portmargin.units import iso_z

__all__ = ["METHOD_NAME", "SpanFileMethod", "span_margin"]

METHOD_NAME = "spanfile"


@dataclass
class _Pool:
    """Long and short delta of a tier or month, consumed by spreads."""

    long: float = 0.0
    short: float = 0.0


@dataclass
class _CC:
    """Working figures of one combined commodity of the portfolio."""

    cc: CombinedCommodity
    rows: list[tuple[Contract, float]]
    loss: FloatArray
    scan: float
    time: float
    vol: float
    price: float
    net_delta: float
    intra: float = 0.0
    inter: float = 0.0
    som: float = 0.0
    wfpr: float = 0.0
    binding: int = 0


def span_margin(
    file: SpanFile,
    positions: Mapping[str, float],
    cash: Mapping[str, float] | None = None,
    *,
    name: str = "portfolio",
) -> MarginResult:
    """Margin ``positions`` (file instrument name → contracts) on ``file`` (module docstring).

    Raises
    ------
    InputError
        For an instrument the file does not have (naming it and ``name``), or several pools
        whose currencies the file cannot convert to USD.
    """
    held: dict[str, tuple[Contract, float]] = {}
    for inst, qty in positions.items():
        if qty == 0:
            continue
        try:
            c = file.contract(inst)
        except InputError as exc:
            raise InputError(f"{name}: positions: {exc}") from None
        prev = held.get(c.name, (c, 0.0))[1]
        held[c.name] = (c, prev + float(qty))
    by_cc: dict[str, list[tuple[Contract, float]]] = {}
    for c, q in held.values():
        if q != 0:
            by_cc.setdefault(c.cc, []).append((c, q))
    work = {code: _scan(file, file.ccs[code], rows) for code, rows in sorted(by_cc.items())}
    for w in work.values():
        w.wfpr = _wfpr(file, w)
        w.intra = _intra(w)
        w.som = _som(w)
    notes = list(file.notes)
    _inter(file, work, notes)
    return _result(file, work, dict(cash or {}), name, notes)


def _scan(file: SpanFile, cc: CombinedCommodity, rows: list[tuple[Contract, float]]) -> _CC:
    n = len(file.points)
    paired = np.array([p.paired for p in file.points], dtype=np.int64)
    loss = np.zeros(n)
    tiers: dict[int, FloatArray] = {}
    for c, q in rows:
        a = q * np.asarray(c.array, dtype=np.float64)
        loss += a
        if len(cc.scan_tiers) > 1:
            tn = next((t.number for t in cc.scan_tiers if t.holds(c.tier_period)), -1)
            tiers[tn] = tiers.get(tn, np.zeros(n)) + a
    parts = list(tiers.values()) if tiers else [loss]
    scan = time = vol = price = 0.0
    for part in parts:
        s, t, v, p = _decompose(part, paired)
        scan, time, vol, price = scan + s, time + t, vol + v, price + p
    delta = sum(q * c.composite_delta * c.dsf for c, q in rows)
    return _CC(cc, rows, loss, scan, time, vol, price, delta, binding=int(np.argmax(loss)))


def _decompose(loss: FloatArray, paired: np.ndarray) -> tuple[float, float, float, float]:
    """Scan, time, vol and price risk of one scan tier (module docstring)."""
    top = float(loss.max())
    active = int(np.argmax(loss))
    if top < 0:
        vol = (float(loss[0]) - float(loss[paired[0]])) / 2.0
        scan = 0.0
    else:
        vol = (top - float(loss[paired[active]])) / 2.0
        scan = top
    time = (float(loss[0]) + float(loss[paired[0]])) / 2.0
    return scan, time, vol, max(scan - time - vol, 0.0)


def _intra(w: _CC) -> float:
    cc = w.cc
    month: dict[str, float] = {}
    for c, q in w.rows:
        m = month_key(c.tier_period)
        month[m] = month.get(m, 0.0) + q * c.composite_delta * c.dsf
    pools: dict[tuple[str, object], _Pool] = {}
    for m, d in month.items():
        pools[("month", m)] = _Pool(max(d, 0.0), max(-d, 0.0))
        tier = next((t for t in cc.intra_tiers if t.holds(m)), None)
        if tier is not None:
            pool = pools.setdefault(("tier", tier.number), _Pool())
            pool.long += max(d, 0.0)
            pool.short += max(-d, 0.0)
    charge = 0.0
    for spread in cc.intra_spreads:
        keys: list[tuple[str, object]] = [
            ("tier", leg.tier) if leg.tier is not None else ("month", month_key(leg.period or ""))
            for leg in spread.legs
        ]
        for direction in (1, -1):
            n = _formed(spread, keys, pools, direction)
            if n <= 0:
                continue
            if spread.method == "F":
                charge += n * spread.rate
            else:
                charge += sum(n * leg.ratio * w.wfpr * spread.rate for leg in spread.legs)
    return charge


def _formed(
    spread: Spread, keys: list[tuple[str, object]], pools: dict[tuple[str, object], _Pool], d: int
) -> float:
    """Spreads formed in direction ``d`` (1: A long / B short) and their deltas consumed."""
    wants_long = [(leg.side == "A") == (d == 1) for leg in spread.legs]
    avail = []
    for leg, key, long in zip(spread.legs, keys, wants_long, strict=True):
        pool = pools.get(key)
        have = 0.0 if pool is None else (pool.long if long else pool.short)
        avail.append(have / leg.ratio)
    n = min(avail)
    if n <= 1e-12:
        return 0.0
    for leg, key, long in zip(spread.legs, keys, wants_long, strict=True):
        pool = pools[key]
        if long:
            pool.long -= n * leg.ratio
        else:
            pool.short -= n * leg.ratio
    return n


def _som(w: _CC) -> float:
    calls = puts = 0.0
    for c, q in w.rows:
        if not c.is_option or q >= 0:
            continue
        rate = next((r for t, r in w.cc.som_tiers if t.holds(c.period)), 0.0)
        amount = -q * c.dsf * rate
        if c.right == "C":
            calls += amount
        else:
            puts += amount
    return calls + puts if w.cc.som_method == "gross" else max(calls, puts)


def _wfpr(file: SpanFile, w: _CC) -> float:
    normal = w.price / abs(w.net_delta) if abs(w.net_delta) > 1e-12 else 0.0
    if w.cc.wfpr_method == "normal":
        return normal
    futures = sorted(
        (c for c in file.contracts.values() if c.cc == w.cc.code and c.kind == "FUT"),
        key=lambda c: month_key(c.period),
    )
    psr = None if not futures else futures[0].price_scan
    if psr is None:
        return normal
    psr /= futures[0].dsf or 1.0
    return psr if w.cc.wfpr_method == "scanrange" else min(normal, psr)


def _inter(file: SpanFile, work: dict[str, _CC], notes: list[str]) -> None:
    taken: set[str] = set()
    for ss in file.scanning_spreads:
        if not all(code in work for code in ss.legs):
            continue
        legs = [work[code] for code in ss.legs]
        loss = np.stack([w.loss for w in legs])
        risk = np.maximum(loss, 0.0).sum(axis=0) - ss.rate * np.maximum(-loss, 0.0).sum(axis=0)
        spread_scan = max(float(risk.max()), 0.0)
        total = sum(w.scan for w in legs)
        saving = max(total - spread_scan, 0.0)
        for w in legs:
            w.inter += saving * (w.scan / total if total > 0 else 0.0)
        taken.update(ss.legs)
        notes.append(
            f"scanning-based spread {ss.priority} ({', '.join(ss.legs)}): losses − rate × gains "
            "per scenario [inferred]"
        )
    delta: dict[tuple[str, int], float] = {}
    for code, w in work.items():
        for c, q in w.rows:
            tier = next((t.number for t in w.cc.inter_tiers if t.holds(c.tier_period)), 0)
            delta[(code, tier)] = delta.get((code, tier), 0.0) + q * c.composite_delta * c.dsf
    for spread in file.inter_spreads:
        keys = [(leg.cc, leg.tier if leg.tier is not None else 0) for leg in spread.legs]
        if any(k[0] not in work or k[0] in taken for k in keys):
            continue
        for direction in (1.0, -1.0):
            sides = [1.0 if leg.side == "A" else -1.0 for leg in spread.legs]
            avail = [
                max(direction * s * delta.get(k, 0.0), 0.0) / leg.ratio
                for k, s, leg in zip(keys, sides, spread.legs, strict=True)
            ]
            n = min(avail)
            if n <= 1e-12:
                continue
            for k, s, leg in zip(keys, sides, spread.legs, strict=True):
                delta[k] = delta.get(k, 0.0) - direction * s * n * leg.ratio
                w = work[k[0]]
                if spread.method == "W":
                    w.inter += n * leg.ratio * w.wfpr * spread.rate
                else:
                    w.inter += n * spread.rate / len(spread.legs)


def _result(
    file: SpanFile, work: dict[str, _CC], cash: dict[str, float], name: str, notes: list[str]
) -> MarginResult:
    unds: list[UnderlyingResult] = []
    positions: list[PositionLine] = []
    pools: dict[str, dict[str, float]] = {}
    req: dict[str, list[float]] = {}
    nov: dict[str, float] = {}
    for code, w in work.items():
        one = np.ones((1, 1))
        comps = compose(
            w.scan * one,
            {"span_intra_commodity": w.intra * one},
            {"span_inter_commodity": w.inter * one},
            {"span_short_option_minimum": w.som * one},
        )
        own = {k: float(v[0, 0]) for k, v in comps.items()}
        risk = sum(own.values())
        ccy = w.cc.currency
        im_mm = req.setdefault(ccy, [0.0, 0.0])
        im_mm[0] += risk * w.cc.initial_factor
        im_mm[1] += risk * w.cc.maintenance_factor
        pooled = pools.setdefault(ccy, {})
        for k, v in own.items():
            pooled[k] = pooled.get(k, 0.0) + v
        lines = tuple(
            ScenarioLine(code, j, _group(file, j), p.price, p.vol, p.weight, -float(x), -float(x))
            for j, (p, x) in enumerate(zip(file.points, w.loss, strict=True))
        )
        j = w.binding
        scale = w.scan / float(w.loss[j]) if w.scan > 0 and w.loss[j] > 0 else 0.0
        details = {
            "time_risk": w.time,
            "vol_risk": w.vol,
            "price_risk": w.price,
            "net_delta": w.net_delta,
            "weighted_price_risk": w.wfpr,
            "maintenance_factor": w.cc.maintenance_factor,
            "initial_factor": w.cc.initial_factor,
        }
        unds.append(
            UnderlyingResult(code, ccy, w.scan, own, risk, lines[j], lines, details, w.scan, 0.0)
        )
        for c, q in w.rows:
            value = q * c.price * c.cvf if c.premium_style else 0.0
            nov[ccy] = nov.get(ccy, 0.0) + value
            positions.append(
                PositionLine(
                    c.name,
                    q,
                    ccy,
                    value,
                    q * c.composite_delta * c.dsf,
                    -q * c.array[j],
                    "quoted",
                    q * c.array[j] * scale,
                )
            )
    currencies = sorted({*req, *cash})
    missing = [c for c in currencies if c not in file.usd_rates]
    if len(currencies) > 1 and missing:
        raise InputError(
            f"{name}: the book spans {', '.join(currencies)} and {file.source} gives no USD rate "
            f"for {', '.join(missing)} (curConv / type T records)"
        )
    result_pools = []
    for ccy in currencies:
        im, mm = req.get(ccy, [0.0, 0.0])
        comps_ccy = pools.get(ccy, {"scanning_risk": 0.0})
        result_pools.append(
            PoolResult(
                ccy,
                im,
                mm,
                cash.get(ccy, 0.0) + nov.get(ccy, 0.0),
                comps_ccy,
                tuple(u for u in unds if u.currency == ccy),
                file.usd_rates.get(ccy, 1.0),
                {"net_option_value": nov.get(ccy, 0.0)},
            )
        )
    when = datetime(
        file.business_date.year, file.business_date.month, file.business_date.day, tzinfo=UTC
    )
    notes.append(f"SPAN file {file.source}: published risk arrays, no repricing")
    return combine_pools(
        result_pools,
        unds,
        positions,
        model=METHOD_NAME,
        version=file.label,
        valuation_time=iso_z(when),
        source=file.source,
        notes=notes,
    )


def _group(file: SpanFile, j: int) -> str:
    p = file.points[j]
    return "extreme" if p.paired == j and p.vol == 0.0 else "standard"


@dataclass(frozen=True, slots=True)
class SpanFileMethod:
    """A SPAN file as a portmargin :class:`~portmargin.methods.Method` (``spanfile``).

    ``margin(portfolio, market)`` margins the portfolio's file instruments on the file's
    published arrays (:func:`span_margin`); ``market`` is not used, the file carries its own
    prices and its business date is the result's valuation time.
    """

    file: SpanFile

    @property
    def name(self) -> str:
        """``spanfile``."""
        return METHOD_NAME

    @property
    def version(self) -> str:
        """The file's clearing organisation, date and format."""
        return self.file.label

    @property
    def family(self) -> Literal["portfolio"]:
        """``portfolio``: SPAN is a scenario-based portfolio method."""
        return "portfolio"

    def margin(self, portfolio: Portfolio, market: MarketSnapshot) -> MarginResult:
        """Margin ``portfolio`` on the file (``market`` is not used)."""
        del market
        return span_margin(
            self.file, portfolio.net_positions(), portfolio.cash, name=portfolio.name
        )

    @staticmethod
    def load(path: str | Path) -> SpanFileMethod:
        """Read ``path`` (SPAN 4 XML or expanded positional, told apart by content)."""
        from portmargin.spanfile import load_span_file

        return SpanFileMethod(load_span_file(path))
