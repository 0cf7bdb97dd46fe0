"""Every strategy formula pinned, initial and maintenance, with values worked by hand.

Sources, per case: the Cboe Margin Manual tables (https://www.cboe.com/us/options/margin/;
"Short Call and Long Underlying", "Short Put and Short Underlying", "Long Call and Short
Underlying", "Conversion", "Reverse Conversion", "Collar"), Cboe strategy-based margin
(https://markets.cboe.com/us/options/strategy_based_margin/) and the universal spread rule,
SEC Release 34-67752 (https://www.govinfo.gov/content/pkg/FR-2012-09-05/html/2012-21765.htm):
"the margin requirement ... is its maximum risk based on the intrinsic values of the
options, exclusive of any net option premiums"; FINRA Rule 4210(f)(2) has the same
structure. Reg T rates: 50 % initial; maintenance 25 % long, 30 % short stock.

Cboe cases: product XYZ, m = 100 shares, S = 100, one expiry 20MAR26 (< 9 months); the
stock leg is ``XYZ_USD`` (100 shares cover one contract). Amounts in USD per contract.
"""

from __future__ import annotations

import pytest
from rules_fakes import book

from portmargin.rules import RuleSet, RulesResult, load_rule_set, rules_margin
from portmargin.rules._params import NakedLevel

S = 100.0
EXP = "20MAR26"
BTC = 50_000.0


def rules(name: str, *, monotone: bool = True, maintenance: NakedLevel | None = None) -> RuleSet:
    """A shipped rule set, optionally with the manual's net figures or another MM level."""
    rs = load_rule_set(name)
    st = rs.strategies.model_copy(update={"monotone": monotone})
    naked = rs.naked.model_copy(update={"maintenance": maintenance or rs.naked.maintenance})
    return rs.model_copy(update={"strategies": st, "naked": naked})


def run(rows: list[tuple[str, float, float]], rule_set: RuleSet, cash: dict[str, float] | None = None,
        index: float = S) -> RulesResult:  # fmt: skip
    positions, market = book(rows, {"XYZ": index, "BTC": BTC})
    return rules_margin(positions, cash or {}, market, rule_set)


def c(k: float) -> str:
    return f"XYZ-{EXP}-{k:g}-C"


def p(k: float) -> str:
    return f"XYZ-{EXP}-{k:g}-P"


def kinds(res: RulesResult) -> list[str]:
    return sorted(g.kind for g in res.strategies)


def mm_kinds(res: RulesResult) -> list[str]:
    return sorted(g.kind for pool in res.by_currency.values() for g in pool.maintenance_strategies)


CBOE = rules("cboe", monotone=False)  # the manual's net figures
CBOE_MONOTONE = rules("cboe")  # shipped
STOCK = ("XYZ_USD", 100.0, S)
SHORT_STOCK = ("XYZ_USD", -100.0, S)

# --- maintenance levels distinct from initial: the MM formulas are observable ---------------

# a Deribit-like maintenance level on the crypto set: p + 7.5 %·S, no OTM offset, no floor
DERIBIT_LIKE_MM = NakedLevel(pct=0.075, floor_pct=0.0, otm_offset=False)
STRATEGY_MM = rules("strategy", monotone=False, maintenance=DERIBIT_LIKE_MM)


def test_naked_call_initial_and_maintenance_levels() -> None:
    # 105C @2, S 100: IM = 100·(2 + max(15 − 5, 10)) = 1200; MM = 100·(2 + 7.5) = 950
    res = run([(c(105), -1, 2.0)], STRATEGY_MM)
    assert res.gross_initial_margin == pytest.approx(1200.0)
    assert res.gross_maintenance_margin == pytest.approx(950.0)
    assert res.maintenance_margin == pytest.approx(750.0)  # net of the 200 proceeds


