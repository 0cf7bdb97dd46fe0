"""Issue: margin collapses near a future's expiry (the carry of a nearly expired future).

A dated future marked in its last hour used to give a carry ``ln(F/S)/T`` that explodes as
``T → 0`` (2.2e17 USD one minute before expiry, inf one second before). Golden values here
are the documented rule worked by hand (portmargin.market.snapshot module docstring):
``b = (ln(F/S) − rT)/max(T, 7 days) + r`` from forwards expiring after the 30-minute
settlement window, ``F = S·e^{bT}``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import portmargin as pm
from portmargin.market import OptionQuote, UnderlyingQuote, build_market, year_fraction

FRONT = datetime(2026, 3, 27, 8, tzinfo=UTC)  # BTC-27MAR26
APRIL = datetime(2026, 4, 24, 8, tzinfo=UTC)
SPOT, FUT = 70_000.0, 70_100.0  # a 100 USD basis on the front future
WEEK = 7 / 365


def _market(before: timedelta) -> pm.MarketSnapshot:
    return build_market(
        valuation_time=FRONT - before,
        underlyings={"BTC": UnderlyingQuote(SPOT)},
        futures={"BTC-27MAR26": FUT},
        options={
            "BTC-24APR26-70000-P": OptionQuote(mark_iv=0.5),
            "BTC_USDC-26JUN26-60000-P": OptionQuote(mark_iv=0.5),
        },
    )


BEFORE = [timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1)]


@pytest.mark.parametrize("before", BEFORE, ids=["1h", "1min", "1s"])
def test_later_forward_stays_near_spot(before: timedelta) -> None:
    m = _market(before)
    t_front = before.total_seconds() / 31_536_000
    t_april = year_fraction(FRONT - before, APRIL)
    if before > timedelta(minutes=30):
        # Outside the settlement window: a carry point annualised over at least a week.
        b = math.log(FUT / SPOT) / max(t_front, WEEK)
        expected = SPOT * math.exp(b * t_april)
    else:
        # Inside the window the front future is no carry point: F = S·e^{rT}, r = 0.
        expected = SPOT
    assert m.forward("BTC", APRIL) == pytest.approx(expected, rel=1e-13)
    assert abs(m.forward("BTC", APRIL) / SPOT - 1) < 0.01
    # The front future's own forward is still its mark.
    assert m.forward("BTC", FRONT) == FUT


@pytest.mark.parametrize("model", ["deribit", "span16"])
@pytest.mark.parametrize(
    "name", ["BTC-24APR26-70000-P", "BTC_USDC-26JUN26-60000-P"], ids=["apr-atm", "jun-usdc"]
)
def test_margin_positive_finite_and_stable_to_the_last_second(model: str, name: str) -> None:
    ims = []
    for before in BEFORE:
        r = pm.margin(pm.Portfolio.of({name: -1}), _market(before), model)
        assert math.isfinite(r.initial_margin) and r.initial_margin > 0
        assert math.isfinite(r.equity)
        ims.append(r.initial_margin)
    # One hour, one minute and one second before the front expiry are the same market for
    # an April or June option: the requirement barely moves.
    assert ims[1] == pytest.approx(ims[2], rel=1e-3)
    assert ims[0] == pytest.approx(ims[2], rel=0.05)


def test_future_at_its_expiry_is_settled_and_later_forwards_follow_the_rate() -> None:
    m = build_market(
        valuation_time=FRONT,
        underlyings={"BTC": UnderlyingQuote(SPOT, rate=0.02)},
        futures={"BTC-27MAR26": FUT},
    )
    assert m.is_expired(m.instrument("BTC-27MAR26"))
    assert any("BTC-27MAR26" in w for w in m.warnings)
    t = year_fraction(FRONT, APRIL)
    assert m.forward("BTC", APRIL) == pytest.approx(SPOT * math.exp(0.02 * t), rel=1e-14)


def test_carry_is_clipped_to_one_per_year() -> None:
    t0 = datetime(2026, 2, 25, 8, tzinfo=UTC)
    m = build_market(
        valuation_time=t0,
        underlyings={"BTC": UnderlyingQuote(SPOT)},
        futures={"BTC-27MAR26": 2 * SPOT},  # ln 2 over 30 days: 8.4 per year
    )
    later = datetime(2027, 2, 26, 8, tzinfo=UTC)
    assert m.forward("BTC", later) == pytest.approx(
        SPOT * math.exp(year_fraction(t0, later)), rel=1e-13
    )


@settings(max_examples=60, deadline=None)
@given(
    seconds=st.floats(min_value=1.0, max_value=400 * 86400.0),
    ratio=st.floats(min_value=0.5, max_value=2.0),
    years=st.floats(min_value=0.0, max_value=70.0),
)
def test_interpolated_forwards_are_finite_and_bounded(
    seconds: float, ratio: float, years: float
) -> None:
    # Any future mark within a factor 2 of spot, from one second to 400 days before its
    # expiry: every interpolated forward satisfies |ln(F/S)| ≤ 1·T (the carry clip).
    expiry = datetime(2026, 3, 27, 8, tzinfo=UTC)
    t0 = expiry - timedelta(seconds=seconds)
    m = build_market(
        valuation_time=t0,
        underlyings={"BTC": UnderlyingQuote(SPOT)},
        futures={"BTC-27MAR26": SPOT * ratio},
    )
    later = t0 + timedelta(days=365 * years + 1)
    f = m.forward("BTC", later)
    t = year_fraction(t0, later)
    assert math.isfinite(f)
    assert abs(math.log(f / SPOT)) <= t * (1 + 1e-12)
