"""Results as DataFrames and HTML tables."""

from __future__ import annotations

import pytest

import portmargin as pm
from portmargin.errors import InputError
from portmargin.frames import html_table, records

BOOK = pm.Portfolio.of(
    {"BTC-27MAR26-75000-C": -1, "ETH-27MAR26-3200-P": -1}, {"BTC": 1.0, "ETH": 1.0}
)


def test_margin_result_pools_positions_scenarios() -> None:
    r = pm.margin(BOOK, pm.demo_market())
    df = pm.to_frame(r)
    assert df.height == 2
    assert df["currency"].to_list() == ["BTC", "ETH"]
    assert df["initial_excess"].to_list() == pytest.approx(
        [p.initial_excess for p in r.by_currency]
    )
    assert pm.to_frame(r, kind="positions")["instrument"].to_list() == list(BOOK.net_positions())
    assert pm.to_frame(r, kind="scenarios").height == len(r.scenarios)
    with pytest.raises(InputError, match="kind"):
        pm.to_frame(r, kind="nope")


def test_comparison_whatif_and_batch() -> None:
    from portmargin.accounts import Account, what_if
    from portmargin.batch import MarginSession

    market = pm.demo_market()
    c = pm.compare(BOOK, market)
    assert pm.to_frame(c)["regime"].to_list() == ["standard", "strategy", "portfolio"]
    w = what_if(
        Account.from_portfolio(BOOK), {"BTC-27MAR26-70000-P": -1}, market, pm.load_model("deribit")
    )
    assert set(pm.to_frame(w)["side"].to_list()) == {"before", "after"}
    model = pm.load_model("deribit")
    session = MarginSession(market, model)
    positions = {"a": {"BTC-27MAR26-70000-P": -1.0}, "b": {"ETH-27MAR26-3200-P": 1.0}}
    result = session.margin(session.book_from_positions(positions, {}))
    df = pm.to_frame(result, accounts=["a", "b"])
    assert df["account"].to_list() == ["a", "b"]
    with pytest.raises(InputError, match="account names"):
        records(result, accounts=["a"])


def test_pandas_backend_when_installed() -> None:
    pytest.importorskip("pandas")
    df = pm.to_frame(pm.margin(BOOK, pm.demo_market()), backend="pandas")
    assert list(df["currency"]) == ["BTC", "ETH"]


def test_html_table_for_jupyter() -> None:
    text = html_table(pm.margin(BOOK, pm.demo_market()), caption="book <1>")
    assert text.startswith("<table>") and "<th>initial_margin</th>" in text
    assert "book &lt;1&gt;" in text


def test_unknown_objects_are_refused() -> None:
    with pytest.raises(InputError, match="cannot convert"):
        pm.to_frame(object())
