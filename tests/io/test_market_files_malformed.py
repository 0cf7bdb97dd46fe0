"""Malformed market files: one line naming file, row and field, and nothing but portmargin's
own errors escaping the loaders (fuzzed with hypothesis for JSON and chain CSV)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import portmargin as pm
from portmargin.errors import InputError, PortmarginError

HEADER = (
    "timestamp,instrument_name,underlying,underlying_name,mark_price,implied_volatility,index_price"
)
T = "2026-02-04T21:33:08.476844+00:00"
ROWS = [
    f"{T},BTC-27MAR26-70000-C,73488.34,BTC-27MAR26,0.0712,0.4989,73104.95",
    f"{T},BTC-27MAR26-70000-P,73488.34,BTC-27MAR26,0.0241,0.4989,73104.95",
    f"{T},BTC-24APR26-65000-P,73751.77,SYN.BTC-24APR26,0.0431,0.5210,73104.95",
]
PERP_HEADER = "snapshot_file,coin,instrument_name,perp_futures_mark_price"


def _chain(tmp: Path, rows: list[str], perp: list[str] | None = None) -> Path:
    path = tmp / "chain.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    if perp is not None:
        (tmp / "perpetual_futures_prices.csv").write_text(
            "\n".join([PERP_HEADER, *perp]) + "\n", encoding="utf-8"
        )
    return path


def _one_line_error(path: Path, match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        pm.load_market(path)
    msg = str(info.value)
    assert "\n" not in msg and "np.float64" not in msg
    return msg


def test_synthetic_chain_loads(tmp_path: Path) -> None:
    m = pm.load_market(_chain(tmp_path, ROWS, ["chain.csv,BTC,BTC-PERPETUAL,73083.0"]))
    assert m.perpetual_price("BTC") == 73083.0
    assert m.index_price("BTC") == 73104.95
    assert m.quote_source(m.instrument("BTC-27MAR26")) == "quoted"


def test_short_row(tmp_path: Path) -> None:
    short = ",".join(ROWS[1].split(",")[:4])
    msg = _one_line_error(_chain(tmp_path, [ROWS[0], short]), r"row 3: 4 fields, the header has 7")
    assert msg.startswith(str(tmp_path / "chain.csv"))


def test_row_with_extra_columns(tmp_path: Path) -> None:
    _one_line_error(_chain(tmp_path, [ROWS[0] + ",x,y"]), r"row 2: 9 fields, the header has 7")


@pytest.mark.parametrize(
    ("stamp", "match"),
    [
        ("0001-01-01T00:00:00+01:00", r"row 2: timestamp: .* out of the range"),
        ("0001-01-01T00:00:00Z", r"row 2: timestamp: .* is outside \[2000-01-01, 2100-01-01\)"),
        ("yesterday", r"row 2: timestamp: 'yesterday' is not an ISO-8601 timestamp"),
        ("2026-02-04T21:33:08", r"row 2: timestamp: .* has no time zone"),
    ],
)
def test_bad_timestamp(tmp_path: Path, stamp: str, match: str) -> None:
    _one_line_error(_chain(tmp_path, [ROWS[0].replace(T, stamp, 1)]), match)


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = _chain(tmp_path, ROWS)
    path.write_bytes(path.read_bytes().replace(b"BTC-24APR26", b"BTC-24APR\xff\xfe"))
    _one_line_error(path, r"chain\.csv: not UTF-8 text \(byte 0xff at offset \d+")


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ("abc", r"row 2: index_price: 'abc' is not a number"),
        ("-3", r"row 2: index_price: must be in \[1e-08, 1e\+09\] USD, got -3.0"),
        ("inf", r"row 2: index_price: must be a finite number"),
        ("1e300", r"row 2: index_price: must be in .* got 1e\+300"),
        ("", r"row 2: index_price: empty for BTC-27MAR26-70000-C"),
    ],
)
def test_bad_index_cell(tmp_path: Path, cell: str, match: str) -> None:
    cells = ROWS[0].split(",")
    cells[6] = cell
    _one_line_error(_chain(tmp_path, [",".join(cells)]), match)


def test_bad_vol_and_mark_cells(tmp_path: Path) -> None:
    cells = ROWS[0].split(",")
    cells[5] = "25"
    _one_line_error(_chain(tmp_path, [",".join(cells)]), r"row 2: implied_volatility: must be")
    cells = ROWS[0].split(",")
    cells[4] = "2e9"
    _one_line_error(_chain(tmp_path, [",".join(cells)]), r"row 2: mark_price: must be")


@pytest.mark.parametrize(
    ("perp", "match"),
    [
        (["chain.csv,BTC,BTC-PERPETUAL,abc"], r"perp_futures_mark_price: 'abc' is not a number"),
        (["chain.csv,BTC,BTC-PERPETUAL,-1"], r"perp_futures_mark_price: must be in"),
        (["chain.csv,BTC"], r"row 2: 2 fields, the header has 4"),
        (["chain.csv,BTC,BTC-PERPETUAL,1,2"], r"row 2: 5 fields, the header has 4"),
    ],
)
def test_garbage_in_the_perpetual_file(tmp_path: Path, perp: list[str], match: str) -> None:
    msg = _one_line_error(_chain(tmp_path, ROWS, perp), match)
    assert msg.startswith(str(tmp_path / "perpetual_futures_prices.csv"))


def test_perpetual_file_without_its_columns(tmp_path: Path) -> None:
    path = _chain(tmp_path, ROWS)
    (tmp_path / "perpetual_futures_prices.csv").write_text("a,b\n1,2\n")
    _one_line_error(path, r"perpetual_futures_prices\.csv: row 1: no column 'snapshot_file'")


def test_chain_row_without_vol_and_a_mark_below_intrinsic_warns(tmp_path: Path) -> None:
    # A deep ITM put, F = 73488.34: intrinsic (80000 − F)/F = 0.0886 coin; mark 0.08.
    row = f"{T},BTC-27MAR26-80000-P,73488.34,BTC-27MAR26,0.08,,73104.95"
    m = pm.load_market(_chain(tmp_path, [*ROWS, row]))
    assert m.mark_price(m.instrument("BTC-27MAR26-80000-P")) == 0.08
    assert any("BTC-27MAR26-80000-P" in w for w in m.warnings)


def test_json_too_deep_or_huge_integer(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    _one_line_error(deep, r"deep\.json: bad JSON")
    huge = tmp_path / "huge.json"
    huge.write_text(
        '{"valuation_time": "2026-02-25T08:00:00Z", "underlyings": {"BTC": '
        '{"spot": ' + "9" * 5000 + "}}}"
    )
    _one_line_error(huge, r"huge\.json")


# -- fuzz -----------------------------------------------------------------------------------
VALID: dict[str, Any] = {
    "valuation_time": "2026-02-25T08:00:00Z",
    "products": {"XYZ": {"settlement": "linear", "quote_currency": "USD", "multiplier": 100}},
    "underlyings": {"XYZ": {"spot": 95.0, "rate": 0.0}, "BTC": {"spot": 70000.0}},
    "futures": {"BTC-27MAR26": {"mark_price": 70500.0}, "BTC-PERPETUAL": {"mark_price": 7e4}},
    "forwards": {"XYZ": {"20MAR26": 95.2}},
    "options": {"XYZ-20MAR26-80-P": {"mark_price": 2.0}, "BTC-27MAR26-70000-C": {"mark_iv": 0.55}},
    "settlements": {"BTC": {"20FEB26": 68950.0}},
}

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, 1e308, 25.0, 1e9, 1e9 + 1, 5e-9, -1.0]),
    st.text(max_size=12),
    st.sampled_from(
        ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-02-25", "27MAR26", "NaN"]
    ),
)
JSON = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        "BTC",
        "XYZ",
        "ETH",
        "",
        "BTC-27MAR26",
        "BTC-5FEB26-70000-P",
        "XYZ-20MAR26-80-C",
        "5FEB26",
        "30FEB26",
        "BTC-27MAR26-1e400-C",
        "BTC-27MAR26-" + "9" * 400 + "-C",
        "btc_usdc",
        "X-Y",
    ]
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    doc = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        target = doc
        for k in path[:-1]:
            target = target[k]
        action = draw(st.integers(0, 2))
        if not path or not isinstance(target, dict):
            doc = draw(JSON)
            continue
        if action == 0:
            target[path[-1]] = draw(JSON)
        elif action == 1:
            del target[path[-1]]
        else:
            value = target.pop(path[-1])
            target[draw(KEYS)] = value
    return doc


def _only_our_errors(load: Any) -> None:
    try:
        load()
    except PortmarginError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, msg
        assert "np.float64" not in msg, msg


@given(doc=mutated_documents())
def test_fuzz_json_market_only_portmargin_errors_one_line(doc: Any) -> None:
    _only_our_errors(lambda: pm.io.market_files.market_from_dict(doc, source="fuzz.json"))


CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            "abc",
            "nan",
            "inf",
            "-1",
            "0",
            "1e300",
            "1e-300",
            "25",
            "0.5",
            "73104.95",
            "BTC-27MAR26",
            "SYN.BTC-27MAR26",
            "ETH-27MAR26-3000-P",
            "BTC-PERPETUAL",
            "BTC_USDC",
            "0001-01-01T00:00:00+01:00",
            "2026-02-04T21:33:08Z",
            '"',
            '""',
            "a,b",
            "\x00",
        ]
    ),
    st.text(max_size=10),
)


@st.composite
def mutated_chains(draw: st.DrawFn) -> tuple[str, str | None]:
    rows = [r.split(",") for r in ROWS]
    for _ in range(draw(st.integers(1, 5))):
        r = draw(st.integers(0, len(rows) - 1))
        action = draw(st.integers(0, 3))
        if action == 0 and rows[r]:
            rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(CELLS)
        elif action == 1:
            rows[r] = rows[r][: draw(st.integers(0, len(rows[r])))]
        elif action == 2:
            rows[r] = rows[r] + [draw(CELLS)]
        else:
            rows.append(list(rows[r]))
    text = "\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n"
    perp = None
    if draw(st.booleans()):
        perp = "\n".join([PERP_HEADER, f"chain.csv,BTC,BTC-PERPETUAL,{draw(CELLS)}"]) + "\n"
    return text, perp


@given(chain=mutated_chains(), raw=st.binary(max_size=40))
def test_fuzz_chain_csv_only_portmargin_errors_one_line(
    chain: tuple[str, str | None], raw: bytes
) -> None:
    text, perp = chain
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chain.csv"
        path.write_bytes(text.encode("utf-8") + (raw if raw.startswith(b"\n") else b""))
        if perp is not None:
            (Path(tmp) / "perpetual_futures_prices.csv").write_text(perp, encoding="utf-8")
        _only_our_errors(lambda: pm.load_market(path))
