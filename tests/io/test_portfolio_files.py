from __future__ import annotations

from pathlib import Path

import pytest

import portmargin as pm
from portmargin.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_json_yaml_csv_agree(tmp_path: Path) -> None:
    j = pm.load_portfolio(EXAMPLES / "short_put_spread.json")
    c = pm.load_portfolio(EXAMPLES / "short_put_spread.csv")
    assert j.net_positions() == c.net_positions()
    assert c.cash["BTC"] == 0.05
    y = pm.load_portfolio(EXAMPLES / "covered_call.yaml")
    assert y.net_positions() == {"BTC-27MAR26-75000-C": -1.0}
    assert y.cash["BTC"] == 1.0


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        (
            "p.json",
            '{"positions": [{"instrument": "X", "quantity": "abc"}]}',
            r"positions\.0\.quantity",
        ),
        ("p.json", '{"positions": [{"instrument": "X", "quantity": NaN}]}', "quantity"),
        ("p.json", '{"positions": [{"quantity": 1}]}', r"positions\.0\.instrument"),
        ("p.json", "[1,", "bad JSON"),
        ("p.csv", "instrument,quantity\nBTC-27MAR26,abc\n", "row 2: quantity"),
        ("p.csv", "name,qty\n", "header"),
        ("p.yaml", "positions: [a: b: c]", "YAML"),
        ("p.txt", "", "unknown portfolio format"),
    ],
)
def test_bad_portfolios(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        pm.load_portfolio(path)
    assert str(path) in str(info.value)


def test_examples_match_the_package_definitions() -> None:
    from portmargin.examples import seed_portfolios

    for _, book in seed_portfolios():
        on_disk = pm.load_portfolio(EXAMPLES / f"{book.name}.json")
        assert on_disk.net_positions() == book.net_positions()
        assert dict(on_disk.cash) == dict(book.cash)
