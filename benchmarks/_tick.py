"""(c) incremental tick: timings interleaved with the full recompute, and a profile."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from dataclasses import dataclass

import portmargin as pm
from portmargin.batch import AccountBook, BatchResult, MarginSession
from portmargin.market import shift


@dataclass(frozen=True)
class TickTimes:
    full: float  # median full recompute, s
    ticks: dict[str, float]  # median with_market + remargin per moved underlying, s
    touched: dict[str, float]  # fraction of accounts re-margined


def moved_market(market: pm.MarketSnapshot, und: str, factor: float) -> pm.MarketSnapshot:
    """``market`` with ``und`` moved by ``factor`` (index, perpetual, futures, forwards)."""
    return shift(market, spot={und: factor})


def tick(
    session: MarginSession,
    book: AccountBook,
    before: BatchResult,
    market: pm.MarketSnapshot,
    und: str,
) -> tuple[BatchResult, int]:
    """One incremental tick: risk arrays of ``und`` only, then the exposed accounts."""
    after = session.with_market(market, moved={und})
    result, idx = after.remargin(book, before, moved={und})
    return result, int(idx.size)


def time_ticks(
    session: MarginSession, book: AccountBook, unds: tuple[str, ...], repeats: int
) -> TickTimes:
    """Full recompute and a tick per underlying, interleaved so load drifts hit all alike."""
    before = session.margin(book)
    markets = {u: moved_market(session.market, u, 0.99) for u in unds}
    full: list[float] = []
    ticks: dict[str, list[float]] = {u: [] for u in unds}
    touched: dict[str, float] = {}
    for _ in range(repeats):
        t = time.perf_counter()
        session.margin(book)
        full.append(time.perf_counter() - t)
        for u in unds:
            t = time.perf_counter()
            _, n = tick(session, book, before, markets[u], u)
            ticks[u].append(time.perf_counter() - t)
            touched[u] = n / len(book)
    return TickTimes(
        statistics.median(full), {u: statistics.median(v) for u, v in ticks.items()}, touched
    )


# (label, how to read it off the profile); "cum" = cumulative time of a function,
# "own" = time inside a C routine. Parts are disjoint; "rest" is what is left.
_PARTS = (
    ("risk arrays of the moved underlying", ("cum", "engine.py", "risk_arrays")),
    ("session rebuild (W, indicators) less risk arrays", ("cum", "_session.py", "__post_init__")),
    ("exposed-account test + row selection", ("cum", "_session.py", "remargin")),
    ("re-margin of the exposed accounts", ("cum", "_session.py", "_margin_rows")),
    ("  of which sparse products (csr_matvecs)", ("own", "~", "csr_matvecs")),
    ("  of which CSR slicing (columns per pair, rows)", ("own", "~", "get_csr_submatrix")),
    ("  of which aggregation", ("cum", "engine.py", "aggregate")),
    ("  of which charges, credits, compose, cap", ("cum", "engine.py", "pool_components")),
    ("`BatchResult.put` (copy of the previous result)", ("cum", "_session.py", "put")),
)


def tick_profile(
    session: MarginSession, book: AccountBook, und: str, repeats: int
) -> list[tuple[str, float]]:
    """Share of the profiled tick time per part (cProfile; its overhead inflates Python)."""
    before = session.margin(book)
    market = moved_market(session.market, und, 0.99)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(repeats):
        tick(session, book, before, market, und)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]

    def read(kind: str, file: str, func: str) -> float:
        total = 0.0
        for (filename, _line, name), (_cc, _nc, tt, ct, _callers) in stats.items():
            if (func in name if file == "~" else name == func) and filename.endswith(file):
                total += tt if kind == "own" else ct
        return float(total)

    got = {label: read(*how) for label, how in _PARTS}
    ra = got["risk arrays of the moved underlying"]
    got["session rebuild (W, indicators) less risk arrays"] -= ra
    margin = got["re-margin of the exposed accounts"]
    put = got["`BatchResult.put` (copy of the previous result)"]
    got["exposed-account test + row selection"] -= margin + put
    total = read("cum", "_tick.py", "tick")
    return [(label, got[label] / total) for label, _ in _PARTS]
