"""Recognised strategies: classification and requirement of one group (the reference rules).

All requirements here are **gross** (Cboe convention, ``docs/methodology/rules.md`` §1):
long premiums inside, short proceeds not yet applied; ``net = gross − proceeds``. Amounts
are per group instance (one contract of its option legs), in the pool currency.

This module prices one group at a time and is the specification; the vectorised
enumeration of :mod:`portmargin.rules._enumerate` must give the same figures (a property
test checks it). Sources: Cboe strategy-based margin
(https://www.cboe.com/us/options/margin/ and
https://markets.cboe.com/us/options/strategy_based_margin/), the universal spread rule
(SEC Release 34-67752, https://www.govinfo.gov/content/pkg/FR-2012-09-05/html/2012-21765.htm):
"the margin requirement for a spread is its maximum risk based on the intrinsic values of the
options, exclusive of any net option premiums".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations

from portmargin.rules._book import Book, LegKind, OptionLeg, UnderlyingLeg

__all__ = [
    "KINDS",
    "Candidate",
    "best_net",
    "max_potential_loss",
    "price_group",
    "singles",
]

_INF = math.inf

KINDS = (
    "vertical_spread",
    "calendar_spread",
    "diagonal_spread",
    "short_straddle",
    "short_strangle",
    "long_butterfly",
    "short_butterfly",
    "long_condor",
    "short_condor",
    "iron_butterfly",
    "iron_condor",
    "long_iron_butterfly",
    "long_iron_condor",
    "long_box",
    "short_box",
    "covered_call",
    "covered_put",
    "protective_put",
    "protective_call",
    "collar",
    "conversion",
    "reverse_conversion",
)
"""Multi-leg strategy names, in a fixed order (their codes in candidate tables)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One recognised group: legs used per instance and its gross requirements.

    Attributes
    ----------
    kind
        Strategy name (``vertical_spread``, ``iron_condor``, ``naked_short_call``, ...).
    members
        ``(leg index, contracts of that leg per instance)``, sorted by leg index.
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
    if isinstance(leg, OptionLeg):
        kind = ("naked_short_" if leg.is_short else "long_") + ("call" if leg.is_call else "put")
    elif leg.kind is LegKind.COIN:
        kind = "unpledged_coin"
    else:
        kind = ("short_" if leg.is_short else "long_") + leg.kind.value
    return Candidate(kind, ((i, 1.0),), leg.single_im, leg.single_mm, leg.proceeds)


def singles(book: Book) -> list[Candidate]:
    """One singleton group per leg (naked short, long alone, future, spot, unpledged coin)."""
    return [_single(book, i) for i in range(len(book.legs))]


def _payoff(opts: Sequence[tuple[OptionLeg, float]], price: float) -> float:
    total = 0.0
    for leg, n in opts:
        total += n * (max(price - leg.strike, 0.0) if leg.is_call else max(leg.strike - price, 0.0))
    return total


