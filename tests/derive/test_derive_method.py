"""Derive PMRM_2 on a user's book: goldens mirrored from Derive's case files, hand-worked
figures, properties, refusals and parameter files.

Goldens: a portmargin book and market built to mirror a published case file (same options,
forwards, vols, rate, spot, perp, cash, collateral and parameters, the last as a ``--params``
TOML written here from the file's ``Parameters``) must reproduce the file's ``Result.MM`` and
``Result.IM`` through :meth:`DeriveMethod.margin`. The mirrored cases have oracle confidences
0.95 or 1 where portmargin uses 1: both are at or above ``CONF_THRESHOLD`` (0.55), where the
confidence contingency is 0 and confidences enter nothing else (reference §8), so the
expected values are the file's own. Files: ``derivexyz/v2-core:test/risk-managers/unit-tests/
PMRM_2/portfolio_cases/`` @ ``7736900d``, read from the optional shared data folder (skipped without it).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import portmargin as pm
from portmargin.derive import DeriveMethod, DeriveResult, load_config, margin_case
from portmargin.errors import InputError, MarketDataError, ParameterError
from portmargin.instruments import expiry_code
from portmargin.market import build_market
from portmargin.market.snapshot import MarketSnapshot, OptionQuote, UnderlyingQuote
from portmargin.methods import Method, available_methods, load_method
from portmargin.models.result import MarginResult

REL = 1e-6
MAINNET = DeriveMethod.load()
DEMO = pm.demo_market()

# --------------------------------------------------------------------------------------------
# Mirrors of published case files


def _case(shared_data: Path, number: int) -> dict[str, Any]:
    folder = shared_data / "derive_pmrm2_cases"
    found = sorted(folder.glob(f"test_{number}_*.json"))
    if not found:
        pytest.skip(f"case file test_{number}_* is not present")
    data: dict[str, Any] = json.loads(found[0].read_text(encoding="utf-8"))
    return data


def _f(value: object) -> float:
    assert isinstance(value, int | float | str)
    return float(value)


# Case-file parameter keys → the Derive parameter-file keys (docs/methodology/derive.md).
_KEYS = {
    "VolShock": (
        "vol_shock",
        {
            "VOLRANGEUP": "vol_range_up",
            "VOLRANGEDOWN": "vol_range_down",
            "SHORTTERMPOWER": "short_term_power",
            "LONGTERMPOWER": "long_term_power",
            "DTE_FLOOR": "dte_floor_days",
            "MIN_VOL_EVAL_SHOCKED": "min_vol_up_shock",
        },
    ),
    "Margin": (
        "margin",
        {
            "IM_LOSS_FACTOR": "im_loss_factor",
            "MM_LOSS_FACTOR": "mm_loss_factor",
            "LONG_RATE_MULTSCALE": "long_rate_mult",
            "LONG_RATE_ADDSCALE": "long_rate_add",
            "SHORT_RATE_MULTSCALE": "short_rate_mult",
            "SHORT_RATE_ADDSCALE": "short_rate_add",
            "BASE_STATIC_DISCOUNT": "long_base_discount",
            "BASE_STATIC_DISCOUNT_NEG": "short_base_discount",
        },
    ),
    "BasisContingency": (
        "basis",
        {
            "SCENARIO_SPOT_UP": "spot_up",
            "SCENARIO_SPOT_DOWN": "spot_down",
            "BASIS_CONT_ADD_FACTOR": "add_factor",
            "BASIS_CONT_MULT_FACTOR": "mult_factor",
        },
    ),
    "OtherContingency": (
        "other",
        {
            "PEG_LOSS_THRESHOLD": "peg_loss_threshold",
            "PEG_LOSS_FACTOR": "peg_loss_factor",
            "CONF_THRESHOLD": "conf_threshold",
            "CONF_MARGIN": "conf_margin",
            "MM_PERP_PERCENT": "mm_perp_pct",
            "IM_PERP_PERCENT": "im_perp_pct",
            "MM_OPTION_PERCENT": "mm_option_pct",
            "IM_OPTION_PERCENT": "im_option_pct",
        },
    ),
    "SkewShock": (
        "skew",
        {
            "LINEAR_SCALE_CAP": "linear_base_cap",
            "LINEAR_CBASE": "linear_c_base",
            "ABS_SCALE_CAP": "abs_base_cap",
            "ABS_CBASE": "abs_c_base",
            "MIN_K_STAR": "min_k_star",
            "MIN_WIDTH_SCALE": "width_scale",
            "VOL_PARAM_STATIC": "vol_param_static",
            "VOL_PARAM_SCALE": "vol_param_scale",
        },
    ),
}


def _params_toml(case: dict[str, Any], coin: str | None) -> str:
    """The case's ``Parameters`` (and its collateral haircuts) as a Derive parameter file."""
    par = case["Parameters"]
    lines: list[str] = []
    for block, (table, keys) in _KEYS.items():
        lines.append(f"[{table}]")
        lines += [f"{ours} = {_f(par[block][theirs])!r}" for theirs, ours in keys.items()]
    for coll in case["Scenario"]["Collaterals"]:
        if coin is not None and _f(coll["Amount"]) > 0.0:
            lines += [
                f"[collateral.{coin}]",
                f"mm_haircut = {_f(coll['MMHaircut'])!r}",
                f"im_haircut = {_f(coll['IMHaircut'])!r}",
            ]
    n_reg = len(case["Result"]["reg_losses"])
    for i, s in enumerate(par["Scenarios"]):
        direction = s["VolShockDirection"]
        kind = "skew" if direction in ("LINEAR", "ABS") else ("regular" if i < n_reg else "tail")
        lines += [
            "[[scenarios]]",
            f"spot_shock = {_f(s['SpotShock'])!r}",
            f'direction = "{direction}"',
            f"dampening = {_f(s['DampeningFactor'])!r}",
            f'kind = "{kind}"',
        ]
    return "\n".join(lines) + "\n"


