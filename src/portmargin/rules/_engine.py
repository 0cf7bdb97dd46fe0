"""``rules_margin``: books per settlement pool and underlying, optimal pairing, results.

Currency convention (shared with the portfolio-margin side): inverse BTC/ETH products are
margined in their coin, linear USD/USDC/USDT products in ``USD`` (stable coins at par).
Pool equity = cash in that currency + mark value of its positions (quantity × multiplier ×
mark; futures and perpetuals 0). One pool → its figures; several → converted to USD at index
prices, with each pool in ``by_currency``.

Requirements are reported **net** of the positions' mark-to-market:
``requirement = max(0, gross − short proceeds)``, the cash a trader must bring, so that
``excess = equity − requirement`` as on the portfolio-margin side. The gross (Cboe) figure
is reported beside it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from portmargin.errors import InputError
from portmargin.instruments import STABLE_CURRENCIES, Future, Instrument, Option, Perpetual
from portmargin.models.result import Excess
from portmargin.rules._book import Book, Leg, LegKind, OptionLeg, UnderlyingLeg, naked_usd
from portmargin.rules._enumerate import candidate_table
from portmargin.rules._market import RulesMarket
from portmargin.rules._params import NakedLevel, RuleSet
from portmargin.rules._solve import Decomposition, pair_books

__all__ = ["PoolResult", "RulesResult", "StrategyGroup", "build_books", "rules_margin"]

_SECONDS_PER_YEAR = 31_536_000.0


@dataclass(frozen=True, slots=True)
class StrategyGroup:
    """One strategy of the chosen decomposition.

    Attributes
    ----------
    kind
        Strategy name (``vertical_spread``, ``naked_short_put``, ``covered_call``, ...).
    legs
        ``(instrument name, signed quantity)`` of each leg in this group (contracts; coins
        for a pledged coin balance ``"BTC balance"``).
    initial_margin, maintenance_margin
        Net requirement of the group (gross − its short proceeds); may be negative for a
        deep-in-the-money covered position (the pool total is floored at 0).
    gross_initial_margin, gross_maintenance_margin
        Gross (Cboe-convention) requirement of the group.
    currency
        Pool currency.
    """

    kind: str
    legs: tuple[tuple[str, float], ...]
    initial_margin: float
    maintenance_margin: float
    gross_initial_margin: float
    gross_maintenance_margin: float
    currency: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {
            "kind": self.kind,
            "legs": [[name, qty] for name, qty in self.legs],
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
            "gross_initial_margin": self.gross_initial_margin,
            "gross_maintenance_margin": self.gross_maintenance_margin,
            "currency": self.currency,
        }


@dataclass(frozen=True, slots=True)
class PoolResult(Excess):
    """Figures of one settlement pool, in its own currency.

    ``maintenance_strategies`` is the decomposition minimising maintenance margin, which can
    differ from the initial-margin one (``strategies``) when a group's IM and MM rank
    differently (hedges with the underlying, long-dated longs).

    ``optimality_gap`` is 0 when both decompositions are proven optimal (the default, no time
    limit); under a time limit it is the larger relative gap ``(found − bound) / found`` of
    the two gross requirements, and ``initial_margin_bound`` / ``maintenance_margin_bound``
    are proven lower bounds on the net requirements (equal to them when the gap is 0;
    ``None`` only on results not built by :func:`rules_margin`).
    """

    currency: str
    initial_margin: float
    maintenance_margin: float
    gross_initial_margin: float
    gross_maintenance_margin: float
    proceeds: float
    equity: float
    greedy_initial_margin: float
    all_naked_initial_margin: float
    strategies: tuple[StrategyGroup, ...]
    maintenance_strategies: tuple[StrategyGroup, ...]
    optimality_gap: float = 0.0
    initial_margin_bound: float | None = None
    maintenance_margin_bound: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {
            "currency": self.currency,
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
            "gross_initial_margin": self.gross_initial_margin,
            "gross_maintenance_margin": self.gross_maintenance_margin,
            "proceeds": self.proceeds,
            "equity": self.equity,
            "initial_excess": self.initial_excess,
            "maintenance_excess": self.maintenance_excess,
            "greedy_initial_margin": self.greedy_initial_margin,
            "all_naked_initial_margin": self.all_naked_initial_margin,
            "strategies": [s.to_dict() for s in self.strategies],
            "maintenance_strategies": [s.to_dict() for s in self.maintenance_strategies],
            "optimality_gap": self.optimality_gap,
            "initial_margin_bound": self.initial_margin_bound,
            "maintenance_margin_bound": self.maintenance_margin_bound,
        }


@dataclass(frozen=True, slots=True)
class RulesResult:
    """Rules-based margin of a portfolio (see the module docstring for conventions).

    Attributes
    ----------
    rule_set
        Rule-set name.
    currency
        The pool currency when there is one pool, else ``"USD"``.
    initial_margin, maintenance_margin
        Net requirements (≥ 0): gross minus short proceeds, floored at 0 per pool.
    gross_initial_margin, gross_maintenance_margin
        Gross requirements (long premiums in, proceeds not applied).
    equity
        Cash plus positions' mark value.
    initial_excess, maintenance_excess
        ``equity − requirement``.
    greedy_initial_margin
        Net initial margin of the greedy pairing (a baseline, ≥ the optimum).
    strategies
        The optimal (initial-margin) decomposition, every pool.
    by_currency
        Each pool's :class:`PoolResult` in its own currency.
    optimality_gap
        0 when every decomposition is proven optimal (the default); under a time limit, the
        largest relative gap of any pool (bounds per pool in ``by_currency``).
    """

    rule_set: str
    currency: str
    initial_margin: float
    maintenance_margin: float
    gross_initial_margin: float
    gross_maintenance_margin: float
    equity: float
    initial_excess: float
    maintenance_excess: float
    greedy_initial_margin: float
    strategies: tuple[StrategyGroup, ...]
    by_currency: Mapping[str, PoolResult] = field(default_factory=lambda: MappingProxyType({}))
    optimality_gap: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping of every field (strategies and pools as lists/dicts)."""
        return {
            "rule_set": self.rule_set,
            "currency": self.currency,
            "initial_margin": self.initial_margin,
            "maintenance_margin": self.maintenance_margin,
            "gross_initial_margin": self.gross_initial_margin,
            "gross_maintenance_margin": self.gross_maintenance_margin,
            "equity": self.equity,
            "initial_excess": self.initial_excess,
            "maintenance_excess": self.maintenance_excess,
            "greedy_initial_margin": self.greedy_initial_margin,
            "strategies": [s.to_dict() for s in self.strategies],
            "by_currency": {k: v.to_dict() for k, v in self.by_currency.items()},
            "optimality_gap": self.optimality_gap,
        }


