"""Property tests: optimality against brute force, ordering, greedy and stand-alone bounds."""

from __future__ import annotations

from functools import cache
from itertools import combinations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_fakes import FakeMarket, inst

from portmargin.instruments import Instrument
from portmargin.rules import RuleSet, load_rule_set, rules_margin
from portmargin.rules._book import Book
from portmargin.rules._engine import build_books
from portmargin.rules._enumerate import enumerate_candidates
from portmargin.rules._solve import optimal
from portmargin.rules._strategies import Candidate, price_group, singles

RULES = {name: load_rule_set(name) for name in ("cboe", "strategy")}
SPOT = {"cboe": 100.0, "strategy": 50_000.0}
STRIKES = {"cboe": (90, 95, 100, 105, 110), "strategy": (40_000, 45_000, 50_000, 55_000, 60_000)}
PRODUCT = {"cboe": "XYZ", "strategy": "BTC"}
EXPIRIES = ("20MAR26", "19JUN26")
FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def portfolios(
    draw: st.DrawFn, rule_name: str, max_legs: int = 5
) -> tuple[list[tuple[Instrument, float]], FakeMarket]:
    """Up to ``max_legs`` distinct options (and maybe an underlying leg) with plausible marks."""
    s = SPOT[rule_name]
    keys = st.tuples(
        st.sampled_from(STRIKES[rule_name]), st.sampled_from("CP"), st.sampled_from(EXPIRIES)
    )
    chosen = draw(st.lists(keys, min_size=1, max_size=max_legs, unique=True))
    positions: list[tuple[Instrument, float]] = []
    marks: dict[str, float] = {}
    for k, typ, exp in chosen:
        instrument = inst(f"{PRODUCT[rule_name]}-{exp}-{k}-{typ}")
        qty = draw(st.sampled_from([-2.0, -1.0, 1.0, 2.0]))
        intrinsic = max(s - k, 0.0) if typ == "C" else max(k - s, 0.0)
        time_value = draw(st.floats(0.0, 0.08)) * s * (1.5 if exp == "19JUN26" else 1.0)
        usd = intrinsic + time_value
        marks[instrument.name] = usd if rule_name == "cboe" else usd / s
        positions.append((instrument, qty))
    if draw(st.booleans()):
        if rule_name == "cboe":
            positions.append((inst("XYZ_USD"), draw(st.sampled_from([-200.0, -100.0, 100.0]))))
        else:
            positions.append((inst("BTC-PERPETUAL"), draw(st.sampled_from([-1.0, 1.0, 2.0]))))
    market = FakeMarket({PRODUCT[rule_name]: s}, marks)
    return positions, market


def the_book(positions: list[tuple[Instrument, float]], market: FakeMarket, rules: RuleSet) -> Book:
    books, _, _ = build_books(positions, {}, market, rules)
    assert len(books) == 1
    return books[0]


def every_group(book: Book) -> list[Candidate]:
    """Every recognised group over every subset of 2–4 legs (independent of enumeration)."""
    out = []
    for size in (2, 3, 4):
        for idx in combinations(range(len(book.legs)), size):
            cand = price_group(book, idx)
            if cand is not None:
                out.append(cand)
    return out


def brute_force_min(book: Book) -> float:
    """Minimum gross IM over every decomposition (exhaustive recursion on the first leg)."""
    groups = every_group(book)
    alone = singles(book)
    caps0 = tuple(round(abs(leg.qty)) for leg in book.legs)

    @cache
    def best(caps: tuple[int, ...]) -> float:
        first = next((i for i, c in enumerate(caps) if c > 0), None)
        if first is None:
            return 0.0
        rest = list(caps)
        rest[first] = 0
        value = alone[first].gross_im * caps[first] + best(tuple(rest))
        for g in groups:
            use = {i: round(a) for i, a in g.members}
            if first in use and all(caps[i] >= a for i, a in use.items()):
                nxt = tuple(c - use.get(i, 0) for i, c in enumerate(caps))
                value = min(value, g.gross_im + best(nxt))
        return value

    return best(caps0)


