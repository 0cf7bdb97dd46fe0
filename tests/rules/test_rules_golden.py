"""Formula-level golden values, each derived by hand from the documented rule it cites.

References (§ numbers: ``docs/methodology/rules.md``): the Cboe Margin Manual and strategy-
based margin pages (https://www.cboe.com/us/options/margin/,
https://markets.cboe.com/us/options/strategy_based_margin/); the universal spread rule, SEC
Release 34-67752 (https://www.govinfo.gov/content/pkg/FR-2012-09-05/html/2012-21765.htm);
Deribit standard margin
(https://support.deribit.com/hc/en-us/articles/25944811528477-Standard-Margin). Cboe cases
use a US-equity-style product XYZ (m = 100 shares), S = 100, expiry 20MAR26 (< 9 months).
The manual's net figures (short proceeds applied to the whole group) are worked with the
rule sets' ``monotone = false`` variant (``-textbook``); the shipped, monotone figures are in
``test_rules_formulas.py``.
"""

from __future__ import annotations

import pytest
from rules_fakes import FakeMarket, book, inst

from portmargin.rules import RuleSet, RulesResult, load_rule_set, rules_margin

M = 100.0  # Cboe multiplier (shares per contract)
S = 100.0
EXP = "20MAR26"


def textbook(name: str) -> RuleSet:
    """A shipped rule set with the manual's net figures (short proceeds applied to the whole
    group, ``strategies.monotone = false``): what the formulas below are worked from."""
    rules = load_rule_set(name)
    return rules.model_copy(
        update={"strategies": rules.strategies.model_copy(update={"monotone": False})}
    )


def run(
    rows: list[tuple[str, float, float]], rule_set: str = "cboe-textbook", index: float = S
) -> RulesResult:
    positions, market = book(rows, {"XYZ": index, "BTC": 50_000.0, "ETH": 3_000.0})
    if rule_set.endswith("-textbook"):
        rules = textbook(rule_set.removesuffix("-textbook"))
    else:
        rules = load_rule_set(rule_set)
    return rules_margin(positions, {}, market, rules)


def c(k: float) -> str:
    return f"XYZ-{EXP}-{k:g}-C"


def p(k: float) -> str:
    return f"XYZ-{EXP}-{k:g}-P"


def kinds(res: RulesResult) -> list[str]:
    return sorted(g.kind for g in res.strategies)


# --- §2.1 naked short options: m·(p + max(a·S − OTM, b·base)), a = 20 %, b = 10 % ---------


def test_naked_short_call_otm() -> None:
    # 105C @ 2: OTM = 5; 100·(2 + max(0.20·100 − 5, 0.10·100)) = 100·(2 + 15) = 1700
    res = run([(c(105), -1, 2.0)])
    assert res.gross_initial_margin == pytest.approx(1700.0)
    assert res.initial_margin == pytest.approx(1700.0 - 200.0)  # net of the 2.00 proceeds
    assert res.maintenance_margin == pytest.approx(1500.0)  # Cboe: initial = maintenance


def test_naked_short_put_floor_on_strike_cboe() -> None:
    # 70P @ 0.10: OTM = 30; 100·(0.10 + max(20 − 30, 0.10·70)) = 100·(0.10 + 7) = 710
    res = run([(p(70), -1, 0.10)])
    assert res.gross_initial_margin == pytest.approx(710.0)


def test_naked_short_put_floor_on_spot_strategy() -> None:
    # crypto `strategy` set: 15 % / 10 % with the floor on S for puts too (Deribit standard):
    # 100·(0.10 + max(15 − 30, 0.10·100)) = 100·10.10 = 1010
    res = run([(p(70), -1, 0.10)], "strategy")
    assert res.gross_initial_margin == pytest.approx(1010.0)


# --- §2.2 long options --------------------------------------------------------------------


def test_long_option_paid_in_full() -> None:
    res = run([(c(100), 1, 5.0)])
    assert res.gross_initial_margin == pytest.approx(500.0)
    assert res.initial_margin == pytest.approx(500.0)  # nothing to net: no proceeds