def _pool_of(currency: str) -> str:
    return "USD" if currency in STABLE_CURRENCIES else currency


def _leg(inst: Instrument, qty: float, market: RulesMarket, rules: RuleSet, index: float) -> Leg:
    """Per-contract figures of one aggregated position, in its pool currency."""
    inverse = inst.is_inverse
    units = inst.multiplier

    def to_pool(usd: float) -> float:
        return usd / index if inverse else usd

    mark = float(market.mark_price(inst))
    if not math.isfinite(mark):
        raise InputError(f"instrument {inst.name!r}: mark price {mark!r} is not finite")
    if isinstance(inst, Option):
        spot = (
            index
            if rules.price_basis == "index"
            else float(market.forward(inst.underlying, inst.expiry))
        )
        p_usd = mark * index if inverse else mark

        def naked(level: NakedLevel) -> float:
            usd = naked_usd(level, is_call=inst.is_call, spot=spot, strike=inst.strike, p=p_usd)
            return units * to_pool(usd)

        value = units * mark
        im = naked(rules.naked.initial)
        mm = naked(rules.naked.maintenance_level)
        if rules.naked.initial_at_least_maintenance:
            im = max(im, mm)
        tau = (inst.expiry - market.valuation_time).total_seconds() / _SECONDS_PER_YEAR
        loan = (
            rules.long_options.loan_value if tau > rules.long_options.loan_value_min_years else 0.0
        )
        short = qty < 0
        return OptionLeg(
            name=inst.name,
            qty=qty,
            units=units,
            is_call=inst.is_call,
            strike=inst.strike,
            expiry=inst.expiry.timestamp(),
            spot=spot,
            price_usd=p_usd,
            value=value,
            naked_im=im,
            naked_mm=mm,
            single_im=im if short else value * (1.0 - loan),
            single_mm=mm if short else value * (1.0 - loan),
            proceeds=value if short else 0.0,
        )
    if isinstance(inst, Future | Perpetual):
        rates = rules.futures_rates(inst.underlying)
        size = abs(qty) * units
        r_im = rates.initial + size * rates.size_slope
        r_mm = rates.maintenance + size * rates.size_slope
        notional = units if inverse else units * mark
        return UnderlyingLeg(
            name=inst.name,
            kind=LegKind.FUTURE if isinstance(inst, Future) else LegKind.PERPETUAL,
            qty=qty,
            units=units,
            expiry=inst.expiry.timestamp() if isinstance(inst, Future) else None,
            spot=index,
            price_usd=mark,
            value=0.0,
            single_im=r_im * notional,
            single_mm=r_mm * notional,
            proceeds=0.0,
            rate_im=r_im,
            rate_mm=r_mm,
        )
    # spot pair held as a position (linear, quoted in USD-like currency)
    u = rules.underlying
    short = qty < 0
    value = units * mark
    r_im = u.short_initial if short else u.long_initial
    r_mm = u.short_maintenance if short else u.long_maintenance
    proceeds = value if short else 0.0
    return UnderlyingLeg(
        name=inst.name,
        kind=LegKind.SPOT,
        qty=qty,
        units=units,
        spot=index,
        price_usd=mark,
        value=value,
        single_im=r_im * value + proceeds,
        single_mm=r_mm * value + proceeds,
        proceeds=proceeds,
        rate_im=r_im,
        rate_mm=r_mm,
    )


