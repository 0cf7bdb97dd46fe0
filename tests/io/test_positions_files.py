"""Positions files (Parquet, CSV): every bad value named by its row, limits, skip mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from portmargin.errors import InputError
from portmargin.io import limits
from portmargin.io.positions_files import read_positions

HEADER = "account,instrument,quantity\n"


def _csv(tmp_path: Path, body: str | bytes, header: str = HEADER) -> Path:
    path = tmp_path / "pos.csv"
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    path.write_bytes(header.encode("utf-8") + data)
    return path


def _refused(path: Path, match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        read_positions(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    return msg


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("a,BTC-PERPETUAL,1\nb,BTC-PERPETUAL,x\n", r"row 3: quantity: 'x' is not a number"),
        ("a,BTC-PERPETUAL,\n", r"row 2: quantity: empty"),
        ("a,BTC-PERPETUAL,1e308\n", r"row 2: quantity: 1e\+308 is outside \[-1e9, 1e9\] contracts"),
        ("a,BTC-PERPETUAL,-1e306\n", r"row 2: quantity: -1e\+306 is outside"),
        ("a,BTC-PERPETUAL,inf\n", r"row 2: quantity: 'inf' is not finite"),
        ("a,BTC-PERPETUAL,nan\n", r"row 2: quantity: 'nan' is not finite"),
        (
            "a,cash:BTC,1e13\n",
            r"row 2: quantity: 10000000000000\.0 is outside \[-1e12, 1e12\] units",
        ),
        (",BTC-PERPETUAL,1\n", r"row 2: account: empty"),
        ("a,,1\n", r"row 2: instrument: empty"),
        (f"a,{'X' * 101},1\n", r"row 2: instrument: 101 characters, at most 100"),
        (f"{'i' * 201},BTC-PERPETUAL,1\n", r"row 2: account: 201 characters, at most 200"),
        ("a,BTC-PERPETUAL,1,9\n", r"row 2: 4 fields, the header has 3"),
        ("a,BTC-PERPETUAL\n", r"row 2: 2 fields, the header has 3"),
    ],
)
def test_bad_rows_are_refused_by_row_and_field(tmp_path: Path, body: str, match: str) -> None:
    _refused(_csv(tmp_path, body), match)


def test_limits_are_inclusive(tmp_path: Path) -> None:
    pos = read_positions(_csv(tmp_path, "a,BTC-PERPETUAL,-1e9\na,cash:USDC,1e12\n"))
    assert pos.quantity.tolist() == [-limits.QUANTITY_MAX, limits.BALANCE_MAX]


def test_blank_lines_are_ignored_and_rows_are_lines(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,BTC-PERPETUAL,1\n\n\nb,BTC-PERPETUAL,x\n")
    _refused(path, r"row 5: quantity")


def test_crlf_lone_cr_bom_and_header_case(tmp_path: Path) -> None:
    path = tmp_path / "pos.csv"
    path.write_bytes(
        b"\xef\xbb\xbfAccount , INSTRUMENT,Quantity,note\r\na,btc-perpetual,1,x\rb,ETH-PERPETUAL,2,y\r\n"
    )
    pos = read_positions(path)
    assert pos.accounts == ["a", "b"]
    assert pos.names == ["btc-perpetual", "ETH-PERPETUAL"]  # resolved later, by the market
    assert pos.first_row == [2, 3]


def test_non_utf8_bytes_name_the_row(tmp_path: Path) -> None:
    _refused(
        _csv(tmp_path, b"a,BTC-PERPETUAL,1\na,BTC-\xffPERP,1\n"), r"row 3: instrument: not UTF-8"
    )
    _refused(
        _csv(tmp_path, b"a,BTC-PERPETUAL,1\na,B,1,\xff\n"), r"row 3: 4 fields, the header has 3"
    )


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ("account,instrument\n", "header must have the columns account,instrument,quantity"),
        ("account,instrument,quantity,Quantity\n", "header: column 'quantity' appears 2 times"),
        ("\n", "no header"),
        (b"acc\xffount,instrument,quantity\n".decode("latin-1"), "header"),
    ],
)
def test_bad_headers(tmp_path: Path, header: str, match: str) -> None:
    path = tmp_path / "pos.csv"
    path.write_bytes(header.encode("latin-1") + b"a,BTC-PERPETUAL,1\n")
    _refused(path, match)


def test_skip_mode_returns_every_bad_row_with_its_reason(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        b"a,BTC-PERPETUAL,1\nb,BTC-PERPETUAL,x\n\nc,BTC-PERPETUAL,1,2\nd,\xff,1\ne,cash:BTC,2e12\nf,ETH-PERPETUAL,3\n",
    )
    pos = read_positions(path, on_error="skip")
    assert pos.accounts == ["a", "f"]
    assert pos.row_numbers(np.arange(2)).tolist() == [2, 8]
    got = [(r.row, r.account, r.reason.split(":")[0]) for r in pos.rejects]
    assert got == [
        (3, "b", "quantity"),
        (5, None, "4 fields, the header has 3"),
        (6, "d", "instrument"),
        (7, "e", "quantity"),
    ]
    assert pos.rejects[0].quantity == "x"


def _parquet(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "pos.parquet"
    pq.write_table(table, path)
    return path


def test_parquet_types_and_row_numbers(tmp_path: Path) -> None:
    table = pa.table(
        {
            "quantity": pa.array(["1", " 2.5 ", "-3e0"]),
            "account": pa.array([7, 7, 8], pa.int64()),
            "instrument": pa.array(
                ["BTC-PERPETUAL", "cash:btc", "ETH-PERPETUAL"]
            ).dictionary_encode(),
            "other": pa.array([1, 2, 3]),
        }
    )
    pos = read_positions(_parquet(tmp_path, table))
    assert pos.accounts == ["7", "8"]
    assert pos.names == ["BTC-PERPETUAL", "cash:BTC", "ETH-PERPETUAL"]
    assert pos.quantity.tolist() == [1.0, 2.5, -3.0]
    assert pos.first_row == [1, 2, 3]


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        (
            {"account": ["a", None], "instrument": ["X", "X"], "quantity": [1.0, 1.0]},
            r"row 2: account: empty",
        ),
        (
            {"account": ["a"], "instrument": ["X"], "quantity": [float("nan")]},
            r"row 1: quantity: 'nan' is not finite",
        ),
        (
            {"account": ["a"], "instrument": ["X"], "quantity": [2e9]},
            r"row 1: quantity: 2000000000\.0 is outside",
        ),
        (
            {"account": ["a"], "instrument": ["X"], "quantity": [True]},
            r"column quantity: type bool is not a number",
        ),
        (
            {"account": ["a"], "instrument": [b"\xff"], "quantity": [1.0]},
            r"row 1: instrument: not UTF-8 text",
        ),
        ({"account": ["a"], "quantity": [1.0]}, r"missing column\(s\) instrument"),
    ],
)
def test_parquet_bad_values(tmp_path: Path, columns: dict[str, list[object]], match: str) -> None:
    _refused(_parquet(tmp_path, pa.table(columns)), match)


@pytest.mark.parametrize("column", ["account", "instrument", "quantity"])
def test_parquet_strings_that_are_not_utf8(tmp_path: Path, column: str) -> None:
    # Arrow does not check UTF-8 when it reads a string column; a file from a writer that
    # did not check it either must still be named by row.
    values = {"account": ["a", "b"], "instrument": ["BTC-PERPETUAL"] * 2, "quantity": ["1", "2"]}
    cols = {k: pa.array(v) for k, v in values.items()}
    cols[column] = pa.array([values[column][0].encode() + b"\xff", b"2"], pa.binary()).view(
        pa.string()
    )
    path = _parquet(tmp_path, pa.table(cols))
    reason = "is not a number" if column == "quantity" else "not UTF-8 text"
    _refused(path, rf"row 1: {column}: .*{reason}")
    pos = read_positions(path, on_error="skip")
    assert [r.row for r in pos.rejects] == [1] and len(pos.quantity) == 1


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "pos.parquet"
    path.write_bytes(b"PAR1 not really")
    _refused(path, "not a readable Parquet file")


def test_files_that_are_not_positions(tmp_path: Path) -> None:
    _refused(tmp_path / "missing.csv", "file not found")
    (tmp_path / "dir.csv").mkdir()
    _refused(tmp_path / "dir.csv", "not a file")
    _refused(_csv(tmp_path, ""), "no positions")
    with pytest.raises(InputError, match=r"unknown positions format '\.txt'"):
        read_positions(tmp_path / "pos.txt")
