"""The realised loss of a single option equals an independent Black-76 repricing (QuantLib).

The book: one short 25-delta BTC call, 30 days, struck at the close of 2024-06-30; the
loss to the close of 2024-07-02 (h = 2). The independent repricing takes the history's
closes and DVOL, the smile written out again here (σ_ATM = 0.96·DVOL/100,
x = clip(ln(K/F)/(σ_ATM·√T), ±2.5), σ = σ_ATM·(1 − 0.10·x + 0.06·x²); docs/backtest.md),
and QuantLib's ``blackFormula`` (r = 0, F = S).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pytest

from portmargin.backtest.market import day_market, day_state
from portmargin.backtest.runner import book_pnl, run_backtest
from portmargin.backtest.strategies import Leg, Strategy, build_book
from portmargin.methods import load_method
from portmargin.pricing import black76_delta
from portmargin.var.history import shipped_history

ql = pytest.importorskip("QuantLib")

DAY = date(2024, 6, 30)
LATER = date(2024, 7, 2)
ONE_CALL = Strategy("one-call", "short 25-delta call", (Leg(0.25, -1.0, True),))


def _smile(dvol: float, k: float, t: float) -> float:
    atm = 0.96 * dvol / 100.0
    x = min(max(k / (atm * math.sqrt(t)), -2.5), 2.5)
    return atm * (1.0 - 0.10 * x + 0.06 * x * x)


def _ql_call(f: float, k: float, t: float, sigma: float) -> float:
    return float(ql.blackFormula(ql.Option.Call, k, f, sigma * math.sqrt(t), 1.0))


def _independent() -> tuple[str, float, float, float]:
    h = shipped_history()
    i, j = h.index(DAY), h.index(LATER)
    s0, s1 = float(h.closes["BTC"][i]), float(h.closes["BTC"][j])
    d0, d1 = float(h.dvol["BTC"][i]), float(h.dvol["BTC"][j])
    state = day_state(h, DAY, ["BTC"])
    book = build_book(ONE_CALL, state, ("BTC",), tenor_days=30, size=1.0, horizon_days=2)
    (name,) = book.positions
    strike = float(name.split("-")[2])
    expiry = datetime(2024, 7, 31, 8, 0, tzinfo=UTC)  # 30 days after the close of 06-30
    assert name == f"BTC-31JUL24-{int(strike)}-C"
    t0 = (expiry - datetime(2024, 7, 1, tzinfo=UTC)).total_seconds() / (365 * 86400)
    t1 = t0 - 2 / 365
    v0 = _ql_call(s0, strike, t0, _smile(d0, math.log(strike / s0), t0))
    v1 = _ql_call(s1, strike, t1, _smile(d1, math.log(strike / s1), t1))
    usd_loss = v1 - v0  # short one call
    coin_loss = v1 / s1 - v0 / s0  # coin P&L valued at each day's price
    return name, usd_loss, coin_loss, s0


def test_strike_is_the_25_delta_call() -> None:
    h = shipped_history()
    state = day_state(h, DAY, ["BTC"])
    name, *_ = _independent()
    strike = float(name.split("-")[2])
    s0 = state.spot["BTC"]
    t0 = (31 - 0.0 + 8 / 24 - 1) / 365  # 2024-07-01 00:00 → 2024-07-31 08:00
    sig = _smile(state.dvol["BTC"], math.log(strike / s0), t0)
    delta = float(black76_delta(s0, strike, t0, sig, np.array([True]))[0])
    assert delta == pytest.approx(0.25, abs=0.01)  # rounded to a 100 USD strike grid


def test_book_pnl_equals_quantlib() -> None:
    h = shipped_history()
    name, usd_loss, coin_loss, _ = _independent()
    m0 = day_market(day_state(h, DAY, ["BTC"]), [name])
    m1 = day_market(day_state(h, LATER, ["BTC"]), [name])
    from portmargin.backtest.strategies import Book

    pnl = book_pnl(Book({name: -1.0}), m0, m1)
    assert -pnl["USD"] == pytest.approx(usd_loss, rel=1e-9, abs=1e-8)
    assert -pnl["BTC"] == pytest.approx(coin_loss, rel=1e-9, abs=1e-12)


def test_the_backtest_reports_the_same_loss_in_each_pool() -> None:
    h = shipped_history()
    _, usd_loss, coin_loss, s0 = _independent()
    methods = [("span16", load_method("span16")), ("deribit", load_method("deribit"))]
    res = run_backtest(
        ONE_CALL, ["BTC"], methods, history=h, start=DAY, end=DAY, horizon_days=2, tenor_days=30
    )
    span16, deribit = res.models
    assert span16.loss[0] == pytest.approx(usd_loss, rel=1e-9)  # one USD pool (cross)
    assert deribit.loss[0] == pytest.approx(coin_loss * s0, rel=1e-9)  # BTC pool, USD at t
    assert bool(span16.hits[0]) == (usd_loss > span16.margin[0])
