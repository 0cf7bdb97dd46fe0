"""Quote provenance, immutable snapshots and the market perturbation ``shift``."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import portmargin as pm
from portmargin.errors import MarketDataError
from portmargin.market import (
    MarketSnapshot,
    OptionQuote,
    QuoteSource,
    UnderlyingQuote,
    build_market,
    shift,
)
from portmargin.models import load_model
from portmargin.pricing import black76_price

MARKET = pm.demo_market()
MAR27 = datetime(2026, 3, 27, 8, tzinfo=UTC)
APR24 = datetime(2026, 4, 24, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("BTC-27MAR26-70000-C", "quoted"),  # in the market's option quotes
        ("BTC-27MAR26-70500-C", "interpolated"),  # a strike the market does not list
        ("BTC-27MAR26", "quoted"),  # a marked future
        ("BTC-24APR26", "interpolated"),  # forward from the carry between futures
        ("BTC-PERPETUAL", "perpetual"),
        ("BTC_USDC", "index"),
        ("BTC-20FEB26-70000-C", "settled"),  # before the demo's 2026-02-25
        ("BTC-20FEB26", "settled"),
    ],
)
def test_quote_source(name: str, source: str) -> None:
    inst = MARKET.instrument(name)
    assert MARKET.quote_source(inst) == source
    assert MARKET.quote_source(inst) is QuoteSource(source)
    assert pm.instrument_table([inst], MARKET).quote_source[0] == source


def test_perpetual_without_mark_is_the_index_and_unknown_underlying_raises() -> None:
    m = build_market(
        valuation_time=MARKET.valuation_time, underlyings={"BTC": UnderlyingQuote(7e4)}
    )
    assert m.quote_source(m.instrument("BTC-PERPETUAL")) == "index"
    with pytest.raises(MarketDataError, match="ETH"):
        m.quote_source(m.instrument("ETH-PERPETUAL"))


# -- immutability ---------------------------------------------------------------------------
def test_replace_and_direct_construction_are_refused() -> None:
    with pytest.raises(TypeError, match="shift"):
        dataclasses.replace(MARKET, underlyings={})
    fields = {f.name: getattr(MARKET, f.name) for f in dataclasses.fields(MARKET) if f.init}
    with pytest.raises(TypeError, match="build_market"):
        MarketSnapshot(**fields)


def test_arrays_held_by_frozen_values_are_read_only() -> None:
    slice_ = MARKET.surfaces["BTC"].slices[0]
    names = ["BTC-27MAR26-70000-C", "BTC-27MAR26", "BTC-PERPETUAL"]
    table = pm.instrument_table([MARKET.instrument(n) for n in names], MARKET)
    ra = pm.risk_array(table, load_model("deribit").scenario_set("BTC"))
    arrays: list[np.ndarray] = [slice_.k, slice_.vol, table.F, table.sigma, table.value_usd]
    arrays += [table.settled, table.quote_source, ra.pnl_settle, ra.pnl_usd]
    for a in arrays:
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[0] = a[0]


# -- shift ----------------------------------------------------------------------------------
def test_spot_shift_moves_index_perpetual_futures_and_forwards_together() -> None:
    moved = shift(MARKET, spot={"BTC": 0.97})
    assert moved.index_price("BTC") == 0.97 * MARKET.index_price("BTC")
    assert moved.perpetual_price("BTC") == 0.97 * MARKET.perpetual_price("BTC")
    assert moved.futures["BTC-27MAR26"] == 0.97 * MARKET.futures["BTC-27MAR26"]
    assert moved.forward("BTC", MAR27) == 0.97 * MARKET.forward("BTC", MAR27)
    # Forward and spot scale together, so the carry is unchanged: interpolated forwards
    # scale by the same factor.
    assert moved.forward("BTC", APR24) == pytest.approx(
        0.97 * MARKET.forward("BTC", APR24), rel=1e-14
    )
    # Sticky strike: same vol, Black-76 coin price on the new forward (reference/deribit.md
    # §1.4: coin mark = B76(F, K, σ, T, D = 1)/F).
    name = "BTC-27MAR26-70000-C"
    iv = MARKET.option_iv[name]
    assert moved.option_iv[name] == iv
    f, t = moved.forward("BTC", MAR27), moved.year_fraction(MAR27)
    assert moved.option_price[name] == pytest.approx(
        float(black76_price(f, 70000.0, t, iv, True)) / f, rel=1e-14
    )
    # ETH does not move: its quotes and marks are exactly the original ones.
    eth = MARKET.option_names("ETH")
    assert [moved.option_price[n] for n in eth] == [MARKET.option_price[n] for n in eth]
    assert moved.index_price("ETH") == MARKET.index_price("ETH")
    # The original is untouched.
    assert MARKET.index_price("BTC") == 70_000.0


def test_vol_shift_and_time_shift() -> None:
    moved = shift(MARKET, vol={"ETH": 1.1}, vol_add={"ETH": 0.02})
    name = "ETH-27MAR26-3500-C"
    assert moved.option_iv[name] == pytest.approx(MARKET.option_iv[name] * 1.1 + 0.02, rel=1e-15)
    assert moved.option_iv["BTC-27MAR26-70000-C"] == MARKET.option_iv["BTC-27MAR26-70000-C"]
    later = shift(MARKET, time=timedelta(hours=6))
    assert later.valuation_time == MARKET.valuation_time + timedelta(hours=6)
    assert later.option_iv[name] == MARKET.option_iv[name]
    assert later.year_fraction(MAR27) == pytest.approx(
        MARKET.year_fraction(MAR27) - 6 / 8760, abs=1e-15
    )


def test_identity_shift_is_the_same_market() -> None:
    same = shift(MARKET)
    assert same.option_price == MARKET.option_price
    assert same.option_iv == MARKET.option_iv
    assert same.forwards == MARKET.forwards and same.futures == MARKET.futures


def test_shift_keeps_below_intrinsic_warnings_of_unmoved_underlyings() -> None:
    m = build_market(
        valuation_time=MARKET.valuation_time,
        underlyings={"BTC": UnderlyingQuote(7e4), "ETH": UnderlyingQuote(3500.0)},
        options={"ETH-27MAR26-4000-P": OptionQuote(mark_price=0.14)},  # intrinsic 0.1429 ETH
    )
    assert len(m.warnings) == 1
    assert shift(m, spot={"BTC": 1.01}).warnings == m.warnings


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spot": {"BTC": 0.0}}, "spot.BTC"),
        ({"spot": {"BTC": math.nan}}, "spot.BTC"),
        ({"spot": {"SOL": 1.1}}, "SOL"),
        ({"vol_add": -5.0}, "mark_iv"),
        ({"rate": 3.0}, "rate"),
    ],
)
def test_bad_shifts_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(MarketDataError, match=match) as info:
        shift(MARKET, **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith("shift: ")


def test_margin_on_a_shifted_market_is_consistent_with_a_rebuilt_one() -> None:
    # A market built from scratch with the moved inputs margins identically.
    moved = shift(MARKET, spot=0.9)
    rebuilt = build_market(
        valuation_time=MARKET.valuation_time,
        underlyings={
            u: UnderlyingQuote(
                q.spot * 0.9, q.rate, None if q.perpetual is None else q.perpetual * 0.9
            )
            for u, q in MARKET.underlyings.items()
        },
        futures={n: f * 0.9 for n, f in MARKET.futures.items()},
        options={n: OptionQuote(mark_iv=v) for n, v in MARKET.option_iv.items()},
        settlements=MARKET.settlements,
    )
    book = pm.Portfolio.of({"BTC-27MAR26-65000-P": -1, "ETH-24APR26-3000-P": -3})
    a, b = pm.margin(book, moved, "span16"), pm.margin(book, rebuilt, "span16")
    assert a.initial_margin == pytest.approx(b.initial_margin, rel=1e-12)
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-12)
