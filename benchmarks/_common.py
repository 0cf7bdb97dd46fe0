from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import portmargin as pm

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
