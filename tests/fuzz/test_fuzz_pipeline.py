"""Fuzzed books through the pipeline, in process: margin, BatchMargin, run_batch, the CLI.

Whatever a file holds: only PortmarginError escapes, its message is one line; what is
margined has finite, non-negative requirements (maintenance ≤ initial) and finite equity;
``portmargin batch`` writes its files completely or not at all; with ``--on-error skip``
every row of the file is in a margined account or in the rejects, never both.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from fuzz_support import (
    CASH_NAMES,
    EXTREMES,
    MARKET,
    ODD_NAMES,
    PROFILES,
    VALID_NAMES,
    Budget,
    accounts_docs,
    cases,
    check_error,
    check_figures,
    csv_text,
    dump_json,
    listing,
)
from hypothesis import given
from hypothesis import strategies as st

import portmargin as pm
from portmargin.accounts import AccountStatus, BatchMargin, load_accounts
from portmargin.batch import run_batch
from portmargin.cli import main
from portmargin.errors import PortmarginError
from portmargin.io.positions_files import read_positions

MODEL = pm.load_model("deribit")
STATUSES = {s.value for s in AccountStatus}
TOL = 1e-9

# Books that mostly load, so the margin itself is exercised: listed names, sizes up to and
# beyond the bounds.
sizes = st.one_of(st.floats(-50.0, 50.0), st.sampled_from(EXTREMES))
listed = st.one_of(st.sampled_from(VALID_NAMES), st.sampled_from(ODD_NAMES[:3]))


@st.composite
def books(draw: st.DrawFn) -> dict[str, Any]:
    """A portfolio document of listed instruments and coin/stable balances."""
    positions = draw(
        st.lists(st.fixed_dictionaries({"instrument": listed, "quantity": sizes}), max_size=6)
    )
    cash = draw(st.dictionaries(st.sampled_from(["BTC", "ETH", "USDC", "USD"]), sizes, max_size=3))
    return {"cash": cash, "positions": positions}


def _check_result(res: pm.MarginResult) -> None:
    check_figures(res.initial_margin, res.maintenance_margin)
    check_figures(res.equity, non_negative=False)
    assert res.maintenance_margin <= res.initial_margin * (1 + TOL) + TOL
    for pool in res.by_currency:
        check_figures(pool.initial_margin, pool.maintenance_margin)
        check_figures(pool.equity, non_negative=False)


@pytest.mark.parametrize("thorough", PROFILES)
def test_margin_of_loaded_books(thorough: bool) -> None:
    budget = Budget(thorough)

    @cases(thorough, share=2)
    @given(doc=books())
    def run(doc: dict[str, Any]) -> None:
        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "book.json"
                path.write_bytes(dump_json(doc))
                try:
                    book = pm.load_portfolio(path)
                except PortmarginError as exc:
                    check_error(exc, path)
                    return
                try:
                    res = pm.margin(book, MARKET, MODEL)
                except PortmarginError as exc:
                    check_error(exc, None)
                    return
                _check_result(res)

        budget.run(body)

    run()


@pytest.mark.parametrize("thorough", PROFILES)
def test_batch_margin_of_accounts_files(thorough: bool) -> None:
    budget = Budget(thorough)

    @cases(thorough, share=2)
    @given(doc=accounts_docs())
    def run(doc: dict[str, Any]) -> None:
        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "accounts.json"
                path.write_bytes(dump_json(doc))
                try:
                    accounts, settings = load_accounts(path)
                    figures = BatchMargin(MODEL, settings).evaluate(accounts, MARKET)
                except PortmarginError as exc:
                    check_error(exc, None)
                    return
                for m in figures:
                    assert m.status.value in STATUSES
                    for p in m.pools:
                        check_figures(p.initial_margin, p.maintenance_margin, p.haircut)
                        check_figures(p.equity, p.usd_rate, non_negative=False)

        budget.run(body)

    run()


def _position_rows() -> st.SearchStrategy[list[str]]:
    accounts = st.sampled_from(["a", "b", "c", "d", "", "x" * 201])
    names = st.one_of(listed, st.sampled_from([*CASH_NAMES, "BTC-PERP", "NOPE"]))
    quantities = st.one_of(sizes.map(repr), st.sampled_from(["x", "", "1e400"]))
    return st.tuples(accounts, names, quantities).map(list)


positions_files = csv_text(["account", "instrument", "quantity"], _position_rows(), max_rows=10)


@pytest.mark.parametrize("thorough", PROFILES)
@pytest.mark.parametrize("on_error", ["refuse", "skip"])
def test_run_batch(thorough: bool, on_error: str) -> None:
    budget = Budget(thorough)

    @cases(thorough, share=2)
    @given(raw=positions_files)
    def run(raw: bytes) -> None:
        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "pos.csv"
                path.write_bytes(raw)
                try:
                    pos = read_positions(path, on_error=on_error)  # type: ignore[arg-type]
                    out = run_batch(pos, MARKET, MODEL, on_error=on_error)  # type: ignore[arg-type]
                except PortmarginError as exc:
                    check_error(exc, path)
                    assert listing(Path(tmp)) == {"pos.csv": raw}
                    return
                r = out.result
                present = r.present
                for field in ("initial_margin", "maintenance_margin"):
                    values = getattr(r, field)[present]
                    assert np.isfinite(values).all() and (values >= 0).all()
                assert np.isfinite(r.equity[present]).all()
                assert (r.maintenance_margin <= r.initial_margin * (1 + TOL) + TOL).all()
                assert len(out.decisions.status) == int(present.sum())
                assert set(out.decisions.status) <= STATUSES
                assert np.isfinite(out.decisions.deficit_usd).all()
                assert (np.asarray(out.decisions.deficit_usd) >= 0).all()
                if on_error == "skip":
                    margined = set(out.accounts)
                    kept = sum(1 for c in pos.account_code if pos.accounts[c] in margined)
                    assert kept + len(out.rejects) == len(pos.quantity) + len(pos.rejects)
                    assert not margined & {x.account for x in out.rejects}
                    rows = [x.row for x in out.rejects]
                    assert len(rows) == len(set(rows))
                else:
                    assert not out.rejects

        budget.run(body)

    run()


@pytest.mark.parametrize("thorough", PROFILES)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_batch_writes_all_or_nothing(
    thorough: bool, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = Budget(thorough)

    @cases(thorough, share=4)
    @given(raw=positions_files, skip=st.booleans())
    def run(raw: bytes, skip: bool) -> None:
        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "pos.csv"
                src.write_bytes(raw)
                out = Path(tmp) / f"margins.{fmt}"
                args = ["batch", str(src), "--out", str(out)]
                if skip:
                    args += ["--on-error", "skip"]
                capsys.readouterr()
                code = main(args)
                err = capsys.readouterr().err.strip()
                assert len(err.splitlines()) == 1, err
                if code != 0:
                    assert code == 2 and err.startswith("error: "), err
                    assert listing(Path(tmp)) == {"pos.csv": raw}
                    return
                rejects = Path(tmp) / f"margins.rejects.{fmt}"
                assert rejects.is_file() == skip
                assert sorted(listing(Path(tmp))) == sorted(
                    ["pos.csv", out.name, *([rejects.name] if skip else [])]
                )
                rows = _read(out)
                for row in rows:
                    for col in ("initial_margin", "maintenance_margin", "deficit_usd"):
                        v = float(row[col])
                        assert math.isfinite(v) and v >= 0, row
                    assert row["status"] in STATUSES and row["account_status"] in STATUSES

        budget.run(body)

    run()


def _read(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("thorough", PROFILES)
def test_cli_margin_json(thorough: bool, capsys: pytest.CaptureFixture[str]) -> None:
    budget = Budget(thorough)

    @cases(thorough, share=4)
    @given(doc=books())
    def run(doc: dict[str, Any]) -> None:
        def body() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "book.json"
                path.write_bytes(dump_json(doc))
                capsys.readouterr()
                code = main(["margin", str(path), "--format", "json"])
                captured = capsys.readouterr()
                if code != 0:
                    assert code == 2, captured.err
                    assert len(captured.err.strip().splitlines()) == 1, captured.err
                    return
                data = json.loads(captured.out)
                check_figures(data["initial_margin"], data["maintenance_margin"])
                check_figures(data["equity"], non_negative=False)

        budget.run(body)

    run()