EXPIRY = datetime(2026, 6, 26, 8, tzinfo=UTC)


def _mirror(
    case: dict[str, Any], und: str, product: str, *, first_expiry: datetime = EXPIRY
) -> tuple[pm.Portfolio, dict[str, Any]]:
    """The case's holdings as positions, and the market inputs that mirror its feeds.

    The valuation time puts the first feed's expiry at ``first_expiry`` (08:00 UTC); other
    feeds must lie whole days from it. A rate below −1 (the market's bound) is set to −1:
    PMRM_2 floors any negative rate at 0, so both read as 0.
    """
    s = case["Scenario"]
    feeds = s["OptionFeeds"]
    start = min(_f(f["FeedExpiry"]) for f in feeds) if feeds else 86_400.0
    t0 = first_expiry - timedelta(seconds=start)
    expiry_of = {_f(f["FeedExpiry"]): t0 + timedelta(seconds=_f(f["FeedExpiry"])) for f in feeds}
    rates = {max(_f(f["Rate"]), -1.0) for f in feeds}
    assert len(rates) <= 1, "one rate per underlying in a portmargin market"
    positions: dict[str, float] = {}
    options: dict[str, OptionQuote] = {}
    for o in s["Options"]:
        e = expiry_of[_f(o["Expiry"])]
        assert (e - first_expiry).total_seconds() % 86_400 == 0
        kind = "C" if int(o["IsCall"]) == 1 else "P"
        name = f"{product}-{expiry_code(e)}-{_f(o['Strike']):g}-{kind}"
        positions[name] = positions.get(name, 0.0) + _f(o["Amount"])
        options[name] = OptionQuote(mark_iv=_f(o["MarkVol"]))
    perp = _f(s["NumPerps"])
    if perp != 0.0:
        positions[f"{und}-PERPETUAL"] = perp
    cash: dict[str, float] = {"USD": _f(s["Cash"])}
    for c in s["Collaterals"]:
        if _f(c["Amount"]) > 0.0:
            assert c["IsRiskCancelling"] in (True, 1) and _f(c["Price"]) == _f(s["SpotPrice"])
            cash[und] = _f(c["Amount"])
    market = {
        "valuation_time": t0,
        "underlyings": {
            und: UnderlyingQuote(
                _f(s["SpotPrice"]),
                rates.pop() if rates else 0.0,
                _f(s["PerpPrice"]) if perp != 0.0 else None,
            ),
            "USDC": UnderlyingQuote(_f(s["StablePrice"])),
        },
        "forwards": {(und, expiry_of[_f(f["FeedExpiry"])]): _f(f["Forward"]) for f in feeds},
        "options": options,
    }
    return pm.Portfolio.of(positions, cash, name=f"case-{und}"), market


def _expected(case: dict[str, Any]) -> tuple[float, float]:
    """The file's MM and IM without the perp's unsettled value (a book has no entry price)."""
    s, res = case["Scenario"], case["Result"]
    unsettled = _f(s["UnrealisedPerpPNL"]) + _f(s["UnrealisedFunding"])
    return _f(res["MM"]) - unsettled, _f(res["IM"]) - unsettled


# (case number, underlying, product): inverse BTC/ETH options and linear USDC ones alike.
MIRRORED = [
    (13, "BTC", "BTC"),  # covered call: short call + risk-cancelling BTC collateral
    (19, "ETH", "ETH"),  # ITM call spread
    (21, "BTC", "BTC_USDC"),  # long fly
    (23, "BTC", "BTC"),  # short box, rate 0.4
    (25, "ETH", "ETH_USDC"),  # risk reversal + short perp
    (27, "BTC", "BTC_USDC"),  # short box, rate 0
    (29, "ETH", "ETH"),  # perp only, funding 10 in the file
    (39, "ETH", "ETH"),  # slightly OTM short call: a tail scenario binds
    (41, "ETH", "ETH_USDC"),  # the LINEAR skew scenario binds
    (47, "ETH", "ETH"),  # ITM call spread
    (55, "BTC", "BTC"),  # negative rate -1.2 (floored at 0)
    (69, "ETH", "ETH"),  # DTE floor swept
    (71, "ETH", "ETH_USDC"),  # deep ITM spread
]


