"""The scale model of docs/scale-out.md, checked by simulation on this machine.

``python -m benchmarks._scale point ACCOUNTS LEGS UNDERLYINGS`` margins one synthetic batch
in its own process and prints one JSON line: session build (risk arrays once), building
``Q``, margining (in memory, no file I/O), and the peak RSS. Accounts hold ``LEGS``
positions on one underlying (60 %) or two (40 %); the chain is the real Deribit BTC chain,
and ``UNDERLYINGS > 2`` clones it under new underlyings (linear, USD-quoted, spot and vols
scaled per clone) to reach 2k … 50k instruments, as all venues' chains together would.

``scale_rows()`` runs a grid of points in subprocesses and fits, by least squares,

    margin time  t(N, L, P) = t0 + a·N + b·N·L + h·N·(P − 2)       (seconds)
    batch memory m(N, L, P) = m0 + c·N + d·N·L + k·N·(P − 2)       (GB, traced peak)
    session      s(I, P)    = s0 + f·I + g·I·P                      (seconds)
    its arrays   w(I, P)    = e·I·P                                 (GB: W is dense)

``N`` accounts, ``L`` positions per account, ``I`` instruments, ``P`` (pool, underlying)
pairs (2 on the real chain: BTC and ETH, each in its own pool). Stage 2 costs each account
of a pool every pair of that pool once the accounts of a chunk hold more than 8 patterns
of pairs (the ``h`` term), and ``W`` is dense over every pair's scenarios (``e``). The fit
is then extrapolated to 10⁷ accounts and 200 positions, and to where one 24 GB machine
stops fitting the batch in memory.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

import portmargin as pm
from benchmarks._common import REPO, load_chain
from portmargin.batch import MarginSession
from portmargin.instruments import ProductSpec, Settlement
from portmargin.market import OptionQuote, UnderlyingQuote, build_market


def clone_market(base: pm.MarketSnapshot, copies: int) -> pm.MarketSnapshot:
    """``base`` plus ``copies`` clones of its BTC option chain under underlyings U1, U2, ..."""
    if copies <= 0:
        return base
    btc = [n for n in base.option_names() if n.startswith("BTC-")]
    underlyings = dict(base.underlyings)
    products: dict[str, ProductSpec] = {}
    options: dict[str, OptionQuote] = {}
    for k in range(1, copies + 1):
        u = f"U{k}"
        scale = 1.0 + 0.01 * k
        underlyings[u] = UnderlyingQuote(spot=base.index_price("BTC") * scale, rate=0.0)
        products[u] = ProductSpec(u, u, Settlement.LINEAR, "USD", 1.0)
        for n in btc:
            _, expiry, strike, cp = n.split("-")
            name = f"{u}-{expiry}-{float(strike) * scale:.0f}-{cp}"
            options[name] = OptionQuote(mark_iv=base.option_iv[n] * (1.0 + 0.002 * k))
    kept = {n: OptionQuote(mark_iv=v) for n, v in base.option_iv.items()}
    return build_market(
        valuation_time=base.valuation_time,
        underlyings=underlyings,
        products=products,
        futures={f: base.futures[f] for f in base.futures},
        forwards=dict(base.forwards),
        options={**kept, **options},
    )


def _book(session: MarginSession, n: int, legs: int, seed: int) -> sp.csr_array:
    rng = np.random.default_rng(seed)
    cols = [
        np.array([session.index[x] for x in arr.table.names], dtype=np.int64)
        for arr in session.arrays.values()
    ]
    first = rng.integers(0, len(cols), n)
    second = np.where(rng.random(n) < 0.4, rng.integers(0, len(cols), n), first)
    idx = np.empty((n, legs), dtype=np.int64)
    for u, c in enumerate(cols):
        for which, half in (
            (first, slice(0, (legs + 1) // 2)),
            (second, slice((legs + 1) // 2, legs)),
        ):
            rows = np.flatnonzero(which == u)
            width = half.stop - half.start
            idx[rows, half] = c[rng.integers(0, c.size, (rows.size, width))]
    qty = np.round(rng.normal(0.0, 2.0, (n, legs)), 1)
    qty[qty == 0] = 0.1
    q = sp.csr_array(
        (qty.ravel(), (np.repeat(np.arange(n), legs), idx.ravel())),
        shape=(n, len(session.columns)),
    )
    q.sum_duplicates()
    return q


def point(n: int, legs: int, underlyings: int) -> dict[str, float]:
    base, _ = load_chain()
    market = clone_market(base, max(underlyings - 2, 0))
    model = pm.load_model("deribit")
    from portmargin.pricing._compiled import warm_up

    warm_up()
    t0 = time.perf_counter()
    session = MarginSession(market, model)
    t1 = time.perf_counter()
    q = _book(session, n, legs, seed=5)
    book = session.book([f"a{i}" for i in range(n)], q)
    t2 = time.perf_counter()
    c0 = time.process_time()
    res = session.margin(book)
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    assert np.all(np.isfinite(res.initial_margin))
    del res, book, q
    # memory of the batch itself (NumPy's allocations are traced): book, then margin
    import tracemalloc

    tracemalloc.start()
    q = _book(session, n, legs, seed=5)
    session.margin(session.book([f"a{i}" for i in range(n)], q))
    batch_peak = tracemalloc.get_traced_memory()[1] / 1e9
    tracemalloc.stop()
    return {
        "accounts": float(n),
        "legs": float(legs),
        "instruments": float(len(session.instruments)),
        "pairs": float(len(session.pairs)),
        "session_s": t1 - t0,
        "book_s": t2 - t1,
        "margin_s": t3 - t2,
        "margin_cpu_s": cpu,
        "peak_gb": batch_peak,
        "session_gb": _session_bytes(session) / 1e9,
        "process_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    }


def _session_bytes(session: MarginSession) -> int:
    """Bytes of the session's arrays: W and its copies, indicators, the risk arrays."""
    arrays = [session.weights, session.indicators, session.short_indicators, session._stacked]
    arrays += [session._tail_w, *session._pair_w, *(x for x in session._cash_w if x is not None)]
    arrays += [a for ra in session.arrays.values() for a in (ra.pnl_settle, ra.pnl_usd)]
    return int(sum(a.nbytes for a in arrays))