def test_long_option_over_nine_months_has_25pct_loan_value() -> None:
    res = run([("XYZ-17DEC27-100-C", 1, 12.0)])  # ~23 months
    assert res.gross_initial_margin == pytest.approx(0.75 * 1200.0)


# --- §2.3 verticals / calendars: min(naked short, MPL) + long premium ---------------------


def test_call_credit_spread() -> None:
    # short 100C @5, long 105C @3: naked = 100·(5 + 20) = 2500; MPL = 100·(105 − 100) = 500
    # gross = min(2500, 500) + 300 = 800; net = 800 − 500 = 300 (= width − credit)
    res = run([(c(100), -1, 5.0), (c(105), 1, 3.0)])
    assert kinds(res) == ["vertical_spread"]
    assert res.gross_initial_margin == pytest.approx(800.0)
    assert res.initial_margin == pytest.approx(300.0)


def test_call_debit_spread() -> None:
    # long 100C @5, short 105C @3: MPL = max(0, 100 − 105) = 0 → gross = 0 + 500; net = 200
    res = run([(c(100), 1, 5.0), (c(105), -1, 3.0)])
    assert res.gross_initial_margin == pytest.approx(500.0)
    assert res.initial_margin == pytest.approx(200.0)


def test_put_credit_spread() -> None:
    # short 100P @4, long 95P @2: MPL = 100·(100 − 95) = 500; gross = 500 + 200 = 700
    res = run([(p(100), -1, 4.0), (p(95), 1, 2.0)])
    assert res.gross_initial_margin == pytest.approx(700.0)
    assert res.initial_margin == pytest.approx(300.0)


def test_calendar_spread_long_later() -> None:
    # short 100C 20MAR26 @5, long 100C 19JUN26 @8: MPL = 0 → gross = 800
    res = run([(c(100), -1, 5.0), ("XYZ-19JUN26-100-C", 1, 8.0)])
    assert kinds(res) == ["calendar_spread"]
    assert res.gross_initial_margin == pytest.approx(800.0)


def test_reverse_calendar_gets_no_offset() -> None:
    # long expires first: naked 100·(8 + 20) + long 500 = 3300
    res = run([("XYZ-19JUN26-100-C", -1, 8.0), (c(100), 1, 5.0)])
    assert kinds(res) == ["long_call", "naked_short_call"]
    assert res.gross_initial_margin == pytest.approx(3300.0)


# --- §2.4 short straddle: max(naked call, naked put) + premium of the other side ----------


def test_short_straddle() -> None:
    # call: 100·(5 + 20) = 2500; put: 100·(4 + max(20, 10)) = 2400 → 2500 + 400 = 2900
    res = run([(c(100), -1, 5.0), (p(100), -1, 4.0)])
    assert kinds(res) == ["short_straddle"]
    assert res.gross_initial_margin == pytest.approx(2900.0)
    assert res.initial_margin == pytest.approx(2900.0 - 900.0)


# --- §2.5 butterflies, condors, iron structures, boxes: MPL + long premiums ----------------


def test_long_butterfly_is_the_debit() -> None:
    # long 95C @8, short 2×100C @5, long 105C @3: MPL = 0 → gross = 800 + 300; net = 100
    res = run([(c(95), 1, 8.0), (c(100), -2, 5.0), (c(105), 1, 3.0)])
    assert kinds(res) == ["long_butterfly"]
    assert res.gross_initial_margin == pytest.approx(1100.0)
    assert res.initial_margin == pytest.approx(100.0)


def test_short_butterfly_is_one_wing() -> None:
    # short 95C, long 2×100C, short 105C: width of the credit part = 100 − 95 → 500
    # gross = 500 + 2·500 (long premiums) = 1500
    res = run([(c(95), -1, 8.0), (c(100), 2, 5.0), (c(105), -1, 3.0)])
    assert kinds(res) == ["short_butterfly"]
    assert res.gross_initial_margin == pytest.approx(1500.0)