@pytest.mark.parametrize(("number", "und", "product"), MIRRORED)
def test_book_mirroring_a_case_file_reproduces_its_mm_and_im(
    shared_data: Path, tmp_path: Path, number: int, und: str, product: str
) -> None:
    case = _case(shared_data, number)
    book, inputs = _mirror(case, und, product)
    params = tmp_path / f"case{number}.toml"
    params.write_text(_params_toml(case, und), encoding="utf-8")
    result = DeriveMethod.load(str(params)).margin(book, build_market(**inputs))
    mm, im = _expected(case)
    assert result.maintenance_excess == pytest.approx(mm, rel=REL, abs=1e-6)
    assert result.initial_excess == pytest.approx(im, rel=REL, abs=1e-6)
    # every scenario P&L too, in the file's order (reg, tail, skew), then the forward cont.
    res = case["Result"]
    want = [_f(r[-1]) for key in ("reg_losses", "tail_losses", "skew_losses") for r in res[key]]
    got = [line.pnl for line in result.scenarios]
    assert got[:-1] == pytest.approx(want, rel=REL, abs=1e-8)
    assert got[-1] == pytest.approx(_f(res["ForwardContingency"]), rel=REL, abs=1e-8)


def test_two_underlyings_pool_cash_and_add_requirements(shared_data: Path, tmp_path: Path) -> None:
    """Cases 19 (ETH) and 21 (BTC) as one book: the excesses add (same parameters).

    Their expiries are 794,852 s and 1,399,652 s: 7 days apart, so one valuation time serves
    both. Cash pooled at 1,000 USD moves both excesses by exactly 1,000 (§9).
    """
    eth, btc = _case(shared_data, 19), _case(shared_data, 21)
    assert eth["Parameters"] == btc["Parameters"]
    book_e, mkt_e = _mirror(eth, "ETH", "ETH")
    t0 = mkt_e["valuation_time"]
    book_b, mkt_b = _mirror(btc, "BTC", "BTC", first_expiry=t0 + timedelta(seconds=1_399_652))
    assert mkt_b["valuation_time"] == t0
    market = build_market(
        valuation_time=t0,
        underlyings={**mkt_e["underlyings"], **mkt_b["underlyings"]},
        forwards={**mkt_e["forwards"], **mkt_b["forwards"]},
        options={**mkt_e["options"], **mkt_b["options"]},
    )
    book = pm.Portfolio(book_e.positions + book_b.positions, {"USD": 1000.0})
    params = tmp_path / "p.toml"
    params.write_text(_params_toml(eth, None), encoding="utf-8")
    result = DeriveMethod.load(str(params)).margin(book, market)
    (mm_e, im_e), (mm_b, im_b) = _expected(eth), _expected(btc)
    assert result.maintenance_excess == pytest.approx(1000.0 + mm_e + mm_b, rel=REL)
    assert result.initial_excess == pytest.approx(1000.0 + im_e + im_b, rel=REL)
    assert [u.underlying for u in result.by_underlying] == ["BTC", "ETH"]
    assert len(result.by_currency) == 1 and result.by_currency[0].currency == "USD"
    assert set(result.detail) == {"BTC", "ETH"}
    # the binding scenario is the one of the underlying with the larger requirement
    top = max(result.by_underlying, key=lambda u: u.requirement)
    assert result.worst_scenario == top.worst_scenario


# --------------------------------------------------------------------------------------------
# Every published case file through margin_case (the CLI's --derive-case path)


def test_margin_case_reproduces_every_case_file(shared_data: Path) -> None:
    folder = shared_data / "derive_pmrm2_cases"
    files = sorted(folder.glob("test_*.json"))
    if not files:
        pytest.skip("no Derive case files")
    failures = []
    for path in files:
        result = margin_case(path, allow_offchain_skew=True)
        res = json.loads(path.read_text(encoding="utf-8"))["Result"]
        for got, want in (
            (result.maintenance_excess, res["MM"]),
            (result.initial_excess, res["IM"]),
        ):
            if got != pytest.approx(_f(want), rel=REL, abs=1e-6):
                failures.append(f"{path.name}: {got} != {want}")
        _check_result(result)
        assert result.model == "derive" and result.currency == "USD"
        assert result.valuation_time == "2021-08-26T17:46:40Z"
    assert not failures, "\n".join(failures)


