"""Run every benchmark, print a table, write BENCHMARKS.md (see benchmarks/__init__.py).

Every figure is a median with its baseline measured in the same run (the machine is shared:
absolute times move from run to run, ratios much less). ``PORTMARGIN_BENCH_QUICK=1`` runs
smaller sizes (a smoke run of the harness).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import portmargin as pm
from benchmarks._common import REPO, load_chain, machine, median_time, synthetic_book, universe
from benchmarks._tick import tick_profile, time_ticks
from portmargin.batch import MarginSession
from portmargin.pricing import use_kernel
from portmargin.pricing._compiled import threads

QUICK = os.environ.get("PORTMARGIN_BENCH_QUICK") == "1"
MILLION = 100_000 if QUICK else 1_000_000


def _ql_risk_array(arr: pm.RiskArray) -> np.ndarray:
    import QuantLib as ql  # noqa: N813

    tab, scen = arr.table, arr.scenarios
    t_after = np.maximum(tab.T - scen.lookahead_years, 0.0)
    sig = scen.vol_shock.shocked(tab.sigma, tab.T * 365.0, scen.vol_directions)
    out = np.zeros((len(tab.instruments), len(scen)))
    for i in np.flatnonzero(tab.is_option):
        kind = ql.Option.Call if tab.is_call[i] else ql.Option.Put
        df = tab.df[i] ** (t_after[i] / tab.T[i]) if tab.T[i] > 0 else 1.0
        v0 = tab.value_usd[i]
        for j in range(len(scen)):
            f = tab.F[i] * (1.0 + scen.price_moves[j])
            sd = sig[i, j] * np.sqrt(t_after[i])
            v = ql.blackFormula(kind, tab.K[i], f, max(sd, 1e-12), df)
            out[i, j] = tab.multiplier[i] * v - v0
    return out


def _times(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(median wall, median CPU of every thread) seconds."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def _subprocess_json(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={**os.environ, **(env or {})},
    )
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _jit_costs() -> tuple[float, float]:
    """Seconds to compile every kernel (empty cache) and to load them from the cache."""
    code = (
        "import json; from portmargin.pricing._compiled import warm_up; "
        "print(json.dumps({'s': warm_up()}))"
    )
    with tempfile.TemporaryDirectory(prefix="pm-numba-") as cache:
        cold = _subprocess_json(["-c", code], {"NUMBA_CACHE_DIR": cache})["s"]
        warm = _subprocess_json(["-c", code], {"NUMBA_CACHE_DIR": cache})["s"]
    return float(cold), float(warm)


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    notes: list[str] = []
    market, source = load_chain()
    names = universe(market)
    print(f"market: {source}; {len(names)} instruments", flush=True)
    started = time.perf_counter()

    # startup costs, apart: numba compile (empty cache) and cache load
    cold, warm = _jit_costs()
    rows.append(
        (
            "(0) startup: numba kernels",
            f"{warm * 1e3:.0f} ms",
            f"load from the on-disk cache; compile with an empty cache {cold:.1f} s "
            f"({cold / warm:.0f}x)",
        )
    )
    from portmargin.pricing._compiled import warm_up

    warm_up()

    # (a) risk arrays for the whole chain, compiled kernel vs the NumPy reference
    insts = [market.instrument(n) for n in names]
    ra: dict[str, float] = {}
    for model_name in ("deribit", "span16"):
        model = pm.load_model(model_name)
        model.risk_arrays(insts, market)
        wall, cpu = _times(lambda m=model: m.risk_arrays(insts, market), 15)
        with use_kernel("numpy"):
            ref_wall, ref_cpu = _times(lambda m=model: m.risk_arrays(insts, market), 15)
        n_scen = len(model.scenario_set("BTC"))
        evals = len(names) * n_scen
        rows.append(
            (
                f"(a) risk arrays, {model_name}",
                f"{wall * 1e3:.1f} ms",
                f"{len(names)} instr x {n_scen} scen ({evals / wall / 1e6:.0f} M evals/s); "
                f"CPU {cpu * 1e3:.1f} ms; NumPy reference {ref_wall * 1e3:.1f} ms "
                f"({ref_wall / wall:.1f}x), CPU {ref_cpu * 1e3:.1f} ms",
            )
        )
        ra[model_name] = wall
    model = pm.load_model("deribit")
    arrays = model.risk_arrays(insts, market)
    with use_kernel("numpy"):
        ref_arrays = model.risk_arrays(insts, market)
    diff = max(
        float(np.max(np.abs(arrays[u].pnl_usd - ref_arrays[u].pnl_usd)))
        / float(np.max(arrays[u].table.multiplier * arrays[u].table.F))
        for u in arrays
    )
    notes.append(
        f"(a) compiled vs NumPy reference: largest difference {diff:.1e} of a contract's "
        "notional (M·F)."
    )
    t_ql = median_time(lambda: [_ql_risk_array(a) for a in arrays.values()], 3)
    check = max(
        float(np.max(np.abs(_ql_risk_array(a)[a.table.is_option] - a.pnl_usd[a.table.is_option])))
        for a in arrays.values()
    )
    rows.append(
        (
            "(e) peer: QuantLib blackFormula loop",
            f"{t_ql * 1e3:.0f} ms",
            f"{t_ql / ra['deribit']:.0f}x slower than (a); max abs diff {check:.1e} USD",
        )
    )
    print(*rows[-3:], sep="\n", flush=True)

    # (d) what-if on a 50-leg account, and the single explained margin
    session = MarginSession(market, model)
    rng = np.random.default_rng(4)
    legs = {
        str(n): float(q)
        for n, q in zip(
            rng.choice(market.option_names(), 50, replace=False),
            rng.choice([-1.0, 1.0], 50) * rng.integers(1, 10, 50),
            strict=True,
        )
    }
    book50 = pm.Portfolio.of(legs)
    session.margin_positions(legs)
    model.margin(book50, market)
    wi_wall, wi_cpu = _times(lambda: session.margin_positions(legs), 2000)
    one_wall, one_cpu = _times(lambda: model.margin(book50, market), 51)
    rows.append(
        (
            "(d) what-if, 50 legs (session)",
            f"{wi_wall * 1e6:.0f} us",
            f"CPU {wi_cpu * 1e6:.0f} us (target 200 us)",
        )
    )
    rows.append(
        (
            "(d) MarginModel.margin, 50 legs (explained)",
            f"{one_wall * 1e3:.2f} ms",
            f"CPU {one_cpu * 1e3:.2f} ms (target 1.8 ms); {one_wall / wi_wall:.0f}x the what-if",
        )
    )
    print(*rows[-2:], sep="\n", flush=True)

    # (e) plain NumPy peer without sparse aggregation, and (c) incremental ticks
    n_acc = 100_000
    q, mix = synthetic_book(session, n_acc, 20, seed=4)
    book = session.book([f"a{i}" for i in range(n_acc)], q)
    sub = 10_000
    dense = q[:sub].toarray()
    t_np = median_time(lambda: dense @ session.weights, 3) * (n_acc / sub)
    t_sp = median_time(lambda: q @ session.weights, 3)
    rows.append(
        (
            "(e) peer: dense NumPy Q @ W (scaled)",
            f"{t_np:.2f} s / 100k",
            f"{t_np / t_sp:.0f}x the sparse product ({t_sp:.2f} s)",
        )
    )
    unds = tuple(u for u in ("BTC", "ETH") if u in session.arrays)
    ticks = time_ticks(session, book, unds, 7)
    for u in unds:
        rows.append(
            (
                f"(c) incremental {u} tick, 100k accounts",
                f"{ticks.ticks[u] * 1e3:.0f} ms",
                f"{ticks.touched[u]:.0%} re-margined; full recompute {ticks.full * 1e3:.0f} ms "
                f"({ticks.full / ticks.ticks[u]:.1f}x); CPU {ticks.ticks_cpu[u] * 1e3:.0f} vs "
                f"{ticks.full_cpu * 1e3:.0f} ms ({ticks.full_cpu / ticks.ticks_cpu[u]:.1f}x); "
                f"first tick on the book {ticks.first[u] * 1e3:.0f} ms",
            )
        )
    profile = tick_profile(session, book, unds[0], 3)

    # (h) both cores in one process: chunk threads (the default), the kernels' own threads,
    # one thread; interleaved rounds, medians
    import numba

    n_cores = threads()
    setups: dict[str, tuple[str, int]] = {
        "chunks": (str(n_cores), 1),
        "kernel": ("1", numba.config.NUMBA_NUM_THREADS),
        "one": ("1", 1),
    }
    walls: dict[str, list[float]] = {k: [] for k in setups}
    cpus: dict[str, list[float]] = {k: [] for k in setups}
    session.margin(book)
    for _ in range(5):
        for key, (chunk_threads, kernel_threads) in setups.items():
            os.environ["PORTMARGIN_THREADS"] = chunk_threads
            numba.set_num_threads(kernel_threads)
            w, c = _times(lambda: session.margin(book), 1)
            walls[key].append(w)
            cpus[key].append(c)
    del os.environ["PORTMARGIN_THREADS"]
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    with use_kernel("numpy"):
        sci_wall, _ = _times(lambda: session.margin(book), 5)
    wall = {k: statistics.median(v) for k, v in walls.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    rows.append(
        (
            f"(h) full margin 100k accounts, {n_cores} chunk threads (default)",
            f"{wall['chunks'] * 1e3:.0f} ms",
            f"1 thread {wall['one'] * 1e3:.0f} ms ({wall['one'] / wall['chunks']:.2f}x); "
            f"{numba.config.NUMBA_NUM_THREADS} kernel threads {wall['kernel'] * 1e3:.0f} ms; "
            f"SciPy products {sci_wall * 1e3:.0f} ms; CPU {cpu['chunks'] * 1e3:.0f} vs "
            f"{cpu['one'] * 1e3:.0f} ms",
        )
    )
    print(*rows[-4:], sep="\n", flush=True)

    # (b) 1M accounts x 20 positions: one process, then 2 Dask workers (own processes)
    mil = _subprocess_json(["-m", "benchmarks._million", str(MILLION), "20", "2"])
    label = f"{MILLION // 1000:,}k" if MILLION < 1_000_000 else "1M"
    rows.append(
        (
            f"(b) {label} accounts x 20 positions, deribit, 1 process",
            f"{mil['total_s']:.1f} s",
            f"floor {mil['floor_s']:.1f} s ({mil['total_s'] / mil['floor_s']:.2f}x); read "
            f"{mil['read_s']:.1f} s, margin {mil['compute_s']:.1f} s; "
            f"peak {mil['peak_gb']:.2f} GB; with the account layer (`portmargin batch`) "
            f"{mil['batch_s']:.1f} s",
        )
    )
    rows.append(
        (
            f"(b) {label}: CPU seconds, 1 process",
            f"{mil['total_cpu_s']:.1f} s",
            f"floor {mil['floor_cpu_s']:.1f} s ({mil['total_cpu_s'] / mil['floor_cpu_s']:.2f}x); "
            f"`portmargin batch` {mil['batch_cpu_s']:.1f} s",
        )
    )
    clu = _subprocess_json(["-m", "benchmarks._million", str(MILLION), "20", "1", "cluster", "2"])
    busiest = max(clu["worker_cpu_s"])
    rows.append(
        (
            f"(b) {label} accounts x 20 positions, 2 Dask workers",
            f"{clu['total_s']:.1f} s",
            f"{mil['batch_s'] / clu['total_s']:.2f}x `portmargin batch` in 1 process; "
            f"{clu['total_s'] / mil['floor_s']:.2f}x its floor; CPU per worker "
            f"{' + '.join(f'{c:.1f}' for c in clu['worker_cpu_s'])} s, driver "
            f"{clu['driver_cpu_s']:.1f} s; busiest worker {busiest:.1f} s CPU = "
            f"{busiest / mil['floor_cpu_s']:.2f}x the floor's CPU; dataset out; one file "
            f"+{clu['one_file_s']:.1f} s; cluster start {clu['start_s']:.1f} s + JIT cache "
            f"{clu['warm_s']:.1f} s (apart); worker peak {clu['worker_peak_gb']:.2f} GB",
        )
    )
    print(*rows[-2:], sep="\n", flush=True)

    # other engineers' rows: VaR, the service under load
    from benchmarks._var import var_rows

    var_n = 100_000 if QUICK else 250_000
    rows += var_rows(million_accounts=var_n)
    notes.append(
        f"(g) runs {var_n:,} accounts (not 1M) to keep `make bench` under 15 minutes; "
        "its time grows linearly with accounts."
    )
    from benchmarks._service import service_load

    notes.append(
        "(s) `portmargin serve` in its own process, the load generator (asyncio httpx, "
        "open loop, half 20-leg what-ifs, half 20-leg margins) in this one, on the same 2 "
        "cores; at 200 req/s the service is near its capacity, so a run either keeps up or "
        "queues for the rest of it (both seen): read the two runs together."
    )

    # the target load (200 req/s, a static market) and the crash-day replay beside it
    runs = [("static", "static market"), ("replay", "crash-day replay")]
    for feed, what in runs:
        svc_s, svc_rate = (
            (10.0, 50.0) if QUICK else ((20.0, 200.0) if feed == "static" else (30.0, 100.0))
        )
        label_s = f"(s) service: {svc_rate:.0f} req/s for {svc_s:.0f} s, {what}"
        svc: dict[str, Any] | None = None
        failure = ""
        for _ in range(2):  # the service may answer 503 while its monitor loads
            try:
                svc = service_load(svc_s, svc_rate, feed)
                break
            except Exception as exc:  # a failed load run is reported, not fatal to the bench
                failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        if svc is None:
            rows.append((label_s, "failed", failure))
            continue
        p50 = max(svc["/v1/whatif"]["p50_ms"], svc["/v1/margin"]["p50_ms"])
        p99 = max(svc["/v1/whatif"]["p99_ms"], svc["/v1/margin"]["p99_ms"])
        rows.append(
            (
                label_s,
                f"{svc['throughput']:.0f} req/s",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (worst endpoint); errors "
                f"{len(svc['errors'])}; events lost {svc['events_lost']}",
            )
        )
    print(*rows[-5:], sep="\n", flush=True)

    # the scale model (docs/scale-out.md), checked by simulation
    from benchmarks._scale import GRID, predict, scale_rows

    grid = tuple(g for g in GRID if not QUICK or g[0] <= 100_000)
    points, coef = scale_rows(grid)
    scale_md = [
        "| accounts | positions | instruments | session build | margin | margin CPU | batch "
        "memory | session arrays |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        t_fit, m_fit, w_fit = predict(coef, p["accounts"], p["legs"], p["instruments"], p["pairs"])
        scale_md.append(
            f"| {p['accounts']:,.0f} | {p['legs']:.0f} | {p['instruments']:,.0f} "
            f"({p['pairs']:.0f} pairs) | "
            f"{p['session_s']:.2f} s | {p['margin_s']:.2f} s (model {t_fit:.2f}) | "
            f"{p['margin_cpu_s']:.2f} s | {p['peak_gb']:.2f} GB (model {m_fit:.2f}) | "
            f"{p['session_gb']:.2f} GB (model {w_fit:.2f}) |"
        )
    extrap = []
    for n, legs_n, inst_n, pairs_n in (
        (1e7, 20, 1856, 2),
        (1e7, 200, 1856, 2),
        (1e6, 200, 1856, 2),
        (1e7, 20, 50_000, 56),
    ):
        t_x, m_x, w_x = predict(coef, n, legs_n, inst_n, pairs_n)
        extrap.append(
            f"| {n:,.0f} | {legs_n} | {inst_n:,} ({pairs_n} pairs) | {t_x:.0f} s | "
            f"{m_x:.1f} GB | {w_x:.2f} GB |"
        )
    rows.append(
        (
            "(m) scale model fit",
            f"{coef['b'] * 1e9:.0f} ns/position",
            f"+ {coef['a'] * 1e9:.0f} ns/account (+ {coef['h'] * 1e9:.0f} per extra pair); "
            f"memory {coef['d'] * 1e9:.0f} B/position + {coef['c'] * 1e9:.0f} B/account; "
            f"W {coef['e'] * 1e9:.0f} B/instrument/pair",
        )
    )

    total = time.perf_counter() - started
    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>16}  {r[2]}")
    info = machine()
    load = os.getloadavg()
    md = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks`). Medians over repeats; "
        "ratios are against baselines measured in the same run. Wall time and CPU time "
        "(`time.process_time`, every thread of the process) are both given where they "
        "differ: the machine is shared, and CPU time is the steadier of the two.",
        "",
        f"Market: {source}. Whole run: {total / 60:.1f} min. Load average at the end "
        f"(1, 5, 15 min): {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} on "
        f"{info['cores']} cores.",
        "",
        "| machine | |",
        "|---|---|",
    ]
    md += [f"| {k} | {v} |" for k, v in info.items()]
    md += ["", "| benchmark | median | comparison |", "|---|---:|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    md += ["", *[f"- {n}" for n in notes]]
    md += [
        "",
        "(0) is paid once per process (each Dask worker too): the kernels are compiled on "
        "first use and cached on disk (`numba cache=True`, beside the package or in "
        "`NUMBA_CACHE_DIR`); where no cache directory is writable they are compiled in "
        "memory. `PORTMARGIN_KERNEL=numpy` selects the NumPy reference everywhere.",
        "",
        "Floor for (b): reading the same Parquet file with `pyarrow.parquet.read_table` "
        "plus one sparse accounts x instruments by instruments x scenarios product, in one "
        "process. Peak memory is the max RSS of the (b) process. The (b) file draws every "
        "position uniformly from the whole chain, so nearly every account holds both BTC and "
        "ETH (the costliest case for the batch). Its rows are grouped by account: the 2 "
        "workers each read half the row groups and only the accounts cut by the boundary "
        "move. The 2-worker time includes planning, reading, margining and writing the "
        "dataset; starting the cluster and loading the kernels in each worker are given "
        "apart.",
        "",
        f"Books of (c), (e) and (h): 20 positions per account, {mix} of the accounts "
        "(`benchmarks/_common.py: BOOK_MIX`, an assumption: BTC is 86 % of the chain's "
        "open interest and 90 % of its volume, and most accounts are taken to trade one "
        "underlying). A tick is `with_market(moved=...)` (risk arrays and blocks of `W` of "
        "the moved underlying only) plus `remargin`, which re-margins only the accounts "
        "holding it and, in segregated mode, only the pools with a moved pair. The first "
        "tick of a kind on a book finds the exposed accounts and caches what depends on "
        "positions alone (given apart); later ticks reuse it. Full recompute and ticks are "
        "timed interleaved, 7 rounds, medians.",
        "",
        f"Where the {unds[0]} tick's time goes (cProfile over 3 cached ticks, share of the "
        "profiled time; profiling inflates Python-level costs):",
        "",
        "| part | share |",
        "|---|---:|",
    ]
    md += [f"| {label.replace('  ', '&nbsp;&nbsp;')} | {share:.0%} |" for label, share in profile]
    md += [
        "",
        "(d) is `MarginSession.margin_positions` on a session built once: it gathers only "
        "the account's own rows of the risk arrays; `MarginModel.margin` is the explained "
        "single-account path (a session of the account's instruments, their risk arrays, and "
        "the explanation).",
        "",
        "(h) is the full recompute of (c). By default the account chunks (8,192 accounts) run "
        "side by side on one thread per core, the kernels on one thread each; `kernel threads` "
        "runs the chunks one after the other with numba's row-parallel products "
        "(`PORTMARGIN_THREADS=1`); `1 thread` does both on one thread. Interleaved rounds, "
        "medians.",
        "",
        "## Scale model (docs/scale-out.md)",
        "",
        "Each point margins a synthetic batch in its own process (`benchmarks/_scale.py`: "
        "accounts on one underlying, 40 % on two; more instruments by cloning the BTC chain "
        "under new linear underlyings). The model, fitted by least squares on these points: "
        "margin time `t = t0 + a·N + b·N·L + h·N·(P − 2)`, batch memory (traced peak of "
        "building `Q` and margining) `m0 + c·N + d·N·L + k·N·(P − 2)`, the session's arrays "
        "`e·I·P`, session build `s0 + f·I + g·I·P` (`P` (pool, underlying) pairs, 2 on the "
        "real chain). Memory is in GB in the table, bytes in the fit.",
        "",
        *scale_md,
        "",
        f"Fit: t0 = {coef['t0']:.2f} s, a = {coef['a'] * 1e9:.0f} ns/account, "
        f"b = {coef['b'] * 1e9:.0f} ns/position, h = {coef['h'] * 1e9:.0f} ns/account/extra "
        f"pair; m0 = {coef['m0']:.2f} GB, c = {coef['c'] * 1e9:.0f} B/account, "
        f"d = {coef['d'] * 1e9:.0f} B/position, k = {coef['k'] * 1e9:.0f} B/account/extra "
        f"pair, e = {coef['e'] * 1e9:.0f} B/instrument/pair; session s0 = {coef['s0']:.2f} s, "
        f"f = {coef['f'] * 1e6:.1f} us/instrument, g = {coef['g'] * 1e6:.2f} "
        "us/instrument/pair.",
        "",
        "Extrapolated (one process, in memory, margining only: reading and building `Q` "
        "come on top):",
        "",
        "| accounts | positions | instruments | margin | batch memory | session arrays |",
        "|---:|---:|---:|---:|---:|---:|",
        *extrap,
        "",
    ]
    (REPO / "BENCHMARKS.md").write_text("\n".join(md))
    (REPO / "out").mkdir(exist_ok=True)
    (REPO / "out" / "bench-scale.json").write_text(json.dumps({"points": points, "fit": coef}))
    print(f"wrote BENCHMARKS.md ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
