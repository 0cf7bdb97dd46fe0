"""The example books: premium received in cash at the demo marks, healthy at the start."""

from __future__ import annotations

from pathlib import Path

import pytest

import portmargin as pm
from portmargin.examples import STRADDLE_DEPOSIT, example_portfolios, linear_portfolios

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BOOKS = [b for _, b in example_portfolios() + linear_portfolios()]


def _premium(book: pm.Portfolio, market: pm.MarketSnapshot) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, qty in book.net_positions().items():
        inst = market.instrument(name)
        if inst.kind.value == "option" and qty < 0:
            t = pm.instrument_table([inst], market)
            ccy = inst.settlement_currency
            out[ccy] = out.get(ccy, 0.0) - qty * float(t.mark_settle[0])
    return out


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.name)
def test_cash_is_the_premium_received(book: pm.Portfolio) -> None:
    market = pm.demo_market()
    expected = _premium(book, market)
    held = {"five_line_book": {"BTC": 1.0, "ETH": 1.0}}.get(book.name, {})
    if book.name.startswith("hedged_straddle"):
        held = {k: v for k, v in STRADDLE_DEPOSIT.items() if k in book.cash}
    for ccy, amount in book.cash.items():
        assert amount == pytest.approx(expected.get(ccy, 0.0) + held.get(ccy, 0.0), abs=1e-8)


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.name)
@pytest.mark.parametrize("model", ["deribit", "span16"])
def test_books_start_healthy(book: pm.Portfolio, model: str) -> None:
    r = pm.margin(book, pm.demo_market(), model)
    for pool in r.by_currency:
        assert pool.equity >= pool.initial_margin, (book.name, pool.currency)


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.name)
def test_json_files_match_the_package(book: pm.Portfolio) -> None:
    on_disk = pm.load_portfolio(EXAMPLES / f"{book.name}.json")
    assert on_disk.net_positions() == book.net_positions()
    assert dict(on_disk.cash) == dict(book.cash)
