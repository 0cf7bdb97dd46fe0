"""1,000,000 accounts x 20 positions under deribit, in its own process (peak memory).

``python -m benchmarks._million N LEGS REPEATS`` runs the single-process pipeline and its
floor; ``python -m benchmarks._million N LEGS REPEATS cluster WORKERS`` runs the same file
on a local Dask cluster of WORKERS processes (cluster start timed apart, output as a
Parquet dataset and as one file). Each prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks._common import CACHE, load_chain, universe
from portmargin.batch import AccountBook, MarginSession
from portmargin.batch._io import (
    quantities_for,
    read_positions,
    result_table,
    session_for,
    write_table,
)
from portmargin.models import load_model


def make_file(n_accounts: int, legs: int, path: Path) -> None:
    market, _ = load_chain()
    names = universe(market)
    rng = np.random.default_rng(2026)
    n = n_accounts * legs
    inst = rng.integers(0, len(names), size=n).astype(np.int32)
    qty = np.round(rng.normal(0.0, 2.0, size=n), 1)
    qty[qty == 0] = 0.1
    acc = np.repeat(np.arange(n_accounts, dtype=np.int32), legs)
    acc_names = pa.array([f"acc{i:07d}" for i in range(n_accounts)], pa.string())
    table = pa.table(
        {
            "account": pa.DictionaryArray.from_arrays(pa.array(acc), acc_names).cast(pa.string()),
            "instrument": pa.DictionaryArray.from_arrays(pa.array(inst), pa.array(names)),
            "quantity": qty,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=1 << 20)
    tmp.replace(path)


def run(n_accounts: int, legs: int, repeats: int) -> dict[str, float]:
    path = CACHE / f"positions_{n_accounts}x{legs}.parquet"
    if not path.is_file():
        make_file(n_accounts, legs, path)
    market, _ = load_chain()
    model = load_model("deribit")
    out = CACHE / "margins.parquet"
    totals, floors, reads, compute, cpu_totals = [], [], [], [], []
    floor_cpu, batch_cpu = [], []
    for _ in range(repeats):
        c_start = time.process_time()
        t0 = time.perf_counter()
        pos = read_positions(path)
        t1 = time.perf_counter()
        session, mapping = session_for(
            pos, market, lambda n: MarginSession(market, model, tuple(n))
        )
        q = quantities_for(pos, session, mapping)
        res = session.margin(AccountBook(pos.accounts, q))
        t2 = time.perf_counter()
        write_table(result_table(pos.accounts, res, session), out)
        t3 = time.perf_counter()
        totals.append(t3 - t0)
        cpu_totals.append(time.process_time() - c_start)
        reads.append(t1 - t0)
        compute.append(t2 - t1)
        del pos, q, res
        # floor: read the same file + one sparse (accounts x instr) @ (instr x scenarios)
        f0, fc = time.perf_counter(), time.process_time()
        tab = pq.read_table(path)
        inst = tab.column("instrument").combine_chunks().dictionary_encode()
        acc = tab.column("account").combine_chunks().dictionary_encode()
        import scipy.sparse as sp

        qf = sp.csr_array(
            (
                tab.column("quantity").to_numpy(),
                (acc.indices.to_numpy(), inst.indices.to_numpy()),
            ),
            shape=(len(acc.dictionary), len(inst.dictionary)),
        )
        w = session.weights[: qf.shape[1]]
        _ = qf @ w
        floors.append(time.perf_counter() - f0)
        floor_cpu.append(time.process_time() - fc)
        del tab, inst, acc, qf, _
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    # the whole `portmargin batch` run (the account layer's decisions too), as the workers do
    from portmargin.batch import run_batch
    from portmargin.io.batch_output import write_tables

    batches = []
    for _ in range(max(1, repeats // 2)):
        b0, bc = time.perf_counter(), time.process_time()
        run = run_batch(read_positions(path), market, model)
        write_tables([(result_table(run.accounts, run.result, run.session, run.decisions), out)])
        batches.append(time.perf_counter() - b0)
        batch_cpu.append(time.process_time() - bc)
        del run
    med = lambda xs: float(np.median(xs))  # noqa: E731
    return {
        "batch_s": med(batches),
        "batch_cpu_s": med(batch_cpu),
        "total_cpu_s": med(cpu_totals),
        "floor_cpu_s": med(floor_cpu),
        "total_s": med(totals),
        "read_s": med(reads),
        "compute_s": med(compute),
        "floor_s": med(floors),
        "peak_gb": peak,
        "accounts": n_accounts,
        "positions": n_accounts * legs,
    }


def run_cluster(n_accounts: int, legs: int, repeats: int, workers: int) -> dict[str, float]:
    import shutil

    from portmargin.batch._cluster import local_cluster, run_on_cluster

    path = CACHE / f"positions_{n_accounts}x{legs}.parquet"
    if not path.is_file():
        make_file(n_accounts, legs, path)
    market, _ = load_chain()
    model = load_model("deribit")
    t0 = time.perf_counter()
    totals, files, runs, cpus = [], [], [], []
    with local_cluster(workers) as client:
        started = time.perf_counter() - t0
        client.run(_warm)  # JIT cache load in every worker, timed with the start
        warm = time.perf_counter() - t0 - started
        worker_cpu: list[list[float]] = []
        for _ in range(repeats):
            shutil.rmtree(CACHE / "margins_ds", ignore_errors=True)
            before = client.run(_cpu)
            c0 = time.process_time()
            t1 = time.perf_counter()
            batch = run_on_cluster(path, market, model, client)
            t2 = time.perf_counter()
            batch.write(CACHE / "margins_ds")
            t3 = time.perf_counter()
            cpus.append(time.process_time() - c0)  # the driver's share of the dataset run
            after = client.run(_cpu)
            worker_cpu.append(sorted(after[w] - before[w] for w in after))
            batch.write(CACHE / "margins_one.parquet")
            t4 = time.perf_counter()
            totals.append(t3 - t1)
            runs.append(t2 - t1)
            files.append(t4 - t3)
            del batch
        peaks = client.run(_peak)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    return {
        "workers": float(workers),
        "start_s": started,
        "warm_s": warm,
        "total_s": med(totals),
        "run_s": med(runs),
        "one_file_s": med(files),
        "driver_cpu_s": med(cpus),
        "worker_cpu_s": [med([w[i] for w in worker_cpu]) for i in range(workers)],
        "worker_peak_gb": max(peaks.values()),
        "driver_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    }


def _warm() -> float:
    from portmargin.pricing._compiled import warm_up

    return warm_up()


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


if __name__ == "__main__":
    n, legs, reps = (int(x) for x in sys.argv[1:4])
    if len(sys.argv) > 5 and sys.argv[4] == "cluster":
        print(json.dumps(run_cluster(n, legs, reps, int(sys.argv[5]))))
    else:
        print(json.dumps(run(n, legs, reps)))