def test_short_straddle_maintenance_uses_the_maintenance_naked_requirements() -> None:
    # short 100C @5, 100P @4: MM naked call 5 + 7.5 = 12.5, put 4 + 7.5 = 11.5 per share;
    # straddle MM = max(12.5 + 4, 11.5 + 5) = 16.5 → 1650 (alone 2400); net 1650 − 900 = 750
    # IM: call 5 + 15 = 20, put 4 + max(15, 10) = 19 → max(20 + 4, 19 + 5) = 24 → 2400
    res = run([(c(100), -1, 5.0), (p(100), -1, 4.0)], STRATEGY_MM)
    assert res.gross_maintenance_margin == pytest.approx(1650.0)
    assert res.maintenance_margin == pytest.approx(750.0)
    assert res.gross_initial_margin == pytest.approx(2400.0)
    assert mm_kinds(res) == ["short_straddle"]


# --- hedged with the underlying (Cboe tables, manual's net figures) --------------------------


def test_covered_call_in_the_money() -> None:
    # stock + short 90C @11 (ITM 10): IM = 50 %·100·100 − 1100 = 3900
    # MM = 25 %·min(S, K)·100 + ITM·100 − 1100 = 2250 + 1000 − 1100 = 2150
    res = run([STOCK, (c(90), -1, 11.0)], CBOE)
    assert kinds(res) == ["covered_call"]
    assert res.initial_margin == pytest.approx(3900.0)
    assert res.maintenance_margin == pytest.approx(2150.0)


def test_covered_put_in_the_money() -> None:
    # short stock + short 110P @11 (ITM 10): IM = 50 %·10000 + 1000 − 1100 = 4900
    # MM = 30 %·10000 + 1000 − 1100 = 2900
    res = run([SHORT_STOCK, (p(110), -1, 11.0)], CBOE)
    assert kinds(res) == ["covered_put"]
    assert res.initial_margin == pytest.approx(4900.0)
    assert res.maintenance_margin == pytest.approx(2900.0)


def test_protective_call_short_stock() -> None:
    # short stock + long 105C @2: IM = 50 %·10000 + 200 = 5200 (as the legs alone)
    # MM = min(10 %·105 + OTM 5, 30 %·100)·100 + 200 = 15.5·100 + 200 = 1750 (alone 3200)
    res = run([SHORT_STOCK, (c(105), 1, 2.0)], CBOE)
    assert res.initial_margin == pytest.approx(5200.0)
    assert res.maintenance_margin == pytest.approx(1750.0)
    assert mm_kinds(res) == ["protective_call"]


def test_collar_with_the_call_in_the_money() -> None:
    # stock, long 90P @0.5, short 95C @6 (ITM 5): IM = (50 + 0.5 − 6)·100 = 4450
    # MM = (min(10 %·90 + OTM 10, 25 %·95) + ITM 5 + 0.5 − 6)·100 = (19 + 5 − 5.5)·100 = 1850
    res = run([STOCK, (p(90), 1, 0.5), (c(95), -1, 6.0)], CBOE)
    assert kinds(res) == ["collar"]
    assert res.initial_margin == pytest.approx(4450.0)
    assert res.maintenance_margin == pytest.approx(1850.0)


def test_reverse_conversion_strike_below_spot() -> None:
    # short stock, short 95P @1.5, long 95C @7, K < S: IM = (10 %·95 + 7 − 1.5)·100 = 1500
    # MM = (10 %·95 + 7 − 1.5)·100 = 1500
    res = run([SHORT_STOCK, (p(95), -1, 1.5), (c(95), 1, 7.0)], CBOE)
    assert kinds(res) == ["reverse_conversion"]
    assert res.initial_margin == pytest.approx(1500.0)
    assert res.maintenance_margin == pytest.approx(1500.0)


def test_reverse_conversion_strike_at_or_above_spot() -> None:
    # short stock, short 105P @6, long 105C @2, K ≥ S: IM = (50 %·100 + 2 − 6)·100 = 4600
    # MM = (10 %·105 + 2 − 6)·100 = 650
    res = run([SHORT_STOCK, (p(105), -1, 6.0), (c(105), 1, 2.0)], CBOE)
    assert kinds(res) == ["reverse_conversion"]
    assert res.initial_margin == pytest.approx(4600.0)
    assert res.maintenance_margin == pytest.approx(650.0)