def _check_result(r: MarginResult) -> None:
    """The one result family's identities for a Derive result."""
    pool = r.by_currency[0]
    c = pool.components
    im_only = set(pool.im_only_components)
    scale = 1.0 + r.initial_margin + abs(r.equity)
    mm = sum(v for k, v in c.items() if k not in im_only)
    im = sum(c.values()) - c["mm_scenario_loss"]
    assert math.isclose(mm, r.maintenance_margin, rel_tol=1e-9, abs_tol=1e-9 * scale)
    assert math.isclose(im, r.initial_margin, rel_tol=1e-9, abs_tol=1e-9 * scale)
    assert r.maintenance_margin >= 0.0 and r.initial_margin >= 0.0
    assert r.initial_excess == r.equity - r.initial_margin
    json.dumps(r.to_dict())
    details: dict[str, DeriveResult] = dict(r.detail)
    for u in r.by_underlying:
        d = details[u.underlying]
        assert u.requirement == d.initial_margin
        assert u.worst_scenario.pnl == d.min_span
    # the binding P&L split over the positions adds up to each underlying's worst P&L
    if len(r.by_underlying) == 1:
        u = r.by_underlying[0]
        total = sum(p.binding_pnl for p in r.positions)
        assert math.isclose(total, u.worst_scenario.pnl, rel_tol=1e-9, abs_tol=1e-6)


# --------------------------------------------------------------------------------------------
# Hand-worked figures on the demo market (mainnet parameters)


def test_long_perp_and_coin_balance_by_hand() -> None:
    """2 ETH perps long and 1 ETH held, demo market (ETH index = perp mark = 3,500 USD).

    Their P&L is linear, ``(x − 1)·(2·P_p + 1·S)``: the worst is the −18 % regular scenario
    (tails: 0.21·0.66 = 0.1386 < 0.18), so ``W = 0.18·10,500 = 1,890``. Contingencies: perp
    ``2·S·(3 % MM, + 1 % IM)``, coin ``S·(1.5 % MM, + 0.5 % IM)``::

        MM = 0.8·1890 + 210 + 52.5 = 1774.5
        IM = 1.0·1890 + 210 + 52.5 + 70 + 17.5 = 2240
        equity = 100 (cash) + 0 (perp) + 3500 (coin)
    """
    book = pm.Portfolio.of({"ETH-PERPETUAL": 2.0}, {"USD": 100.0, "ETH": 1.0})
    r = MAINNET.margin(book, DEMO)
    assert r.maintenance_margin == pytest.approx(1774.5, rel=1e-12)
    assert r.initial_margin == pytest.approx(2240.0, rel=1e-12)
    assert r.equity == pytest.approx(3600.0, rel=1e-12)
    assert r.worst_scenario is not None
    assert r.worst_scenario.price_move == pytest.approx(-0.18)
    lines = {p.instrument: p for p in r.positions}
    assert lines["ETH-PERPETUAL"].binding_pnl == pytest.approx(-0.18 * 2 * 3500.0)
    assert lines["cash:ETH"].binding_pnl == pytest.approx(-0.18 * 3500.0)
    assert lines["ETH-PERPETUAL"].delta == 2.0 and lines["cash:ETH"].delta == 1.0
    _check_result(r)


def test_option_marks_are_black76_on_the_market_forward() -> None:
    """A linear USDC option's mark in the market (USD, r = 0) is PMRM_2's ``V⁰`` of it."""
    name = "BTC_USDC-27MAR26-72000-C"
    r = MAINNET.margin(pm.Portfolio.of({name: 3.0}), DEMO)
    (line,) = r.positions
    assert line.mark_value == pytest.approx(3.0 * DEMO.mark_price(DEMO.instrument(name)), rel=1e-12)
    assert 0.0 < line.delta < 3.0
    assert r.equity == pytest.approx(line.mark_value, rel=1e-12)


def test_inverse_and_linear_options_margin_alike() -> None:
    """Same USD payoff at expiry, so the same PMRM_2 option (and the same perp)."""
    inverse = pm.Portfolio.of({"BTC-27MAR26-65000-P": -2.0, "BTC-PERPETUAL": 0.5})
    linear = pm.Portfolio.of({"BTC_USDC-27MAR26-65000-P": -2.0, "BTC_USDC-PERPETUAL": 0.5})
    a, b = MAINNET.margin(inverse, DEMO), MAINNET.margin(linear, DEMO)
    assert a.initial_margin == pytest.approx(b.initial_margin, rel=1e-12)
    assert a.maintenance_margin == pytest.approx(b.maintenance_margin, rel=1e-12)
    assert a.equity == pytest.approx(b.equity, rel=1e-12)
    assert any("inverse" in n for n in a.notes)


def test_confidence_note_and_the_method_protocol() -> None:
    r = MAINNET.margin(pm.Portfolio.of({"ETH-27MAR26-3500-C": -1.0}), DEMO)
    assert any("confidences 1" in n for n in r.notes)
    assert r.components["im_confidence_contingency"] == 0.0
    assert isinstance(MAINNET, Method)
    assert (MAINNET.name, MAINNET.family) == ("derive", "derive")
    assert MAINNET.version == "PMRM_2 mainnet 2025-06-10"
    assert r.model_version == MAINNET.version
    _check_result(r)


