"""Generate examples/accounts.json: seeded synthetic accounts on the real Deribit chain.

Positions use options listed in both crash-day snapshots (2026-02-04 21:33Z and
2026-02-05 21:29Z), so ``portmargin monitor --feed replay`` can revalue every account across
the 5 Feb 2026 sell-off. Margin pools are segregated (Deribit S:PM): an account collateralised
in coin trades the inverse (coin-settled) products, one collateralised in USDC trades the
linear USDC-settled ones (``BTC_USDC-PERPETUAL``, ``BTC_USDC-27MAR26-70000-P``: the same
strikes and expiries, valued on the same smile), so every pool holds its own collateral.
Each account's cash is sized so its equity is a random multiple
(1.15-3x, and at least 12,000 USD so it passes the portfolio-margin gate) of its
portfolio-margin IM on the first snapshot: every account starts healthy, thin cushions fail
first (``examples/crash_report.py`` shows the sequence; docs/crash-replay.md).

Usage: ``python examples/make_accounts.py [DATA_DIR] [N] > examples/accounts.json``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from portmargin.accounts import Account, AccountSettings, margin_usd
from portmargin.instruments import Option
from portmargin.models import load_model
from portmargin.monitor import common_instruments, load_crash_day

SEED = 20260205
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "deribit_options_2026-02-04_05"


def main() -> None:
    """Print the accounts file."""
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rng = np.random.default_rng(SEED)
    m0, m1, _ = load_crash_day(data)
    model = load_model("deribit")
    settings = AccountSettings(min_pm_equity_usd=10_000.0)  # a venue's gate for retail books
    names = common_instruments(m0, m1)
    by_und: dict[str, list[str]] = {"BTC": [], "ETH": []}
    for name in names:
        inst = m0.instrument(name)
        if not isinstance(inst, Option):
            continue
        t = m0.year_fraction(inst.expiry)
        k = inst.strike / m0.forward(inst.underlying, inst.expiry)
        if 21 / 365 < t < 0.5 and 0.7 < k < 1.3:  # alive on the demo market too (25 Feb)
            by_und[inst.underlying].append(name)
    strike = {x: float(m0.instrument(x).strike or 0.0) for xs in by_und.values() for x in xs}
    strike |= {_linear(x): k for x, k in strike.items()}
    accounts = []
    for i in range(n):
        und = "BTC" if rng.random() < 0.6 else "ETH"
        pool = by_und[und]
        spot = m0.index_price(und)
        puts = [x for x in pool if x.endswith("-P") and strike[x] < spot]
        calls = [x for x in pool if x.endswith("-C") and strike[x] > spot]
        size = float(rng.choice([1, 2, 5, 10, 25])) * (1.0 if und == "BTC" else 15.0)
        kinds = ["short_put", "strangle", "put_spread", "long_perp", "covered_call"]
        kind = rng.choice(kinds, p=[0.28, 0.18, 0.18, 0.18, 0.18])  # short puts most common
        pos: dict[str, float] = {}
        if kind == "short_put":
            pos[str(rng.choice(puts))] = -size
        elif kind == "strangle":
            pos[str(rng.choice(puts))] = -size
            pos[str(rng.choice(calls))] = -size
        elif kind == "put_spread":
            a, b = sorted(rng.choice(puts, 2, replace=False), key=lambda x: strike[str(x)])
            if a != b:
                pos[str(b)] = -size
                pos[str(a)] = size
        elif kind == "long_perp":
            pos[f"{und}-PERPETUAL"] = size * float(rng.uniform(0.5, 2.0))
        else:
            pos[str(rng.choice(calls))] = -size
        if kind == "long_perp":  # half inverse on coin, half linear on USDC (no draw)
            coll = "USDC" if i % 2 else und
        else:
            coll = "USDC" if rng.random() < 0.3 else und
        if coll == "USDC":  # the pool of USDC collateral holds USDC-settled products
            pos = {_linear(k): v for k, v in pos.items()}
        probe = Account(f"acct-{i:03d}", pos, {coll: 0.0})
        # Portfolio-margin figures of the bare book (its equity is negative, so the account
        # gate would send it to the rules fallback; the cash makes it eligible).
        im, _, margin_eq = margin_usd(model.margin(probe.portfolio(), m0))
        cushion = float(rng.uniform(1.15, 3.0))
        need_usd = max(im * cushion, 12_000.0) - margin_eq
        rate = 1.0 if coll == "USDC" else m0.index_price(und)
        hc = settings.haircuts.get(coll, 0.0)
        amount = max(need_usd, 100.0) / (rate * (1.0 - hc))
        accounts.append(Account(f"acct-{i:03d}", pos, {coll: round(amount, 8)}))
    doc = {
        "description": f"{n} synthetic accounts on the 2026-02-04 Deribit chain (seed {SEED})",
        "generator": "examples/make_accounts.py",
        "settings": {
            "haircuts": dict(settings.haircuts),
            "margin_call_level": settings.margin_call_level,
            "liquidation_level": settings.liquidation_level,
            "min_pm_equity_usd": settings.min_pm_equity_usd,
            "fallback_rule_set": settings.fallback_rule_set,
        },
        "accounts": [a.to_dict() for a in accounts],
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


def _linear(name: str) -> str:
    """The USDC-settled twin of an inverse instrument: ``BTC-...`` → ``BTC_USDC-...``."""
    und, sep, rest = name.partition("-")
    return f"{und}_USDC{sep}{rest}"


if __name__ == "__main__":
    main()
