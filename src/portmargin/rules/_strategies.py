"""Recognised strategies: classification, requirement and candidate enumeration.

All requirements here are **gross** (Cboe convention, ``rules_based.md`` §1): long premiums
inside, short proceeds not yet applied; ``net = gross − proceeds``. Amounts are per group
instance (one contract of its option legs), in the pool currency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from portmargin.rules._book import Book, Leg, LegKind

__all__ = ["Candidate", "enumerate_candidates", "price_group", "singles"]

_INF = math.inf
_UNDERLYING_KINDS = (LegKind.FUTURE, LegKind.PERPETUAL, LegKind.SPOT, LegKind.COIN)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One recognised group: legs used per instance and its gross requirements.

    Attributes
    ----------
    kind
        Strategy name (``vertical_spread``, ``iron_condor``, ``naked_short_call``, ...).
    members
        ``(leg index, contracts of that leg per instance)``.
    gross_im, gross_mm
        Gross initial / maintenance requirement per instance (pool currency).
    proceeds
        Short proceeds per instance (pool currency).
    """

    kind: str
    members: tuple[tuple[int, float], ...]
    gross_im: float
    gross_mm: float
    proceeds: float

    @property
    def net_im(self) -> float:
        """Initial requirement net of proceeds."""
        return self.gross_im - self.proceeds

    @property
    def net_mm(self) -> float:
        """Maintenance requirement net of proceeds."""
        return self.gross_mm - self.proceeds

    @property
    def is_single(self) -> bool:
        """True for a one-leg group."""
        return len(self.members) == 1


def _single(book: Book, i: int) -> Candidate:
    leg = book.legs[i]
    if leg.kind is LegKind.OPTION:
        kind = ("naked_short_" if leg.is_short else "long_") + ("call" if leg.is_call else "put")
    elif leg.kind is LegKind.COIN:
        kind = "unpledged_coin"
    else:
        kind = ("short_" if leg.is_short else "long_") + leg.kind.value
    return Candidate(kind, ((i, 1.0),), leg.single_im, leg.single_mm, leg.proceeds)


def singles(book: Book) -> list[Candidate]:
    """One singleton group per leg (naked short, long alone, future, spot, unpledged coin)."""
    return [_single(book, i) for i in range(len(book.legs))]


def _payoff(opts: Sequence[tuple[Leg, float]], price: float) -> float:
    total = 0.0
    for leg, n in opts:
        total += n * (max(price - leg.strike, 0.0) if leg.is_call else max(leg.strike - price, 0.0))
    return total


def max_potential_loss(book: Book, opts: Sequence[tuple[Leg, float]]) -> float:
    r"""Maximum potential loss per unit of underlying, pool currency (``inf`` if unbounded).

    ``rules_based.md`` §2.6: intrinsic payoff at the earliest expiry (later longs at
    intrinsic), evaluated at every breakpoint ``P ∈ {0} ∪ strikes`` plus the tail.

    * Linear (USD) payoff: unbounded when the net number of calls is negative; else
      ``MPL = max(0, −min_P Σ nᵢ·intrinsicᵢ(P))``.
    * Coin payoff of inverse options (``mpl_currency = "settlement"``):
      ``f(P) = Σ nᵢ·intrinsicᵢ(P)/P`` is ``a/P + b`` between strikes (monotone), tends to
      ``Σ_calls nᵢ`` as ``P → ∞`` and to ``±∞`` as ``P → 0`` unless ``Σ_puts nᵢKᵢ ≥ 0``;
      a group with ``Σ_puts nᵢKᵢ < 0`` (e.g. a put credit spread) is unbounded in coin.
    """
    strikes = sorted({leg.strike for leg, _ in opts})
    eps = 1e-9 * strikes[-1]
    net_calls = sum(n for leg, n in opts if leg.is_call)
    if book.inverse and book.rules.mpl_currency == "settlement":
        values = [_payoff(opts, k) / k for k in strikes]
        values.append(net_calls)
        a = sum(n * leg.strike for leg, n in opts if not leg.is_call)
        if a < -eps:
            return _INF
        if a <= eps:
            values.append(-sum(n for leg, n in opts if not leg.is_call))
        return max(0.0, -min(values))
    if net_calls < -1e-12:
        return _INF
    values = [_payoff(opts, 0.0)] + [_payoff(opts, k) for k in strikes]
    return book.to_pool(max(0.0, -min(values)))


