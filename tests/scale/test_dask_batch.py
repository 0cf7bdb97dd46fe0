"""``portmargin batch`` on a Dask cluster equals the single-process run, bit for bit.

One ``LocalCluster`` of 2 worker processes serves the module (a few seconds to start; the
tests skip cleanly when it cannot start). Files are small: row groups of a few hundred rows
make several parts, shuffled rows make accounts span parts (they move to their owner),
sorted rows keep every account where it was read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

import portmargin as pm
from portmargin.batch import BatchRun, batch, run_batch
from portmargin.batch._cluster import ClusterBatch, local_cluster, run_on_cluster
from portmargin.batch._parts import account_hashes, plan
from portmargin.cli import main
from portmargin.errors import InputError
from portmargin.io.batch_output import result_table
from portmargin.io.positions_files import read_positions
from portmargin.market import shift

MARKET = pm.demo_market()
MODEL = pm.load_model("deribit")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    try:
        cm = local_cluster(2)
        c = cm.__enter__()
    except Exception as exc:  # no processes, no sockets: nothing to test here
        pytest.skip(f"a local Dask cluster cannot start here ({exc})")
    try:
        yield c
    finally:
        cm.__exit__(None, None, None)


def _rows(n_accounts: int, seed: int) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(seed)
    options = MARKET.option_names()
    d1 = [*MARKET.futures, *(f"{u}-PERPETUAL" for u in MARKET.underlyings)]
    out: list[tuple[str, str, float]] = []
    for a in range(n_accounts):
        acc = f"acc{a:04d}"
        names = list(rng.choice(options, size=int(rng.integers(1, 9)), replace=False))
        if rng.random() < 0.4:
            names.append(str(rng.choice(d1)))
        for name in names:
            out.append((acc, name, float(rng.integers(-20, 21) or 1) / 10.0))
        if rng.random() < 0.2:
            out.append((acc, names[0], 0.5))  # a duplicate row: summed in file order
        if rng.random() < 0.5:
            ccy = str(rng.choice(["BTC", "ETH", "USDC"]))
            out.append((acc, f"cash:{ccy}", float(rng.integers(0, 50)) / 10.0))
    return out


def _write(path: Path, rows: list[tuple[str, str, Any]], group: int = 150) -> Path:
    table = pa.table(
        {
            "account": [r[0] for r in rows],
            "instrument": [r[1] for r in rows],
            "quantity": pa.array([r[2] for r in rows]),
        }
    )
    pq.write_table(table, path, row_group_size=group)
    return path


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = _rows(160, seed=3)
    np.random.default_rng(9).shuffle(rows)
    return _write(tmp_path_factory.mktemp("pos") / "shuffled.parquet", rows)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("pos") / "grouped.parquet", _rows(160, seed=4))


def _bits(a: Any) -> Any:
    """An array's bytes (float figures compared bit for bit, NaN included)."""
    return np.ascontiguousarray(a).view(np.uint8)


def _same_run(got: BatchRun, ref: BatchRun) -> None:
    assert got.accounts == ref.accounts
    assert got.result.pools == ref.result.pools and got.result.pairs == ref.result.pairs
    for name in (
        "present",
        "initial_margin",
        "maintenance_margin",
        "equity",
        "binding_pair",
        "binding_scenario",
        "binding_pnl",
    ):
        assert np.array_equal(_bits(getattr(got.result, name)), _bits(getattr(ref.result, name))), (
            name
        )
    for name in ("haircut", "usd_rate", "initial_margin_usd", "deficit_usd"):
        assert np.array_equal(
            _bits(getattr(got.decisions, name)), _bits(getattr(ref.decisions, name))
        )
    assert tuple(got.decisions.status) == tuple(ref.decisions.status)
    assert tuple(got.decisions.account_status) == tuple(ref.decisions.account_status)
    assert (got.margin_calls, got.liquidations) == (ref.margin_calls, ref.liquidations)
    assert got.deficit_usd == ref.deficit_usd
    assert got.rejects == ref.rejects and got.left_out == ref.left_out


