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
    first: dict[str, float]  # the first tick of each kind on the book (fills its cache), s
    full_cpu: float  # median CPU seconds (every thread) of a full recompute
    ticks_cpu: dict[str, float]  # median CPU seconds of a tick


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
    first: dict[str, float] = {}
    for u in unds:  # the first tick of each kind fills the book's cache: timed apart
        t = time.perf_counter()
        tick(session, book, before, markets[u], u)
        first[u] = time.perf_counter() - t
    full: list[float] = []
    full_cpu: list[float] = []
    ticks: dict[str, list[float]] = {u: [] for u in unds}
    ticks_cpu: dict[str, list[float]] = {u: [] for u in unds}
    touched: dict[str, float] = {}
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        session.margin(book)
        full.append(time.perf_counter() - t)
        full_cpu.append(time.process_time() - c)
        for u in unds:
            t, c = time.perf_counter(), time.process_time()
            _, n = tick(session, book, before, markets[u], u)
            ticks[u].append(time.perf_counter() - t)
            ticks_cpu[u].append(time.process_time() - c)
            touched[u] = n / len(book)
    med = statistics.median
    return TickTimes(
        med(full),
        {u: med(v) for u, v in ticks.items()},
        touched,
        first,
        med(full_cpu),
        {u: med(v) for u, v in ticks_cpu.items()},
    )


# (label, how to read it off the profile); "cum" = cumulative time of a function,
# "own" = time inside a C routine. Parts are disjoint; "rest" is what is left.
_PARTS = (
    ("risk arrays of the moved underlying", ("cum", "model.py", "risk_arrays")),
    ("session rebuild (moved blocks of W) less risk arrays", ("cum", "session.py", "_rebuild")),
    ("exposed-account test + row selection (first tick only)", ("cum", "session.py", "remargin")),
    ("re-margin of the exposed accounts", ("cum", "session.py", "_margin_rows")),
    ("  of which sparse products (compiled kernel)", ("own", "_jit.py", "csr_dense")),
    ("  of which sparse products (SciPy, in charges)", ("own", "~", "csr_matvec")),
    ("  of which aggregation", ("cum", "engine.py", "aggregate_call")),
    ("  of which charges, credits, compose, cap", ("cum", "engine.py", "pool_components")),
    ("`BatchResult.put` (copy of the previous result)", ("cum", "session.py", "put")),
)


def tick_profile(
    session: MarginSession, book: AccountBook, und: str, repeats: int
) -> list[tuple[str, float]]:
    """Share of the profiled tick time per part (cProfile; its overhead inflates Python)."""
    before = session.margin(book)
    market = moved_market(session.market, und, 0.99)
    tick(session, book, before, market, und)  # the book's cache of this kind of tick
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(repeats):
        tick(session, book, before, market, und)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]

    def read(kind: str, file: str, func: str) -> float:
        total = 0.0
        for (filename, _line, name), (_cc, _nc, tt, ct, _callers) in stats.items():
            if func == "aggregate_call":  # Aggregation.__call__
                hit = name == "__call__" and filename.endswith(file)
            else:
                hit = (func in name if file == "~" else name == func) and filename.endswith(file)
            if hit:
                total += tt if kind == "own" else ct
        return float(total)

    got = {label: read(*how) for label, how in _PARTS}
    ra = got["risk arrays of the moved underlying"]
    got["session rebuild (moved blocks of W) less risk arrays"] -= ra
    margin = got["re-margin of the exposed accounts"]
    put = got["`BatchResult.put` (copy of the previous result)"]
    got["exposed-account test + row selection (first tick only)"] -= margin + put
    total = read("cum", "_tick.py", "tick")
    return [(label, got[label] / total) for label, _ in _PARTS]