def test_iron_condor_one_wing() -> None:
    # long 90P @1, short 95P @2, short 105C @2, long 110C @1: MPL = max(5, 5)·100 = 500
    # gross = 500 + 100 + 100 = 700; net = 700 − 400 = 300
    res = run([(p(90), 1, 1.0), (p(95), -1, 2.0), (c(105), -1, 2.0), (c(110), 1, 1.0)])
    assert kinds(res) == ["iron_condor"]
    assert res.gross_initial_margin == pytest.approx(700.0)
    assert res.initial_margin == pytest.approx(300.0)


def test_iron_butterfly() -> None:
    # long 95P @1, short 100P @4, short 100C @5, long 105C @3: MPL = 5·100 = 500; +400
    res = run([(p(95), 1, 1.0), (p(100), -1, 4.0), (c(100), -1, 5.0), (c(105), 1, 3.0)])
    assert kinds(res) == ["iron_butterfly"]
    assert res.gross_initial_margin == pytest.approx(900.0)


def test_long_call_condor() -> None:
    # long 90C, short 95C, short 105C, long 110C: MPL = 0 → gross = long premiums 1100 + 100
    res = run([(c(90), 1, 11.0), (c(95), -1, 8.0), (c(105), -1, 3.0), (c(110), 1, 1.0)])
    assert kinds(res) == ["long_condor"]
    assert res.gross_initial_margin == pytest.approx(1200.0)


def test_long_and_short_box() -> None:
    # long box: long 95C, short 105C, long 105P, short 95P: MPL 0 → gross = 800 + 600
    long_box = run([(c(95), 1, 8.0), (c(105), -1, 3.0), (p(105), 1, 6.0), (p(95), -1, 1.0)])
    assert kinds(long_box) == ["long_box"]
    assert long_box.gross_initial_margin == pytest.approx(1400.0)
    # short box: MPL = strike gap = 10·100 = 1000; + long premiums 300 + 100
    short_box = run([(c(95), -1, 8.0), (c(105), 1, 3.0), (p(105), -1, 6.0), (p(95), 1, 1.0)])
    assert kinds(short_box) == ["short_box"]
    assert short_box.gross_initial_margin == pytest.approx(1400.0)
    assert short_box.initial_margin == pytest.approx(1400.0 - 1400.0)


# --- §2.7 hedged with the underlying (stock XYZ_USD, 100 shares per option) ----------------


def test_covered_call() -> None:
    # long 100 sh @100 + short 105C @2: IM net = 50 %·S·100 − 200 = 4800
    # MM net = 25 %·min(S, K)·100 + ITM(0) − 200 = 2300
    res = run([("XYZ_USD", 100, 100.0), (c(105), -1, 2.0)])
    assert kinds(res) == ["covered_call"]
    assert res.initial_margin == pytest.approx(4800.0)
    assert res.maintenance_margin == pytest.approx(2300.0)


def test_protective_put() -> None:
    # IM = put cost + 50 %·S: 150 + 5000; MM = min(10 %·K + OTM, 25 %·S)·100 + put value
    #    = min(9.5 + 5, 25)·100 + 150 = 1600
    res = run([("XYZ_USD", 100, 100.0), (p(95), 1, 1.5)])
    # IM ties with the legs alone (the pairing only helps maintenance), so the pairing shows
    # in the maintenance-minimising decomposition
    mm_kinds = [g.kind for g in res.by_currency["USD"].maintenance_strategies]
    assert mm_kinds == ["protective_put"]
    assert res.initial_margin == pytest.approx(5150.0)
    assert res.maintenance_margin == pytest.approx(1600.0)


def test_conversion() -> None:
    # IM = 50 %·S + put cost − call proceeds = 5000 + 400 − 500; MM = 10 %·K·100 + 400 − 500
    res = run([("XYZ_USD", 100, 100.0), (p(100), 1, 4.0), (c(100), -1, 5.0)])
    assert kinds(res) == ["conversion"]
    assert res.initial_margin == pytest.approx(4900.0)
    assert res.maintenance_margin == pytest.approx(900.0)


