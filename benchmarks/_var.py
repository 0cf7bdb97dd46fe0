"""VaR benchmarks: one 50-leg book over ~1,800 historical scenarios, 1M accounts over 1,500.

``python -m benchmarks._var`` prints the rows; ``var_rows()`` returns them for the main
table (benchmarks/__main__.py). ``python -m benchmarks._var million N LEGS`` runs the batch
alone in its own process (peak memory) and prints one JSON line.

(f) what-if: ``VarModel.margin`` of a 50-leg book on the real chain, the ``var`` model as of
    2026-02-05 (FHS 99 % ES, BTC and ETH jointly, ~1,770 scenarios of 2 days, plus the
    stressed-period floor), and the same on a session built once (``margin_positions``).
(g) batch: 1,000,000 accounts × 20 positions under plain historical ES over a 1,500-day
    window (1,500 scenarios per underlying), in its own process; and the time of ranking
    scenarios in stage 2 (``np.argpartition`` in the engine's ``_tail``) against a full
    ``np.argsort`` of the same (8,192 × 1,500) chunk.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import date

import numpy as np

import portmargin as pm
from benchmarks._common import REPO, load_chain, median_time, synthetic_book
from portmargin.batch import MarginSession
from portmargin.var import VarModel, load_var_model, load_var_params

AS_OF = date(2026, 2, 5)


def _model_1500() -> VarModel:
    spec = load_var_params("var-hs").model_copy(update={"window_days": 1501})
    return VarModel(spec, as_of=AS_OF)


def million(n_accounts: int, legs: int) -> dict[str, float]:
    market, _ = load_chain()
    model = _model_1500()
    t0 = time.perf_counter()
    session = MarginSession(market, model)
    t1 = time.perf_counter()
    q, _mix = synthetic_book(session, n_accounts, legs, seed=7)
    book = session.book([f"a{i}" for i in range(n_accounts)], q)
    t2 = time.perf_counter()
    res = session.margin(book)
    t3 = time.perf_counter()
    assert np.all(np.isfinite(res.initial_margin))
    return {
        "session_s": t1 - t0,
        "margin_s": t3 - t2,
        "scenarios": float(len(model.scenario_set("BTC"))),
        "accounts": float(n_accounts),
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    }


def var_rows(*, million_accounts: int = 1_000_000) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    market, _ = load_chain()
    model = load_var_model("var", as_of=AS_OF)
    n_scen = len(model.scenario_set("BTC"))
    rng = np.random.default_rng(50)
    names = rng.choice(market.option_names(), 50, replace=False)
    legs = {
        str(n): float(q) for n, q in zip(names, rng.choice([-2.0, -1.0, 1.0, 2.0], 50), strict=True)
    }
    book = pm.Portfolio.of(legs)
    model.margin(book, market)
    t_full = median_time(lambda: model.margin(book, market), 7)
    session = MarginSession(market, model, tuple(legs))
    session.margin_positions(legs)
    t_wi = median_time(lambda: session.margin_positions(legs), 50)
    rows.append(
        (
            f"(f) VaR margin, 50 legs x {n_scen} scenarios",
            f"{t_full * 1e3:.1f} ms",
            f"var (FHS ES 99 %, BTC+ETH joint, stress floor); on a built session "
            f"{t_wi * 1e3:.1f} ms",
        )
    )
    # ranking cost of stage 2: the engine's partial sort against a full sort of every row
    chunk = rng.normal(size=(8192, 1500))
    m = 15
    t_sort = median_time(lambda: np.argsort(chunk, axis=1, kind="stable")[:, :m], 5)
    t_part = median_time(lambda: np.argpartition(chunk, m - 1, axis=1)[:, :m], 5)
    rows.append(
        (
            "(g) tail of 8,192 x 1,500 (ES at 99 %)",
            f"{t_part * 1e3:.0f} ms",
            f"argpartition (engine); a full argsort {t_sort * 1e3:.0f} ms ({t_sort / t_part:.1f}x)",
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._var", "million", str(million_accounts), "20"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    mil = json.loads(proc.stdout.strip().splitlines()[-1])
    rows.append(
        (
            f"(g) {million_accounts:,} accounts x 20 positions, ES over "
            f"{int(mil['scenarios'])} scenarios",
            f"{mil['margin_s']:.1f} s",
            f"var-hs 1,500-day window; session {mil['session_s']:.1f} s; "
            f"peak {mil['peak_gb']:.2f} GB",
        )
    )
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "million":
        print(json.dumps(million(int(sys.argv[2]), int(sys.argv[3]))))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rows = var_rows(million_accounts=n)
    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>10}  {r[2]}")


if __name__ == "__main__":
    main()