def test_skew_can_charge_a_long_option_more_than_its_value() -> None:
    """A limit of PMRM_2, not of the mapping: the skew scenarios take ``−|P&L|`` per expiry.

    A deep OTM long call gains far more than its value when ABS lifts its wing vol by up to
    25 % (mainnet cap), and ``−|gain|`` is charged as a loss; so "a long-only book never needs
    more than its value" holds for the regular and tail scenarios only (see the property).
    """
    r = MAINNET.margin(pm.Portfolio.of({"BTC-26JUN26-200000-C": 1.0}), DEMO)
    assert r.worst_scenario is not None and r.worst_scenario.group == "skew"
    assert r.initial_margin > r.equity > 0.0


# --------------------------------------------------------------------------------------------
# Properties (hypothesis) on the demo market

_NAMES = sorted(DEMO.option_names())
_SHORT = [
    n
    for n in _NAMES
    if n.split("-")[1] in ("26FEB26", "27FEB26", "6MAR26", "13MAR26", "27MAR26", "24APR26")
]
_PERPS = ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC_USDC-PERPETUAL"]


@st.composite
def books(draw: st.DrawFn, *, long_only: bool = False) -> pm.Portfolio:
    names = draw(st.lists(st.sampled_from(_SHORT if long_only else _NAMES), max_size=8))
    # 0 or at least 1e-6 contracts: a subnormal leg (1e-308) beside ±2 nets to 0 or not
    # depending on the summation order, a different book (found by hypothesis)
    qty = (
        st.floats(0.01, 20.0)
        if long_only
        else st.floats(-20.0, 20.0).filter(lambda q: q == 0 or abs(q) >= 1e-6)
    )
    positions = [pm.Position(n, draw(qty)) for n in names]
    if not long_only:
        positions += [pm.Position(n, draw(qty)) for n in draw(st.lists(st.sampled_from(_PERPS)))]
    coin = st.floats(0.0, 5.0)
    cash = {
        "USD": draw(st.floats(0.0, 1e5) if long_only else st.floats(-1e5, 1e5)),
        "BTC": draw(coin),
        "ETH": draw(coin),
    }
    return pm.Portfolio(tuple(positions), cash)


def _scaled(book: pm.Portfolio, k: float) -> pm.Portfolio:
    return pm.Portfolio(
        tuple(replace(p, quantity=k * p.quantity) for p in book.positions),
        {c: k * v for c, v in book.cash.items()},
    )


@settings(max_examples=60, deadline=None)
@given(cash=st.floats(-1e9, 1e9), names=st.lists(st.sampled_from(_NAMES + _PERPS), max_size=4))
def test_a_flat_book_needs_nothing(cash: float, names: list[str]) -> None:
    """Cash only, or positions that net to zero: no requirement, equity = cash."""
    legs = [pm.Position(n, q) for n in names for q in (1.5, -1.5)]
    r = MAINNET.margin(pm.Portfolio(tuple(legs), {"USD": cash}), DEMO)
    assert r.initial_margin == 0.0 and r.maintenance_margin == 0.0
    assert r.equity == cash
    assert r.by_underlying == () and r.worst_scenario is None


@settings(max_examples=40, deadline=None)
@given(book=books(), k=st.floats(0.01, 100.0))
def test_requirements_are_homogeneous_in_size(book: pm.Portfolio, k: float) -> None:
    """PMRM_2 is positively homogeneous of degree 1 in the holdings (all its terms are: the
    static discount's sign, the skew ``|·|``, naked shorts, haircuts and, at confidence 1, the
    absent confidence charge), so scaling every position and balance scales everything."""
    a, b = MAINNET.margin(book, DEMO), MAINNET.margin(_scaled(book, k), DEMO)
    scale = k * (1.0 + a.initial_margin + abs(a.equity))
    for x, y in (
        (a.initial_margin, b.initial_margin),
        (a.maintenance_margin, b.maintenance_margin),
        (a.equity, b.equity),
    ):
        assert math.isclose(k * x, y, rel_tol=1e-9, abs_tol=1e-9 * scale)


@settings(max_examples=40, deadline=None)
@given(book=books(), data=st.data())
def test_position_order_does_not_matter(book: pm.Portfolio, data: st.DataObject) -> None:
    shuffled = pm.Portfolio(tuple(data.draw(st.permutations(book.positions))), book.cash)
    a, b = MAINNET.margin(book, DEMO), MAINNET.margin(shuffled, DEMO)
    # holdings are sorted by name; only the book's own netting of repeated names
    # (Portfolio.net_positions, summed in order) can differ by rounding
    scale = 1.0 + a.initial_margin + abs(a.equity)
    for x, y in (
        (a.initial_margin, b.initial_margin),
        (a.maintenance_margin, b.maintenance_margin),
        (a.equity, b.equity),
    ):
        assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12 * scale)
    assert [p.instrument for p in a.positions] == [p.instrument for p in b.positions]


