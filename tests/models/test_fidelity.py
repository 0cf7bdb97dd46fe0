"""Methodology fidelity: per-month price scan ranges, scanning-based spreads, SOM per contract,
the P&L base, the custom grid (a venue written as a TOML file) and their checks at load.

Every expected value is worked by hand in the test from the published rule it pins:
CME, "Components of SPAN" (http://www.cme.com/clearing/rmspan/span/components.html); CME's
Type 6 record, method code 4 (scanning-based spreads,
https://cmegroupclientsite.atlassian.net/wiki/spaces/pubspan/pages/46071819); Paradex,
"Portfolio Margin" (https://docs.paradex.trade/risk/portfolio-margin).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

import portmargin as pm
from portmargin.errors import ParameterError
from portmargin.instruments import ProductSpec, Settlement
from portmargin.market import MarketSnapshot, OptionQuote, UnderlyingQuote, build_market
from portmargin.models import load_model
from portmargin.models.config import (
    ExtraScenario,
    PriceRangeTier,
    ScanningSpread,
    load_model_params,
)
from portmargin.models.span import scanning_spread_credit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"
T0 = datetime(2026, 2, 25, 8, 0, tzinfo=UTC)
XYZ = {"XYZ": ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 100.0)}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------
# A price scan range per contract month: CME's intra-spread example


CME_EXAMPLE = """
name = "cme-example"
version = "1"
grid = "span16"
currency_mode = "cross"
[underlyings.default]
price_range = 0.075                  # month 2: 7.5 % of a 10,000 USD contract = 750 USD
vol_up = 0.25
vol_down = 0.25
cover_fraction = 0.33
lookahead_days = 1.0
price_range_tiers = [ { from_days = 60.0, price_range = 0.05 } ]   # month 4: 500 USD
[underlyings.XYZ]
[[charges]]
kind = "span_intra_commodity"
tier_bounds_days = [60.0]            # tier 1 = month 2 (30 days), tier 2 = month 4 (121 days)
spreads = [ { a = 1, b = 2, rate = 0.005 } ]   # 0.5 % x 100 units x 100 USD = 50 USD a spread
"""


@pytest.fixture(scope="module")
def two_months() -> MarketSnapshot:
    """XYZ futures of two months at 100 USD, 100 units per contract (10,000 USD each)."""
    return build_market(
        valuation_time=T0,
        products=XYZ,
        underlyings={"XYZ": UnderlyingQuote(100.0)},
        futures={"XYZ-27MAR26": 100.0, "XYZ-26JUN26": 100.0},
    )


def test_cme_intra_spread_example_with_a_scan_range_per_month(
    two_months: MarketSnapshot, tmp_path: Path
) -> None:
    # CME's example: +1 M2 / −1 M4 = (750 − 500) + 50. Month 2 scans at 750 USD, month 4 at
    # 500 USD: in the price-down scenario the long M2 loses 750 and the short M4 gains 500, so
    # the scanning risk is 250 (the extreme moves give 3 × 250 × 0.33 = 247.5 < 250), and the
    # one spread formed pays the 50 USD intra-commodity charge: 300.
    model = load_model(str(_write(tmp_path, "cme.toml", CME_EXAMPLE)))
    book = pm.Portfolio.of({"XYZ-27MAR26": 1, "XYZ-26JUN26": -1})
    r = model.margin(book, two_months)
    assert r.components["scanning_risk"] == pytest.approx(750.0 - 500.0, rel=1e-12)
    assert r.components["span_intra_commodity"] == pytest.approx(50.0, rel=1e-12)
    assert r.maintenance_margin == pytest.approx((750.0 - 500.0) + 50.0, rel=1e-12)
    # One scan range for every month would see no scanning risk at all.
    flat = CME_EXAMPLE.replace(
        "price_range_tiers = [ { from_days = 60.0, price_range = 0.05 } ]", ""
    )
    r_flat = load_model(str(_write(tmp_path, "flat.toml", flat))).margin(book, two_months)
    assert r_flat.components["scanning_risk"] == pytest.approx(0.0, abs=1e-9)


def test_price_range_tiers_scale_each_month_and_leave_undated_rows(
    two_months: MarketSnapshot, tmp_path: Path
) -> None:
    model = load_model(str(_write(tmp_path, "cme.toml", CME_EXAMPLE)))
    scen = model.scenario_set("XYZ")
    np.testing.assert_allclose(scen.tier_days, [60.0])
    np.testing.assert_allclose(scen.scales, [0.05 / 0.075])
    # 30 days (month 2) and undated rows move by the base range; 121 days by the tier's
    np.testing.assert_allclose(
        scen.move_scale(np.array([30.0, 121.0, 121.0]), np.array([True, True, False])),
        [1.0, 0.05 / 0.075, 1.0],
    )


# ----------------------------------------------------------------------------------------
# Scanning-based inter-commodity spread (CME method 4): losses − rate × gains per scenario


def test_scanning_spread_credit_by_hand() -> None:
    # Two legs over three scenarios (gain > 0): A = (−100, +50, −40), B = (+60, −80, +10).
    # rate 0.5: risk_j = losses − 0.5·gains = (100 − 30, 80 − 25, 40 − 5) = (70, 55, 35);
    # spread scan 70; legs' own scans 100 and 80; credit 180 − 70 = 110, split 100 : 80.
    a = np.array([[-100.0, 50.0, -40.0]])
    b = np.array([[60.0, -80.0, 10.0]])
    credit = scanning_spread_credit([a, b], np.array([[100.0, 80.0]]), 0.5)
    np.testing.assert_allclose(credit[0], [110.0 * 100 / 180, 110.0 * 80 / 180])
    # rate 1: a scenario whose gains exceed its losses needs nothing (floored at 0)
    np.testing.assert_allclose(
        scanning_spread_credit([a, b], np.array([[100.0, 80.0]]), 1.0).sum(), 180.0 - 40.0
    )


SCANNING_OVER_SPAN = """
[[credits]]
kind = "span_inter_commodity"
remove = true

