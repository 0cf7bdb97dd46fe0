"""Hypothesis properties shared by every model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portmargin as pm
from portmargin.models import MarginModel, load_model

MARKET = pm.demo_market()
MODELS = {name: load_model(name) for name in ("deribit", "span", "tims")}
NAMES = [
    "BTC-27MAR26-60000-P",
    "BTC-27MAR26-70000-C",
    "BTC-27MAR26-80000-C",
    "BTC-24APR26-70000-P",
    "BTC-PERPETUAL",
    "BTC-27MAR26",
    "ETH-27MAR26-3500-C",
    "ETH-27MAR26-3000-P",
    "ETH-PERPETUAL",
]
QTY = st.floats(min_value=-5, max_value=5, allow_nan=False).map(lambda x: round(x, 2))
BOOKS = st.dictionaries(st.sampled_from(NAMES), QTY, min_size=1, max_size=5)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(MODELS))
@FAST
@given(book=BOOKS)
def test_margin_is_non_negative_and_components_add_up(name: str, book: dict[str, float]) -> None:
    model: MarginModel = MODELS[name]
    r = model.margin(pm.Portfolio.of(book), MARKET)
    assert r.initial_margin >= -1e-9
    assert r.maintenance_margin >= -1e-9
    assert r.initial_margin >= r.maintenance_margin - 1e-9
    for pool in r.by_currency:
        risk = sum(v for k, v in pool.components.items() if k not in pool.im_only_components)
        extra = sum(pool.components[k] for k in pool.im_only_components)
        p = model.params
        assert pool.initial_margin == pytest.approx(p.im_multiplier * risk + extra, abs=1e-9)
        assert pool.maintenance_margin == pytest.approx(p.mm_multiplier * risk, abs=1e-9)
    for u in r.by_underlying:
        assert u.requirement == pytest.approx(sum(u.components.values()), abs=1e-9)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_flat_book_needs_nothing(name: str) -> None:
    r = MODELS[name].margin(pm.Portfolio.of({"BTC-PERPETUAL": 1, "ETH-PERPETUAL": 0}), MARKET)
    flat = MODELS[name].margin(pm.Portfolio.of({}), MARKET)
    assert flat.initial_margin == 0.0
    assert flat.maintenance_margin == 0.0
    offset = MODELS[name].margin(
        pm.Portfolio.of({}).with_trades({"BTC-PERPETUAL": 1}).with_trades({"BTC-PERPETUAL": -1}),
        MARKET,
    )
    assert offset.initial_margin == 0.0
    assert r.initial_margin > 0


@FAST
@given(book=BOOKS, extra=st.sampled_from([n for n in NAMES if n.endswith(("-C", "-P"))]))
def test_long_option_never_raises_span_scan_by_more_than_its_value(
    book: dict[str, float], extra: str
) -> None:
    # span_tims.md §1.4: a long option can lose at most its value in any scenario, so the
    # scanning risk rises by at most that value (USD pool; one contract, multiplier 1).
    model = MODELS["span"]
    base = model.margin(pm.Portfolio.of(book), MARKET)
    more = model.margin(pm.Portfolio.of(book).with_trades({extra: 1.0}), MARKET)
    und = extra.split("-")[0]
    inst = MARKET.instrument(extra)
    table = pm.instrument_table([inst], MARKET)
    value = float(table.value_usd[0])

    def scan(r: pm.MarginResult) -> float:
        return sum(u.scanning_risk for u in r.by_underlying if u.underlying == und)

    assert scan(more) <= scan(base) + value + 1e-6
