"""The daily history: the shipped file, its rebuild from the sources, and one-line errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from portmargin.errors import InputError
from portmargin.var.history import History, load_history, parse_history, shipped_history
from portmargin.var.sources import derive_history

GOOD = "date,btc_close,eth_close,btc_dvol,eth_dvol\n2024-01-01,100,10,,\n2024-01-02,101,11,50,60\n"


def test_shipped_history_rows_and_known_values() -> None:
    h = shipped_history()
    assert h.underlyings == ("BTC", "ETH")
    assert (h.first, h.last, len(h)) == (date(2017, 8, 17), date(2026, 3, 16), 3134)
    i = h.index(date(2026, 2, 5))
    # Binance README: BTC closed 62,909.86 on 2026-02-05 (73,165.83 the day before),
    # ETH 1,826.83; Deribit DVOL README: BTC DVOL closed 82.62
    assert h.closes["BTC"][i] == 62_909.86
    assert h.closes["BTC"][i - 1] == 73_165.83
    assert h.closes["ETH"][i] == 1_826.83
    assert h.dvol["BTC"][i] == 82.62
    assert h.dvol_start("BTC") == date(2021, 3, 24)
    assert np.isnan(h.dvol["BTC"][h.index(date(2021, 3, 23))])
    with pytest.raises(ValueError, match="read-only"):
        h.closes["BTC"][0] = 1.0


def test_the_shipped_file_is_the_rebuild_of_its_sources(shared_data: Path) -> None:
    if not (shared_data / "binance_spot_daily").is_dir():
        pytest.skip("binance_spot_daily is not present")
    rebuilt = derive_history(shared_data).to_csv()
    shipped = Path(__file__).resolve().parents[2] / "src/portmargin/var/data/history.csv"
    assert rebuilt == shipped.read_text(encoding="utf-8")


def test_round_trip_and_empty_dvol() -> None:
    h = parse_history(GOOD, "x.csv")
    assert np.isnan(h.dvol["BTC"][0])
    assert parse_history(h.to_csv(), "y.csv").to_csv() == h.to_csv()
    assert h.log_returns("BTC")[1] == pytest.approx(np.log(1.01))
    assert h.dvol_log_changes("ETH")[1] != h.dvol_log_changes("ETH")[1]  # nan: day 0 has none


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "x.csv: empty file"),
        ("day,btc_close\n", "x.csv: row 1: the first column must be 'date'"),
        (
            "date,btc_price\n",
            "x.csv: row 1: column 'btc_price': expected <code>_close or <code>_dvol",
        ),
        ("date,btc_dvol\n", "x.csv: row 1: column btc_dvol has no btc_close"),
        ("date,btc_close,btc_close\n", "x.csv: row 1: column 'btc_close' appears twice"),
        (
            "date,btc_close\n2024-01-01,1\n2024-01-03,2\n",
            "x.csv: row 3: date: 2024-01-03 is a gap after 2024-01-01",
        ),
        (
            "date,btc_close\n2024-01-01,1\n2024-01-01,2\n",
            "x.csv: row 3: date: 2024-01-01 is repeated",
        ),
        ("date,btc_close\n2024-02-01,1\n2024-01-31,2\n", "is before the previous row"),
        (
            "date,btc_close\n01/02/2024,1\n",
            "x.csv: row 2: date: must be YYYY-MM-DD, got '01/02/2024'",
        ),
        (
            "date,btc_close\n2024-01-01,n/a\n",
            "x.csv: row 2: btc_close: must be a number, got 'n/a'",
        ),
        ("date,btc_close\n2024-01-01,\n", "x.csv: row 2: btc_close: required, got an empty field"),
        (
            "date,btc_close\n2024-01-01,-5\n",
            "x.csv: row 2: btc_close: must be in [1e-08, 1e+09], got -5",
        ),
        ("date,btc_close\n2024-01-01,inf\n", "x.csv: row 2: btc_close: must be finite"),
        (
            "date,btc_close,btc_dvol\n2024-01-01,1,0.5\n",
            "(DVOL is in index points: 47.5 means 47.5 %)",
        ),
        ("date,btc_close\n2024-01-01,1,2\n", "x.csv: row 2: 3 fields, the header has 2"),
        ("date,btc_close\n2024-01-01,1\n", "x.csv: a history needs at least 2 days, got 1"),
    ],
)
def test_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_history(text, "x.csv")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_history_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        load_history(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        load_history(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"date,btc_close\n\xff\n")
    with pytest.raises(InputError, match=r"bad\.csv: not UTF-8"):
        load_history(bad)
    ok = tmp_path / "ok.csv"
    ok.write_text(GOOD, encoding="utf-8")
    assert load_history(ok).source == str(ok)


def test_queries() -> None:
    h = parse_history(GOOD, "x.csv")
    with pytest.raises(InputError, match=r"x\.csv: 2023-12-31 is outside the history"):
        h.index(date(2023, 12, 31))
    with pytest.raises(InputError, match="no underlying 'SOL'"):
        h.require("SOL")
    assert h.joint_start(["BTC", "ETH"]) == date(2024, 1, 2)
    assert History.close_time(date(2024, 1, 1)).isoformat() == "2024-01-02T00:00:00+00:00"
    assert len(h.between(date(2024, 1, 1), date(2024, 1, 2))) == 2