def max_potential_loss(book: Book, opts: Sequence[tuple[OptionLeg, float]]) -> float:
    r"""Maximum potential loss per unit of underlying, pool currency (``inf`` if unbounded).

    Intrinsic payoff at the earliest expiry (later longs at intrinsic, "exclusive of any net
    option premiums", SEC Release 34-67752), evaluated at every breakpoint
    ``P ∈ {0} ∪ strikes`` plus the tail; the payoff is piecewise linear (USD) or piecewise
    ``a/P + b`` (coin), so these points give its minimum exactly.

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


# --- textbook (manual) requirements ----------------------------------------------------------

_Textbook = tuple[str, list[tuple[int, float]], float, float]


def _option_groups(book: Book, idx: Sequence[int]) -> _Textbook | None:
    """Option-only groups of 2–4 legs (spreads, straddles, flies, condors, irons, boxes)."""
    legs = book.legs
    opts: list[tuple[int, OptionLeg]] = []
    for i in idx:
        leg = legs[i]
        if not isinstance(leg, OptionLeg):
            return None
        opts.append((i, leg))
    fam = book.rules.strategies.families
    opts.sort(key=lambda t: (t[1].strike, t[1].is_call, t[1].expiry))
    n = len(opts)
    if n == 2:
        (ia, a), (ib, b) = opts
        if a.is_call == b.is_call and a.sign != b.sign and "spread" in fam:
            (s_i, short), (l_i, long_) = (opts[0], opts[1]) if a.is_short else (opts[1], opts[0])
            if long_.expiry < short.expiry:  # reverse calendar: no offset (Cboe)
                return None
            mpl = max_potential_loss(book, [(short, -1.0), (long_, 1.0)]) * short.units
            if short.expiry == long_.expiry:
                spread = "vertical_spread"
            elif short.strike == long_.strike:
                spread = "calendar_spread"
            else:
                spread = "diagonal_spread"
            return (
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
            return name, [(ia, 1.0), (ib, 1.0)], im, mm
        return None
    if len({leg.expiry for _, leg in opts}) != 1:
        return None
    signs = tuple(leg.sign for _, leg in opts)
    strikes = [leg.strike for _, leg in opts]
    calls = [(i, leg) for i, leg in opts if leg.is_call]
    kind: str | None = None
    ratio = [1.0] * n
    equal = book.rules.strategies.equal_wings
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
            if spacing_ok or not equal:
                kind = "long_butterfly" if signs[0] == 1 else "short_butterfly"
                ratio = [1.0, 2.0, 1.0]
    elif n == 4:
        if len(calls) in (0, 4):
            wings_ok = not equal or math.isclose(
                strikes[1] - strikes[0], strikes[3] - strikes[2], rel_tol=1e-12
            )
            if "condor" in fam and strikes[0] < strikes[1] < strikes[2] < strikes[3] and wings_ok:
                if signs == (1, -1, -1, 1):
                    kind = "long_condor"
                elif signs == (-1, 1, 1, -1):
                    kind = "short_condor"
        elif len(calls) == 2:
            (_, c1), (_, c2) = calls
            p1, p2 = (leg for _, leg in opts if not leg.is_call)
            cs = (c1.sign, c2.sign)
            ps = (p1.sign, p2.sign)
            ck = (c1.strike, c2.strike)
            pk = (p1.strike, p2.strike)
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
    members = [(i, r) for (i, _), r in zip(opts, ratio, strict=True)]
    signed = [(leg, leg.sign * r) for (_, leg), r in zip(opts, ratio, strict=True)]
    mpl = max_potential_loss(book, signed)
    gross = mpl * opts[0][1].units + sum(
        r * leg.value for (_, leg), r in zip(opts, ratio, strict=True) if not leg.is_short
    )
    return kind, members, gross, gross


def _cover_groups(book: Book, u_i: int, opt_idx: Sequence[int]) -> _Textbook | None:
    """Options hedged with the underlying, USD per unit → pool currency.

    Cboe Margin Manual, "Short Call and Long Underlying", "Short Put and Short Underlying",
    "Long Put and Long Underlying", "Long Call and Short Underlying", "Conversion",
    "Reverse Conversion", "Collar" (https://www.cboe.com/us/options/margin/), restated per
    unit of underlying against mark-to-market equity. ``r`` is the underlying leg's margin
    rate (Reg T 50 % / 25 % / 30 % for stock or a pledged coin, the size-scaled futures rate
    for futures), ``q`` the protective / conversion percentage, marks ``p`` in USD
    (net = gross − proceeds):

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

    In a coin pool the coin balance only covers short calls (``covered_call``): an inverse
    call pays ``max(S − K, 0)/S ≤ 1`` coin per contract, so one coin per contract covers
    its whole payout; the coin is a deliverable held, not a hedge of the pool's coin P&L.
    """
    legs = book.legs
    rules = book.rules.strategies
    u = legs[u_i]
    if not isinstance(u, UnderlyingLeg):
        return None
    if "cover" not in rules.families or u.kind.value not in rules.covers:
        return None
    opts: list[tuple[int, OptionLeg]] = []
    for i in opt_idx:
        leg = legs[i]
        if not isinstance(leg, OptionLeg):
            return None
        opts.append((i, leg))
    opts.sort(key=lambda t: (t[1].is_call, t[1].strike))
    if any(not u.outlives(leg.expiry) for _, leg in opts):
        return None  # a dated future must outlive the options it covers
    if len({leg.units for _, leg in opts}) != 1 or len({leg.expiry for _, leg in opts}) != 1:
        return None
    first = opts[0][1]
    s = first.spot
    q = rules.protective_pct
    kind: str | None = None
    net_im = net_mm = 0.0
    coin_in_coin_pool = u.kind is LegKind.COIN and book.inverse
    if len(opts) == 1:
        o = first
        p = o.price_usd
        if o.is_call and o.is_short and not u.is_short:
            kind = "covered_call"
            net_im = u.rate_im * s - p
            net_mm = u.rate_mm * min(s, o.strike) + o.itm_usd - p
        elif coin_in_coin_pool:
            return None
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
    elif len(opts) == 2 and not coin_in_coin_pool:
        put, call = opts[0][1], opts[1][1]
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
    members = [(i, 1.0) for i, _ in opts] + [(u_i, units / u.units)]
    proceeds = sum(a * legs[i].proceeds for i, a in members)
    return (
        kind,
        members,
        book.to_pool(net_im) * units + proceeds,
        book.to_pool(net_mm) * units + proceeds,
    )


def _textbook(book: Book, idx: Sequence[int]) -> _Textbook | None:
    legs = book.legs
    if len(set(idx)) != len(idx) or not 2 <= len(idx) <= 4:
        return None
    if book.rules.engine == "per_leg":
        return None
    und = [i for i in idx if not isinstance(legs[i], OptionLeg)]
    opts = [i for i in idx if isinstance(legs[i], OptionLeg)]
    if len({legs[i].units for i in opts}) > 1:
        return None
    if len(und) == 1 and 1 <= len(opts) <= 2:
        return _cover_groups(book, und[0], opts)
    if und:
        return None
    return _option_groups(book, opts)


# --- monotone closure and the cap at the legs alone -------------------------------------------


def best_net(book: Book, members: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least net (initial, maintenance) requirement of a small multiset of leg contracts.

    The minimum over every decomposition of ``members`` into recognised groups (priced by
    :func:`price_group`, so with the closure) and legs alone; exhaustive, for the 1–4 legs
    left when one short option is taken out of a group.
    """
    legs = book.legs
    names = sorted(i for i, _ in members)
    amounts = dict(members)
    groups: list[Candidate] = []
    for size in (2, 3, 4):
        for sub in combinations(names, size):
            found = _textbook(book, sub)
            if found is None or any(a > amounts[i] + 1e-12 for i, a in found[1]):
                continue  # not a group, or more contracts than are left
            cand = _finish(book, *found)
            if cand is not None:
                groups.append(cand)

    def net_single(i: int, *, maintenance: bool) -> float:
        leg = legs[i]
        return (leg.single_mm if maintenance else leg.single_im) - leg.proceeds

    def solve(*, maintenance: bool) -> float:
        @cache
        def best(caps: tuple[float, ...]) -> float:
            first = next((k for k, c in enumerate(caps) if c > 1e-12), None)
            if first is None:
                return 0.0
            rest = list(caps)
            rest[first] = 0.0
            value = caps[first] * net_single(names[first], maintenance=maintenance)
            value += best(tuple(rest))
            pos = {i: k for k, i in enumerate(names)}
            for g in groups:
                use = {pos[i]: a for i, a in g.members}
                if first in use and all(caps[k] >= a - 1e-12 for k, a in use.items()):
                    nxt = tuple(c - use.get(k, 0.0) for k, c in enumerate(caps))
                    value = min(value, (g.net_mm if maintenance else g.net_im) + best(nxt))
            return value

        return best(tuple(amounts[i] for i in names))

    return solve(maintenance=False), solve(maintenance=True)


def _finish(book: Book, kind: str, members: list[tuple[int, float]], gross_im: float,
            gross_mm: float) -> Candidate | None:  # fmt: skip
    """Cap at the legs' stand-alone requirement (pairing is never compulsory), then close.

    Closure (``strategies.monotone``): ``net(g) ≥ best_net(g − s)`` for every short option
    contract ``s`` of ``g``, so that selling an option never lowers a book's requirement:
    if it did, taking that contract out of its group would leave a cheaper decomposition
    of the book without it.
    """
    if not (math.isfinite(gross_im) and math.isfinite(gross_mm)):
        return None
    legs = book.legs
    members = sorted(members)
    alone_im = sum(a * legs[i].single_im for i, a in members)
    alone_mm = sum(a * legs[i].single_mm for i, a in members)
    proceeds = sum(a * legs[i].proceeds for i, a in members)
    gross_im = min(gross_im, alone_im)
    gross_mm = min(gross_mm, alone_mm)
    if book.rules.strategies.monotone:
        net_im, net_mm = gross_im - proceeds, gross_mm - proceeds
        for i, _ in members:
            leg = legs[i]
            if isinstance(leg, OptionLeg) and leg.is_short:
                rest = [(j, b - 1.0 if j == i else b) for j, b in members]
                rest = [(j, b) for j, b in rest if b > 1e-12]
                r_im, r_mm = best_net(book, rest)
                net_im, net_mm = max(net_im, r_im), max(net_mm, r_mm)
        gross_im, gross_mm = net_im + proceeds, net_mm + proceeds
    return Candidate(kind, tuple(members), gross_im, gross_mm, proceeds)


def price_group(book: Book, idx: Sequence[int]) -> Candidate | None:
    """Recognise the legs ``idx`` (2–4 distinct legs) as a strategy and price it.

    Returns ``None`` when the legs form no strategy the rule set recognises, or when the
    group's risk is unbounded. The requirement is capped at the legs' stand-alone one and,
    for monotone rule sets, closed as :func:`_finish` says.
    """
    found = _textbook(book, idx)
    if found is None:
        return None
    return _finish(book, *found)
