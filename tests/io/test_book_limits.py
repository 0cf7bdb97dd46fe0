"""Portfolio and accounts files: bounds at load, strict documents, one line per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import portmargin as pm
from portmargin.errors import InputError
from portmargin.io import limits


def _refused(path: Path, match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        pm.load_portfolio(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    return msg


def _json(tmp_path: Path, doc: object, name: str = "book.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (
            {"positions": [{"instrument": "BTC-PERPETUAL", "quantity": 1e306}]},
            r"positions\.0\.quantity: 1e\+306 is outside \[-1e9, 1e9\] contracts",
        ),
        (
            {"positions": [{"instrument": "BTC-PERPETUAL", "quantity": True}]},
            r"positions\.0\.quantity: .*not true/false",
        ),
        (
            {"positions": [{"instrument": "X" * 101, "quantity": 1}]},
            r"positions\.0\.instrument: instrument name of 101 characters \(at most 100\)",
        ),
        (
            {"positions": [{"instrument": " ", "quantity": 1}]},
            r"positions\.0\.instrument: empty instrument name",
        ),
        (
            {"positions": [{"instrument": "BTC-PERPETUAL", "quantity": 6e8}] * 2},
            r"net quantity of 'BTC-PERPETUAL': 1200000000\.0 is outside \[-1e9, 1e9\]",
        ),
        ({"cash": {"BTC": 1e306}}, r"cash\.BTC: 1e\+306 is outside \[-1e12, 1e12\] units"),
        ({"cash": {"": 1}}, r"cash: empty currency code"),
        ({"name": "n" * 201}, r"name: String should have at most 200 characters"),
        ({"cash": {"a b": "x"}}, r"cash\.'a b': Input should be a valid number"),
    ],
)
def test_json_books_out_of_bounds(tmp_path: Path, doc: object, match: str) -> None:
    _refused(_json(tmp_path, doc), match)


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    path.write_text('{"cash": {"BTC": 1, "BTC": 2}}')
    _refused(path, "key 'BTC' appears twice in one object")


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "book.yaml"
    path.write_text(
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "positions: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    )
    _refused(path, r"line 2: YAML aliases \(\*name\) are not accepted")


def test_yaml_bounds(tmp_path: Path) -> None:
    path = tmp_path / "book.yaml"
    path.write_text("positions:\n- {instrument: BTC-PERPETUAL, quantity: 1.0e+308}\n")
    _refused(path, r"positions\.0\.quantity: 1e\+308 is outside")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"instrument,quantity\nBTC-PERPETUAL,1,extra\n", r"row 2: 3 fields, the header has 2"),
        (b"instrument,quantity\nBTC-PERPETUAL,1e308\n", r"row 2: quantity: 1e\+308 is outside"),
        (b"instrument,quantity\ncash:BTC,1e13\n", r"row 2: quantity: .* \[-1e12, 1e12\] units"),
        (b"instrument,quantity\nBTC-\xff,1\n", r"row 2: instrument: not UTF-8 text"),
        (b"instrument,quantity\ncash:,1\n", r"row 2: instrument: 'cash:' names no currency"),
        (
            b"instrument,quantity\ncash:BTC,9e11\ncash:btc,9e11\n",
            r"cash\.BTC: 1800000000000\.0 is outside \[-1e12, 1e12\] units",
        ),
    ],
)
def test_csv_books(tmp_path: Path, text: bytes, match: str) -> None:
    path = tmp_path / "book.csv"
    path.write_bytes(text)
    _refused(path, match)


def test_csv_book_reads_like_before(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    path.write_text(" Instrument ,QUANTITY,note\nBTC-PERPETUAL, 2 ,x\n\ncash:btc,0.5,y\n")
    book = pm.load_portfolio(path)
    assert book.net_positions() == {"BTC-PERPETUAL": 2.0}
    assert dict(book.cash) == {"BTC": 0.5}
    assert book.name == "book"


def test_oversized_document_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("portmargin.io._common.DOCUMENT_MAX_BYTES", 10)
    _refused(_json(tmp_path, {"positions": []}), r"\d+ bytes, larger than the 10 a document")


# -- the accounts file ---------------------------------------------------------------------
def _accounts_refused(tmp_path: Path, doc: object, match: str) -> None:
    from portmargin.accounts import load_accounts

    path = _json(tmp_path, doc, "accounts.json")
    with pytest.raises(InputError, match=match) as info:
        load_accounts(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("account", "match"),
    [
        (
            {"id": "a", "balances": {"BTC": 1e306}},
            r"accounts\.0\.balances\.BTC: 1e\+306 is outside \[-1e12, 1e12\]",
        ),
        (
            {"id": "a", "positions": [{"instrument": "BTC-PERPETUAL", "quantity": -1e308}]},
            r"accounts\.0\.positions\.0\.quantity: -1e\+308 is outside \[-1e9, 1e9\]",
        ),
        ({"id": "i" * 201}, r"accounts\.0\.id: id of 201 characters \(at most 200\)"),
        ({"id": " "}, r"accounts\.0\.id: empty id"),
        ({"id": "a", "balances": {"BTC": False}}, r"accounts\.0\.balances\.BTC: .*not true/false"),
        (
            {"id": "a", "balances": {"SOL": 1}},
            r"accounts\.0: .*balances\.SOL: unsupported currency",
        ),
    ],
)
def test_accounts_out_of_bounds(tmp_path: Path, account: object, match: str) -> None:
    _accounts_refused(tmp_path, {"accounts": [account]}, match)


def test_accounts_settings_are_still_checked(tmp_path: Path) -> None:
    _accounts_refused(
        tmp_path,
        {"settings": {"haircuts": {"BTC": 1.5}}, "accounts": []},
        r"haircuts\.BTC` must be in \[0, 1\)",
    )


def test_accounts_file_moved_to_io_with_old_names_kept(tmp_path: Path) -> None:
    from portmargin import accounts
    from portmargin.accounts import _files
    from portmargin.io import accounts_files

    assert accounts.load_accounts is accounts_files.load_accounts is _files.load_accounts
    assert accounts.accounts_from_dict is accounts_files.accounts_from_dict
    path = Path(__file__).resolve().parents[2] / "examples" / "accounts.json"
    accts, settings = accounts.load_accounts(path)
    assert len(accts) == 300 and settings.min_pm_equity_usd == 10_000.0
    assert all(abs(q) <= limits.QUANTITY_MAX for a in accts for q in a.positions.values())


def test_batch_io_names_still_import() -> None:
    from portmargin.batch import _io
    from portmargin.io import batch_output, positions_files

    assert _io.read_positions is positions_files.read_positions
    assert _io.write_table is batch_output.write_table
    assert _io.result_table is batch_output.result_table