def test_reverse_conversion_strike_at_spot_takes_the_reg_t_branch() -> None:
    # K = S = 100 is not below the sale price: IM = (50 %·100 + 5 − 4)·100 = 5100;
    # MM = (10 %·100 + 5 − 4)·100 = 1100
    res = run([SHORT_STOCK, (p(100), -1, 4.0), (c(100), 1, 5.0)], CBOE)
    assert kinds(res) == ["reverse_conversion"]
    assert res.initial_margin == pytest.approx(5100.0)
    assert res.maintenance_margin == pytest.approx(1100.0)


def test_risk_reversal_without_stock_gets_no_offset() -> None:
    # long 105C @2, short 95P @1.5: no Cboe strategy pairs them → naked put + long call
    # naked put net = max(20 − OTM 5, 10 %·95)·100 = 1500; + 200 = 1700
    res = run([(c(105), 1, 2.0), (p(95), -1, 1.5)], CBOE)
    assert kinds(res) == ["long_call", "naked_short_put"]
    assert res.initial_margin == pytest.approx(1700.0)


# --- broken wings: charged their maximum loss (universal spread rule) ------------------------


def test_broken_wing_call_butterfly() -> None:
    # long 90C @12, short 2×95C @8, long 105C @3; intrinsic payoff at the strikes:
    # P=90: 0; P=95: +5; P=105: 15 − 2·10 = −5; beyond: slope 1 − 2 + 1 = 0 → MPL = 5 → 500
    # gross = 500 + 1200 + 300 = 2000; net = 2000 − 1600 = 400 (split into spreads: 900)
    res = run([(c(90), 1, 12.0), (c(95), -2, 8.0), (c(105), 1, 3.0)], CBOE)
    assert kinds(res) == ["long_butterfly"]
    assert res.gross_initial_margin == pytest.approx(2000.0)
    assert res.initial_margin == pytest.approx(400.0)
    assert res.greedy_initial_margin == pytest.approx(900.0)


def test_broken_wing_put_butterfly() -> None:
    # long 90P @0.5, short 2×100P @4, long 105P @6; payoff: P=0: 90 − 200 + 105 = −5;
    # P=90: −20 + 15 = −5; P=100: +5; P=105: 0 → MPL 5 → 500; gross 500 + 50 + 600 = 1150
    res = run([(p(90), 1, 0.5), (p(100), -2, 4.0), (p(105), 1, 6.0)], CBOE)
    assert kinds(res) == ["long_butterfly"]
    assert res.gross_initial_margin == pytest.approx(1150.0)
    assert res.initial_margin == pytest.approx(350.0)


def test_unequal_wing_condor() -> None:
    # long 90C @12, short 95C @8, short 100C @5, long 110C @1; payoff: P=95: 5, P=100: 5,
    # P=110: 5 − 10 = −5 → MPL 5 → 500; gross = 500 + 1200 + 100 = 1800; net = 500
    res = run([(c(90), 1, 12.0), (c(95), -1, 8.0), (c(100), -1, 5.0), (c(110), 1, 1.0)], CBOE)
    assert kinds(res) == ["long_condor"]
    assert res.gross_initial_margin == pytest.approx(1800.0)
    assert res.initial_margin == pytest.approx(500.0)