@settings(max_examples=40, deadline=None)
@given(book=books())
def test_identities_and_attribution(book: pm.Portfolio) -> None:
    """Components add up; per underlying the positions' binding P&L adds up to its worst."""
    r = MAINNET.margin(book, DEMO)
    _check_result(r)
    for u in r.by_underlying:
        mine = [p for p in r.positions if _underlying_of(p.instrument) == u.underlying]
        total = sum(p.binding_pnl for p in mine)
        assert math.isclose(total, u.worst_scenario.pnl, rel_tol=1e-9, abs_tol=1e-6)


def _underlying_of(name: str) -> str:
    if name.startswith("cash:"):
        return name.removeprefix("cash:")
    return DEMO.instrument(name).underlying


NO_SKEW = "\n".join(
    f'[[scenarios]]\nspot_shock = {s.spot_shock!r}\ndirection = "{s.direction.value}"\n'
    f"dampening = {s.dampening!r}\n"
    for s in MAINNET.config.params.scenarios
    if not s.direction.is_skew
)


@pytest.fixture(scope="module")
def no_skew(tmp_path_factory: pytest.TempPathFactory) -> DeriveMethod:
    path = tmp_path_factory.mktemp("derive") / "no_skew.toml"
    path.write_text(NO_SKEW, encoding="utf-8")
    return DeriveMethod.load(str(path))


@settings(max_examples=60, deadline=None)
@given(book=books(long_only=True))
def test_long_only_books_never_need_more_than_their_value(
    no_skew: DeriveMethod, book: pm.Portfolio
) -> None:
    """Long options, coins and USD: IM ≤ equity, for the regular and tail scenarios (w ≤ 1,
    ``SD(V) ≥ 0`` so a long expiry loses at most ``w·V⁰``; a coin at most 18 % plus 2 %
    haircuts) and the forward contingency on expiries within 90 days (``0.5 + 2τ ≤ 1``).
    Without the skew scenarios: see ``test_skew_can_charge_a_long_option_more_than_its_value``.
    """
    r = no_skew.margin(book, DEMO)
    assert r.initial_margin <= r.equity * (1.0 + 1e-12) + 1e-9


# --------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("positions", "cash", "words"),
    [
        ({"BTC-27MAR26": 1.0}, {}, ("BTC-27MAR26", "dated futures are not a Derive PMRM_2")),
        ({"ETH_USDC": 2.0}, {}, ("ETH_USDC", "spot pairs are not PMRM_2 positions")),
        ({}, {"BTC": -1.0}, ("cash.BTC", "cannot be negative")),
        ({}, {"DOGE": 1.0}, ("cash.DOGE", "no DOGE index")),
        ({"BTC-1JAN26-70000-Q": 1.0}, {}, ("positions", "BTC-1JAN26-70000-Q")),
    ],
)
def test_refusals_are_one_line(
    positions: dict[str, float], cash: dict[str, float], words: tuple[str, ...]
) -> None:
    with pytest.raises(InputError) as err:
        MAINNET.margin(pm.Portfolio.of(positions, cash, name="book.json"), DEMO)
    message = str(err.value)
    assert "\n" not in message and message.startswith("book.json: ")
    for w in words:
        assert w in message


def test_a_coin_without_haircuts_is_refused() -> None:
    market = _market_with("XYZ")
    with pytest.raises(InputError, match=r"cash\.XYZ: no Derive collateral haircuts for XYZ"):
        MAINNET.margin(pm.Portfolio.of({}, {"XYZ": 1.0}), market)


def test_an_expired_option_needs_a_settlement_price() -> None:
    """Past expiry an option is PMRM_2's expired-unsettled option on the settlement price."""
    market = _market_with("XYZ")
    book = pm.Portfolio.of({"ETH-27FEB26-3000-C": 1.0})
    with pytest.raises(MarketDataError, match="ETH-27FEB26-3000-C expired"):
        MAINNET.margin(book, market)
    settled = build_market(
        valuation_time=market.valuation_time,
        underlyings={"ETH": UnderlyingQuote(3500.0)},
        settlements={("ETH", datetime(2026, 2, 27, 8, tzinfo=UTC)): 3400.0},
    )
    r = MAINNET.margin(book, settled)
    (line,) = r.positions
    assert line.mark_value == pytest.approx(400.0)  # intrinsic on the settlement price
    assert line.delta == 0.0  # nothing of it moves with spot any more (§10)
    # Only the static discount moves it: δ⁺ = 1.05 at τ = 0 (mainnet), so the regular
    # scenarios gain 20 and the skew scenarios charge −|1.05·400 − 400| = −20 (§4, §6).
    assert r.worst_scenario is not None and r.worst_scenario.group == "skew"
    assert r.maintenance_margin == pytest.approx(0.8 * 20.0, rel=1e-12)
    assert r.initial_margin == pytest.approx(20.0, rel=1e-12)


