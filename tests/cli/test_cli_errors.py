"""User errors are one line with exit code 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from portmargin.cli import main, user_message
from portmargin.errors import InputError, MarketDataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_bug_is_not_turned_into_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from portmargin.cli import _margin

    def broken(path: object) -> object:
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setattr(_margin, "get_market", broken)
    with pytest.raises(ValueError, match="broadcast"):
        main(["margin", str(EXAMPLES / "iron_condor.json")])


def test_debug_shows_the_traceback_of_a_user_error() -> None:
    with pytest.raises(InputError, match="file not found"):
        main(["--debug", "margin", "nope.json"])


def test_a_directory_given_as_portfolio_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "book.json").mkdir()
    assert main(["margin", str(tmp_path / "book.json")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(tmp_path / "book.json") in line


def test_missing_underlying_names_instrument_and_both_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    book, market = EXAMPLES / "five_line_book.json", EXAMPLES / "xyz_market.json"
    assert main(["margin", str(book), "--market", str(market)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "ETH-24APR26-3000-P" in line
    assert str(book) in line and str(market) in line
    assert "no market data for underlying 'ETH'" in line


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
@pytest.mark.parametrize("command", ["compare", "whatif"])
def test_min_equity_must_be_finite_and_non_negative(
    capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    args = [command, str(EXAMPLES / "iron_condor.json"), "--min-equity", value]
    if command == "whatif":
        args += ["--trade", "BTC-27MAR26-70000-P:-1"]
    assert main(args) == 2
    assert "--min-equity" in _one_line(capsys.readouterr().err)


def test_unwritable_chart_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "chart.png"
    assert main(["compare", str(EXAMPLES / "iron_condor.json"), "--plot", str(out)]) == 2
    assert str(out) in _one_line(capsys.readouterr().err)


def test_messages_show_numbers_not_numpy_reprs() -> None:
    exc = MarketDataError(f"price {np.float64(0.5)!r} above bound {np.float64(1e-3)!r}")
    assert user_message(exc) == "price 0.5 above bound 0.001"


def test_rich_markup_in_a_message_is_printed_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    over = tmp_path / "bad.toml"
    over.write_text("[underlyings.BTC]\nprice_range = -1\n")
    assert main(["margin", str(EXAMPLES / "iron_condor.json"), "--params", str(over)]) == 2
    assert "underlyings.BTC.price_range" in _one_line(capsys.readouterr().err)


def test_json_stays_clean_when_the_market_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    market = json.loads((EXAMPLES / "xyz_market.json").read_text())
    # A put mark below its intrinsic value is kept with a floored vol and a warning.
    market["options"]["XYZ-20MAR26-110-P"] = {"mark_price": 1.0}
    mpath = tmp_path / "market.json"
    mpath.write_text(json.dumps(market))
    book = tmp_path / "book.json"
    book.write_text(json.dumps({"positions": [{"instrument": "XYZ-20MAR26-110-P", "quantity": 1}]}))
    assert main(["margin", str(book), "--market", str(mpath), "--format", "json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["positions"][0]["quote"] == "quoted"
    warnings = [w for w in captured.err.splitlines() if w.startswith("warning:")]
    assert warnings and all("XYZ-20MAR26-110-P" in w for w in warnings)