def test_broken_wing_fly_in_coin() -> None:
    # inverse BTC, S = 50000: long 45000C @0.12, short 2×50000C @0.04, long 60000C @0.01
    # coin payoff at the strikes: 0; 5000/50000 = 0.1; (15000 − 20000)/60000 = −1/12; tail
    # (−5000/P) → 0: MPL = 1/12 coin; gross = 1/12 + 0.12 + 0.01; net = gross − 0.08
    rows = [("BTC-27MAR26-45000-C", 1.0, 0.12), ("BTC-27MAR26-50000-C", -2.0, 0.04),
            ("BTC-27MAR26-60000-C", 1.0, 0.01)]  # fmt: skip
    res = run(rows, rules("strategy", monotone=False))
    assert kinds(res) == ["long_butterfly"]
    assert res.gross_initial_margin == pytest.approx(1 / 12 + 0.13)
    assert res.initial_margin == pytest.approx(1 / 12 + 0.13 - 0.08)


def test_equal_wings_only_when_asked() -> None:
    # with equal_wings = true the broken fly above is two spreads: 900 (as the greedy)
    rs = CBOE.model_copy(
        update={"strategies": CBOE.strategies.model_copy(update={"equal_wings": True})}
    )
    res = run([(c(90), 1, 12.0), (c(95), -2, 8.0), (c(105), 1, 3.0)], rs)
    assert res.initial_margin == pytest.approx(900.0)


# --- the shipped, monotone rules: a group costs at least its legs less any short ----------


def test_monotone_debit_spread_pays_the_long() -> None:
    # long 100C @5, short 105C @3: manual net = 500 − 300 = 200; without the short the long
    # alone needs 500, so the group needs 500 (gross 800): selling the 105C frees nothing
    res = run([(c(100), 1, 5.0), (c(105), -1, 3.0)], CBOE_MONOTONE)
    assert kinds(res) == ["vertical_spread"]
    assert res.initial_margin == pytest.approx(500.0)
    assert res.gross_initial_margin == pytest.approx(800.0)


def test_monotone_credit_spread_is_the_manual_figure() -> None:
    # short 100P @4, long 95P @2: manual net 500 + 200 − 400 = 300 ≥ the long alone (200)
    res = run([(p(100), -1, 4.0), (p(95), 1, 2.0)], CBOE_MONOTONE)
    assert res.initial_margin == pytest.approx(300.0)


def test_monotone_long_butterfly_pays_both_longs() -> None:
    # 95C @8, −2×100C @5, 105C @3: removing one short leaves 95C, −100C, 105C, best as the
    # debit spread (100/95: the long alone, 800) + 105C (300) = 1100; the fly needs 1100
    res = run([(c(95), 1, 8.0), (c(100), -2, 5.0), (c(105), 1, 3.0)], CBOE_MONOTONE)
    assert kinds(res) == ["long_butterfly"]
    assert res.initial_margin == pytest.approx(1100.0)


def test_monotone_iron_condor() -> None:
    # 90P @1, −95P @2, −105C @2, 110C @1: manual net 500 + 200 − 400 = 300. Without the short
    # put: call credit spread 500 + 100 − 200 = 400, + long put 100 = 500 (likewise without
    # the short call) → the iron condor needs 500
    res = run([(p(90), 1, 1.0), (p(95), -1, 2.0), (c(105), -1, 2.0), (c(110), 1, 1.0)],
              CBOE_MONOTONE)  # fmt: skip
    assert kinds(res) == ["iron_condor"]
    assert res.initial_margin == pytest.approx(500.0)


def test_monotone_covered_call_keeps_the_stock_requirement() -> None:
    # stock + short 105C @2: manual IM 4800, MM 2300; the stock alone needs 5000 / 2500
    res = run([STOCK, (c(105), -1, 2.0)], CBOE_MONOTONE)
    assert kinds(res) == ["covered_call"]
    assert res.initial_margin == pytest.approx(5000.0)
    assert res.maintenance_margin == pytest.approx(2500.0)


def test_monotone_reverse_conversion() -> None:
    # short stock, short 95P @1.5, long 95C @7: manual 1500 / 1500. Without the short put:
    # short stock + long call, IM 5000 + 700 = 5700, MM protective call
    # min(10 %·95 + 0, 30 %·100)·100 + 700 = 1650 → 5700 / 1650
    res = run([SHORT_STOCK, (p(95), -1, 1.5), (c(95), 1, 7.0)], CBOE_MONOTONE)
    assert res.initial_margin == pytest.approx(5700.0)
    assert res.maintenance_margin == pytest.approx(1650.0)