def _finish(
    book: Book, kind: str, members: list[tuple[int, float]], gross_im: float, gross_mm: float
) -> Candidate | None:
    """Cap at the legs' stand-alone requirement (pairing is never compulsory)."""
    if not (math.isfinite(gross_im) and math.isfinite(gross_mm)):
        return None
    legs = book.legs
    alone_im = sum(a * legs[i].single_im for i, a in members)
    alone_mm = sum(a * legs[i].single_mm for i, a in members)
    proceeds = sum(a * legs[i].proceeds for i, a in members)
    return Candidate(
        kind,
        tuple(members),
        min(gross_im, alone_im),
        min(gross_mm, alone_mm),
        proceeds,
    )


def _price_options(book: Book, idx: Sequence[int]) -> Candidate | None:
    """Option-only groups of 2–4 legs (spreads, straddles, flies, condors, irons, boxes)."""
    legs = book.legs
    fam = book.rules.strategies.families
    opts = sorted(idx, key=lambda i: (legs[i].strike, legs[i].is_call, legs[i].expiry))
    n = len(opts)
    if n == 2:
        a, b = (legs[i] for i in opts)
        if a.is_call == b.is_call and a.sign != b.sign and "spread" in fam:
            s_i, l_i = (opts[0], opts[1]) if a.is_short else (opts[1], opts[0])
            short, long_ = legs[s_i], legs[l_i]
            if long_.expiry < short.expiry:  # reverse calendar: no offset (§2.3)
                return None
            mpl = max_potential_loss(book, [(short, -1.0), (long_, 1.0)]) * short.units
            if short.expiry == long_.expiry:
                spread = "vertical_spread"
            elif short.strike == long_.strike:
                spread = "calendar_spread"
            else:
                spread = "diagonal_spread"
            return _finish(
                book,
                spread,
                [(s_i, 1.0), (l_i, 1.0)],
                min(short.naked_im, mpl) + long_.value,
                min(short.naked_mm, mpl) + long_.value,
            )
        if a.is_call != b.is_call and a.is_short and b.is_short and "straddle" in fam:
            same = a.strike == b.strike and a.expiry == b.expiry
            im = max(a.naked_im + b.value, b.naked_im + a.value)
            mm = max(a.naked_mm + b.value, b.naked_mm + a.value)
            name = "short_straddle" if same else "short_strangle"
            return _finish(book, name, [(opts[0], 1.0), (opts[1], 1.0)], im, mm)
        return None
    if len({legs[i].expiry for i in opts}) != 1:
        return None
    signs = tuple(legs[i].sign for i in opts)
    strikes = [legs[i].strike for i in opts]
    calls = [i for i in opts if legs[i].is_call]
    kind: str | None = None
    ratio = [1.0] * n
    if n == 3:
        if (
            "butterfly" in fam
            and len(calls) in (0, 3)
            and strikes[0] < strikes[1] < strikes[2]
            and signs in ((1, -1, 1), (-1, 1, -1))
        ):
            spacing_ok = math.isclose(
                strikes[1] - strikes[0], strikes[2] - strikes[1], rel_tol=1e-12
            )
            if spacing_ok or not book.rules.strategies.equal_wings:
                kind = "long_butterfly" if signs[0] == 1 else "short_butterfly"
                ratio = [1.0, 2.0, 1.0]
    elif n == 4:
        if len(calls) in (0, 4):
            wings_ok = not book.rules.strategies.equal_wings or math.isclose(
                strikes[1] - strikes[0], strikes[3] - strikes[2], rel_tol=1e-12
            )
            if "condor" in fam and strikes[0] < strikes[1] < strikes[2] < strikes[3] and wings_ok:
                if signs == (1, -1, -1, 1):
                    kind = "long_condor"
                elif signs == (-1, 1, 1, -1):
                    kind = "short_condor"
        elif len(calls) == 2:
            c1, c2 = calls
            p1, p2 = (i for i in opts if not legs[i].is_call)
            cs = (legs[c1].sign, legs[c2].sign)
            ps = (legs[p1].sign, legs[p2].sign)
            ck = (legs[c1].strike, legs[c2].strike)
            pk = (legs[p1].strike, legs[p2].strike)
            if ck[0] < ck[1] and pk[0] < pk[1]:
                if ck == pk and "box" in fam:
                    if cs == (1, -1) and ps == (-1, 1):
                        kind = "long_box"
                    elif cs == (-1, 1) and ps == (1, -1):
                        kind = "short_box"
                elif pk[1] <= ck[0] and "iron" in fam:
                    shape = "butterfly" if pk[1] == ck[0] else "condor"
                    if ps == (1, -1) and cs == (-1, 1):
                        kind = f"iron_{shape}"
                    elif ps == (-1, 1) and cs == (1, -1):
                        kind = f"long_iron_{shape}"
    if kind is None:
        return None
    members = list(zip(opts, ratio, strict=True))
    mpl = max_potential_loss(book, [(legs[i], legs[i].sign * r) for i, r in members])
    gross = mpl * legs[opts[0]].units + sum(
        r * legs[i].value for i, r in members if not legs[i].is_short
    )
    return _finish(book, kind, members, gross, gross)


