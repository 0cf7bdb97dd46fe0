"""`margin` and `whatif` per pool: figures with units, the USD total only where it means
something, --explain without repeats, quotes, the gate, and 100-column output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portmargin.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIVE = str(EXAMPLES / "five_line_book.json")
STATUSES = {"healthy", "margin_call", "liquidation"}


def _out(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_segregated_pools_with_informational_total(capsys: pytest.CaptureFixture[str]) -> None:
    out = _out(capsys, "margin", FIVE)
    for text in ("BTC pool, BTC", "ETH pool, ETH", "informational", "status", "excess"):
        assert text in out
    assert "binds at BTC" in out and "(pool currency)" in out


def test_cross_mode_has_one_usd_pool_and_no_informational_label(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _out(capsys, "margin", FIVE, "--cross")
    assert "USD pool, USD" in out
    assert "informational" not in out
    assert "cross margin" in out


def test_explain_shows_each_component_once_and_the_multiplier_step(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _out(capsys, "margin", FIVE, "--cross", "--explain")
    # One USD pool with BTC and ETH: one table, a row per component, a column per underlying.
    assert out.count("roll_shock") == 1
    assert out.count("scanning_risk ") == 1
    assert "× im_multiplier 1" in out
    assert "mm_multiplier 0.8" in out
    assert "= initial margin" in out


@pytest.mark.parametrize(
    "args",
    [
        ["margin", FIVE],
        ["margin", FIVE, "--explain"],
        ["margin", FIVE, "--cross", "--explain", "--model", "span"],
        ["whatif", FIVE, "--trade", "BTC-27MAR26-70000-P:-1", "--min-equity", "1000"],
        ["compare", FIVE],
        ["rules", FIVE],
        ["models", FIVE],
        ["demo"],
    ],
)
def test_readable_at_100_columns(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    out = _out(capsys, *args)
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 100


def test_margin_json_positions_say_where_the_mark_comes_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = json.loads(_out(capsys, "margin", FIVE, "--format", "json"))
    assert {p["quote"] for p in doc["positions"]} == {"quoted"}
    doc = json.loads(
        _out(capsys, "margin", str(EXAMPLES / "hedged_straddle_usdc.json"), "--format", "json")
    )
    quotes = {p["instrument"]: p["quote"] for p in doc["positions"]}
    assert quotes["BTC_USDC-27MAR26-70000-P"] == "interpolated"
    assert quotes["BTC_USDC-PERPETUAL"] in ("index", "perpetual")


def test_strict_quotes_refuses_an_interpolated_mark(capsys: pytest.CaptureFixture[str]) -> None:
    book = str(EXAMPLES / "short_put_spread_usdc.json")
    assert main(["margin", book, "--strict-quotes"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "BTC_USDC-27MAR26-70000-P" in err
    assert main(["margin", FIVE, "--strict-quotes", "--format", "json"]) == 0


def _whatif(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, object]:
    out = _out(
        capsys, "whatif", FIVE, "--trade", "BTC-27MAR26-70000-P:-1", "--format", "json", *extra
    )
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


def test_whatif_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _whatif(capsys, "--min-equity", "1000")
    assert isinstance(doc["accepted"], bool)
    assert isinstance(doc["reason"], str) and "BTC" in doc["reason"]
    assert isinstance(doc["incremental_initial_margin"], float)
    before, after = doc["before"], doc["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert before["status"] in STATUSES and after["status"] in STATUSES
    for pool in before["pools"]:
        assert pool["status"] in STATUSES
    gate = doc["qualification"]
    assert isinstance(gate, dict)
    assert gate["approved"] is True and gate["equity_test"] is True
    assert gate["method"] == "portfolio"


def test_whatif_approval_can_be_withdrawn(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _whatif(capsys, "--min-equity", "1000", "--no-pm-approved")
    gate = doc["qualification"]
    assert isinstance(gate, dict)
    assert gate["approved"] is False and gate["equity_test"] is True
    assert gate["qualified"] is False and gate["method"] == "rules"


@pytest.mark.parametrize("model", ["span16", "tims"])
def test_whatif_takes_any_portfolio_model(capsys: pytest.CaptureFixture[str], model: str) -> None:
    doc = _whatif(capsys, "--model", model, "--min-equity", "0")
    assert doc["accepted"] in (True, False)


def test_whatif_refuses_a_rule_set_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["whatif", FIVE, "--trade", "BTC-27MAR26-70000-P:-1", "--model", "strategy"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "portfolio-margin model" in err


def test_whatif_table_shows_the_gate_and_the_deciding_pool(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _out(capsys, "whatif", FIVE, "--trade", "BTC-27MAR26-70000-P:-5", "--no-pm-approved")
    assert "gate: not approved" in out
    assert "strategy rules" in out
    assert "REJECTED" in out or "ACCEPTED" in out
    assert "before → after" in out


def test_compare_shows_approval_and_equity_test(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(
        _out(
            capsys, "compare", FIVE, "--format", "json", "--min-equity", "1000", "--no-pm-approved"
        )
    )
    q = doc["qualification"]
    assert q["approved"] is False and q["equity_test"] is True
    assert q["applied_regime"] == "strategy"
    out = _out(capsys, "compare", FIVE, "--min-equity", "1000")
    assert "gate: approved" in out and ">= 1,000.00 USD" in out