[[credits]]
kind = "span_scanning_spread"
spreads = [ { legs = ["BTC", "ETH"], rate = 0.5 } ]
"""


def test_scanning_spread_through_the_span_model(tmp_path: Path) -> None:
    # Long 1 BTC perpetual (70,000 USD, PSR 12 %), short 20 ETH perpetuals (70,000 USD, PSR
    # 18 %). Per 1/3-step f of the scan range: BTC 8,400·f, ETH −12,600·f.
    #   f = +1: losses 12,600, gains 8,400 → 12,600 − 0.5·8,400 = 8,400 (the spread's worst)
    #   f = −1: losses 8,400, gains 12,600 → 8,400 − 6,300 = 2,100
    #   f = ±3 at 0.33: 12,474 − 0.5·8,316 = 8,316
    # Own scans: BTC 8,400, ETH 12,600 (extremes 8,316 and 12,474 are lower): credit
    # 21,000 − 8,400 = 12,600, split 8,400 : 12,600 → 5,040 and 7,560.
    demo = pm.demo_market()
    over = _write(tmp_path, "scan.toml", SCANNING_OVER_SPAN)
    model = load_model("span-2026.1", params_file=str(over))
    r = model.margin(pm.Portfolio.of({"BTC-PERPETUAL": 1, "ETH-PERPETUAL": -20}), demo)
    by = {u.underlying: u for u in r.by_underlying}
    assert by["BTC"].scanning_risk == pytest.approx(8_400.0, rel=1e-9)
    assert by["ETH"].scanning_risk == pytest.approx(12_600.0, rel=1e-9)
    assert by["BTC"].components["span_scanning_spread"] == pytest.approx(-5_040.0, rel=1e-9)
    assert by["ETH"].components["span_scanning_spread"] == pytest.approx(-7_560.0, rel=1e-9)
    assert r.maintenance_margin == pytest.approx(8_400.0, rel=1e-9)


def test_one_kind_of_inter_commodity_credit_per_underlying(tmp_path: Path) -> None:
    both = _write(
        tmp_path,
        "both.toml",
        '[[credits]]\nkind = "span_scanning_spread"\n'
        'spreads = [ { legs = ["BTC", "ETH"], rate = 0.5 } ]\n',
    )
    with pytest.raises(ParameterError, match=r"BTC is also a leg of credits\[0\]"):
        load_model_params("span-2026.1", overrides=both)


# ----------------------------------------------------------------------------------------
# Short option minimum as a fixed amount per contract


def test_short_option_minimum_per_contract_in_usd(tmp_path: Path) -> None:
    # CME quotes SOM in $ per short option: 250 USD per contract, no rate.
    # gross: 1 short call + 2 short puts = 3 × 250 = 750; max: max(250, 500) = 500.
    demo = pm.demo_market()
    book = pm.Portfolio.of({"BTC-27MAR26-130000-C": -1, "BTC-27MAR26-30000-P": -2})
    for method, expected in (("gross", 750.0), ("max", 500.0)):
        over = _write(
            tmp_path,
            f"som_{method}.toml",
            '[[charges]]\nkind = "span_short_option_minimum"\nrate = 0.0\n'
            f'per_contract_usd = 250.0\nmethod = "{method}"\nETH = {{ rate = 0.0 }}\n',
        )
        r = load_model("span-2026.1", params_file=str(over)).margin(book, demo)
        assert r.maintenance_margin == pytest.approx(expected, rel=1e-9)
        som = r.components["span_short_option_minimum"]
        assert som == pytest.approx(expected - r.components["scanning_risk"], rel=1e-9)


# ----------------------------------------------------------------------------------------
# pnl_base = "model" | "mark"


def test_pnl_base_mark_shifts_every_scenario_by_model_minus_mark(tmp_path: Path) -> None:
    # A long BTC call whose mark price (0.07 BTC) differs from its model value at the mark IV.
    # TIMS (weights 1, vol unchanged, no look-ahead, one USD pool): P&L from the mark is P&L
    # from the model plus (model − mark)·F in every point, so the loss grows by (mark − model)·F.
    name = "BTC-27MAR26-70000-C"
    market = build_market(
        valuation_time=T0,
        underlyings={"BTC": UnderlyingQuote(70000.0)},
        futures={"BTC-27MAR26": 70288.26},
        options={name: OptionQuote(mark_iv=0.55, mark_price=0.07)},
    )
    book = pm.Portfolio.of({name: 1})
    by_model = load_model("tims-2026.1").margin(book, market)
    over = _write(tmp_path, "mark.toml", '[underlyings.default]\npnl_base = "mark"\n')
    by_mark = load_model("tims-2026.1", params_file=str(over)).margin(book, market)
    assert load_model_params("tims-2026.1").underlying("BTC").pnl_base == "model"
    table = pm.instrument_table([market.instrument(name)], market)
    F, model_usd = float(table.F[0]), float(table.value_usd[0])
    shift = 0.07 * F - model_usd
    assert abs(shift) > 100.0
    assert by_mark.components["scanning_risk"] == pytest.approx(
        by_model.components["scanning_risk"] + shift, rel=1e-12
    )
    assert by_mark.equity == by_model.equity  # the mark enters equity either way
    raw_model = [s.raw_pnl for s in by_model.scenarios]
    raw_mark = [s.raw_pnl for s in by_mark.scenarios]
    np.testing.assert_allclose(np.array(raw_mark) - raw_model, -shift, rtol=1e-9)


# ----------------------------------------------------------------------------------------
# The custom grid: a venue's grid as a TOML file alone (Paradex, unofficial)


def test_paradex_grid_is_the_published_24_scenarios() -> None:
    scen = load_model("paradex").scenario_set("BTC")
    assert len(scen) == 24
    std = [g == "standard" for g in scen.groups]
    np.testing.assert_allclose(
        scen.price_moves[std], np.repeat([-0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12], 2)
    )
    np.testing.assert_allclose(scen.vol_directions[std], [0.40, -0.22] * 7)
    tails = scen.price_moves[16:]
    np.testing.assert_allclose(tails, [-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(scen.weights[16:], 0.16 / np.abs(tails), rtol=1e-15)
    np.testing.assert_allclose(scen.price_moves[14:16], [-0.16, 0.16])


def test_paradex_perpetual_scan_im_and_mm_by_hand() -> None:
    # Paradex: SCAN = max weighted loss; a linear position loses 16 % at −16 % and, since the
    # tails weigh 0.16/|move|, 0.16·notional in each down tail too; IM = SCAN, MM = 50 %·SCAN.
    demo = pm.demo_market()
    r = load_model("paradex").margin(pm.Portfolio.of({"BTC-PERPETUAL": 1}), demo)
    assert r.components["scanning_risk"] == pytest.approx(0.16 * 70_000.0, rel=1e-12)
    assert r.initial_margin == pytest.approx(0.16 * 70_000.0, rel=1e-12)
    assert r.maintenance_margin == pytest.approx(0.5 * 0.16 * 70_000.0, rel=1e-12)


def test_paradex_vol_shock_is_the_published_formula() -> None:
    # shocked IV = mark IV × (1 + vol shock × (30 / max(DTE floor, DTE))^power), power 0.30
    # below 30 days: a 2-day option in scenario (−12 %, +40 %) and (−12 %, −22 %).
    demo = pm.demo_market()
    inst = demo.instrument("BTC-27FEB26-70000-P")
    table = pm.instrument_table([inst], demo)
    scen = load_model("paradex").scenario_set("BTC")
    T, sigma, F = float(table.T[0]), float(table.sigma[0]), float(table.F[0])
    dte = T * 365.0
    shocked = scen.vol_shock.shocked(table.sigma, table.T * 365.0, scen.vol_directions)
    for j, v in ((0, 0.40), (1, -0.22)):
        assert shocked[0, j] == pytest.approx(sigma * (1 + v * (30 / max(1.0, dte)) ** 0.30))
    ra = pm.risk_array(table, scen)
    d1 = (math.log(F * 0.88 / 70000) + 0.5 * shocked[0, 0] ** 2 * T) / (shocked[0, 0] * T**0.5)
    d2 = d1 - shocked[0, 0] * T**0.5
    put = 70000 * 0.5 * (1 + math.erf(-d2 / 2**0.5)) - F * 0.88 * 0.5 * (1 + math.erf(-d1 / 2**0.5))
    assert ra.pnl_usd[0, 0] == pytest.approx(put - float(table.value_usd[0]), rel=1e-9)


def test_custom_grid_moves_times_shifts_with_weights_and_absolute_vols(tmp_path: Path) -> None:
    text = """