def test_collar() -> None:
    # IM = 5000 + 150 − 200; MM = min(10 %·95 + 5, 25 %·105)·100 + 0 + 150 − 200 = 1400
    res = run([("XYZ_USD", 100, 100.0), (p(95), 1, 1.5), (c(105), -1, 2.0)])
    assert kinds(res) == ["collar"]
    assert res.initial_margin == pytest.approx(4950.0)
    assert res.maintenance_margin == pytest.approx(1400.0)


def test_covered_put_short_stock() -> None:
    # short 100 sh + short 95P @1.5: IM net = 50 %·S·100 + ITM(0) − 150 = 4850
    # MM net = 30 %·S·100 − 150 = 2850
    res = run([("XYZ_USD", -100, 100.0), (p(95), -1, 1.5)])
    assert kinds(res) == ["covered_put"]
    assert res.initial_margin == pytest.approx(4850.0)
    assert res.maintenance_margin == pytest.approx(2850.0)


# --- §4.4 the two pairing traps -----------------------------------------------------------


def test_trap_three_leg_butterfly_beats_greedy_verticals() -> None:
    # greedy forms 95/100 (MPL 0) + 100/105 bear spread (MPL 500); the fly costs only the debit
    res = run([(c(95), 1, 8.0), (c(100), -2, 5.0), (c(105), 1, 3.0)])
    assert res.initial_margin == pytest.approx(100.0)
    assert res.greedy_initial_margin == pytest.approx(600.0)


def test_trap_two_leg_order() -> None:
    # pairing 105C with 100C: 500 + naked 110C 100·(2 + 10) = 1200 → 1700 (+300 long premium)
    res = run([(c(100), -1, 5.0), (c(110), -1, 2.0), (c(105), 1, 3.0)])
    assert res.gross_initial_margin == pytest.approx(1700.0 + 300.0)


# --- Deribit standard margin (support article), inverse, per coin ----- ------------------------


def deribit(
    rows: list[tuple[str, float, float]], rule_set: str = "deribit-standard"
) -> RulesResult:
    positions, market = book(rows, {"BTC": 50_000.0})
    if rule_set.endswith("-textbook"):
        return rules_margin(positions, {}, market, textbook(rule_set.removesuffix("-textbook")))
    return rules_margin(positions, {}, market, load_rule_set(rule_set))


def test_deribit_short_call() -> None:
    # OTM/S = 5000/50000 = 0.1: IM = max(0.15 − 0.1, 0.10) + 0.02 = 0.12; MM = 0.075 + 0.02
    res = deribit([("BTC-27MAR26-55000-C", -1, 0.02)])
    assert res.currency == "BTC"
    assert res.gross_initial_margin == pytest.approx(0.12)
    assert res.gross_maintenance_margin == pytest.approx(0.095)
    assert res.initial_margin == pytest.approx(0.10)


def test_deribit_short_put_mm_dominates_deep_itm() -> None:
    # K = 200000, mark 2.9 coin: IM0 = 0.15 + 2.9 = 3.05; MM = max(0.075, 0.075·2.9) + 2.9
    #   = 3.1175 → IM = max(IM0, MM) = 3.1175
    res = deribit([("BTC-27MAR26-200000-P", -1, 2.9)])
    assert res.gross_maintenance_margin == pytest.approx(3.1175)
    assert res.gross_initial_margin == pytest.approx(3.1175)


def test_deribit_no_spread_offset() -> None:
    # credit spread margined leg by leg: 0.12 (short) + 0.01 (long premium)
    res = deribit([("BTC-27MAR26-55000-C", -1, 0.02), ("BTC-27MAR26-60000-C", 1, 0.01)])
    assert res.gross_initial_margin == pytest.approx(0.13)
    assert kinds(res) == ["long_call", "naked_short_call"]


