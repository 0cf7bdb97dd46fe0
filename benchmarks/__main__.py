"""Run every benchmark, print a table, write BENCHMARKS.md (see benchmarks/__init__.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

import portmargin as pm
from benchmarks._common import REPO, load_chain, machine, median_time, synthetic_book, universe
from benchmarks._tick import tick_profile, time_ticks
from portmargin.batch import MarginSession


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


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    market, source = load_chain()
    names = universe(market)
    print(f"market: {source}; {len(names)} instruments", flush=True)
    res: dict[str, float] = {}

    # (a) risk arrays for the whole chain, and (e) the QuantLib per-option loop
    insts = [market.instrument(n) for n in names]
    for model_name in ("deribit", "span16"):
        model = pm.load_model(model_name)
        t = median_time(lambda m=model: m.risk_arrays(insts, market), 5)
        n_scen = len(model.scenario_set("BTC"))
        rows.append(
            (
                f"(a) risk arrays, {model_name}",
                f"{t * 1e3:.1f} ms",
                f"{len(names)} instr x {n_scen} scen",
            )
        )
        res[f"ra_{model_name}"] = t
    model = pm.load_model("deribit")
    arrays = model.risk_arrays(insts, market)
    t_ql = median_time(lambda: [_ql_risk_array(a) for a in arrays.values()], 3)
    check = max(
        float(np.max(np.abs(_ql_risk_array(a)[a.table.is_option] - a.pnl_usd[a.table.is_option])))
        for a in arrays.values()
    )
    rows.append(
        (
            "(e) peer: QuantLib blackFormula loop",
            f"{t_ql * 1e3:.0f} ms",
            f"{t_ql / res['ra_deribit']:.0f}x slower than (a); max abs diff {check:.1e} USD",
        )
    )

    # (d) what-if on a 50-leg account
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
    session.margin_positions(legs)
    t_wi = median_time(lambda: session.margin_positions(legs), 1000)
    t_single = median_time(lambda: model.margin(pm.Portfolio.of(legs), market), 5)
    rows.append(
        (
            "(d) what-if, 50 legs (session)",
            f"{t_wi * 1e6:.0f} us",
            f"MarginModel.margin: {t_single * 1e3:.1f} ms ({t_single / t_wi:.0f}x)",
        )
    )

    # (e) plain NumPy peer without sparse aggregation, and (c) incremental tick
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
                f"{ticks.touched[u]:.0%} of accounts re-margined; full recompute "
                f"{ticks.full * 1e3:.0f} ms ({ticks.full / ticks.ticks[u]:.1f}x)",
            )
        )
    profile = tick_profile(session, book, unds[0], 3)

    # (b) 1M accounts x 20 positions, in its own process (peak memory)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._million", "1000000", "20", "3"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    mil = json.loads(proc.stdout.strip().splitlines()[-1])
    rows.append(
        (
            "(b) 1M accounts x 20 positions, deribit",
            f"{mil['total_s']:.1f} s",
            f"floor {mil['floor_s']:.1f} s ({mil['total_s'] / mil['floor_s']:.1f}x); "
            f"read {mil['read_s']:.1f} s, margin {mil['compute_s']:.1f} s; "
            f"peak {mil['peak_gb']:.2f} GB",
        )
    )
    del t0

    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>16}  {r[2]}")
    info = machine()
    md = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks`). Medians over repeats; "
        "ratios are against baselines measured in the same run.",
        "",
        f"Market: {source}.",
        "",
        "| machine | |",
        "|---|---|",
    ]
    md += [f"| {k} | {v} |" for k, v in info.items()]
    md += ["", "| benchmark | median | comparison |", "|---|---:|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    md += [
        "",
        "Floor for (b): reading the same Parquet file with `pyarrow.parquet.read_table` "
        "plus one sparse accounts x instruments by instruments x scenarios product. "
        "Peak memory is the max RSS of the (b) process. The (b) file draws every position "
        "uniformly from the whole chain, so nearly every account holds both BTC and ETH "
        "(the costliest case for the batch).",
        "",
        f"Books of (c) and (e): 20 positions per account, {mix} of the accounts "
        "(`benchmarks/_common.py: BOOK_MIX`, an assumption: BTC is 86 % of the chain's "
        "open interest and 90 % of its volume, and most accounts are taken to trade one "
        "underlying). A tick is `with_market(moved=...)` (risk arrays of the moved "
        "underlying only) plus `remargin`, which re-margins only the accounts holding it "
        "and, in segregated mode, only the pools with a moved pair. Full recompute and "
        "ticks are timed interleaved, 7 rounds, medians.",
        "",
        f"Where the {unds[0]} tick's time goes (cProfile over 3 ticks, share of the profiled "
        "time; profiling inflates Python-level costs):",
        "",
        "| part | share |",
        "|---|---:|",
    ]
    md += [f"| {label.replace('  ', '&nbsp;&nbsp;')} | {share:.0%} |" for label, share in profile]
    md += [
        "",
        "(d) is `MarginSession.margin_positions` on a session built once: it gathers only "
        "the account's own rows of the risk arrays; `MarginModel.margin` is the reference "
        "single-account path (it also computes the account's risk arrays).",
        "",
    ]
    (REPO / "BENCHMARKS.md").write_text("\n".join(md))
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
