"""Timing check (a script, not a test): a 40-leg BTC book under the `strategy` rule set.

Run: ``.venv/bin/python tests/rules/bench_rules_40_legs.py``. Prints the wall time of
``rules_margin`` (two MILPs + greedy) for seeded random books and a worst case where all
40 legs share one expiry and one option type.
"""

from __future__ import annotations

import random
import time

from rules_fakes import FakeMarket, inst

from portmargin.instruments import Instrument
from portmargin.rules import load_rule_set, rules_margin

S = 50_000.0


def random_book(
    seed: int, *, one_bucket: bool = False
) -> tuple[list[tuple[Instrument, float]], FakeMarket]:
    rng = random.Random(seed)
    expiries = ["27MAR26"] if one_bucket else ["30JAN26", "27FEB26", "27MAR26", "26JUN26"]
    types = ["C"] if one_bucket else ["C", "P"]
    keys = [
        (k, t, e)
        for k in range(30_000, 72_000, 1_000 if one_bucket else 2_000)
        for t in types
        for e in expiries
    ]
    chosen = rng.sample(keys, 40)
    positions, marks = [], {}
    for k, t, e in chosen:
        i = inst(f"BTC-{e}-{k}-{t}")
        intrinsic = max(S - k, 0.0) if t == "C" else max(k - S, 0.0)
        marks[i.name] = (intrinsic + rng.uniform(0.0, 0.06) * S) / S
        positions.append((i, rng.choice([-3.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0])))
    positions.append((inst("BTC-PERPETUAL"), 2.0))
    return positions, FakeMarket({"BTC": S}, marks)


def main() -> None:
    rules = load_rule_set("strategy")
    for label, one_bucket in (("mixed expiries/types", False), ("one expiry, calls only", True)):
        times = []
        for seed in range(5):
            positions, market = random_book(seed, one_bucket=one_bucket)
            t0 = time.perf_counter()
            res = rules_margin(positions, {"BTC": 5.0}, market, rules)
            times.append(time.perf_counter() - t0)
            assert res.initial_margin <= res.greedy_initial_margin + 1e-9
        print(f"{label}: 40 legs, max {max(times):.3f} s, mean {sum(times) / len(times):.3f} s")


if __name__ == "__main__":
    main()
