"""VaR / ES of hand-built books under a tiny historical set, worked by hand.

The estimators are the empirical ones of McNeil, Frey & Embrechts, *Quantitative Risk
Management* (2015), §2.2, over ``n`` equally likely scenarios with ``m = ⌈(1 − α)·n⌉``:
VaR is the m-th largest loss, ES the mean of the m largest; a pool's BTC and ETH are
measured on their summed P&L per day and allocated by Euler contributions (Tasche 1999).

History: 31 days, so 30 one-day scenarios (plain historical simulation, h = 1). Every
day BTC and ETH move +0.1 % except the days below; DVOL is flat unless stated. Today's
market: BTC 50,000, ETH 2,000 USD, r = 0. The book: long 1 BTC-PERPETUAL, short 10
ETH-PERPETUAL, in one USD pool (cross mode), whose USD P&L in scenario s is
``50,000·mB_s − 20,000·mE_s`` (an inverse perpetual's USD P&L is ``M·F·m``):

=====  =======  =======  ====================================
day s  mB       mE       P&L (USD)
=====  =======  =======  ====================================
5      −10 %    −12 %    −5,000 + 2,400 = −2,600
12     −4 %     +2 %     −2,000 − 400 = −2,400
18     +0.1 %   +5 %     50 − 1,000 = −950
20     +5 %     +0.1 %   2,500 − 20 = +2,480
25     −2 %     −5 %     −1,000 + 1,000 = 0
other  +0.1 %   +0.1 %   50 − 20 = +30
=====  =======  =======  ====================================

At α = 90 %, m = ⌈0.1·30⌉ = 3 (computed exactly: 0.1·30 is 3.0000000000000004 in floating
point and must not become 4): VaR = 950, ES = (2,600 + 2,400 + 950)/3 = 1,983.33; the ES
Euler contributions are BTC −(−5,000 − 2,000 + 50)/3 = 2,316.67 and ETH
−(2,400 − 400 − 1,000)/3 = −333.33 (they add up to the ES).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from portmargin.market import OptionQuote, UnderlyingQuote, build_market
from portmargin.portfolio import Portfolio
from portmargin.var.config import VarParams
from portmargin.var.history import History
from portmargin.var.model import VarModel

START = date(2024, 1, 1)
BTC_MOVES = {5: -0.10, 12: -0.04, 20: 0.05, 25: -0.02}
ETH_MOVES = {5: -0.12, 12: 0.02, 18: 0.05, 25: -0.05}
NOW = datetime(2024, 2, 1, 0, 0, tzinfo=UTC)


def _closes(moves: dict[int, float], first: float) -> list[float]:
    out = [first]
    for s in range(30):
        out.append(out[-1] * (1.0 + moves.get(s, 0.001)))
    return out


def tiny_history(btc_dvol: list[float] | None = None) -> History:
    dates = tuple(START + timedelta(days=i) for i in range(31))
    return History(
        dates,
        {
            "BTC": np.array(_closes(BTC_MOVES, 40_000.0)),
            "ETH": np.array(_closes(ETH_MOVES, 2_500.0)),
        },
        {"BTC": np.array(btc_dvol or [50.0] * 31), "ETH": np.full(31, 60.0)},
        "tiny",
    )


def spec(**over: Any) -> VarParams:
    data: dict[str, Any] = {
        "family": "var",
        "name": "golden",
        "version": "1",
        "method": "hs",
        "risk_measure": "es",
        "confidence": 0.9,
        "horizon_days": 1,
        "min_window_days": 30,
        "currency_mode": "cross",
        "joint_underlyings": True,
        "min_vol": 0.01,
    }
    data.update(over)
    return VarParams.model_validate(data)


def market(**options: float) -> Any:
    return build_market(
        valuation_time=NOW,
        underlyings={"BTC": UnderlyingQuote(50_000.0), "ETH": UnderlyingQuote(2_000.0)},
        options={k: OptionQuote(mark_iv=v) for k, v in options.items()},
    )


BOOK = Portfolio.of({"BTC-PERPETUAL": 1.0, "ETH-PERPETUAL": -10.0})


def test_the_scenarios_are_the_days_moves() -> None:
    model = VarModel(spec(), tiny_history())
    btc = model.scenario_set("BTC")
    assert len(btc) == 30
    assert btc.price_moves[5] == pytest.approx(-0.10, abs=1e-12)
    assert btc.price_moves[0] == pytest.approx(0.001, abs=1e-12)
    assert btc.groups[5] == (START + timedelta(days=6)).isoformat()  # the day the move ended
    assert btc.lookahead_years == pytest.approx(1 / 365)
    assert np.all(btc.vol_directions == 0.0)


def test_expected_shortfall_by_hand() -> None:
    res = VarModel(spec(), tiny_history()).margin(BOOK, market())
    assert res.currency == "USD"
    assert res.initial_margin == pytest.approx(5_950.0 / 3.0, rel=1e-9)
    by = {u.underlying: u.requirement for u in res.by_underlying}
    assert by["BTC"] == pytest.approx(6_950.0 / 3.0, rel=1e-9)
    assert by["ETH"] == pytest.approx(-1_000.0 / 3.0, rel=1e-9)


def test_value_at_risk_by_hand() -> None:
    res = VarModel(spec(risk_measure="var"), tiny_history()).margin(BOOK, market())
    assert res.initial_margin == pytest.approx(950.0, rel=1e-9)


def test_one_underlying_alone_by_hand() -> None:
    # long 1 BTC perpetual alone: losses 5,000 (day 5), 2,000 (day 12), 1,000 (day 25)
    res = VarModel(spec(), tiny_history()).margin(Portfolio.of({"BTC-PERPETUAL": 1.0}), market())
    assert res.initial_margin == pytest.approx(8_000.0 / 3.0, rel=1e-9)
    res = VarModel(spec(risk_measure="var"), tiny_history()).margin(
        Portfolio.of({"BTC-PERPETUAL": 1.0}), market()
    )
    assert res.initial_margin == pytest.approx(1_000.0, rel=1e-9)


def _b76_call(f: float, k: float, t: float, sigma: float) -> float:
    """Black (1976) call on a forward, r = 0: F·N(d1) − K·N(d2)."""
    sd = sigma * math.sqrt(t)
    d1 = (math.log(f / k) + 0.5 * sd * sd) / sd

    def n(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    return f * n(d1) - k * n(d1 - sd)


def test_short_put_with_dvol_moves_by_an_independent_formula() -> None:
    # BTC DVOL 50 → 60 on day 5 (+20 %), back to 50 on day 12 (−16.7 %), else flat; the
    # short put loses on the three down days (5, 12, 25): VaR is the third of those losses
    dvol = [50.0] * 31
    for i in range(6, 13):
        dvol[i] = 60.0
    hist = tiny_history(dvol)
    expiry = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    name = "BTC-1MAR24-48000-P"
    mkt = market(**{name: 0.5})
    t0 = (expiry - NOW).total_seconds() / (365 * 86400)
    t1 = t0 - 1 / 365  # one day of look-ahead (h = 1)

    def put(f: float, t: float, sigma: float) -> float:  # put-call parity at r = 0
        return _b76_call(f, 48_000.0, t, sigma) - f + 48_000.0

    v0 = put(50_000.0, t0, 0.5)
    closes = hist.closes["BTC"]
    losses = []
    for s in range(30):
        m = closes[s + 1] / closes[s] - 1.0
        rho = dvol[s + 1] / dvol[s]
        losses.append(put(50_000.0 * (1 + m), t1, 0.5 * rho) - v0)  # the short's loss
    worst = sorted(losses, reverse=True)
    assert worst[2] > 0  # three losing days
    book = Portfolio.of({name: -1.0})
    es = VarModel(spec(), hist).margin(book, mkt)
    var = VarModel(spec(risk_measure="var"), hist).margin(book, mkt)
    assert var.initial_margin == pytest.approx(worst[2], rel=1e-9)
    assert es.initial_margin == pytest.approx(sum(worst[:3]) / 3.0, rel=1e-9)


def test_stress_floor_by_hand() -> None:
    # stress period: days 1..8, windows ending by day 8 → 8 one-day scenarios (s = 0..7),
    # m = ⌈0.1·8⌉ = 1: the worst joint loss among them, 2,600 (day 5), above the ES 1,983.33
    stress = {
        "enabled": True,
        "periods": [{"start": START + timedelta(days=1), "end": START + timedelta(days=8)}],
    }
    res = VarModel(spec(stress=stress), tiny_history()).margin(BOOK, market())
    assert res.initial_margin == pytest.approx(2_600.0, rel=1e-9)
    assert res.components["var_stress_floor"] == pytest.approx(2_600.0 - 5_950.0 / 3.0, rel=1e-9)


def test_stress_floor_sees_coin_collateral() -> None:
    # short 1 BTC perpetual against 1 BTC of cash: flat in every scenario, stressed or not
    stress = {"enabled": True, "periods": [{"start": START, "end": START + timedelta(days=30)}]}
    book = Portfolio.of({"BTC-PERPETUAL": -1.0}, {"BTC": 1.0})
    res = VarModel(spec(stress=stress), tiny_history()).margin(book, market())
    assert res.initial_margin == pytest.approx(0.0, abs=1e-6)


def test_apc_buffer_is_im_only() -> None:
    apc = {"mode": "buffer", "buffer": 0.25}
    res = VarModel(spec(anti_procyclicality=apc), tiny_history()).margin(BOOK, market())
    assert res.initial_margin == pytest.approx(1.25 * 5_950.0 / 3.0, rel=1e-9)
    assert res.maintenance_margin == pytest.approx(5_950.0 / 3.0, rel=1e-9)


def test_liquidity_add_on_by_hand() -> None:
    # 300 short calls against an open interest of 1,000 coins: share 30 % > 1 %:
    # add-on = eta·√0.3·300·S·σ/√365 = 0.5·0.5477·300·50,000·0.5/19.105
    liq = {"enabled": True, "threshold": 0.01, "eta": 0.5, "open_interest": {"BTC": 1000.0}}
    name = "BTC-1MAR24-52000-C"
    book = Portfolio.of({name: -300.0})
    res = VarModel(spec(liquidity=liq), tiny_history()).margin(book, market(**{name: 0.5}))
    want = 0.5 * math.sqrt(0.3) * 300 * 50_000.0 * 0.5 / math.sqrt(365.0)
    assert res.components["var_liquidity"] == pytest.approx(want, rel=1e-12)