name = "venue"
version = "1"
grid = "custom"
currency_mode = "cross"
im_multiplier = 1.3
mm_multiplier = 1.0
[underlyings.default]
vol_mode = "absolute"
price_moves = [-0.1, 0.0, 0.1]
vol_shifts = [-0.05, 0.0, 0.05]
move_weights = [1.0, 0.5, 1.0]
extra_scenarios = [ { move = -0.3, weight = 0.25 } ]
"""
    model = load_model(str(_write(tmp_path, "venue.toml", text)))
    scen = model.scenario_set("BTC")
    np.testing.assert_allclose(scen.price_moves, [-0.1] * 3 + [0.0] * 3 + [0.1] * 3 + [-0.3])
    np.testing.assert_allclose(scen.vol_directions, [-0.05, 0.0, 0.05] * 3 + [0.0])
    np.testing.assert_allclose(scen.weights, [1.0] * 3 + [0.5] * 3 + [1.0] * 3 + [0.25])
    assert scen.groups[-1] == "extended"
    # absolute: σ' = σ ± 0.05 (flat term structure)
    np.testing.assert_allclose(
        scen.vol_shock.shocked(np.array([0.5]), np.array([30.0]), scen.vol_directions[:3]),
        [[0.45, 0.5, 0.55]],
    )
    # IM = 1.3 × MM: a perpetual's worst weighted loss is max(0.1, 0.25·0.3)·70,000 = 7,000
    r = model.margin(pm.Portfolio.of({"BTC-PERPETUAL": 1}), pm.demo_market())
    assert r.maintenance_margin == pytest.approx(7_000.0, rel=1e-12)
    assert r.initial_margin == pytest.approx(1.3 * 7_000.0, rel=1e-12)


# ----------------------------------------------------------------------------------------
# Checks at load: one line naming the key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[underlyings.default]\nprice_range_tiers = [ { from_days = 30.0, price_range = 0.1 } ]\n",
            "underlyings.default.price_range_tiers: read only by the span16 grid",
        ),
        (
            "[underlyings.default]\nprice_moves = [0.1]\n",
            "underlyings.default.price_moves: read only by the custom grid, not by 'deribit'",
        ),
        (
            "[underlyings.default]\nlookahead_basis = 360\n",
            "underlyings.default.lookahead_basis: must be 365 (calendar days) or 252",
        ),
        (
            '[underlyings.default]\npnl_base = "last"\n',
            "underlyings.default.pnl_base: must be 'model' or 'mark'",
        ),
    ],
)
def test_new_keys_refused_where_they_do_not_apply(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, "bad.toml", text)
    with pytest.raises(ParameterError) as exc:
        load_model_params("deribit", overrides=path)
    assert str(exc.value).startswith(f"{path} (over model deribit): {message}")
    assert "\n" not in str(exc.value)


def test_custom_grid_checks(tmp_path: Path) -> None:
    base = 'name = "v"\nversion = "1"\ngrid = "custom"\n[underlyings.default]\n'
    cases = [
        ("", "price_moves: the custom grid needs price_moves or extra_scenarios"),
        ("price_moves = [0.1]\nvol_shifts = [-1.5]\n", "vol_shifts[0]: must be >= -1"),
        ("price_moves = [0.1, 0.2]\nmove_weights = [1.0]\n", "move_weights: needs one weight"),
        (
            "price_range = 0.1\nlookahead_days = 1.0\nprice_range_tiers = "
            "[ { from_days = 9.0, price_range = 0.2 }, { from_days = 5.0, price_range = 0.1 } ]\n"
            "price_moves = [0.1]\n",
            "price_range_tiers[1].from_days: must be above the tier before it",
        ),
    ]
    for i, (extra, message) in enumerate(cases):
        path = _write(tmp_path, f"c{i}.toml", base + extra)
        with pytest.raises(ParameterError, match=re.escape(message)):
            load_model_params(str(path))


def test_new_schemas_are_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for schema in (PriceRangeTier, ExtraScenario, ScanningSpread):
        for key in schema.model_fields:  # `key` or inside a `{ a, key, b }` table
            assert re.search(rf"(`{key}`)|(`\{{[^`]*\b{key}\b[^`]*\}}`)", text), key
    for key in ("lookahead_basis", "pnl_base", "price_range_tiers", "per_contract_usd"):
        assert f"`{key}`" in text
    assert "`span_scanning_spread`" in text and "`custom`" in text
