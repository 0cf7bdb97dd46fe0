r"""The real 2026-02-05 crash: books on one Deribit chain, revalued on the next day's chain.

Two chain snapshots 24 h apart (Deribit BTC and ETH, 2026-02-04 21:33Z and 2026-02-05
21:29Z: BTC −12.6 %, ETH −12.4 %, 27MAR26 ATM vol +21 / +14 vol points). Every book is
struck on the first snapshot from options listed in both, expiring at least a week after the
second; each is margined on the first snapshot under each method and its **realised loss**
is the change of its value between the snapshots' marks (the runner's
:func:`~portmargin.backtest.runner.book_pnl`: in each pool's currency, coin P&L at the later
price). A book is **under-covered** when its loss exceeds its initial margin.

Families (one contract per leg, per underlying and expiry; ``F`` the expiry's forward):

* ``short put``: −1 put, ``0.70 ≤ K/F ≤ 1.00``;
* ``put spread``: −1 put ``K₁``, ``0.75 ≤ K₁/F ≤ 1.00``; +1 put at the listed strike below
  ``K₁`` nearest ``0.9·K₁``;
* ``short strangle``: −1 put ``K₁``, ``0.70 ≤ K₁/F ≤ 0.97``; −1 call at the listed strike
  nearest ``F²/K₁`` (above ``F``);
* ``short straddle``: −1 call, −1 put, same ``K``, ``0.90 ≤ K/F ≤ 1.10``;
* ``risk reversal``: −1 put ``K₁`` as the strangle's; +1 call nearest ``F²/K₁``.

Every expiry alive at the second snapshot counts (``min_days`` days after it, 0 by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from portmargin.backtest.runner import _requirements, book_pnl
from portmargin.backtest.strategies import Book
from portmargin.errors import InputError
from portmargin.instruments import Option, expiry_code
from portmargin.market import MarketSnapshot
from portmargin.methods import Method
from portmargin.models.model import MarginModel
from portmargin.models.session import MarginSession
from portmargin.var.model import VarModel

__all__ = ["CHAINS", "CrashBook", "CrashRow", "crash_books", "crash_coverage", "load_chains"]

CHAINS = (
    "deribit_options_snapshot_20260204T213308Z.csv",
    "deribit_options_snapshot_20260205T212937Z.csv",
)
FAMILIES = ("short put", "put spread", "short strangle", "short straddle", "risk reversal")


@dataclass(frozen=True, slots=True)
class CrashBook:
    """One book of the crash universe."""

    family: str
    underlying: str
    book: Book


@dataclass(frozen=True, slots=True)
class CrashRow:
    """Under-coverage of one method on one family: losing books, under-covered among them."""

    model: str
    family: str
    books: int
    losing: int
    under: int
    mean_margin_usd: float
    mean_loss_usd: float

    @property
    def share(self) -> float:
        """Under-covered share of the losing books (0 when none lose)."""
        return self.under / self.losing if self.losing else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "model": self.model,
            "family": self.family,
            "books": self.books,
            "losing": self.losing,
            "under_covered": self.under,
            "share": self.share,
            "mean_margin_usd": self.mean_margin_usd,
            "mean_loss_usd": self.mean_loss_usd,
        }


def load_chains(folder: Path) -> tuple[MarketSnapshot, MarketSnapshot]:
    """The two snapshots of ``folder`` (with the perpetual file beside them).

    Raises
    ------
    InputError
        If a file is missing or cannot be read.
    """
    from portmargin.io import load_market

    paths = [folder / name for name in CHAINS]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: file not found (the 2026-02-04/05 Deribit chains)")
    return load_market(paths[0]), load_market(paths[1])


def crash_books(
    before: MarketSnapshot, after: MarketSnapshot, *, min_days: float = 0.0
) -> list[CrashBook]:
    """Every book of the families (module docstring) on options listed in both snapshots."""
    both = set(before.option_iv) & set(after.option_iv)
    min_expiry = after.valuation_time + timedelta(days=min_days)
    by_key: dict[tuple[str, Any, bool], list[float]] = {}
    for name in both:
        inst = before.instrument(name)
        if not isinstance(inst, Option) or inst.expiry < min_expiry:
            continue
        by_key.setdefault((inst.underlying, inst.expiry, inst.is_call), []).append(inst.strike)
    out: list[CrashBook] = []
    for (und, expiry, call), strikes in sorted(by_key.items(), key=lambda kv: str(kv[0])):
        if call:
            continue
        puts = np.array(sorted(strikes))
        calls = np.array(sorted(by_key.get((und, expiry, True), [])))
        f = before.forward(und, expiry)
        code = expiry_code(expiry)

        def put(k: float, _und: str = und, _code: str = code) -> str:
            return f"{_und}-{_code}-{_fmt(k)}-P"

        def callname(k: float, _und: str = und, _code: str = code) -> str:
            return f"{_und}-{_code}-{_fmt(k)}-C"

        for k in puts:
            m = k / f
            if 0.70 <= m <= 1.00:
                out.append(CrashBook("short put", und, Book({put(k): -1.0})))
            if 0.75 <= m <= 1.00:
                lower = puts[puts < k]
                if lower.size:
                    k2 = float(lower[np.argmin(np.abs(lower - 0.9 * k))])
                    out.append(CrashBook("put spread", und, Book({put(k): -1.0, put(k2): 1.0})))
            if 0.70 <= m <= 0.97 and calls.size:
                kc = float(calls[np.argmin(np.abs(calls - f * f / k))])
                if kc > f:
                    out.append(
                        CrashBook("short strangle", und, Book({put(k): -1.0, callname(kc): -1.0}))
                    )
                    out.append(
                        CrashBook("risk reversal", und, Book({put(k): -1.0, callname(kc): 1.0}))
                    )
            if 0.90 <= m <= 1.10 and k in set(calls.tolist()):
                out.append(
                    CrashBook("short straddle", und, Book({put(k): -1.0, callname(k): -1.0}))
                )
    return out


def _fmt(k: float) -> str:
    return str(int(k)) if float(k).is_integer() else repr(float(k))


def crash_coverage(
    methods: Sequence[tuple[str, Method]],
    before: MarketSnapshot,
    after: MarketSnapshot,
    books: Sequence[CrashBook] | None = None,
) -> list[CrashRow]:
    """Per method and family: losing books and the under-covered among them.

    A :class:`VarModel` is anchored to the last daily close before the first snapshot.
    """
    universe = list(books) if books is not None else crash_books(before, after)
    pnls = [book_pnl(b.book, before, after) for b in universe]
    day = before.valuation_time.date()
    # the last daily close before the snapshot (a close is the end of its UTC day)
    anchor = (before.valuation_time - timedelta(days=1)).date()
    rows: list[CrashRow] = []
    for label, method in methods:
        if isinstance(method, VarModel):
            method = method.at(anchor)
        session = None
        if isinstance(method, MarginModel):
            names = sorted({n for b in universe for n in b.book.positions})
            session = MarginSession(before, method, tuple(names))
        stats: dict[str, list[tuple[float, float, bool]]] = {f: [] for f in FAMILIES}
        for cb, pnl in zip(universe, pnls, strict=True):
            if session is not None:
                res = session.margin_positions(cb.book.positions, cb.book.cash)
                reqs = {
                    pool: (float(res.initial_margin[0, p]), _rate(pool, before))
                    for p, pool in enumerate(res.pools)
                    if res.present[0, p]
                }
            else:
                reqs = _requirements(method, cb.book, before, day, "im")
            margin = sum(r * rate for r, rate in reqs.values())
            loss_usd = sum(-pnl.get(p, 0.0) * rate for p, (_, rate) in reqs.items())
            under = any(-pnl.get(p, 0.0) > r for p, (r, _) in reqs.items())
            stats[cb.family].append((margin, loss_usd, under))
        for fam, items in stats.items():
            losing = [x for x in items if x[1] > 0]
            rows.append(
                CrashRow(
                    label,
                    fam,
                    len(items),
                    len(losing),
                    sum(1 for x in losing if x[2]),
                    float(np.mean([x[0] for x in items])) if items else 0.0,
                    float(np.mean([x[1] for x in items])) if items else 0.0,
                )
            )
    return rows


def _rate(pool: str, market: MarketSnapshot) -> float:
    from portmargin.units import usd_rate

    return usd_rate(pool, market)
