"""1,000,000 accounts x 20 positions under deribit, in its own process (peak memory)."""

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
    totals, floors, reads, compute = [], [], [], []
    for _ in range(repeats):
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
        reads.append(t1 - t0)
        compute.append(t2 - t1)
        del pos, q, res
        # floor: read the same file + one sparse (accounts x instr) @ (instr x scenarios)
        f0 = time.perf_counter()
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
        del tab, inst, acc, qf, _
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    med = lambda xs: float(np.median(xs))  # noqa: E731
    return {
        "total_s": med(totals),
        "read_s": med(reads),
        "compute_s": med(compute),
        "floor_s": med(floors),
        "peak_gb": peak,
        "accounts": n_accounts,
        "positions": n_accounts * legs,
    }


if __name__ == "__main__":
    n, legs, reps = (int(x) for x in sys.argv[1:4])
    print(json.dumps(run(n, legs, reps)))
