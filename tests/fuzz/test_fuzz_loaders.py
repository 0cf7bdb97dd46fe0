"""Fuzzed book files against their loaders: a bounded result or one user error line.

For every format (portfolio JSON/YAML/CSV, positions CSV/Parquet, accounts JSON) and any
bytes: only a PortmarginError escapes, its message is one line naming the file and where,
and what loads is within the documented bounds (portmargin.io.limits).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from fuzz_support import (
    PROFILES,
    Budget,
    accounts_docs,
    book_rows,
    cases,
    check_error,
    check_portfolio,
    csv_text,
    dump_json,
    dump_yaml,
    ids,
    load_or_error,
    mutated,
    names,
    numbers,
    portfolio_docs,
    position_rows,
    quantity_text,
)
from hypothesis import given
from hypothesis import strategies as st

import portmargin as pm
from portmargin.accounts import load_accounts
from portmargin.errors import PortmarginError
from portmargin.io import limits
from portmargin.io.positions_files import PositionsFile, read_positions


def _file(tmp: str, name: str, data: bytes) -> Path:
    path = Path(tmp) / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("thorough", PROFILES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_portfolio_documents(thorough: bool, fmt: str) -> None:
    budget = Budget(thorough)
    dump = dump_json if fmt == "json" else dump_yaml

    @cases(thorough)
    @given(doc=portfolio_docs(), data=st.data())
    def run(doc: dict[str, Any], data: st.DataObject) -> None:
        raw = data.draw(mutated(dump(doc)))

        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                book = load_or_error(pm.load_portfolio, _file(tmp, f"book.{fmt}", raw))
                if book is not None:
                    check_portfolio(book)

        budget.run(body)

    run()


@pytest.mark.parametrize("thorough", PROFILES)
def test_portfolio_csv(thorough: bool) -> None:
    budget = Budget(thorough)

    @cases(thorough)
    @given(raw=csv_text(["instrument", "quantity"], book_rows()))
    def run(raw: bytes) -> None:
        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                book = load_or_error(pm.load_portfolio, _file(tmp, "book.csv", raw))
                if book is not None:
                    check_portfolio(book)

        budget.run(body)

    run()


def _check_positions(pos: PositionsFile, n_rows: int | None = None) -> None:
    q = np.asarray(pos.quantity)
    assert np.isfinite(q).all()
    cash = np.array([n.startswith("cash:") for n in pos.names] + [False], dtype=bool)
    limit = np.where(cash[pos.name_code], limits.BALANCE_MAX, limits.QUANTITY_MAX)
    assert (np.abs(q) <= limit).all()
    for a in pos.accounts:
        assert a.strip() and len(a) <= limits.ID_MAX_CHARS
    for n in pos.names:
        assert n.strip() and len(n) <= limits.NAME_MAX_CHARS
    rows = pos.row_numbers(np.arange(q.size)).tolist()
    assert rows == sorted(rows) and len(set(rows)) == len(rows)
    rejected = [r.row for r in pos.rejects]
    assert not set(rows) & set(rejected)
    for r in pos.rejects:
        assert r.row >= 1 and "\n" not in r.reason and r.reason
    if n_rows is not None:
        assert all(1 <= r <= n_rows for r in rows + rejected)


@pytest.mark.parametrize("thorough", PROFILES)
@pytest.mark.parametrize("on_error", ["refuse", "skip"])
def test_positions_csv(thorough: bool, on_error: str) -> None:
    budget = Budget(thorough)

    @cases(thorough)
    @given(raw=csv_text(["account", "instrument", "quantity"], position_rows(), max_rows=8))
    def run(raw: bytes) -> None:
        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                path = _file(tmp, "pos.csv", raw)
                pos = load_or_error(lambda p: read_positions(p, on_error=on_error), path)  # type: ignore[arg-type]
                if pos is not None:
                    _check_positions(pos, raw.count(b"\n") + 1 + raw.count(b"\r"))

        budget.run(body)

    run()


_TYPES = ["string", "binary", "int", "float", "bool", "null", "dict", "badtext"]


@st.composite
def parquet_tables(draw: st.DrawFn) -> pa.Table:
    """A positions table with columns of any type, values mostly valid."""
    n = draw(st.integers(0, 6))
    cols: dict[str, pa.Array] = {}
    for col, values in (
        ("account", ids),
        ("instrument", st.one_of(names, st.sampled_from(["cash:BTC", "cash:SOL"]))),
        ("quantity", numbers),
    ):
        if draw(st.integers(0, 19)) == 0:
            continue  # a missing column
        kind = draw(st.sampled_from(_TYPES if col != "quantity" else [*_TYPES, "float", "text"]))
        if col == "quantity" and kind in ("float", "int", "bool", "null"):
            vals: list[Any] = draw(st.lists(numbers, min_size=n, max_size=n))
        elif col == "quantity":
            vals = draw(st.lists(quantity_text, min_size=n, max_size=n))
        else:
            vals = draw(st.lists(values, min_size=n, max_size=n))
        cols[col] = _typed(kind, vals, draw)
    if draw(st.integers(0, 9)) == 0:
        cols["other"] = pa.array(range(n))
    return pa.table(cols) if cols else pa.table({"x": pa.array(range(n))})


def _typed(kind: str, vals: list[Any], draw: Callable[[st.SearchStrategy[Any]], Any]) -> pa.Array:
    n = len(vals)
    if kind == "null":
        return pa.nulls(n)
    if kind == "bool":
        return pa.array([bool(draw(st.booleans())) for _ in vals])
    if kind == "int":
        return pa.array(
            [
                int(v) if isinstance(v, float) and math.isfinite(v) and abs(v) < 9e18 else i
                for i, v in enumerate(vals)
            ],
            pa.int64(),
        )
    if kind == "float":
        return pa.array(
            [v if isinstance(v, float) else float(len(str(v))) for v in vals], pa.float64()
        )
    if kind == "binary":
        raw = [str(v).encode("utf-8") for v in vals]
        if raw and draw(st.booleans()):
            raw[draw(st.integers(0, n - 1))] = b"\xff\xfe"
        return pa.array(raw, pa.binary())
    if kind == "badtext":  # a string column whose bytes are not all UTF-8 (unchecked writer)
        raw = [str(v).encode("utf-8") + (b"\xff" if i % 2 else b"") for i, v in enumerate(vals)]
        return pa.array(raw, pa.binary()).view(pa.string())
    if kind == "dict":
        return pa.array([str(v) for v in vals]).dictionary_encode()
    return pa.array([None if draw(st.integers(0, 9)) == 0 else str(v) for v in vals], pa.string())


@pytest.mark.parametrize("thorough", PROFILES)
@pytest.mark.parametrize("on_error", ["refuse", "skip"])
def test_positions_parquet(thorough: bool, on_error: str) -> None:
    budget = Budget(thorough)

    @cases(thorough)
    @given(table=parquet_tables(), cut=st.integers(0, 40))
    def run(table: pa.Table, cut: int) -> None:
        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "pos.parquet"
                pq.write_table(table, path)
                if cut == 0:  # a truncated file
                    data = path.read_bytes()
                    path.write_bytes(data[: len(data) // 2])
                pos = load_or_error(lambda p: read_positions(p, on_error=on_error), path)  # type: ignore[arg-type]
                if pos is not None:
                    _check_positions(pos, table.num_rows)

        budget.run(body)

    run()


@pytest.mark.parametrize("thorough", PROFILES)
def test_accounts_file(thorough: bool) -> None:
    budget = Budget(thorough)

    @cases(thorough)
    @given(doc=accounts_docs(), data=st.data())
    def run(doc: dict[str, Any], data: st.DataObject) -> None:
        raw = data.draw(mutated(dump_json(doc)))

        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                path = _file(tmp, "accounts.json", raw)
                try:
                    accounts, settings = load_accounts(path)
                except PortmarginError as exc:
                    check_error(exc, path)
                    return
                seen = set()
                for a in accounts:
                    assert a.account_id not in seen and len(a.account_id) <= limits.ID_MAX_CHARS
                    seen.add(a.account_id)
                    for name, q in a.positions.items():
                        assert len(name) <= limits.NAME_MAX_CHARS
                        assert math.isfinite(q) and abs(q) <= limits.QUANTITY_MAX
                    for b in a.balances.values():
                        assert math.isfinite(b) and abs(b) <= limits.BALANCE_MAX
                assert 0 < settings.margin_call_level <= 100

        budget.run(body)

    run()