GRID = (
    (100_000, 20, 2),
    (300_000, 20, 2),
    (1_000_000, 20, 2),
    (2_000_000, 20, 2),
    (100_000, 5, 2),
    (100_000, 50, 2),
    (100_000, 200, 2),
    (100_000, 20, 12),
    (100_000, 20, 56),
)


def run_point(n: int, legs: int, unds: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._scale", "point", str(n), str(legs), str(unds)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def fit(points: list[dict[str, float]]) -> dict[str, float]:
    """Least-squares coefficients of the model in the module docstring."""
    n = np.array([p["accounts"] for p in points])
    legs = np.array([p["legs"] for p in points])
    inst = np.array([p["instruments"] for p in points])
    extra = np.array([p["pairs"] for p in points]) - 2.0
    pairs = extra + 2.0
    one = np.ones_like(n)
    per_account = np.column_stack([one, n, n * legs, n * extra])
    t = np.array([p["margin_s"] for p in points])
    m = np.array([p["peak_gb"] for p in points])
    s = np.array([p["session_s"] for p in points])
    w = np.array([p["session_gb"] for p in points])
    ta = np.linalg.lstsq(per_account, t, rcond=None)[0]
    ma = np.linalg.lstsq(per_account, m, rcond=None)[0]
    sa = np.linalg.lstsq(np.column_stack([one, inst, inst * pairs]), s, rcond=None)[0]
    e = float(np.linalg.lstsq((inst * pairs)[:, None], w, rcond=None)[0][0])
    keys = ("t0", "a", "b", "h", "m0", "c", "d", "k", "s0", "f", "g")
    out = dict(zip(keys, [float(x) for x in (*ta, *ma, *sa)], strict=True))
    out["e"] = e
    return out


def predict(
    c: dict[str, float], n: float, legs: float, inst: float, pairs: float
) -> tuple[float, float, float]:
    """(margin seconds, batch GB, session GB) of the fitted model."""
    extra = pairs - 2.0
    t = c["t0"] + c["a"] * n + c["b"] * n * legs + c["h"] * n * extra
    m = c["m0"] + c["c"] * n + c["d"] * n * legs + c["k"] * n * extra
    return t, m, c["e"] * inst * pairs


def scale_rows(grid: tuple[tuple[int, int, int], ...] = GRID) -> tuple[list[Any], dict[str, float]]:
    points = [run_point(*g) for g in grid]
    return points, fit(points)


def main() -> None:
    if sys.argv[1:2] == ["point"]:
        n, legs, unds = (int(x) for x in sys.argv[2:5])
        print(json.dumps(point(n, legs, unds)))
        return
    points, coef = scale_rows()
    for p in points:
        print(json.dumps(p))
    print(json.dumps(coef))


if __name__ == "__main__":
    main()