def _market_with(coin: str) -> MarketSnapshot:
    return build_market(
        valuation_time=datetime(2026, 3, 1, 8, tzinfo=UTC),
        underlyings={"ETH": UnderlyingQuote(3500.0), coin: UnderlyingQuote(2.0)},
    )


# --------------------------------------------------------------------------------------------
# Parameter files and the method registry


def test_shipped_parameters_are_derives_mainnet_config() -> None:
    """Against ``derive_pmrm2.md`` §11 (mainnet column) and getDefaultPM2Scenarios."""
    p = load_config().params
    assert (p.vol_shock.vol_range_up, p.vol_shock.vol_range_down) == (0.5, 0.3)
    assert (p.vol_shock.short_term_power, p.vol_shock.long_term_power) == (0.3, 0.13)
    assert (p.vol_shock.dte_floor_days, p.vol_shock.min_vol_up_shock) == (1.0, 0.4)
    m = p.margin
    assert (m.im_loss_factor, m.mm_loss_factor) == (1.0, 0.8)
    assert (m.long_rate_mult, m.short_rate_mult, m.long_rate_add, m.short_rate_add) == (
        0.0,
        0.0,
        0.16,
        0.16,
    )
    assert (m.long_base_discount, m.short_base_discount) == (1.05, 0.95)
    b = p.basis
    assert (b.spot_up, b.spot_down, b.add_factor, b.mult_factor) == (1.045, 0.955, 0.5, 2.0)
    o = p.other
    assert (o.peg_loss_threshold, o.peg_loss_factor, o.conf_threshold, o.conf_margin) == (
        0.99,
        4.0,
        0.55,
        1.0,
    )
    assert (o.mm_perp_pct, o.im_perp_pct, o.mm_option_pct, o.im_option_pct) == (
        0.03,
        0.01,
        0.003,
        0.002,
    )
    k = p.skew
    assert (k.linear_base_cap, k.abs_base_cap, k.linear_c_base, k.abs_c_base) == (
        0.25,
        0.25,
        -0.1,
        -0.1,
    )
    assert (k.min_k_star, k.width_scale, k.vol_param_static, k.vol_param_scale) == (
        0.01,
        4.0,
        0.6,
        0.0,
    )
    xs = [round(s.spot_shock, 6) for s in p.scenarios if s.kind.value == "regular"]
    assert xs[0] == 1.18 and xs[-1] == 0.82 and len(xs) == 23
    tails = [(s.spot_shock, s.dampening) for s in p.scenarios if s.kind.value == "tail"]
    assert [x for x, _ in tails] == [0.34, 0.67, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0]
    for x, w in tails:
        assert w == pytest.approx(0.1386 / abs(x - 1.0), rel=1e-12)
    assert [s.direction.value for s in p.scenarios[-2:]] == ["LINEAR", "ABS"]
    assert load_config().max_expiries == 11


def test_an_override_changes_the_result(tmp_path: Path) -> None:
    """``mm_loss_factor`` 0.8 → 0.5 scales the MM scenario loss by 5/8 and nothing else."""
    path = tmp_path / "half.toml"
    path.write_text("[margin]\nmm_loss_factor = 0.5\n", encoding="utf-8")
    book = pm.Portfolio.of({"ETH-27MAR26-3500-C": -1.0, "ETH-PERPETUAL": 0.3})
    a = MAINNET.margin(book, DEMO)
    method = DeriveMethod.load(str(path))
    b = method.margin(book, DEMO)
    assert b.components["mm_scenario_loss"] == pytest.approx(
        a.components["mm_scenario_loss"] * 0.5 / 0.8, rel=1e-12
    )
    assert b.initial_margin == a.initial_margin
    assert b.maintenance_margin < a.maintenance_margin
    assert method.version == f"PMRM_2 mainnet 2025-06-10 + overrides({path})"
    assert b.model_version == method.version


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[margin]\nmm_los_factor = 0.5\n", "margin.mm_los_factor: unknown key"),
        ("[margins]\nmm_loss_factor = 0.5\n", "margins: unknown key"),
        ("[collateral.BTC]\nmm_hair = 0.1\n", "collateral.BTC.mm_hair: unknown key"),
        ("[[scenarios]]\nspot = 1.1\n", "scenarios[0].spot: unknown key"),
        ("[account]\nmax_expiry = 3\n", "account.max_expiry: unknown key"),
        ("[margin]\nmm_loss_factor = -1.0\n", "margin.mm_loss_factor: must be >= 0"),
        ('[margin]\nmm_loss_factor = "x"\n', "margin.mm_loss_factor: must be a number"),
        ("[collateral.BTC]\nmm_haircut = 0.7\nim_haircut = 0.4\n", "collateral.BTC.im_haircut"),
        (
            '[[scenarios]]\nspot_shock = 1.1\ndirection = "Sideways"\ndampening = 1.0\n',
            "scenarios[0].direction: must be one of",
        ),
        (
            '[[scenarios]]\nspot_shock = 1.1\ndirection = "ABS"\ndampening = 1.0\n',
            "scenarios[0].spot_shock: a ABS skew scenario must have spot_shock = 1",
        ),
        ("[account]\nmax_expiries = 0\n", "account.max_expiries: must be an integer >= 1"),
        ("[margin\n", "bad TOML"),
    ],
)
def test_bad_parameter_files_are_refused_naming_file_and_key(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParameterError) as err:
        DeriveMethod.load(str(path))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path} (over derive mainnet): ")
    assert where in message


