"""Issue: every figure leaving the market layer is finite, every input bounded.

One validation (portmargin.market.limits) serves build_market and both file loaders: the
same input is refused the same way whether it comes from Python, JSON or a Deribit chain.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import portmargin as pm
from portmargin.errors import InputError, InstrumentError, MarketDataError, PortmarginError
from portmargin.instruments import ProductSpec, Settlement
from portmargin.market import OptionQuote, UnderlyingQuote, build_market, limits

T0 = datetime(2026, 2, 25, 8, tzinfo=UTC)
XYZ = ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 100.0)


def _build(**over: Any) -> pm.MarketSnapshot:
    args: dict[str, Any] = {
        "valuation_time": T0,
        "underlyings": {"BTC": UnderlyingQuote(70_000.0), "XYZ": UnderlyingQuote(95.0)},
        "products": {"XYZ": XYZ},
        "futures": {"BTC-27MAR26": 70_500.0},
        "options": {"BTC-27MAR26-70000-C": OptionQuote(mark_iv=0.55)},
    }
    args.update(over)
    return build_market(**args)


BAD: list[tuple[str, Callable[[], object], str]] = [
    ("spot 1e306", lambda: _build(underlyings={"BTC": UnderlyingQuote(1e306)}), "BTC.spot"),
    ("spot 0", lambda: _build(underlyings={"BTC": UnderlyingQuote(0.0)}), "BTC.spot"),
    ("spot nan", lambda: _build(underlyings={"BTC": UnderlyingQuote(math.nan)}), "BTC.spot"),
    (
        "perpetual 1e10",
        lambda: _build(underlyings={"BTC": UnderlyingQuote(7e4, 0.0, 1e10)}),
        "BTC.perpetual",
    ),
    ("rate 1e5", lambda: _build(underlyings={"BTC": UnderlyingQuote(7e4, 1e5)}), "BTC.rate"),
    ("rate -2", lambda: _build(underlyings={"BTC": UnderlyingQuote(7e4, -2.0)}), "BTC.rate"),
    ("future 1e300", lambda: _build(futures={"BTC-27MAR26": 1e300}), "futures.BTC-27MAR26"),
    (
        "forward 1e300",
        lambda: _build(forwards={("BTC", datetime(2026, 4, 24, 8, tzinfo=UTC)): 1e300}),
        "forwards.BTC.24APR26",
    ),
    (
        "mark_iv 25",
        lambda: _build(options={"BTC-27MAR26-70000-C": OptionQuote(mark_iv=25.0)}),
        "mark_iv",
    ),
    (
        "mark_price 1e300",
        lambda: _build(options={"XYZ-20MAR26-80-P": OptionQuote(mark_price=1e300)}),
        "mark_price",
    ),
    (
        "multiplier 1e308",
        lambda: _build(
            products={"XYZ": ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 1e308)}
        ),
        "products.XYZ.multiplier",
    ),
    ("year 1999", lambda: _build(valuation_time=datetime(1999, 12, 31, tzinfo=UTC)), "valuation"),
    ("year 2100", lambda: _build(valuation_time=datetime(2100, 1, 1, tzinfo=UTC)), "valuation"),
    (
        "settlement 1e300",
        lambda: _build(settlements={("BTC", datetime(2026, 2, 20, 8, tzinfo=UTC)): 1e300}),
        "settlements.BTC.20FEB26",
    ),
]


@pytest.mark.parametrize(("label", "call", "field"), BAD, ids=[b[0] for b in BAD])
def test_out_of_bounds_inputs_are_refused_in_one_line(
    label: str, call: Callable[[], object], field: str
) -> None:
    with pytest.raises(MarketDataError) as info:
        call()
    msg = str(info.value)
    assert field in msg
    assert "\n" not in msg
    assert "np.float64" not in msg


def test_strike_beyond_limit_is_an_instrument_error() -> None:
    with pytest.raises(InstrumentError, match="strike"):
        _build(options={"XYZ-20MAR26-10000000000-P": OptionQuote(mark_iv=0.3)})
    m = _build()
    with pytest.raises(InstrumentError, match="strike"):
        m.instrument("BTC-27MAR26-10000000000-P")


def test_python_api_and_json_file_refuse_the_same_vol(tmp_path: Path) -> None:
    # build_market used to accept mark_iv = 25 that the file loader refused.
    with pytest.raises(MarketDataError) as api:
        _build(options={"BTC-27MAR26-70000-C": OptionQuote(mark_iv=25.0)})
    doc = {
        "valuation_time": "2026-02-25T08:00:00Z",
        "underlyings": {"BTC": {"spot": 70000.0}},
        "options": {"BTC-27MAR26-70000-C": {"mark_iv": 25}},
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as file:
        pm.load_market(path)
    assert str(api.value) in str(file.value)
    assert str(file.value).startswith(str(path))


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"underlyings": {"BTC": {"spot": 1e306}}}, "underlyings.BTC.spot"),
        ({"underlyings": {"BTC": {"spot": 7e4, "rate": 1e5}}}, "underlyings.BTC.rate"),
        ({"futures": {"BTC-27MAR26": {"mark_price": 1e300}}}, "futures.BTC-27MAR26"),
        (
            {"products": {"XYZ": {"settlement": "linear", "multiplier": 1e308}}},
            "products.XYZ: multiplier",
        ),
        ({"options": {"BTC-27MAR26-70000-C": {"mark_price": 1e300}}}, "mark_price"),
        ({"settlements": {"BTC": {"20FEB26": -5}}}, "settlements.BTC.20FEB26"),
        ({"valuation_time": "1999-01-01T00:00:00Z"}, "valuation_time"),
    ],
)
def test_json_bounds(tmp_path: Path, section: dict[str, Any], field: str) -> None:
    doc: dict[str, Any] = {
        "valuation_time": "2026-02-25T08:00:00Z",
        "underlyings": {"BTC": {"spot": 70000.0}, "XYZ": {"spot": 95.0}},
    }
    doc.update(section)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as info:
        pm.load_market(path)
    msg = str(info.value)
    assert field in msg and str(path) in msg
    assert "\n" not in msg and "np.float64" not in msg


def test_limits_are_the_documented_ones() -> None:
    assert (limits.PRICE_MIN, limits.PRICE_MAX) == (1e-8, 1e9)
    assert limits.VOL_MAX == 10.0 and limits.RATE_MAX == 1.0
    assert limits.MULTIPLIER_MAX == 1e6 and limits.VOL_FLOOR == 0.01
    assert limits.TIME_MIN.year == 2000 and limits.TIME_MAX.year == 2100


@pytest.mark.parametrize("model", ["deribit", "span16"])
@pytest.mark.parametrize("cross", [False, True])
def test_figures_are_finite_at_the_corners_of_the_bounds(model: str, cross: bool) -> None:
    # The largest accepted spot, rate, vol, multiplier and strike, the longest horizon
    # (2000 → 2099) and the smallest spot: nothing overflows (float64 ends near 1.8e308).
    m = build_market(
        valuation_time=datetime(2000, 1, 3, 8, tzinfo=UTC),
        underlyings={"XYZ": UnderlyingQuote(1e9, rate=1.0), "BTC": UnderlyingQuote(1e-8, -1.0)},
        products={"XYZ": ProductSpec("XYZ", "XYZ", Settlement.LINEAR, "USD", 1e6)},
        options={
            "XYZ-25DEC99-1000000000-C": OptionQuote(mark_iv=10.0),
            "XYZ-25DEC99-1000000000-P": OptionQuote(mark_iv=10.0),
            "BTC-25DEC99-1000000000-P": OptionQuote(mark_iv=10.0),
            "BTC-25DEC99-1-C": OptionQuote(mark_iv=1e-3),
        },
    )
    assert all(math.isfinite(v) for v in m.option_price.values())
    mdl = pm.load_model(model, cross=cross if model == "deribit" else None)
    for name in m.option_names():
        for q in (-1.0, 1.0):
            r = mdl.margin(pm.Portfolio.of({name: q}), m)
            figures = (r.initial_margin, r.maintenance_margin, r.equity)
            assert all(math.isfinite(x) for x in figures), (name, q, figures)


def test_messages_format_floats_without_numpy_reprs() -> None:
    with pytest.raises(PortmarginError) as info:
        _build(options={"BTC-27MAR26-70000-C": OptionQuote(mark_price=2.0)})
    assert "2.0" in str(info.value) and "np.float64" not in str(info.value)
    assert limits.fmt(np.float64(8.4)) == "8.4"
