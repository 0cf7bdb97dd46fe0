"""What the fuzz suite shares: profiles, the error contract, and generators of book files.

Every property runs twice: under the loaded hypothesis profile (``fast`` in ``make test``)
and, marked ``fuzz``, under ``thorough`` (``pytest -m fuzz``; ``PORTMARGIN_FUZZ_EXAMPLES``
cases, 10,000 by default, and at most ``PORTMARGIN_FUZZ_SECONDS`` per property when set).

The generators draw documents that are mostly well formed, with bad values mixed in where
a loader must look (huge, tiny, non-finite or non-numeric quantities, unknown, lower-case,
over-long or non-UTF-8 names, wrong types, ragged rows), and then optionally corrupt the
encoded bytes (flip, insert, delete, duplicate).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import settings
from hypothesis import strategies as st

import portmargin as pm
from portmargin.errors import PortmarginError
from portmargin.io import limits

T = TypeVar("T")

PROFILES = [
    pytest.param(False, id="fast"),
    pytest.param(True, id="thorough", marks=pytest.mark.fuzz),
]
"""Parametrise a property with this: the loaded profile, and ``thorough`` under ``fuzz``."""


def cases(thorough: bool, share: int = 1) -> settings:
    """The profile's settings, with ``1/share`` of its cases (a property that costs more)."""
    base = settings.get_profile("thorough") if thorough else settings()
    return settings(base, max_examples=max(1, base.max_examples // share))


class Budget:
    """Stops running examples after ``PORTMARGIN_FUZZ_SECONDS`` (thorough runs only).

    Hypothesis has no wall-clock limit; past the budget the remaining examples are drawn
    but not run. Once an example has failed every later one runs, so shrinking works.
    """

    def __init__(self, thorough: bool) -> None:
        seconds = float(os.environ.get("PORTMARGIN_FUZZ_SECONDS", "0") or 0)
        self.end = time.monotonic() + seconds if thorough and seconds > 0 else math.inf
        self.failed = False

    def run(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` unless the budget is spent."""
        if not self.failed and time.monotonic() > self.end:
            return
        try:
            fn()
        except BaseException:
            self.failed = True
            raise


# -- the error contract --------------------------------------------------------------------
_STEP = r"""([\w-]+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_PATH = rf"{_STEP}(\.{_STEP})*"
_WHERE = re.compile(
    r"(row \d+: (account|instrument|quantity)\b"
    r"|row \d+: \d+ fields?, the header has \d+$"
    r"|line \d+"
    r"|header|no header"
    r"|key '"
    r"|bad JSON|bad YAML|not UTF-8 text"
    r"|(positions|cash|balances|accounts|settings|name|description|id|instrument|quantity)\b"
    r"|net quantity"
    r"|\(top level\)"
    r"|no positions"
    r"|missing column|column \w+: type"
    r"|not a readable Parquet file|cannot read"
    r"|unknown \w+ format"
    r"|[\d,]+ bytes, larger than"
    rf"|{_PATH}: )"  # a document's field path: positions.0.quantity, cash.'B TC', extra
)


def check_error(exc: BaseException, path: Path | str | None) -> str:
    """Assert the error contract: a PortmarginError, one line, naming the file and where."""
    assert isinstance(exc, PortmarginError), f"{type(exc).__name__} escaped: {exc!r}"
    msg = str(exc)
    assert msg, "empty message"
    assert "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
    assert "np.float64" not in msg and "Traceback" not in msg, msg
    if path is not None:
        prefix = f"{path}: "
        assert msg.startswith(prefix), f"does not name the file first: {msg!r}"
        assert _WHERE.match(msg[len(prefix) :]), f"does not say where: {msg!r}"
    return msg


def load_or_error(load: Callable[[Path], T], path: Path) -> T | None:
    """``load(path)``, or ``None`` after checking the error contract of what it raised."""
    try:
        return load(path)
    except PortmarginError as exc:
        check_error(exc, path)
        return None


def listing(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its content (to prove nothing was written)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def check_portfolio(book: pm.Portfolio) -> None:
    """A loaded book is within the documented bounds."""
    for p in book.positions:
        assert 1 <= len(p.instrument) <= limits.NAME_MAX_CHARS and p.instrument.strip()
        assert math.isfinite(p.quantity) and abs(p.quantity) <= limits.QUANTITY_MAX
    for q in book.net_positions().values():
        assert abs(q) <= limits.QUANTITY_MAX
    for ccy, amount in book.cash.items():
        assert 1 <= len(ccy) <= limits.CURRENCY_MAX_CHARS
        assert math.isfinite(amount) and abs(amount) <= limits.BALANCE_MAX


def check_figures(*values: float, non_negative: bool = True) -> None:
    """Figures are finite (and requirements non-negative)."""
    for v in values:
        assert math.isfinite(v), values
        if non_negative:
            assert v >= 0.0, values


# -- generators ----------------------------------------------------------------------------
MARKET = pm.demo_market()
_OPTIONS = MARKET.option_names()
VALID_NAMES = sorted(
    {
        *_OPTIONS[:: max(1, len(_OPTIONS) // 12)],
        *MARKET.futures,
        "BTC-PERPETUAL",
        "ETH-PERPETUAL",
    }
)
ODD_NAMES = [
    "BTC-PERP",
    "btc-perpetual",
    " ETH-PERPETUAL ",
    "BTC-30FEB26-70000-C",
    "BTC-27MAR26-0-C",
    "BTC-27MAR26-70000-X",
    "XYZ-27MAR26",
    "BTC_USDC",
    "",
    " ",
    "X" * 101,
    "B\u00e9TC-PERPETUAL",
    "BTC-27MAR26-1e999-C",
]
CASH_NAMES = ["cash:BTC", "cash:eth", "cash:USDC", "cash:USDT", "cash:USD", "cash:SOL", "cash:"]
CURRENCIES = ["BTC", "ETH", "USDC", "USDT", "USD", "SOL", "btc", "", "X" * 21]

EXTREMES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    5e-324,
    1e9,
    -1e9,
    1e9 * (1 + 1e-15),
    1e12,
    -1e12,
    1.0000001e12,
    1e306,
    -1e308,
    math.inf,
    -math.inf,
    math.nan,
]

names = st.one_of(st.sampled_from(VALID_NAMES), st.sampled_from(ODD_NAMES), st.text(max_size=12))
"""Instrument names: listed, odd (lower case, unknown, over-long) and random text."""

numbers: st.SearchStrategy[float] = st.one_of(
    st.sampled_from(EXTREMES),
    st.floats(-20.0, 20.0),
    st.floats(allow_nan=True, allow_infinity=True),
)
"""Quantities and balances: small, at and beyond the bounds, non-finite."""

json_numbers: st.SearchStrategy[Any] = st.one_of(
    numbers,
    st.integers(-(10**15), 10**15),
    st.sampled_from([10**400, True, False, None, "1.5", "abc", "1e400", [], {}]),
)
"""What a JSON/YAML document may hold where a number belongs."""

quantity_text = st.one_of(
    numbers.map(repr),
    st.sampled_from(["", " ", "x", "1e400", "-inf", "NaN", " 2 ", "1_000", "0x10", "1,5", "+.5"]),
    st.text(max_size=6),
)
"""What a CSV cell may hold where a number belongs."""

ids = st.one_of(st.sampled_from(["a", "b", "c", "acct-1"]), st.text(max_size=8), st.just("i" * 201))


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data``, usually unchanged, else with a few byte-level corruptions."""
    if draw(st.integers(0, 3)) != 0:
        return data
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        i = draw(st.integers(0, len(out)))
        if kind == "flip" and i < len(out):
            out[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            piece = draw(st.sampled_from([b"\xff", b"\x00", b"\n", b",", b'"', b"\r\n", b"\xc3"]))
            out[i:i] = piece
        elif kind == "delete":
            del out[i : i + draw(st.integers(1, 8))]
        else:
            out[i:i] = out[i : i + draw(st.integers(1, 16))]
    return bytes(out)


@st.composite
def portfolio_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A portfolio document (JSON/YAML shape), mostly valid."""
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["name"] = draw(st.one_of(st.text(max_size=10), st.just("n" * 201), st.integers()))
    if draw(st.integers(0, 5)) == 0:
        doc["description"] = draw(st.text(max_size=20))
    doc["cash"] = draw(st.dictionaries(st.sampled_from(CURRENCIES), json_numbers, max_size=3))
    positions = draw(
        st.lists(
            st.fixed_dictionaries(
                {"instrument": st.one_of(names, st.integers()), "quantity": json_numbers}
            ),
            max_size=5,
        )
    )
    doc["positions"] = positions
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.sampled_from(["extra", "Positions", "cash "]))] = 1
    if draw(st.integers(0, 9)) == 0:
        return {"positions": draw(st.sampled_from([{}, "x", 1, None]))}
    return doc


@st.composite
def csv_text(
    draw: st.DrawFn, header: list[str], fields: st.SearchStrategy[list[str]], max_rows: int = 6
) -> bytes:
    """A CSV file: ``header`` (maybe altered) and rows drawn from ``fields``, maybe corrupt."""
    head = list(header)
    change = draw(st.integers(0, 7))
    if change == 0:
        head = [h.upper() for h in head]
    elif change == 1:
        head = [*head, "extra"]
    elif change == 2 and len(head) > 1:
        head = head[:-1]
    elif change == 3:
        head = list(reversed(head))
    rows = draw(st.lists(fields, max_size=max_rows))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for row in rows:
        if draw(st.integers(0, 9)) == 0:
            buf.write("\n")  # a blank line
        ragged = draw(st.integers(0, 11))
        if ragged == 0:
            row = [*row, "1"]
        elif ragged == 1 and row:
            row = row[:-1]
        w.writerow(row)
    return draw(mutated(buf.getvalue().encode("utf-8")))


def book_rows() -> st.SearchStrategy[list[str]]:
    """Rows ``instrument,quantity`` of a portfolio CSV (cash rows included)."""
    return st.tuples(st.one_of(names, st.sampled_from(CASH_NAMES)), quantity_text).map(list)


def position_rows() -> st.SearchStrategy[list[str]]:
    """Rows ``account,instrument,quantity`` of a positions CSV."""
    return st.tuples(ids, st.one_of(names, st.sampled_from(CASH_NAMES)), quantity_text).map(list)


@st.composite
def accounts_docs(draw: st.DrawFn) -> dict[str, Any]:
    """An accounts document, mostly valid."""
    accounts = []
    for _ in range(draw(st.integers(0, 4))):
        acc: dict[str, Any] = {"id": draw(st.one_of(ids, st.integers()))}
        acc["balances"] = draw(
            st.dictionaries(st.sampled_from(CURRENCIES), json_numbers, max_size=3)
        )
        acc["positions"] = draw(
            st.lists(
                st.fixed_dictionaries({"instrument": names, "quantity": json_numbers}),
                max_size=4,
            )
        )
        if draw(st.integers(0, 4)) == 0:
            acc["pm_approved"] = draw(st.one_of(st.booleans(), st.just("yes"), st.just(1)))
        accounts.append(acc)
    doc: dict[str, Any] = {"accounts": accounts}
    if draw(st.booleans()):
        doc["settings"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "haircuts": st.dictionaries(
                        st.sampled_from(CURRENCIES), json_numbers, max_size=2
                    ),
                    "margin_call_level": json_numbers,
                    "liquidation_level": json_numbers,
                    "min_pm_equity_usd": json_numbers,
                    "fallback_rule_set": st.sampled_from(["strategy", "nope", 3]),
                },
            )
        )
    if draw(st.integers(0, 9)) == 0:
        doc["description"] = "ignored"
    return doc


def dump_json(doc: object) -> bytes:
    """JSON text of ``doc`` (NaN and Infinity as Python writes them)."""
    return json.dumps(doc, allow_nan=True).encode("utf-8")


def dump_yaml(doc: object) -> bytes:
    """YAML text of ``doc``."""
    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8")
