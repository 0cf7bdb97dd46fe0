"""Monotonicity: adding a short option, or a short vertical, never lowers the requirement.

Random books on a chain of strikes and expiries, inverse (coin-settled BTC) and linear
(``BTC_USDC``, and the 100-share ``XYZ``) products, marks from Black-76 (so that every
vertical is worth less than its width, as a market quote is); then one more short option
(a new short or more of a short held) or one more short vertical (short the dearer leg: the
lower call, the higher put). Initial and maintenance requirements may not fall, in every
shipped rule set (``docs/methodology/rules.md`` §2.3).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_fakes import FakeMarket, inst

from portmargin.instruments import Instrument
from portmargin.rules import load_rule_set, rules_margin

S = {"BTC": 70_000.0, "XYZ": 100.0}
STRIKES = {"BTC": (60_000, 65_000, 67_000, 68_000, 69_000, 70_000, 72_000, 75_000, 80_000),
           "XYZ": (85, 90, 95, 100, 105, 110, 115)}  # fmt: skip
EXPIRIES = {"30JAN26": 28 / 365, "27MAR26": 84 / 365}
PRODUCTS = (("BTC", "BTC", True), ("BTC_USDC", "BTC", False), ("XYZ", "XYZ", False))
RULE_SETS = ("deribit-standard", "strategy", "cboe")
MANY = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def black(f: float, k: float, t: float, vol: float, *, call: bool) -> float:
    """Undiscounted Black-76 price (USD per unit)."""
    sd = vol * math.sqrt(t)
    d1 = (math.log(f / k) + 0.5 * sd * sd) / sd
    d2 = d1 - sd

    def n(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    return f * n(d1) - k * n(d2) if call else k * n(-d2) - f * n(-d1)


def option(product: str, und: str, inverse: bool, exp: str, k: int, typ: str,
           marks: dict[str, float]) -> Instrument:  # fmt: skip
    """The option and its Black-76 mark (coin per unit for inverse products)."""
    i = inst(f"{product}-{exp}-{k}-{typ}")
    s = S[und]
    vol = 0.6 + 0.4 * abs(math.log(k / s))  # a smile
    usd = black(s, k, EXPIRIES[exp], vol, call=typ == "C")
    marks[i.name] = usd / s if inverse else usd
    return i


@st.composite
def scenario(
    draw: st.DrawFn,
) -> tuple[list[tuple[Instrument, float]], list[tuple[Instrument, float]], FakeMarket, dict[str, float]]:  # fmt: skip
    product, und, inverse = draw(st.sampled_from(PRODUCTS))
    keys = st.tuples(
        st.sampled_from(STRIKES[und]), st.sampled_from("CP"), st.sampled_from(sorted(EXPIRIES))
    )
    marks: dict[str, float] = {}
    book: dict[str, tuple[Instrument, float]] = {}
    for k, typ, exp in draw(st.lists(keys, min_size=0, max_size=6, unique=True)):
        i = option(product, und, inverse, exp, k, typ, marks)
        book[i.name] = (i, draw(st.sampled_from([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])))
    cash: dict[str, float] = {}
    if und == "BTC" and draw(st.booleans()):
        perp = inst("BTC-PERPETUAL")
        marks[perp.name] = S["BTC"]
        book[perp.name] = (perp, draw(st.sampled_from([-1.0, 1.0, 2.0])))
    if und == "BTC" and draw(st.booleans()):
        cash["BTC"] = draw(st.sampled_from([0.5, 1.0, 3.0]))
    if und == "XYZ" and draw(st.booleans()):
        stock = inst("XYZ_USD")
        marks[stock.name] = S["XYZ"]
        book[stock.name] = (stock, draw(st.sampled_from([-100.0, 100.0, 200.0])))

    def held(i: Instrument) -> float:
        return book[i.name][1] if i.name in book else 0.0

    exp = draw(st.sampled_from(sorted(EXPIRIES)))
    typ = draw(st.sampled_from("CP"))
    size = draw(st.sampled_from([0.5, 1.0, 2.0]))
    if draw(st.booleans()):  # one more short option, never closing a long
        k = draw(st.sampled_from(STRIKES[und]))
        short = option(product, und, inverse, exp, k, typ, marks)
        added = [(short, -size)]
        if held(short) > 0:
            added = []
    else:  # a short vertical: short the dearer strike, long the cheaper one
        k1, k2 = sorted(draw(st.lists(st.sampled_from(STRIKES[und]), min_size=2, max_size=2,
                                      unique=True)))  # fmt: skip
        k_short, k_long = (k1, k2) if typ == "C" else (k2, k1)
        short = option(product, und, inverse, exp, k_short, typ, marks)
        long_ = option(product, und, inverse, exp, k_long, typ, marks)
        added = [(short, -size), (long_, size)]
        if held(short) > 0 or held(long_) < 0:
            added = []  # would close part of a position: not an addition of risk
    market = FakeMarket({"BTC": S["BTC"], "XYZ": S["XYZ"]}, marks)
    return list(book.values()), added, market, cash


@pytest.mark.parametrize("rule_set", RULE_SETS)
@MANY
@given(case=scenario())
def test_adding_a_short_option_or_vertical_never_lowers_the_requirement(
    rule_set: str,
    case: tuple[
        list[tuple[Instrument, float]], list[tuple[Instrument, float]], FakeMarket, dict[str, float]
    ],
) -> None:
    positions, added, market, cash = case
    rules = load_rule_set(rule_set)
    before = rules_margin(positions, cash, market, rules)
    after = rules_margin(positions + added, cash, market, rules)
    for attr in ("initial_margin", "maintenance_margin"):
        b, a = getattr(before, attr), getattr(after, attr)
        assert a >= b - 1e-9 * max(1.0, abs(b)), (attr, b, a, [(i.name, q) for i, q in added])


def test_the_reported_case_short_put_spread_below_a_short_put_spread() -> None:
    # the tracker's case on coin-settled BTC: −1 70000P +1 69000P, then −1 68000P +1 67000P
    marks: dict[str, float] = {}
    legs = {k: option("BTC", "BTC", True, "27MAR26", k, "P", marks) for k in (67_000, 68_000, 69_000, 70_000)}  # fmt: skip
    market = FakeMarket({"BTC": S["BTC"]}, marks)
    rules = load_rule_set("strategy")
    before_pos = [(legs[70_000], -1.0), (legs[69_000], 1.0)]
    after_pos = [*before_pos, (legs[68_000], -1.0), (legs[67_000], 1.0)]
    before = rules_margin(before_pos, {"BTC": 0.01}, market, rules)
    after = rules_margin(after_pos, {"BTC": 0.01}, market, rules)
    assert after.initial_margin >= before.initial_margin
    assert after.maintenance_margin >= before.maintenance_margin
