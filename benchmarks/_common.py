from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

import portmargin as pm
from portmargin.batch import MarginSession

REPO = Path(__file__).resolve().parents[1]
CHAIN = REPO.parent / "shared" / "data" / "deribit_options_2026-02-04_05"
CACHE = REPO / "out" / "bench-cache"


def load_chain() -> tuple[pm.MarketSnapshot, str]:
    path = CHAIN / "deribit_options_snapshot_20260205T212937Z.csv"
    if path.is_file():
        return pm.load_market(path), f"real Deribit chain {path.name}"
    return pm.demo_market(), "built-in demo market (shared data folder absent)"


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    import scipy

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


def universe(market: pm.MarketSnapshot) -> list[str]:
    return [
        *market.option_names(),
        *market.futures,
        *(f"{u}-PERPETUAL" for u in market.underlyings),
    ]


# Who holds what in the synthetic books of (c) and (e): a share of accounts per set of
# underlyings held. An assumption, not data (no per-account data is public): in the chain
# snapshot used here BTC is 86 % of the options open interest and 90 % of the day's volume
# (ETH the rest), and most accounts are taken to trade one underlying, a minority (market
# makers, basis traders) both. A BTC move then exposes 80 % of the accounts, an ETH move 40 %.
BOOK_MIX: tuple[tuple[tuple[str, ...], float], ...] = (
    (("BTC",), 0.60),
    (("ETH",), 0.20),
    (("BTC", "ETH"), 0.20),
)


def synthetic_book(
    session: MarginSession, n_accounts: int, legs: int, seed: int
) -> tuple[sp.csr_array, str]:
    """``legs`` random positions per account on the session's chain, underlyings by BOOK_MIX.

    Mixed accounts draw their legs from both chains and hold at least one leg of each.
    Returns the quantities and a one-line description of the mix.
    """
    rng = np.random.default_rng(seed)
    cols = {
        und: np.array([session.index[n] for n in arr.table.names], dtype=np.int64)
        for und, arr in session.arrays.items()
    }
    mix = [(unds, share) for unds, share in BOOK_MIX if all(u in cols for u in unds)]
    shares = np.array([share for _, share in mix])
    which = rng.choice(len(mix), size=n_accounts, p=shares / shares.sum())
    idx = np.empty((n_accounts, legs), dtype=np.int64)
    for i, (unds, _) in enumerate(mix):
        rows = np.flatnonzero(which == i)
        pool = np.concatenate([cols[u] for u in unds])
        idx[rows] = pool[rng.integers(0, pool.size, size=(rows.size, legs))]
        if len(unds) > 1:
            for j, u in enumerate(unds):
                idx[rows, j] = cols[u][rng.integers(0, cols[u].size, size=rows.size)]
    qty = np.round(rng.normal(0.0, 2.0, size=(n_accounts, legs)), 1)
    qty[qty == 0] = 0.1
    q = sp.csr_array(
        (qty.ravel(), (np.repeat(np.arange(n_accounts), legs), idx.ravel())),
        shape=(n_accounts, len(session.columns)),
    )
    q.sum_duplicates()
    text = ", ".join(
        f"{'+'.join(u)} only {s:.0%}" if len(u) == 1 else f"{'+'.join(u)} {s:.0%}"
        for (u, _), s in zip(mix, shares / shares.sum(), strict=True)
    )
    return q, text