def _price_cover(book: Book, u_i: int, opt_idx: Sequence[int]) -> Candidate | None:
    """Options hedged with the underlying (``rules_based.md`` §2.7), USD per unit → pool.

    Per unit of underlying, ``r`` the underlying leg's margin rate, ``q`` the protective /
    conversion percentage, marks ``p`` in USD (net = gross − proceeds):

    ==================  ===============================  ======================================
    strategy            net initial                      net maintenance
    ==================  ===============================  ======================================
    covered call        r·S − p_c                        r·min(S, K) + ITM_c − p_c
    covered put         r·S + ITM_p − p_p                r·S + ITM_p − p_p
    protective put      r·S + p_p                        min(q·K + OTM_p, r·S) + p_p
    protective call     r·S + p_c                        min(q·K + OTM_c, r·S) + p_c
    collar              r·S + p_p − p_c                  min(q·K_p + OTM_p, r·K_c) + ITM_c
                                                         + p_p − p_c
    conversion          r·S + p_p − p_c                  q·K + p_p − p_c
    reverse conversion  (q·K if K < S else r·S)          q·K + p_c − p_p
                        + p_c − p_p
    ==================  ===============================  ======================================
    """
    legs = book.legs
    rules = book.rules.strategies
    u = legs[u_i]
    if "cover" not in rules.families or u.kind.value not in rules.covers:
        return None
    opts = sorted(opt_idx, key=lambda i: (legs[i].is_call, legs[i].strike))
    if any(legs[i].expiry > u.expiry for i in opts):
        return None  # a dated future must outlive the options it covers
    if len({legs[i].units for i in opts}) != 1 or len({legs[i].expiry for i in opts}) != 1:
        return None
    first = legs[opts[0]]
    s = first.spot
    q = rules.protective_pct
    kind: str | None = None
    net_im = net_mm = 0.0
    if len(opts) == 1:
        o = first
        p = o.price_usd
        if o.is_call and o.is_short and not u.is_short:
            kind = "covered_call"
            net_im = u.rate_im * s - p
            net_mm = u.rate_mm * min(s, o.strike) + o.itm_usd - p
        elif not o.is_call and o.is_short and u.is_short:
            kind = "covered_put"
            net_im = u.rate_im * s + o.itm_usd - p
            net_mm = u.rate_mm * s + o.itm_usd - p
        elif not o.is_call and not o.is_short and not u.is_short:
            kind = "protective_put"
            net_im = u.rate_im * s + p
            net_mm = min(q * o.strike + o.otm_usd, u.rate_mm * s) + p
        elif o.is_call and not o.is_short and u.is_short:
            kind = "protective_call"
            net_im = u.rate_im * s + p
            net_mm = min(q * o.strike + o.otm_usd, u.rate_mm * s) + p
    elif len(opts) == 2:
        put, call = legs[opts[0]], legs[opts[1]]
        if put.is_call or not call.is_call:
            return None
        c = rules.conversion_pct
        if not u.is_short and not put.is_short and call.is_short and put.strike <= call.strike:
            net_im = u.rate_im * s + put.price_usd - call.price_usd
            if put.strike == call.strike:
                kind = "conversion"
                net_mm = c * put.strike + put.price_usd - call.price_usd
            else:
                kind = "collar"
                net_mm = (
                    min(q * put.strike + put.otm_usd, u.rate_mm * call.strike)
                    + call.itm_usd
                    + put.price_usd
                    - call.price_usd
                )
        elif u.is_short and put.is_short and not call.is_short and put.strike == call.strike:
            kind = "reverse_conversion"
            k = put.strike
            net_im = (c * k if k < s else u.rate_im * s) + call.price_usd - put.price_usd
            net_mm = c * k + call.price_usd - put.price_usd
    if kind is None:
        return None
    units = first.units
    members = [(i, 1.0) for i in opts] + [(u_i, units / u.units)]
    proceeds = sum(a * legs[i].proceeds for i, a in members)
    return _finish(
        book,
        kind,
        members,
        book.to_pool(net_im) * units + proceeds,
        book.to_pool(net_mm) * units + proceeds,
    )