def _coin_leg(underlying: str, coin: float, index: float, rules: RuleSet) -> UnderlyingLeg:
    """A coin balance offered as a cover, pledged at the long-underlying rates.

    It is worth nothing more in a group: its value is already cash of its own pool.
    """
    u = rules.underlying
    return UnderlyingLeg(
        name=f"{underlying} balance",
        kind=LegKind.COIN,
        qty=coin,
        units=1.0,
        spot=index,
        price_usd=index,
        value=0.0,
        single_im=0.0,
        single_mm=0.0,
        proceeds=0.0,
        rate_im=u.long_initial,
        rate_mm=u.long_maintenance,
    )


def _groups(book: Book, dec: Decomposition) -> tuple[StrategyGroup, ...]:
    out = []
    for cand, n in dec.groups:
        if cand.kind == "unpledged_coin":
            continue
        legs = tuple((book.legs[i].name, book.legs[i].sign * a * n) for i, a in cand.members)
        out.append(
            StrategyGroup(
                cand.kind,
                legs,
                cand.net_im * n,
                cand.net_mm * n,
                cand.gross_im * n,
                cand.gross_mm * n,
                book.currency,
            )
        )
    return tuple(out)


def build_books(
    positions: Sequence[tuple[Instrument, float]],
    cash: Mapping[str, float],
    market: RulesMarket,
    rule_set: RuleSet,
) -> tuple[list[Book], dict[str, float], dict[str, float]]:
    """Books (pool × underlying, sorted), equity by pool, and the index prices used.

    Raises
    ------
    InputError
        On a non-finite quantity, cash amount or mark.
    """
    agg: dict[str, tuple[Instrument, float]] = {}
    for inst, qty in positions:
        if not math.isfinite(qty):
            raise InputError(f"position {inst.name!r}: quantity {qty!r} is not finite")
        prev = agg.get(inst.name)
        agg[inst.name] = (inst, (prev[1] if prev else 0.0) + float(qty))
    by_book: dict[tuple[str, str], list[tuple[Instrument, float]]] = {}
    equity: dict[str, float] = {}
    for name in sorted(agg):
        inst, qty = agg[name]
        if qty == 0.0:
            continue
        by_book.setdefault((_pool_of(inst.settlement_currency), inst.underlying), []).append(
            (inst, qty)
        )
    for cur, amount in sorted(cash.items()):
        if not math.isfinite(amount):
            raise InputError(f"cash {cur!r}: amount {amount!r} is not finite")
        pool = _pool_of(cur)
        equity[pool] = equity.get(pool, 0.0) + float(amount)
    indices: dict[str, float] = {}
    for pool in equity:
        if pool != "USD":
            indices[pool] = float(market.index_price(pool))
    books: list[Book] = []
    for (pool, und), items in sorted(by_book.items()):
        if und not in indices:
            indices[und] = float(market.index_price(und))
        idx = indices[und]
        legs = [_leg(inst, qty, market, rule_set, idx) for inst, qty in items]
        for leg in legs:
            equity[pool] = equity.get(pool, 0.0) + leg.qty * leg.value
        coin = float(cash.get(und, 0.0))
        st = rule_set.strategies
        inverse = pool != "USD"
        if (
            coin > 0
            and rule_set.engine == "strategy"
            and "cover" in st.families
            and "coin" in st.covers
            and any(
                isinstance(leg, OptionLeg) and (not inverse or (leg.is_call and leg.is_short))
                for leg in legs
            )
        ):
            legs.append(_coin_leg(und, coin, idx, rule_set))
        books.append(Book(pool, und, inverse, idx, tuple(legs), rule_set))
    for book in books:
        if book.inverse and book.currency not in indices:
            indices[book.currency] = float(market.index_price(book.currency))
    return books, equity, indices


