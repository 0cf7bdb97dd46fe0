"""Timing script (not a test): rules-based margin of large books, exact and time-limited.

Run: ``.venv/bin/python tests/rules/bench_rules_scaling.py [--sizes 100 400 1000]
[--repeats 3] [--time-limit 2] [--family chain|uniform|multi] [--rule-set strategy]``.
Prints, per size, the median wall time of ``rules_margin`` (enumeration, the initial- and
maintenance-minimising decompositions and the greedy baseline) and the reported optimality
gap.

Books (seeded, deterministic):

* ``chain``: one coin-settled BTC book drawn from a Deribit-like chain: 12 expiries from
  1 day to 1 year, strikes every 0.5–5 % of spot out to ±25–90 %, calls and puts; sizes
  0.1–5.0 BTC (lots of 0.1) long or short, Black-76 marks on a smile, a perpetual and a coin
  balance. Positions are a random sample of the chain: a dense book (the hard case).
* ``uniform``: the ``bench_rules_40_legs`` book widened: 8 expiries, strikes 20,000–120,000
  every 1,000, sizes ±{0.5, 1, 2, 3}.
* ``multi``: ``chain`` books on BTC and ETH, coin-settled and USDC-linear (four books).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from rules_fakes import VALUATION, FakeMarket, inst

from portmargin.instruments import Instrument, expiry_code
from portmargin.rules import load_rule_set, rules_margin

SPOT = {"BTC": 70_000.0, "ETH": 3_500.0}
DAYS = (1, 2, 3, 7, 14, 21, 28, 56, 84, 175, 266, 357)


def _black(f: float, k: float, t: float, vol: float, *, call: bool) -> float:
    sd = vol * math.sqrt(t)
    d1 = (math.log(f / k) + 0.5 * sd * sd) / sd

    def n(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    return f * n(d1) - k * n(d1 - sd) if call else k * n(sd - d1) - f * n(-d1)


def _strikes(s: float, days: int) -> list[float]:
    step = s * (0.005 if days <= 7 else 0.01 if days <= 28 else 0.02 if days <= 100 else 0.05)
    mag = 10 ** math.floor(math.log10(step))
    step = round(step / mag) * mag
    width = s * (0.25 if days <= 7 else 0.5 if days <= 100 else 0.9)
    k = math.ceil((s - width) / step) * step
    out = []
    while k <= s + 2 * width:
        if k > 0:
            out.append(float(k))
        k += step
    return out


def chain_book(
    n: int, seed: int, products: tuple[tuple[str, bool], ...] = (("BTC", True),)
) -> tuple[list[tuple[Instrument, float]], FakeMarket, dict[str, float]]:
    """``n`` positions sampled from Deribit-like chains of ``(product, inverse)``."""
    rng = random.Random(seed)
    keys = []
    for product, inverse in products:
        und = product.split("_")[0]
        for days in DAYS:
            exp = expiry_code(VALUATION + timedelta(days=days))
            for k in _strikes(SPOT[und], days):
                for typ in "CP":
                    keys.append((product, und, inverse, exp, days / 365, k, typ))
    positions: list[tuple[Instrument, float]] = []
    marks: dict[str, float] = {}
    for product, und, inverse, exp, t, k, typ in rng.sample(keys, n):
        strike = str(int(k)) if k == int(k) else f"{k:g}"
        i = inst(f"{product}-{exp}-{strike}-{typ}")
        s = SPOT[und]
        usd = _black(s, k, t, 0.5 + 0.3 * abs(math.log(k / s)), call=typ == "C")
        marks[i.name] = usd / s if inverse else usd
        positions.append((i, rng.randint(1, 50) / 10 * rng.choice((-1, 1))))
    cash: dict[str, float] = {}
    for und in sorted({p.split("_")[0] for p, _ in products}):
        perp = inst(f"{und}-PERPETUAL")
        marks[perp.name] = SPOT[und]
        positions.append((perp, rng.randint(1, 20) / 10 * rng.choice((-1, 1))))
        cash[und] = 5.0
    return positions, FakeMarket(dict(SPOT), marks), cash


def uniform_book(
    n: int, seed: int
) -> tuple[list[tuple[Instrument, float]], FakeMarket, dict[str, float]]:
    """The 40-leg timing book widened to ``n`` legs."""
    rng = random.Random(seed)
    s = 50_000.0
    expiries = [expiry_code(datetime(2026, 1, 2, 8, tzinfo=UTC) + timedelta(days=d))
                for d in (7, 14, 28, 56, 84, 119, 175, 266)]  # fmt: skip
    keys = [(k, t, e) for k in range(20_000, 121_000, 1_000) for t in "CP" for e in expiries]
    positions, marks = [], {}
    for k, t, e in rng.sample(keys, n):
        i = inst(f"BTC-{e}-{k}-{t}")
        intrinsic = max(s - k, 0.0) if t == "C" else max(k - s, 0.0)
        marks[i.name] = (intrinsic + rng.uniform(0.0, 0.06) * s) / s
        positions.append((i, rng.choice([-3.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0])))
    positions.append((inst("BTC-PERPETUAL"), 2.0))
    return positions, FakeMarket({"BTC": s}, marks), {"BTC": 5.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--family", choices=("chain", "uniform", "multi"), default="chain")
    parser.add_argument("--rule-set", default="strategy")
    parser.add_argument("--equal-wings", action="store_true")
    args = parser.parse_args()
    rules = load_rule_set(args.rule_set)
    if args.equal_wings:
        strategies = rules.strategies.model_copy(update={"equal_wings": True})
        rules = rules.model_copy(update={"strategies": strategies})
    multi = (("BTC", True), ("ETH", True), ("BTC_USDC", False), ("ETH_USDC", False))
    for n in args.sizes:
        times, gaps = [], []
        for seed in range(args.repeats):
            if args.family == "uniform":
                positions, market, cash = uniform_book(n, seed)
            else:
                products = multi if args.family == "multi" else (("BTC", True),)
                positions, market, cash = chain_book(n, seed, products)
            t0 = time.perf_counter()
            res = rules_margin(positions, cash, market, rules, time_limit=args.time_limit)
            times.append(time.perf_counter() - t0)
            gaps.append(res.optimality_gap)
            assert res.initial_margin <= res.greedy_initial_margin * (1 + 1e-9) + 1e-9
        print(
            f"{args.family} {n:>6} legs: median {statistics.median(times):8.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}), "
            f"gap max {max(gaps):.2e}, time limit {args.time_limit}"
        )


if __name__ == "__main__":
    main()