def test_a_missing_parameter_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"nope\.toml: file not found"):
        DeriveMethod.load(str(tmp_path / "nope.toml"))


def test_registered_as_a_method() -> None:
    """``load_method("derive")`` works once the package is imported; ``cross`` is refused."""
    assert "derive" in [info.name for info in available_methods()]
    method = load_method("derive")
    assert isinstance(method, DeriveMethod) and method.version == MAINNET.version
    assert isinstance(load_method("derive", cross=False), DeriveMethod)
    with pytest.raises(ParameterError, match="--cross does not apply"):
        load_method("derive", cross=True)
    result = pm.margin(pm.Portfolio.of({"ETH-27MAR26-3500-P": -1.0}), DEMO, "derive")
    assert result.model == "derive"


def test_the_mapping_of_one_book_field_by_field() -> None:
    """What PMRM_2 receives for an inverse option, a linear perp and a coin, on the demo."""
    name = "ETH-27MAR26-3200-P"
    book = pm.Portfolio.of({name: -3.0, "ETH_USDC-PERPETUAL": 0.25}, {"ETH": 2.0, "USDT": 50.0})
    mapped = MAINNET.book(book, DEMO)
    assert mapped.cash == 50.0
    (sub,) = mapped.subaccounts
    p = sub.portfolio
    expiry = datetime(2026, 3, 27, 8, tzinfo=UTC)
    assert (p.spot, p.stable_price, p.cash) == (3500.0, 1.0, 0.0)
    assert (p.perp_position, p.perp_price, p.perp_unrealised_pnl) == (0.25, 3500.0, 0.0)
    (o,) = p.options
    assert o.expiry_seconds == 30 * 86_400.0
    assert (o.strike, o.is_call, o.amount) == (3200.0, False, -3.0)
    assert o.vol == float(DEMO.option_vols([DEMO.instrument(name)])[0])
    (f,) = p.feeds
    assert (f.expiry_seconds, f.forward, f.rate) == (
        30 * 86_400.0,
        DEMO.forward("ETH", expiry),
        0.0,
    )
    assert (f.forward_confidence, f.rate_confidence, f.vol_confidence, p.spot_confidence) == (
        1.0,
        1.0,
        1.0,
        1.0,
    )
    (c,) = p.collaterals
    assert (c.amount, c.price, c.is_risk_cancelling, c.confidence) == (2.0, 3500.0, True, 1.0)
    assert (c.mm_haircut, c.im_haircut) == (0.015, 0.005)
    assert sub.option_names == (name,) and sub.collateral_names == ("cash:ETH",)
    assert sub.perp_names == ("ETH_USDC-PERPETUAL",)


def test_notes_say_what_the_mapping_assumed(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text("[account]\nmax_expiries = 2\n", encoding="utf-8")
    book = pm.Portfolio.of(
        {"BTC-27MAR26-70000-C": -1.0, "BTC-24APR26-70000-C": 1.0, "BTC-26JUN26-70000-C": 1.0}
    )
    notes = DeriveMethod.load(str(path)).margin(book, DEMO).notes
    assert any("3 expiries, above Derive's 2 per sub-account" in n for n in notes)
    t0 = datetime(2026, 2, 25, 8, tzinfo=UTC)
    market = build_market(
        valuation_time=t0,
        underlyings={"ETH": UnderlyingQuote(3500.0, -0.02), "USDC": UnderlyingQuote(0.97)},
        options={"ETH-27MAR26-3500-C": OptionQuote(mark_iv=0.6)},
    )
    r = MAINNET.margin(pm.Portfolio.of({"ETH-27MAR26-3500-C": -1.0}), market)
    assert any("rate -0.02 floored at 0" in n for n in r.notes)
    assert any("stable price 0.97" in n for n in r.notes)
    # below the 0.99 peg threshold the IM factor rises by (0.99 − 0.97)·4 (§9)
    assert r.components["im_peg_adjustment"] == pytest.approx(
        0.08 * r.components["im_scenario_loss"], rel=1e-12
    )
