from __future__ import annotations

import json
from pathlib import Path

import pytest

import portmargin as pm
from portmargin.errors import InputError

ISSUE_EXAMPLE = {
    "valuation_time": "2026-02-25T08:00:00Z",
    "products": {"XYZ": {"settlement": "linear", "quote_currency": "USD", "multiplier": 100}},
    "underlyings": {"XYZ": {"spot": 95.0, "rate": 0.0}, "BTC": {"spot": 70000.0}},
    "futures": {"BTC-27MAR26": {"mark_price": 70500.0}},
    "options": {"XYZ-20MAR26-80-P": {"mark_price": 2.0}, "BTC-27MAR26-70000-C": {"mark_iv": 0.55}},
}


def _write(tmp_path: Path, doc: object, name: str = "market.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return p


def test_issue_example_loads(tmp_path: Path) -> None:
    m = pm.load_market(_write(tmp_path, ISSUE_EXAMPLE))
    assert m.instrument("XYZ-20MAR26-80-P").multiplier == 100
    assert m.mark_price(m.instrument("XYZ-20MAR26-80-P")) == 2.0
    assert 0 < m.option_iv["XYZ-20MAR26-80-P"] < 5
    assert m.forward("BTC", m.instrument("BTC-27MAR26").expiry) == 70500.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("valuation_time"), "valuation_time"),
        (lambda d: d["underlyings"]["XYZ"].update(spot=-1), "underlyings.XYZ.spot"),
        (lambda d: d["options"].update({"XYZ-20MAR26-80-P": {"mark_iv": -0.2}}), "mark_iv"),
        (lambda d: d["options"].update({"XYZ-20MAR26-80-P": {"mark_iv": "abc"}}), "mark_iv"),
        (lambda d: d["options"].update({"FOO-20MAR26-80-P": {"mark_iv": 0.3}}), "FOO"),
        (lambda d: d["options"].update({"XYZ-30FEB26-80-P": {"mark_iv": 0.3}}), "not a real date"),
        (lambda d: d["options"].update({"XYZ-20MAR26-0-P": {"mark_iv": 0.3}}), "strike"),
        (
            lambda d: d["options"].update({"XYZ-20MAR26-80-P": {"mark_price": 500.0}}),
            "no-arbitrage",
        ),
        (lambda d: d.update(valuation_time="2026-02-25T08:00:00"), "time zone"),
        (lambda d: d.update(extra=1), "extra"),
    ],
)
def test_bad_market_json_one_clear_line(tmp_path: Path, mutate: object, match: str) -> None:
    doc = json.loads(json.dumps(ISSUE_EXAMPLE))
    mutate(doc)  # type: ignore[operator]
    path = _write(tmp_path, doc)
    with pytest.raises(InputError, match=match) as info:
        pm.load_market(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_json_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="line 1 column"):
        pm.load_market(_write(tmp_path, "{bad"))
    with pytest.raises(InputError, match="file not found"):
        pm.load_market(tmp_path / "nope.json")
    with pytest.raises(InputError, match="unrecognised market file"):
        pm.load_market(_write(tmp_path, "a,b\n1,2\n", "x.csv"))


def test_deribit_csv_loads_with_forwards_and_perps(shared_data: Path) -> None:
    folder = shared_data / "deribit_options_2026-02-04_05"
    m = pm.load_market(folder / "deribit_options_snapshot_20260204T213308Z.csv")
    assert m.valuation_time.isoformat().startswith("2026-02-04T21:33:08")
    assert 70000 < m.index_price("BTC") < 76000
    assert m.perpetual_price("BTC") == 73083.0  # perpetual_futures_prices.csv, same snapshot
    assert len(m.option_iv) > 1500
    # Marks are the chain's coin marks, untouched.
    inst = m.instrument("BTC-24APR26-65000-P")
    assert m.mark_price(inst) == pytest.approx(0.04309805)


def test_deribit_csv_bad_row(tmp_path: Path, shared_data: Path) -> None:
    src = (
        shared_data
        / "deribit_options_2026-02-04_05"
        / "deribit_options_snapshot_20260204T213308Z.csv"
    )
    lines = src.read_text().splitlines()[:5]
    cells = lines[3].split(",")
    cells[2] = "oops"
    lines[3] = ",".join(cells)
    bad = _write(tmp_path, "\n".join(lines) + "\n", "chain.csv")
    with pytest.raises(InputError, match=r"row 4: underlying"):
        pm.load_market(bad)