@pytest.mark.parametrize("rule_name", ["cboe", "strategy"])
@FAST
@given(data=st.data())
def test_milp_equals_brute_force(rule_name: str, data: st.DataObject) -> None:
    positions, market = data.draw(portfolios(rule_name, max_legs=4))
    book = the_book(positions, market, RULES[rule_name])
    expected = brute_force_min(book)
    assert optimal(book).gross_im == pytest.approx(expected, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("rule_name", ["cboe", "strategy"])
@FAST
@given(data=st.data())
def test_enumeration_finds_every_useful_group(rule_name: str, data: st.DataObject) -> None:
    positions, market = data.draw(portfolios(rule_name))
    book = the_book(positions, market, RULES[rule_name])
    found = {(c.kind, c.members) for c in enumerate_candidates(book)}
    for g in every_group(book):
        alone = sum(a * book.legs[i].single_im for i, a in g.members)
        alone_mm = sum(a * book.legs[i].single_mm for i, a in g.members)
        if g.gross_im < alone - 1e-9 or g.gross_mm < alone_mm - 1e-9:
            assert (g.kind, g.members) in found


@pytest.mark.parametrize("rule_name", ["cboe", "strategy"])
@FAST
@given(data=st.data())
def test_strategy_never_costs_more_than_its_legs(rule_name: str, data: st.DataObject) -> None:
    positions, market = data.draw(portfolios(rule_name))
    book = the_book(positions, market, RULES[rule_name])
    for g in every_group(book):
        alone_im = sum(a * book.legs[i].single_im for i, a in g.members)
        alone_mm = sum(a * book.legs[i].single_mm for i, a in g.members)
        assert g.gross_im <= alone_im + 1e-9 * max(1.0, alone_im)
        assert g.gross_mm <= alone_mm + 1e-9 * max(1.0, alone_mm)


@pytest.mark.parametrize("rule_name", ["cboe", "strategy"])
@FAST
@given(data=st.data())
def test_optimal_le_greedy_le_all_naked(rule_name: str, data: st.DataObject) -> None:
    positions, market = data.draw(portfolios(rule_name, max_legs=6))
    res = rules_margin(positions, {}, market, RULES[rule_name])
    (pool,) = res.by_currency.values()
    tol = 1e-9 * max(1.0, pool.all_naked_initial_margin)
    assert pool.initial_margin <= pool.greedy_initial_margin + tol
    assert pool.greedy_initial_margin <= pool.all_naked_initial_margin + tol
    assert pool.maintenance_margin <= pool.initial_margin + tol or rule_name == "strategy"


@pytest.mark.parametrize("rule_name", ["cboe", "strategy"])
@FAST
@given(data=st.data())
def test_invariant_to_leg_order(rule_name: str, data: st.DataObject) -> None:
    positions, market = data.draw(portfolios(rule_name, max_legs=6))
    shuffled = data.draw(st.permutations(positions))
    a = rules_margin(positions, {}, market, RULES[rule_name]).to_dict()
    b = rules_margin(shuffled, {}, market, RULES[rule_name]).to_dict()
    assert a == b


@FAST
@given(data=st.data())
def test_fractional_quantities_scale(data: st.DataObject) -> None:
    # halving every option quantity halves every requirement (grouping in lots of 0.1 / 0.5);
    # futures are left out: their size-scaled rate is not linear in the quantity
    positions, market = data.draw(portfolios("strategy"))
    positions = [(i, q) for i, q in positions if i.is_option]
    half = [(i, q / 2) for i, q in positions]
    full = rules_margin(positions, {}, market, RULES["strategy"])
    part = rules_margin(half, {}, market, RULES["strategy"])
    assert part.gross_initial_margin == pytest.approx(full.gross_initial_margin / 2, rel=1e-7)


VARIANTS = [
    (name, product, monotone)
    for name, product in (
        ("cboe", "XYZ"),
        ("strategy", "BTC"),
        ("strategy", "BTC_USDC"),
        ("strategy-mm", "BTC"),  # a maintenance level of its own (Deribit-like)
    )
    for monotone in (True, False)
]
RULES["strategy-mm"] = RULES["strategy"].model_copy(
    update={
        "naked": RULES["strategy"].naked.model_copy(
            update={"maintenance": load_rule_set("deribit-standard").naked.maintenance}
        )
    }
)


@st.composite
def books_with_covers(
    draw: st.DrawFn, product: str
) -> tuple[list[tuple[Instrument, float]], FakeMarket, dict[str, float]]:
    """Up to 5 options (plus an underlying leg and/or a coin balance) on one product."""
    coin = product.startswith("BTC")
    s = 50_000.0 if coin else 100.0
    strikes = STRIKES["strategy"] if coin else STRIKES["cboe"]
    keys = st.tuples(st.sampled_from(strikes), st.sampled_from("CP"), st.sampled_from(EXPIRIES))
    positions: list[tuple[Instrument, float]] = []
    marks: dict[str, float] = {}
    for k, typ, exp in draw(st.lists(keys, min_size=1, max_size=5, unique=True)):
        instrument = inst(f"{product}-{exp}-{k}-{typ}")
        intrinsic = max(s - k, 0.0) if typ == "C" else max(k - s, 0.0)
        usd = intrinsic + draw(st.floats(0.0, 0.08)) * s
        marks[instrument.name] = usd / s if product == "BTC" else usd
        positions.append((instrument, draw(st.sampled_from([-2.0, -1.0, 1.0, 2.0]))))
    if draw(st.booleans()):
        und = "XYZ_USD" if product == "XYZ" else "BTC-PERPETUAL"
        size = draw(st.sampled_from([-100.0, 100.0] if product == "XYZ" else [-1.0, 1.0, 2.0]))
        positions.append((inst(und), size))
    cash = {"BTC": draw(st.sampled_from([0.5, 1.0, 3.0]))} if coin and draw(st.booleans()) else {}
    market = FakeMarket({"XYZ": 100.0, "BTC": 50_000.0}, marks)
    return positions, market, cash


@pytest.mark.parametrize(("rule_name", "product", "monotone"), VARIANTS)
@FAST
@given(data=st.data())
def test_vectorised_enumeration_prices_every_group_as_the_reference(
    rule_name: str, product: str, monotone: bool, data: st.DataObject
) -> None:
    # every useful group of the scalar reference (price_group over every 2–4-leg subset) is
    # enumerated, with the same requirements and proceeds
    positions, market, cash = data.draw(books_with_covers(product))
    base = RULES[rule_name]
    rules = base.model_copy(
        update={"strategies": base.strategies.model_copy(update={"monotone": monotone})}
    )
    books, _, _ = build_books(positions, cash, market, rules)
    for book in books:
        found = {(c.kind, c.members): c for c in enumerate_candidates(book)}
        for g in every_group(book):
            alone = sum(a * book.legs[i].single_im for i, a in g.members)
            alone_mm = sum(a * book.legs[i].single_mm for i, a in g.members)
            if g.gross_im < alone - 1e-9 or g.gross_mm < alone_mm - 1e-9:
                got = found[(g.kind, g.members)]
                assert got.gross_im == pytest.approx(g.gross_im, rel=1e-9, abs=1e-12)
                assert got.gross_mm == pytest.approx(g.gross_mm, rel=1e-9, abs=1e-12)
                assert got.proceeds == pytest.approx(g.proceeds, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("rule_name", "product", "monotone"), VARIANTS)
@FAST
@given(data=st.data())
def test_solver_by_parts_equals_brute_force_with_covers(
    rule_name: str, product: str, monotone: bool, data: st.DataObject
) -> None:
    # pruned enumeration + straddle flow + column generation + fixing + components give the
    # exhaustive optimum, initial and maintenance
    positions, market, cash = data.draw(books_with_covers(product))
    base = RULES[rule_name]
    rules = base.model_copy(
        update={"strategies": base.strategies.model_copy(update={"monotone": monotone})}
    )
    books, _, _ = build_books(positions, cash, market, rules)
    for book in books:
        if any(abs(leg.qty) > 3 for leg in book.legs):
            continue  # the brute force recurses per contract
        got = optimal(book).gross_im
        assert got == pytest.approx(brute_force_min(book), rel=1e-7, abs=1e-9)
