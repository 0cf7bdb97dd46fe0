"""``portmargin batch``: files in, one row per account and pool out, clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from batch_books import random_books, to_portfolio

import portmargin as pm
from portmargin.cli import main


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["account", "instrument", "quantity"])
        w.writerows(rows)


@pytest.mark.parametrize("out_name", ["out.parquet", "out.csv"])
def test_batch_cli_matches_margin(tmp_path: Path, out_name: str) -> None:
    market = pm.demo_market()
    positions, cash = random_books(market, 30, seed=5)
    rows = [(a, k, repr(v)) for a, book in positions.items() for k, v in book.items()]
    rows += [(a, f"cash:{c}", repr(v)) for a, book in cash.items() for c, v in book.items()]
    rows.reverse()  # an account's rows need not be contiguous
    src = tmp_path / "pos.csv"
    _write_csv(src, rows)
    out = tmp_path / out_name
    assert main(["batch", str(src), "--model", "deribit", "--out", str(out)]) == 0
    if out.suffix == ".parquet":
        table = pq.read_table(out).to_pylist()
    else:
        with out.open() as f:
            table = list(csv.DictReader(f))
    got = {(r["account"], r["currency"]): r for r in table}
    model = pm.load_model("deribit")
    for acc in positions:
        single = model.margin(to_portfolio(acc, positions, cash), market)
        for pr in single.by_currency:
            r = got.pop((acc, pr.currency))
            np.testing.assert_allclose(float(r["initial_margin"]), pr.initial_margin, rtol=1e-9)
            np.testing.assert_allclose(float(r["equity"]), pr.equity, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(float(r["excess"]), pr.initial_excess, rtol=1e-9, atol=1e-12)
    assert not got


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("a", "BTC-27MAR26-70000-P", "x")], "pos.csv"),
        ([("a", "BTC-27MAR26-70000-P", "1"), ("b", "NOPE-1", "1")], "row 3: instrument"),
        ([("a", "cash:SOL", "1")], "row 2: instrument: no SOL index"),
        ([("a", "BTC-27MAR26-70000-P", "inf")], "row 2: quantity"),
    ],
)
def test_batch_cli_bad_input_one_line_nothing_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[tuple[str, str, str]],
    message: str,
) -> None:
    src = tmp_path / "pos.csv"
    _write_csv(src, rows)
    out = tmp_path / "out.parquet"
    assert main(["batch", str(src), "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [src]