SEARCH_TIME_LIMIT = 2.0
"""Seconds of pairing search the CLI, the account layer, the monitor and the service allow.

The library's :func:`rules_margin` is exact unless given a limit. Measured on the 2-core
machine (``tests/rules/bench_rules_scaling.py --family chain``, dense coin-settled books):
exact, 100 legs take 0.3 s and 400 legs 420 s (HiGHS proving the bound); with this limit,
400 legs 2.1 s (gap 2e-5) and 1,000 legs 3.4 s (gap 15 %: the enumeration alone is about
1.4 s). A limited result is a feasible decomposition, so its requirement is never below
the optimum: the gap only over-collateralises, and it is reported.
"""


def rules_margin(
    positions: Sequence[tuple[Instrument, float]],
    cash: Mapping[str, float],
    market: RulesMarket,
    rule_set: RuleSet,
    *,
    time_limit: float | None = None,
) -> RulesResult:
    """Rules-based margin with optimal strategy pairing.

    Parameters
    ----------
    positions
        ``(instrument, signed quantity in contracts)``; the same instrument may repeat
        (quantities are summed). Order does not matter.
    cash
        Balances by currency (``USD``/``USDC``/``USDT`` pool together at par).
    market
        Prices (:class:`RulesMarket`).
    rule_set
        From :func:`load_rule_set`.
    time_limit
        Seconds for the pairing search of the whole portfolio (the LPs and MILPs; candidate
        enumeration and the greedy baseline run regardless); past it the best decomposition
        found is reported with its proven bound (``optimality_gap`` > 0). ``None``: exact.

    Returns
    -------
    RulesResult
        Net and gross requirements, equity, excess, the greedy baseline and the chosen
        decomposition. Method: ``docs/methodology/rules.md``.

    Raises
    ------
    InputError
        On a non-finite quantity or mark.
    """
    books, equity, indices = build_books(positions, cash, market, rule_set)
    by_und: dict[str, list[Book]] = {}
    for book in books:
        by_und.setdefault(book.underlying, []).append(book)
    tables = {und: [candidate_table(b) for b in group] for und, group in by_und.items()}
    # the search (not the enumeration) gets the time limit, shared by underlying, IM then MM
    search_left = time_limit
    n_left = len(by_und)
    entries: dict[str, list[_Entry]] = {}
    gaps: dict[str, list[tuple[float, float]]] = {}
    for und in sorted(by_und):
        group = by_und[und]
        deadlines: list[float | None] = [None, None]
        t0 = time.perf_counter()
        if search_left is not None:
            share = max(0.0, search_left) / max(1, n_left)
            deadlines = [t0 + share / 2, t0 + share]
        sol_im, sol_mm, greedy = pair_books(
            group, tables[und], deadline_im=deadlines[0], deadline_mm=deadlines[1]
        )
        if search_left is not None:
            search_left -= time.perf_counter() - t0
        n_left -= 1
        for k, book in enumerate(group):
            entries.setdefault(book.currency, []).append(
                _Entry(book, sol_im.decompositions[k], sol_mm.decompositions[k], greedy[k])
            )
            gaps.setdefault(book.currency, []).append(
                (sol_im.gap / book.usd_rate, sol_mm.gap / book.usd_rate)
            )
    for pool in equity:
        entries.setdefault(pool, [])
    results: dict[str, PoolResult] = {}
    for pool in sorted(entries):
        es = entries[pool]
        g_im = sum(e.im.gross_im for e in es)
        g_mm = sum(e.mm.gross_mm for e in es)
        proceeds = sum(e.im.proceeds for e in es)
        greedy_gross = sum(e.greedy.gross_im for e in es)
        naked_gross = sum(abs(leg.qty) * leg.single_im for e in es for leg in e.book.legs)
        # a gross requirement is never negative: the gap is at most the whole of it
        gap_im = min(g_im, sum(g for g, _ in gaps.get(pool, [])))
        gap_mm = min(g_mm, sum(g for _, g in gaps.get(pool, [])))
        im = max(0.0, g_im - proceeds)
        mm = max(0.0, g_mm - proceeds)
        rel = max(gap_im / g_im if g_im > 0 else 0.0, gap_mm / g_mm if g_mm > 0 else 0.0)
        results[pool] = PoolResult(
            currency=pool,
            initial_margin=im,
            maintenance_margin=mm,
            gross_initial_margin=g_im,
            gross_maintenance_margin=g_mm,
            proceeds=proceeds,
            equity=equity.get(pool, 0.0),
            greedy_initial_margin=max(0.0, greedy_gross - proceeds),
            all_naked_initial_margin=max(0.0, naked_gross - proceeds),
            strategies=tuple(g for e in es for g in _groups(e.book, e.im)),
            maintenance_strategies=tuple(g for e in es for g in _groups(e.book, e.mm)),
            optimality_gap=rel,
            initial_margin_bound=max(0.0, g_im - gap_im - proceeds),
            maintenance_margin_bound=max(0.0, g_mm - gap_mm - proceeds),
        )
    strategies = tuple(g for r in results.values() for g in r.strategies)
    gap = max((r.optimality_gap for r in results.values()), default=0.0)
    if len(results) == 1:
        (only,) = results.values()
        return RulesResult(
            rule_set.name,
            only.currency,
            only.initial_margin,
            only.maintenance_margin,
            only.gross_initial_margin,
            only.gross_maintenance_margin,
            only.equity,
            only.initial_excess,
            only.maintenance_excess,
            only.greedy_initial_margin,
            strategies,
            MappingProxyType(results),
            gap,
        )

    def usd(pool: str, amount: float) -> float:
        return amount if pool == "USD" else amount * indices[pool]

    def total(attr: str) -> float:
        return sum(usd(k, float(getattr(r, attr))) for k, r in results.items())

    eq = total("equity")
    im = total("initial_margin")
    mm = total("maintenance_margin")
    return RulesResult(
        rule_set.name,
        "USD",
        im,
        mm,
        total("gross_initial_margin"),
        total("gross_maintenance_margin"),
        eq,
        eq - im,
        eq - mm,
        total("greedy_initial_margin"),
        strategies,
        MappingProxyType(results),
        gap,
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    """One book's initial, maintenance and greedy decompositions."""

    book: Book
    im: Decomposition
    mm: Decomposition
    greedy: Decomposition
