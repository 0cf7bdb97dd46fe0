"""Positions from Deribit's private/get_positions, as documented
(https://docs.deribit.com/#private-get_positions)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portmargin.cli import main
from portmargin.errors import InputError
from portmargin.exchange import is_deribit_positions, portfolio_from_deribit

# The response example of Deribit's API reference (a BTC-PERPETUAL position of 50 USD).
DOCUMENTED = {
    "jsonrpc": "2.0",
    "id": 2236,
    "result": [
        {
            "average_price": 7440.18,
            "delta": 0.006687487,
            "direction": "buy",
            "estimated_liquidation_price": 1.74,
            "floating_profit_loss": 0,
            "index_price": 7466.79,
            "initial_margin": 0.000197283,
            "instrument_name": "BTC-PERPETUAL",
            "interest_value": 1.7362511643080387,
            "kind": "future",
            "leverage": 34,
            "maintenance_margin": 0.000143783,
            "mark_price": 7476.65,
            "open_orders_margin": 0.000197288,
            "realized_funding": -1e-8,
            "realized_profit_loss": -9e-9,
            "settlement_price": 7476.65,
            "size": 50,
            "size_currency": 0.006687487,
            "total_profit_loss": 0.000032781,
        }
    ],
}


def _option(name: str, direction: str, size: object) -> dict[str, object]:
    return {"instrument_name": name, "kind": "option", "direction": direction, "size": size}


def test_documented_example_future_in_coins() -> None:
    assert is_deribit_positions(DOCUMENTED)
    book = portfolio_from_deribit(DOCUMENTED)
    assert book.net_positions() == {"BTC-PERPETUAL": 0.006687487}
    # size_currency is size / mark: 50 USD at 7,476.65 USD per BTC.
    assert pytest.approx(0.006687487, rel=1e-6) == 50 / 7476.65


def test_without_size_currency_an_inverse_future_is_size_over_mark() -> None:
    row = dict(DOCUMENTED["result"][0])  # type: ignore[index]
    del row["size_currency"]
    row.update(direction="sell", size=-50)
    book = portfolio_from_deribit({"jsonrpc": "2.0", "result": [row]})
    assert book.net_positions()["BTC-PERPETUAL"] == pytest.approx(-50 / 7476.65)


def test_options_are_in_coin_with_the_sign_of_direction() -> None:
    doc = {
        "jsonrpc": "2.0",
        "result": [
            _option("BTC-27MAR26-70000-P", "sell", -1.0),
            _option("BTC-27MAR26-69000-P", "buy", 1.0),
            _option("BTC-27MAR26-75000-C", "zero", 0.0),
        ],
    }
    book = portfolio_from_deribit(doc, cash={"BTC": 0.1}, name="acct")
    assert book.net_positions() == {"BTC-27MAR26-70000-P": -1.0, "BTC-27MAR26-69000-P": 1.0}
    assert dict(book.cash) == {"BTC": 0.1} and book.name == "acct"


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"jsonrpc": "2.0", "error": {"message": "unauthorized", "code": 13009}}, "unauthorized"),
        ({"jsonrpc": "2.0", "result": [_option("X", "up", 1)]}, "direction"),
        (
            {"jsonrpc": "2.0", "result": [{**_option("X", "buy", 1), "kind": "option_combo"}]},
            "combos",
        ),
        ({"jsonrpc": "2.0", "result": [_option("X", "buy", "1")]}, "size"),
        (
            {
                "jsonrpc": "2.0",
                "result": [
                    {
                        "instrument_name": "BTC_USDC-PERPETUAL",
                        "kind": "future",
                        "direction": "buy",
                        "size": 1,
                    }
                ],
            },
            "size_currency",
        ),
    ],
)
def test_malformed_responses_are_one_line(doc: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        portfolio_from_deribit(doc, source="positions.json")
    assert "positions.json" in str(info.value)
    assert "\n" not in str(info.value)


@given(
    size=st.floats(min_value=1.0, max_value=1e9),
    mark=st.floats(min_value=1.0, max_value=1e7),
    sell=st.booleans(),
)
def test_future_size_is_usd_over_mark(size: float, mark: float, sell: bool) -> None:
    row = {
        "instrument_name": "BTC-27MAR26",
        "kind": "future",
        "direction": "sell" if sell else "buy",
        "size": -size if sell else size,
        "mark_price": mark,
    }
    q = portfolio_from_deribit([row]).net_positions()["BTC-27MAR26"]
    assert math.copysign(1.0, q) == (-1.0 if sell else 1.0)
    assert abs(q) * mark == pytest.approx(size, rel=1e-12)


def test_margin_reads_a_saved_response(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {
        "jsonrpc": "2.0",
        "result": [
            *DOCUMENTED["result"],  # type: ignore[misc]
            _option("BTC-27MAR26-70000-P", "sell", -1.0),
        ],
    }
    path = tmp_path / "positions.json"
    path.write_text(json.dumps(doc))
    assert main(["margin", str(path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    got = {p["instrument"]: p["quantity"] for p in out["positions"]}
    assert got == {"BTC-PERPETUAL": 0.006687487, "BTC-27MAR26-70000-P": -1.0}
