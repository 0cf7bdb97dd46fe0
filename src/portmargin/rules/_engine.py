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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from portmargin.errors import InputError
from portmargin.instruments import STABLE_CURRENCIES, Instrument, InstrumentKind, Option
from portmargin.models.result import Excess
from portmargin.rules._book import Book, Leg, LegKind, naked_usd
from portmargin.rules._market import RulesMarket
from portmargin.rules._params import RuleSet
from portmargin.rules._solve import Decomposition, greedy, optimal
from portmargin.rules._strategies import enumerate_candidates

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
        value = units * mark
        im = units * to_pool(
            naked_usd(
                rules.naked.initial, is_call=inst.is_call, spot=spot, strike=inst.strike, p=p_usd
            )
        )
        mm = units * to_pool(
            naked_usd(
                rules.naked.maintenance_level,
                is_call=inst.is_call,
                spot=spot,
                strike=inst.strike,
                p=p_usd,
            )
        )
        if rules.naked.initial_at_least_maintenance:
            im = max(im, mm)
        tau = (inst.expiry - market.valuation_time).total_seconds() / _SECONDS_PER_YEAR
        loan = (
            rules.long_options.loan_value if tau > rules.long_options.loan_value_min_years else 0.0
        )
        short = qty < 0
        single_im = im if short else value * (1.0 - loan)
        single_mm = mm if short else value * (1.0 - loan)
        return Leg(
            inst.name,
            LegKind.OPTION,
            qty,
            units,
            inst.is_call,
            inst.strike,
            inst.expiry.timestamp(),
            spot,
            p_usd,
            value,
            im,
            mm,
            single_im,
            single_mm,
            value if short else 0.0,
        )
    if inst.kind in (InstrumentKind.FUTURE, InstrumentKind.PERPETUAL):
        rates = rules.futures_rates(inst.underlying)
        size = abs(qty) * units
        r_im = rates.initial + size * rates.size_slope
        r_mm = rates.maintenance + size * rates.size_slope
        notional = units if inverse else units * mark
        kind = LegKind.FUTURE if inst.kind is InstrumentKind.FUTURE else LegKind.PERPETUAL
        expiry = inst.expiry.timestamp() if inst.expiry is not None else math.inf
        return Leg(
            inst.name,
            kind,
            qty,
            units,
            False,
            0.0,
            expiry,
            index,
            mark,
            0.0,
            0.0,
            0.0,
            r_im * notional,
            r_mm * notional,
            0.0,
            r_im,
            r_mm,
        )
    # spot pair held as a position (linear, quoted in USD-like currency)
    u = rules.underlying
    short = qty < 0
    value = units * mark
    r_im = u.short_initial if short else u.long_initial
    r_mm = u.short_maintenance if short else u.long_maintenance
    proceeds = value if short else 0.0
    return Leg(
        inst.name,
        LegKind.SPOT,
        qty,
        units,
        False,
        0.0,
        math.inf,
        index,
        mark,
        value,
        0.0,
        0.0,
        r_im * value + proceeds,
        r_mm * value + proceeds,
        proceeds,
        r_im,
        r_mm,
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
        if (
            pool == "USD"
            and coin > 0
            and "cover" in st.families
            and "coin" in st.covers
            and any(leg.kind is LegKind.OPTION for leg in legs)
        ):
            u = rule_set.underlying
            legs.append(
                Leg(
                    f"{und} balance",
                    LegKind.COIN,
                    coin,
                    1.0,
                    False,
                    0.0,
                    math.inf,
                    idx,
                    idx,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    u.long_initial,
                    u.long_maintenance,
                )
            )
        books.append(Book(pool, und, pool != "USD", idx, tuple(legs), rule_set))
    for book in books:
        if book.inverse and book.currency not in indices:
            indices[book.currency] = float(market.index_price(book.currency))
    return books, equity, indices


def rules_margin(
    positions: Sequence[tuple[Instrument, float]],
    cash: Mapping[str, float],
    market: RulesMarket,
    rule_set: RuleSet,
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
    pools: dict[str, list[tuple[Book, Decomposition, Decomposition, Decomposition]]] = {}
    for book in books:
        cands = enumerate_candidates(book)
        dec_im = optimal(book, candidates=cands)
        dec_mm = optimal(book, maintenance=True, candidates=cands)
        dec_gr = greedy(book, candidates=cands)
        pools.setdefault(book.currency, []).append((book, dec_im, dec_mm, dec_gr))
    for pool in equity:
        pools.setdefault(pool, [])
    results: dict[str, PoolResult] = {}
    for pool in sorted(pools):
        entries = pools[pool]
        g_im = sum(d.gross_im for _, d, _, _ in entries)
        g_mm = sum(d.gross_mm for _, _, d, _ in entries)
        proceeds = sum(d.proceeds for _, d, _, _ in entries)
        greedy_gross = sum(d.gross_im for _, _, _, d in entries)
        naked_gross = sum(abs(leg.qty) * leg.single_im for b, _, _, _ in entries for leg in b.legs)
        results[pool] = PoolResult(
            currency=pool,
            initial_margin=max(0.0, g_im - proceeds),
            maintenance_margin=max(0.0, g_mm - proceeds),
            gross_initial_margin=g_im,
            gross_maintenance_margin=g_mm,
            proceeds=proceeds,
            equity=equity.get(pool, 0.0),
            greedy_initial_margin=max(0.0, greedy_gross - proceeds),
            all_naked_initial_margin=max(0.0, naked_gross - proceeds),
            strategies=tuple(g for b, d, _, _ in entries for g in _groups(b, d)),
            maintenance_strategies=tuple(g for b, _, d, _ in entries for g in _groups(b, d)),
        )
    strategies = tuple(g for r in results.values() for g in r.strategies)
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
    )
