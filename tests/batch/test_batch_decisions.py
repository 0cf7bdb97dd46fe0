"""``portmargin batch`` outputs: the account layer's status and USD figures, rejects, summary."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from batch_books import random_books, to_portfolio

import portmargin as pm
from portmargin.accounts import Account, AccountSettings, account_margin
from portmargin.accounts._account import result_pools
from portmargin.batch import run_batch
from portmargin.cli import main
from portmargin.errors import InputError
from portmargin.io.batch_output import RESULT_COLUMNS
from portmargin.io.positions_files import read_positions


def _write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["account", "instrument", "quantity"])
        w.writerows(rows)
    return path


def _book_rows(
    n: int, seed: int
) -> tuple[list[tuple[str, str, str]], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    positions, cash = random_books(pm.demo_market(), n, seed=seed)
    rows = [(a, k, repr(v)) for a, book in positions.items() for k, v in book.items()]
    rows += [(a, f"cash:{c}", repr(v)) for a, book in cash.items() for c, v in book.items()]
    return rows, positions, cash


@pytest.mark.parametrize("cross", [False, True])
def test_status_and_usd_columns_are_the_account_layers(tmp_path: Path, cross: bool) -> None:
    market = pm.demo_market()
    model = pm.load_model("deribit", cross=cross or None)
    rows, positions, cash = _book_rows(40, seed=21)
    src = _write(tmp_path / "pos.csv", rows)
    run = run_batch(read_positions(src), market, model)
    settings = AccountSettings()
    from portmargin.io.batch_output import result_table

    table = result_table(run.accounts, run.result, run.session, run.decisions).to_pylist()
    assert list(table[0]) == list(RESULT_COLUMNS)
    got = {(r["account"], r["currency"]): r for r in table}
    deficits = 0
    for acc in positions:
        # the single-account path: MarginModel.margin, then the account layer's rule
        single = model.margin(to_portfolio(acc, positions, cash), market)
        expected = account_margin(
            Account(acc, {}, cash.get(acc, {})),
            market,
            settings,
            result_pools(single),
            cross=model.cross,
            method="portfolio",
        )
        deficits += expected.status.value != "healthy"
        for pool in expected.pools:
            r = got.pop((acc, pool.currency))
            assert r["status"] == pool.status.value
            assert r["account_status"] == expected.status.value
            np.testing.assert_allclose(r["haircut"], pool.haircut, rtol=1e-9, atol=1e-15)
            np.testing.assert_allclose(r["usd_rate"], pool.usd_rate, rtol=1e-12)
            np.testing.assert_allclose(
                r["initial_margin_usd"], pool.initial_margin * pool.usd_rate, rtol=1e-9
            )
            np.testing.assert_allclose(
                r["deficit_usd"],
                max(-pool.initial_excess, 0.0) * pool.usd_rate,
                rtol=1e-9,
                atol=1e-9,
            )
    assert not got
    assert run.deficits == deficits > 0


def test_summary_goes_to_stderr_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows, positions, _ = _book_rows(12, seed=3)
    src = _write(tmp_path / "pos.csv", rows)
    out = tmp_path / "out.parquet"
    assert main(["batch", str(src), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{src}: 12 accounts margined in ")
    assert " with a deficit (" in lines[0] and lines[0].endswith(f"-> {out}")
    table = pq.read_table(out)
    assert table.column_names == list(RESULT_COLUMNS)
    assert set(table.column("account").to_pylist()) == set(positions)


def test_skip_writes_rejects_and_leaves_out_whole_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        ("good", "BTC-PERPETUAL", "1"),
        ("perp", "BTC-PERP", "1"),
        ("perp", "BTC-27MAR26-70000-P", "-1"),
        ("huge", "BTC-PERPETUAL", "1e308"),
        ("good", "cash:BTC", "0.5"),
        ("text", "ETH-PERPETUAL", "one"),
    ]
    src = _write(tmp_path / "pos.csv", rows)
    out = tmp_path / "out.csv"
    assert main(["batch", str(src), "--out", str(out)]) == 2  # the default refuses the file
    assert f"{src}: row 5: quantity: 1e+308 is outside" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pos.csv"]

    assert main(["batch", str(src), "--out", str(out), "--on-error", "skip"]) == 0
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"-> {out} (rejects: {tmp_path / 'out.rejects.csv'})")
    assert "4 rows rejected (3 accounts left out)" in err
    with out.open() as f:
        assert {r["account"] for r in csv.DictReader(f)} == {"good"}
    with (tmp_path / "out.rejects.csv").open() as f:
        rejects = list(csv.DictReader(f))
    assert [r["row"] for r in rejects] == ["3", "4", "5", "7"]
    by_row = {r["row"]: r for r in rejects}
    assert "did you mean 'BTC-PERPETUAL'?" in by_row["3"]["reason"]
    assert by_row["4"]["reason"] == "account: 'perp' left out, its row 3 was rejected"
    assert by_row["5"]["reason"].startswith("quantity: 1e+308 is outside [-1e9, 1e9] contracts")
    assert by_row["7"] == {
        "row": "7",
        "account": "text",
        "instrument": "ETH-PERPETUAL",
        "quantity": "one",
        "reason": "quantity: 'one' is not a number",
    }


def test_rejects_path_and_its_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "pos.csv", [("a", "BTC-PERPETUAL", "1")])
    out, rej = tmp_path / "out.csv", tmp_path / "bad.parquet"
    assert (
        main(["batch", str(src), "--out", str(out), "--on-error", "skip", "--rejects", str(rej)])
        == 0
    )
    assert pq.read_table(rej).num_rows == 0 and out.is_file()
    capsys.readouterr()
    assert main(["batch", str(src), "--out", str(out), "--rejects", str(rej)]) == 2
    assert "only with --on-error skip" in capsys.readouterr().err
    assert main(["batch", str(src), "--out", str(src)]) == 2
    assert "is the positions file itself" in capsys.readouterr().err


def test_unknown_and_lower_case_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    upper = _write(
        tmp_path / "upper.csv", [("a", "BTC-PERPETUAL", "2"), ("a", "BTC-27MAR26-70000-P", "-1")]
    )
    lower = _write(
        tmp_path / "lower.csv", [("a", "btc-perpetual", "2"), ("a", " btc-27mar26-70000-p ", "-1")]
    )
    for src in (upper, lower):
        assert main(["batch", str(src), "--out", str(tmp_path / f"{src.stem}.parquet")]) == 0
    a = pq.read_table(tmp_path / "upper.parquet").to_pylist()
    b = pq.read_table(tmp_path / "lower.parquet").to_pylist()
    assert a == b

    bad = _write(tmp_path / "bad.csv", [("a", "BTC-PERPETUAL", "1"), ("b", "BTC-PERP", "1")])
    capsys.readouterr()
    assert main(["batch", str(bad), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{bad}: row 3: instrument:" in err and "(did you mean 'BTC-PERPETUAL'?)" in err


def test_net_positions_are_bounded_like_rows(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "pos.csv", [("a", "BTC-PERPETUAL", "6e8"), ("a", "btc-perpetual", "6e8")]
    )
    with pytest.raises(
        InputError,
        match=r"row 2: quantity: net position of account 'a' in BTC-PERPETUAL is 1200000000\.0",
    ):
        run_batch(read_positions(src), pm.demo_market(), pm.load_model("deribit"))


def test_out_directory_problems_are_found_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path / "pos.csv", [("a", "BTC-PERPETUAL", "x")])  # would fail later
    target = tmp_path / "no" / "out.parquet"
    assert main(["batch", str(src), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {target}: directory {target.parent} does not exist"


def test_stale_temporaries_of_a_killed_run_are_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".out.csv.{proc.pid}.deadbeef.tmp"
    stale.write_text("half")
    old = time.time() - 600
    os.utime(stale, (old, old))
    keep = tmp_path / ".out.csv.notes.tmp"
    keep.write_text("not ours")
    src = _write(tmp_path / "pos.csv", [("a", "BTC-PERPETUAL", "1")])
    assert main(["batch", str(src), "--out", str(tmp_path / "out.csv")]) == 0
    assert not stale.exists() and keep.exists()
    assert "removed 1 temporary file(s) of an interrupted run" in capsys.readouterr().err
