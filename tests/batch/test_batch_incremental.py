"""Incremental recompute after one underlying moves equals a full recompute."""

from __future__ import annotations

import numpy as np
import pytest
from batch_books import random_books

import portmargin as pm
from portmargin.batch import MarginSession
from portmargin.market import MarketSnapshot, shift


def _moved(market: MarketSnapshot, und: str, factor: float) -> MarketSnapshot:
    # Index, perpetual, futures and forwards of ``und`` move together; ETH is untouched.
    return shift(market, spot={und: factor})


@pytest.mark.parametrize(
    ("name", "cross"), [("deribit", False), ("deribit", True), ("span16", None)]
)
def test_incremental_tick_equals_full_recompute(name: str, cross: bool | None) -> None:
    market = pm.demo_market()
    model = pm.load_model(name, cross=cross)
    positions, cash = random_books(market, 150, seed=11)
    # some accounts hold ETH only, so the BTC tick must leave them alone
    for a in range(20):
        positions[f"eth{a}"] = dict.fromkeys(market.option_names("ETH")[a : a + 2], -1.0)
    session = MarginSession(market, model)
    book = session.book_from_positions(positions, cash)
    before = session.margin(book)
    after_market = _moved(market, "BTC", 0.97)
    ticked = session.with_market(after_market, moved={"BTC"})
    assert ticked.arrays["ETH"] is session.arrays["ETH"]  # reused, not recomputed
    incremental, touched = ticked.remargin(book, before, moved={"BTC"})
    full = MarginSession(after_market, model).margin(book)
    assert 0 < touched.size < len(book)
    for field in ("initial_margin", "maintenance_margin", "equity", "binding_scenario"):
        np.testing.assert_allclose(getattr(incremental, field), getattr(full, field), rtol=1e-12)
    np.testing.assert_array_equal(incremental.present, full.present)