def _same_table(got: pa.Table, ref: pa.Table) -> None:
    assert got.schema == ref.schema and got.num_rows == ref.num_rows
    for name in ref.column_names:
        a, b = got.column(name), ref.column(name)
        if pa.types.is_floating(a.type):
            assert np.array_equal(_bits(a.to_numpy()), _bits(b.to_numpy())), name
        else:
            assert a.to_pylist() == b.to_pylist(), name


def _single(path: Path, **kw: Any) -> BatchRun:
    return run_batch(read_positions(path, **kw), MARKET, MODEL, **kw)


@pytest.mark.parametrize("which", ["shuffled", "grouped"])
def test_cluster_equals_single_process_bit_for_bit(
    client: Any, which: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(which)
    ref = _single(path)
    run = run_on_cluster(path, MARKET, MODEL, client, partitions=3)
    assert len(run.states) == 3
    _same_run(run.gather(), ref)
    assert run.accounts == len(ref.accounts)


def test_cluster_writes_one_file_in_single_process_order_and_a_dataset(
    client: Any, shuffled: Path, tmp_path: Path
) -> None:
    ref = _single(shuffled)
    ref_table = result_table(ref.accounts, ref.result, ref.session, ref.decisions)
    run = run_on_cluster(shuffled, MARKET, MODEL, client)
    run.write(tmp_path / "one.parquet")
    _same_table(pq.read_table(tmp_path / "one.parquet"), ref_table)
    run.write(tmp_path / "ds")
    parts = sorted(p.name for p in (tmp_path / "ds").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet"]
    ds = pq.read_table(tmp_path / "ds")
    order = np.lexsort((ds.column("currency").to_pylist(), ds.column("account").to_pylist()))
    ref_order = np.lexsort(
        (ref_table.column("currency").to_pylist(), ref_table.column("account").to_pylist())
    )
    _same_table(ds.take(pa.array(order)), ref_table.take(pa.array(ref_order)))
    run.write(tmp_path / "ds")  # replaces the dataset whole
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == parts
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cluster_reads_a_dataset_as_one_table(client: Any, tmp_path: Path) -> None:
    rows = _rows(90, seed=5)
    whole = _write(tmp_path / "whole.parquet", rows)
    folder = tmp_path / "dataset"
    folder.mkdir()
    for i, lo in enumerate(range(0, len(rows), 200)):
        _write(folder / f"f{i}.parquet", rows[lo : lo + 200], group=70)
    ref = _single(whole)
    got = run_on_cluster(folder, MARKET, MODEL, client).gather()
    _same_run(got, ref)
    local = batch(folder, MARKET, MODEL)  # the same dataset in one process
    _same_run(local, ref)


def test_cluster_tick_equals_single_process_tick(client: Any, shuffled: Path) -> None:
    ref = _single(shuffled)
    run = run_on_cluster(shuffled, MARKET, MODEL, client, partitions=3)
    moved = shift(MARKET, spot={"BTC": 0.96})
    after = run.tick(moved, "BTC")
    session = ref.session.with_market(moved, moved={"BTC"})
    book = session.book(list(ref.accounts), _book(ref))
    want, idx = session.remargin(book, ref.result, moved={"BTC"})
    assert after.exposed == idx.size > 0
    got = after.gather()
    for name in ("initial_margin", "maintenance_margin", "equity", "binding_pnl"):
        assert np.array_equal(_bits(getattr(got.result, name)), _bits(getattr(want, name)))
    again = after.tick(shift(moved, spot={"ETH": 1.03}), "ETH")  # ticks chain on the workers
    assert again.exposed > 0 and again.accounts == after.accounts


def _book(run: BatchRun) -> Any:
    from portmargin.batch._run import Rows, mapping_of, resolve_names
    from portmargin.models.session import build_quantities

    pos = read_positions(Path(run.source))
    names = resolve_names(pos, MARKET, "refuse")
    rows = Rows.of(pos)
    cols = mapping_of(names, run.session)[rows.name_code]
    shape = (len(pos.accounts), len(run.session.columns))
    return build_quantities(rows.account_code, cols, rows.quantity, shape, run.session.cash_cols)


def test_cluster_refuses_the_row_a_single_process_refuses(client: Any, tmp_path: Path) -> None:
    rows: list[tuple[str, str, Any]] = list(_rows(150, seed=6))
    rows[250] = (rows[250][0], "BTC-NOPE", 1.0)  # an unknown name late in the file
    rows[400] = (rows[400][0], rows[400][1], 5e9)  # a quantity beyond the limit, later still
    path = _write(tmp_path / "bad.parquet", [(a, i, float(q)) for a, i, q in rows])
    with pytest.raises(InputError) as single:
        _single(path)
    with pytest.raises(InputError) as clustered:
        run_on_cluster(path, MARKET, MODEL, client, partitions=3)
    assert str(clustered.value) == str(single.value)
    assert "row 401" in str(single.value)
    ref = _single(path, on_error="skip")
    got = run_on_cluster(path, MARKET, MODEL, client, on_error="skip", partitions=3)
    assert got.rejects == ref.rejects and len(ref.rejects) > 2
    _same_run(got.gather(), ref)


def test_pm_batch_with_a_client(client: Any, grouped: Path, tmp_path: Path) -> None:
    run = batch(grouped, MARKET, "deribit", client=client, out=tmp_path / "o.csv")
    assert isinstance(run, ClusterBatch)
    local = batch(grouped, MARKET, "deribit", out=tmp_path / "p.csv")
    assert isinstance(local, BatchRun)
    with (tmp_path / "o.csv").open() as a, (tmp_path / "p.csv").open() as b:
        assert list(csv.reader(a)) == list(csv.reader(b))
    assert "2 worker(s)" in run.summary()


def test_cli_on_a_cluster_writes_the_single_process_file(
    client: Any, grouped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --scheduler on the module's cluster (``--workers N`` starts the same local_cluster)
    one, two, ds = tmp_path / "one.parquet", tmp_path / "two.parquet", tmp_path / "ds"
    assert main(["batch", str(grouped), "--out", str(one)]) == 0
    address = client.scheduler.address
    assert main(["batch", str(grouped), "--out", str(two), "--scheduler", address]) == 0
    err = capsys.readouterr().err
    assert f"cluster {address}: started in" in err and "2 worker(s)" in err
    _same_table(pq.read_table(two), pq.read_table(one))
    argv = ["batch", str(grouped), "--out", str(ds), "--scheduler", address, "--partitions", "3"]
    assert main(argv) == 0
    assert len(list(ds.iterdir())) == 3
    assert main(["batch", str(grouped), "--out", str(ds), "--partitions", "3"]) != 0
    assert "--partitions: only with --workers or --scheduler" in capsys.readouterr().err


def test_plan_cuts_row_groups_and_numbers_rows(grouped: Path, tmp_path: Path) -> None:
    specs = plan(grouped, 3)
    assert len(specs) == 3
    assert specs[0].first_row == 1
    assert [s.first_row for s in specs[1:]] == [
        specs[i].first_row + specs[i].rows for i in range(2)
    ]
    assert sum(s.rows for s in specs) == pq.ParquetFile(grouped).metadata.num_rows
    with pytest.raises(InputError, match=r"no \.parquet files"):
        plan(tmp_path, 2)


def test_account_hash_is_the_same_in_every_process() -> None:
    import subprocess
    import sys

    labels = ["acc0001", "é-account", "", "a" * 200]
    code = (
        "from portmargin.batch._parts import account_hashes;"
        f"print(list(map(int, account_hashes({labels!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(list(map(int, account_hashes(labels))))
    assert len(set(account_hashes(labels).tolist())) == len(labels)