def price_group(book: Book, idx: Sequence[int]) -> Candidate | None:
    """Recognise the legs ``idx`` (2–4 distinct legs) as a strategy and price it.

    Returns ``None`` when the legs form no strategy the rule set recognises, or when the
    group's risk is unbounded. The requirement is capped at the legs' stand-alone one.
    """
    legs = book.legs
    if len(set(idx)) != len(idx) or not 2 <= len(idx) <= 4:
        return None
    if book.rules.engine == "per_leg":
        return None
    und = [i for i in idx if legs[i].kind in _UNDERLYING_KINDS]
    opts = [i for i in idx if legs[i].kind is LegKind.OPTION]
    if len({legs[i].units for i in opts}) > 1:
        return None
    if len(und) == 1 and 1 <= len(opts) <= 2:
        return _price_cover(book, und[0], opts)
    if und:
        return None
    return _price_options(book, opts)


def _useful(book: Book, cand: Candidate) -> bool:
    legs = book.legs
    alone_im = sum(a * legs[i].single_im for i, a in cand.members)
    alone_mm = sum(a * legs[i].single_mm for i, a in cand.members)
    tol = 1e-12 * max(1.0, abs(alone_im), abs(alone_mm))
    return cand.gross_im < alone_im - tol or cand.gross_mm < alone_mm - tol


def enumerate_candidates(book: Book) -> list[Candidate]:
    """Every multi-leg group worth considering, in a deterministic order.

    Tuples are generated only where a template can match (same type for spreads, longs
    outliving shorts, one expiry for 3–4-leg groups, opposite-sign pairs for condors,
    irons and boxes, strike patterns), priced by :func:`price_group`, and kept only when
    strictly cheaper than their legs alone for initial or maintenance margin.
    """
    if book.rules.engine == "per_leg":
        return []
    legs = book.legs
    fam = book.rules.strategies.families
    opt = [i for i, leg in enumerate(legs) if leg.kind is LegKind.OPTION]
    und = [i for i, leg in enumerate(legs) if leg.kind in _UNDERLYING_KINDS]
    tuples: list[tuple[int, ...]] = []
    # 2-leg option groups
    for i, j in combinations(opt, 2):
        a, b = legs[i], legs[j]
        if (a.is_call == b.is_call and a.sign != b.sign) or (a.is_short and b.is_short):
            tuples.append((i, j))
    # per-expiry buckets for 3–4-leg groups
    buckets: dict[tuple[float, bool], list[int]] = {}
    for i in opt:
        buckets.setdefault((legs[i].expiry, legs[i].is_call), []).append(i)
    equal = book.rules.strategies.equal_wings
    for bucket in buckets.values():
        bucket.sort(key=lambda i: legs[i].strike)
        by_strike = {legs[i].strike: i for i in bucket}
        if "butterfly" in fam:
            for i, j in combinations(bucket, 2):
                if legs[i].sign != -legs[j].sign:
                    continue
                if equal:  # the third strike is fixed by the spacing: O(n²)
                    k_ = by_strike.get(2 * legs[j].strike - legs[i].strike)
                    thirds = [] if k_ is None else [k_]
                else:
                    thirds = [k for k in bucket if legs[k].strike > legs[j].strike]
                tuples.extend((i, j, k) for k in thirds if legs[k].sign == legs[i].sign)
        if "condor" in fam:
            for i, j in combinations(bucket, 2):
                if legs[i].sign != -legs[j].sign:
                    continue
                width = legs[j].strike - legs[i].strike
                for k in bucket:
                    if legs[k].strike <= legs[j].strike or legs[k].sign != legs[j].sign:
                        continue
                    if equal:  # the fourth strike is fixed by the wing width: O(n³)
                        m_ = by_strike.get(legs[k].strike + width)
                        fourths = [] if m_ is None else [m_]
                    else:
                        fourths = [m for m in bucket if legs[m].strike > legs[k].strike]
                    tuples.extend((i, j, k, m) for m in fourths if legs[m].sign == legs[i].sign)
    if "iron" in fam or "box" in fam:
        expiries = sorted({legs[i].expiry for i in opt})
        for exp in expiries:
            calls = buckets.get((exp, True), [])
            puts = buckets.get((exp, False), [])
            cpairs = [(i, j) for i, j in combinations(calls, 2) if legs[i].sign != legs[j].sign]
            ppairs = [(i, j) for i, j in combinations(puts, 2) if legs[i].sign != legs[j].sign]
            for pi, pj in ppairs:
                for ci, cj in cpairs:
                    tuples.append((pi, pj, ci, cj))
    for u in und:
        for i in opt:
            tuples.append((i, u))
        if "cover" in fam:
            for exp in sorted({legs[i].expiry for i in opt}):
                for p in buckets.get((exp, False), []):
                    for c in buckets.get((exp, True), []):
                        if legs[p].sign != legs[c].sign:
                            tuples.append((p, c, u))
    out: list[Candidate] = []
    for t in tuples:
        cand = price_group(book, t)
        if cand is not None and _useful(book, cand):
            out.append(cand)
    return out
