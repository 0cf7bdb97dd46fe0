from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from portmargin.errors import MarketDataError
from portmargin.instruments import ProductSpec, Settlement
from portmargin.market import OptionQuote, UnderlyingQuote, build_market, demo_market, year_fraction
from portmargin.pricing import black76_price

T0 = datetime(2026, 2, 25, 8, tzinfo=UTC)
EXP = datetime(2026, 3, 27, 8, tzinfo=UTC)


def test_year_fraction_is_act365_from_timestamps() -> None:
    # 30 days exactly, ACT/365: 30/365, not 30/365.25.
    assert year_fraction(T0, EXP) == pytest.approx(30 / 365, abs=1e-15)


def test_missing_price_is_black76_over_forward_for_inverse() -> None:
    m = build_market(
        valuation_time=T0,
        underlyings={"BTC": UnderlyingQuote(70000.0)},
        futures={"BTC-27MAR26": 70500.0},
        options={"BTC-27MAR26-70000-C": OptionQuote(mark_iv=0.55)},
    )
    inst = m.instrument("BTC-27MAR26-70000-C")
    # Deribit's convention (reference/deribit.md §1.4): coin mark = B76(F, K, σ, T, D=1) / F.
    expected = float(black76_price(70500.0, 70000.0, 30 / 365, 0.55, True)) / 70500.0
    assert m.mark_price(inst) == pytest.approx(expected, rel=1e-14)


def test_missing_vol_is_implied_from_price() -> None:
    # Linear XYZ option quoted in USD per unit, discounted at r = 4 %, no futures: F = S·e^{rT}.
    t = 23 / 365
    spot, r = 95.0, 0.04
    fwd = spot * math.exp(r * t)
    usd = float(black76_price(fwd, 80.0, t, 0.4, False, df=math.exp(-r * t)))
    m = build_market(
        valuation_time=T0,
        underlyings={"XYZ": UnderlyingQuote(spot, rate=r)},
        products={"XYZ": ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 100.0)},
        options={"XYZ-20MAR26-80-P": OptionQuote(mark_price=usd)},
    )
    assert m.option_iv["XYZ-20MAR26-80-P"] == pytest.approx(0.4, abs=1e-10)
    assert m.mark_price(m.instrument("XYZ-20MAR26-80-P")) == usd


def test_forward_from_carry_interpolation_and_spot_fallback() -> None:
    m = build_market(
        valuation_time=T0,
        underlyings={
            "BTC": UnderlyingQuote(70000.0, rate=0.03),
            "ETH": UnderlyingQuote(3500.0, rate=0.02),
        },
        futures={"BTC-27MAR26": 70500.0, "BTC-26JUN26": 72000.0},
    )
    # Explicit forward wins.
    assert m.forward("BTC", EXP) == 70500.0
    # Between two futures: carry b = ln(F/S)/T interpolated linearly in T.
    t1, t2 = year_fraction(T0, EXP), year_fraction(T0, datetime(2026, 6, 26, 8, tzinfo=UTC))
    b1, b2 = math.log(70500 / 70000) / t1, math.log(72000 / 70000) / t2
    mid = datetime(2026, 4, 24, 8, tzinfo=UTC)
    t = year_fraction(T0, mid)
    b = b1 + (b2 - b1) * (t - t1) / (t2 - t1)
    assert m.forward("BTC", mid) == pytest.approx(70000 * math.exp(b * t), rel=1e-13)
    # No futures at all: S·e^{rT}.
    assert m.forward("ETH", EXP) == pytest.approx(3500 * math.exp(0.02 * t1), rel=1e-14)


@pytest.mark.parametrize(
    ("quote", "match"),
    [
        (OptionQuote(mark_iv=-0.1), "mark_iv"),
        (OptionQuote(mark_iv=float("nan")), "mark_iv"),
        (OptionQuote(), "needs mark_iv or mark_price"),
        (OptionQuote(mark_price=2.0), "no-arbitrage"),  # a call worth 2 coins on 1 coin
    ],
)
def test_bad_quotes_are_rejected(quote: OptionQuote, match: str) -> None:
    with pytest.raises(MarketDataError, match=match):
        build_market(
            valuation_time=T0,
            underlyings={"BTC": UnderlyingQuote(70000.0)},
            options={"BTC-27MAR26-70000-C": quote},
        )


def test_naive_time_and_bad_spot_rejected() -> None:
    with pytest.raises(MarketDataError, match="time zone"):
        build_market(valuation_time=datetime(2026, 1, 1), underlyings={"BTC": UnderlyingQuote(1.0)})
    with pytest.raises(MarketDataError, match="spot"):
        build_market(valuation_time=T0, underlyings={"BTC": UnderlyingQuote(0.0)})


def test_unquoted_option_takes_surface_vol_between_quotes() -> None:
    m = demo_market()
    quoted = [m.instrument(n) for n in ("BTC-27MAR26-70000-C", "BTC-27MAR26-71000-C")]
    v0, v1 = m.option_vols(quoted)
    mid = m.option_vols([m.instrument("BTC-27MAR26-70500-C")])[0]
    assert min(v0, v1) <= mid <= max(v0, v1)


def test_surface_flat_beyond_wings() -> None:
    m = demo_market()
    far = m.option_vols(
        [m.instrument("BTC-27MAR26-500000-C"), m.instrument("BTC-27MAR26-900000-C")]
    )
    assert far[0] == pytest.approx(far[1], abs=1e-12)


def test_surface_total_variance_interpolation_across_expiries() -> None:
    m = demo_market()
    surf = m.surfaces["BTC"]
    s0, s1 = surf.slices[4], surf.slices[5]
    t = 0.5 * (s0.T + s1.T)
    k = np.array([0.0])
    w = 0.5 * (float(s0.at(k)[0]) ** 2 * s0.T + float(s1.at(k)[0]) ** 2 * s1.T)
    assert float(surf.vol(np.array([t]), k)[0]) == pytest.approx(math.sqrt(w / t), rel=1e-12)


def test_demo_market_is_deterministic_and_realistic() -> None:
    a, b = demo_market(), demo_market()
    assert a.option_price == b.option_price
    assert a.index_price("BTC") == 70000.0
    assert a.index_price("ETH") == 3500.0
    # Put skew: a 20 % OTM put has a higher vol than the ATM option.
    otm, atm = a.option_vols(
        [a.instrument("BTC-27MAR26-56000-P"), a.instrument("BTC-27MAR26-70000-P")]
    )
    assert otm > atm
