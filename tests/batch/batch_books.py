"""Seeded random books on a market's chain, shared by the batch tests."""

from __future__ import annotations

import numpy as np

import portmargin as pm
from portmargin.market import MarketSnapshot


def random_books(
    market: MarketSnapshot,
    n_accounts: int,
    *,
    seed: int,
    max_legs: int = 12,
    min_legs: int = 1,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Books mixing options, futures, perpetuals, long-only books and cash (seeded)."""
    rng = np.random.default_rng(seed)
    options = market.option_names()
    d1 = [*market.futures, *(f"{u}-PERPETUAL" for u in market.underlyings)]
    positions: dict[str, dict[str, float]] = {}
    cash: dict[str, dict[str, float]] = {}
    for a in range(n_accounts):
        acc = f"acc{a:05d}"
        n = int(rng.integers(min_legs, max_legs + 1))
        names = list(rng.choice(options, size=n, replace=False))
        if rng.random() < 0.4:
            names.append(str(rng.choice(d1)))
        long_only = rng.random() < 0.15
        qty = rng.integers(1, 20, size=len(names)) / 10.0
        if not long_only:
            qty = qty * rng.choice([-1.0, 1.0], size=len(names))
        positions[acc] = {str(k): float(v) for k, v in zip(names, qty, strict=True)}
        if rng.random() < 0.5:
            ccy = str(rng.choice(["BTC", "ETH", "USDC"]))
            cash[acc] = {ccy: float(rng.integers(0, 50)) / 10.0}
    return positions, cash


def to_portfolio(
    acc: str, positions: dict[str, dict[str, float]], cash: dict[str, dict[str, float]]
) -> pm.Portfolio:
    """The single-account portfolio of ``acc``."""
    return pm.Portfolio.of(positions[acc], cash.get(acc, {}), name=acc)