def test_deribit_perpetual_size_scaled() -> None:
    # 10 BTC: IM = (2 % + 10·0.005 %)·10 = 0.205 coin; MM = (1 % + 0.05 %)·10 = 0.105
    res = deribit([("BTC-PERPETUAL", -10, 50_000.0)])
    assert res.gross_initial_margin == pytest.approx(0.205)
    assert res.gross_maintenance_margin == pytest.approx(0.105)


# --- §2.6 step 5: MPL in coin for inverse options (strategy set) ----------------------------


def test_inverse_call_credit_spread_mpl_in_coin() -> None:
    # coin payoff of −55000C + 60000C is worst at P = 60000: −5000/60000 = −1/12 coin, and
    # tends to 0 as P → ∞ → MPL = 1/12; naked = max(0.15 − 0.1, 0.10) + 0.02 = 0.12 > 1/12
    res = deribit([("BTC-27MAR26-55000-C", -1, 0.02), ("BTC-27MAR26-60000-C", 1, 0.01)], "strategy")
    assert kinds(res) == ["vertical_spread"]
    assert res.gross_initial_margin == pytest.approx(1 / 12 + 0.01)


def test_inverse_put_credit_spread_is_unbounded_in_coin() -> None:
    # −50000P + 45000P pays −5000/P coin as P → 0: unbounded → legs margined alone
    res = deribit([("BTC-27MAR26-50000-P", -1, 0.03), ("BTC-27MAR26-45000-P", 1, 0.01)], "strategy")
    assert kinds(res) == ["long_put", "naked_short_put"]


def test_covered_call_with_perpetual_in_coin() -> None:
    # long 1 BTC-PERPETUAL + short 55000C @0.02: IM net = rate·S/S − mark = 0.02005 − 0.02
    res = deribit(
        [("BTC-PERPETUAL", 1, 50_000.0), ("BTC-27MAR26-55000-C", -1, 0.02)], "strategy-textbook"
    )
    assert kinds(res) == ["covered_call"]
    rate = 0.02 + 1 * 0.00005
    assert res.gross_initial_margin == pytest.approx(rate)
    assert res.initial_margin == pytest.approx(rate - 0.02)


# --- conventions: equity, excess, pools --------------------------------------------------


def test_equity_and_excess_single_pool() -> None:
    positions, market = book([("BTC-27MAR26-55000-C", -1, 0.02)], {"BTC": 50_000.0})
    res = rules_margin(positions, {"BTC": 1.0}, market, load_rule_set("deribit-standard"))
    assert res.equity == pytest.approx(1.0 - 0.02)
    assert res.initial_excess == pytest.approx(res.equity - 0.10)


def test_two_pools_convert_to_usd() -> None:
    positions, market = book(
        [("BTC-27MAR26-55000-C", -1, 0.02), ("BTC_USDC-27MAR26-55000-C", -1, 1000.0)],
        {"BTC": 50_000.0},
    )
    res = rules_margin(positions, {"USDC": 10_000.0}, market, load_rule_set("deribit-standard"))
    assert res.currency == "USD"
    assert set(res.by_currency) == {"BTC", "USD"}
    btc, usd = res.by_currency["BTC"], res.by_currency["USD"]
    assert btc.initial_margin == pytest.approx(0.10)
    assert usd.initial_margin == pytest.approx(0.10 * 50_000.0)  # same % × index, in USD
    assert res.initial_margin == pytest.approx(2 * 5000.0)
    assert res.equity == pytest.approx(-0.02 * 50_000 + 10_000 - 1000)
    assert res.to_dict()["by_currency"]


def test_same_instrument_twice_is_netted() -> None:
    positions, market = book([("BTC-27MAR26-55000-C", -1, 0.02)], {"BTC": 50_000.0})
    doubled = [*positions, (inst("BTC-27MAR26-55000-C"), -1.0)]
    res = rules_margin(doubled, {}, market, load_rule_set("deribit-standard"))
    assert res.gross_initial_margin == pytest.approx(0.24)


def test_market_protocol_is_structural() -> None:
    from portmargin.rules import RulesMarket

    market: RulesMarket = FakeMarket({"BTC": 1.0})
    assert market.index_price("BTC") == 1.0