# --- coin covers ---------------------------------------------------------------------------


def test_coin_balance_covers_an_inverse_call_in_its_own_pool() -> None:
    # 1 BTC held, short 1 BTC-27MAR26-30000-C @0.41 coin, S = 50000 (ITM 20000):
    # covered: IM = (50 %·S − p)/S = 0.5 − 0.41 = 0.09 coin (≥ the coin alone: 0)
    # MM = (25 %·min(S, K) + ITM − p)/S = 0.15 + 0.40 − 0.41 = 0.14
    # naked: max(0.15 − 0, 0.10) = 0.15 net, initial and maintenance
    res = run([("BTC-27MAR26-30000-C", -1, 0.41)], load_rule_set("strategy"), {"BTC": 1.0})
    assert res.currency == "BTC"
    assert kinds(res) == ["covered_call"]
    (group,) = res.strategies
    assert dict(group.legs) == {"BTC-27MAR26-30000-C": -1.0, "BTC balance": 1.0}
    assert res.initial_margin == pytest.approx(0.09)
    assert res.maintenance_margin == pytest.approx(0.14)
    assert res.equity == pytest.approx(1.0 - 0.41)


def test_coin_balance_covers_only_calls_in_a_coin_pool() -> None:
    # a long inverse put with the coin: no protective put in coin (the coin has no coin risk)
    res = run([("BTC-27MAR26-40000-P", 1, 0.01)], load_rule_set("strategy"), {"BTC": 1.0})
    assert kinds(res) == ["long_put"]


def test_coin_balance_covers_a_linear_call() -> None:
    # BTC_USDC short 30000C @20500 USD, 1 BTC held: IM = 50 %·50000 − 20500 = 4500 USD;
    # MM = 25 %·30000 + 20000 − 20500 = 7000; naked 15 %·50000 = 7500 net
    res = run([("BTC_USDC-27MAR26-30000-C", -1, 20_500.0)], load_rule_set("strategy"),
              {"BTC": 1.0})  # fmt: skip
    usd = res.by_currency["USD"]
    assert [g.kind for g in usd.strategies] == ["covered_call"]
    assert usd.initial_margin == pytest.approx(4500.0)
    assert usd.maintenance_margin == pytest.approx(7000.0)


def test_one_coin_covers_one_call_only() -> None:
    # 1 BTC, short an inverse and a linear 30000C: the coin is pledged once
    rows = [("BTC-27MAR26-30000-C", -1.0, 0.41), ("BTC_USDC-27MAR26-30000-C", -1.0, 20_500.0)]
    res = run(rows, load_rule_set("strategy"), {"BTC": 1.0})
    covered = [g for g in res.strategies if g.kind == "covered_call"]
    assert len(covered) == 1
    assert sum(q for g in covered for n, q in g.legs if n == "BTC balance") == pytest.approx(1.0)


# --- optimality gap --------------------------------------------------------------------------


def test_exact_by_default_and_bounded_under_a_time_limit() -> None:
    rows = [(c(90), 1.0, 12.0), (c(95), -2.0, 8.0), (c(105), 1.0, 3.0), (p(95), -1.0, 1.5)]
    exact = run(rows, CBOE_MONOTONE)
    assert exact.optimality_gap == 0.0
    pool = exact.by_currency["USD"]
    assert pool.initial_margin_bound == pytest.approx(pool.initial_margin)
    positions, market = book(rows, {"XYZ": S})
    rushed = rules_margin(positions, {}, market, CBOE_MONOTONE, time_limit=0.0)
    rpool = rushed.by_currency["USD"]
    assert rpool.initial_margin_bound is not None
    assert rpool.initial_margin_bound <= exact.initial_margin + 1e-9 <= rpool.initial_margin + 1e-9
    assert rushed.optimality_gap >= 0.0
