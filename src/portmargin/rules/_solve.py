"""Optimal pairing (set-partitioning MILP on HiGHS) and the greedy baseline.

Model (``rules_based.md`` §4.3), per book::

    minimise    Σ_t net_t · x_t
    subject to  Σ_t a_{i,t} · x_t = |q_i| / lot     for every leg i
                x_t ∈ ℤ≥0 for multi-leg groups,  x_t ≥ 0 (continuous) for singletons

``lot`` is the coarsest power of ten (10⁰ … 10⁻⁸) of which every option quantity is an
integer multiple, so 0.5 BTC is 5 lots of 0.1 and groups are formed in whole lots. Singletons
may be continuous: with integral group counts and integral option capacities their values
are integral anyway, and underlying legs (futures, coin) are divisible. When no such lot
exists every variable is continuous (documented LP relaxation). Since the proceeds are the
same for every decomposition, minimising net = minimising gross. Ties on the minimised
requirement are broken towards the lower other requirement (objective
``primary + 1e-9 · secondary``), which makes hedges that only help maintenance show up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_array

from portmargin.errors import PortmarginError
from portmargin.rules._book import Book, LegKind
from portmargin.rules._strategies import Candidate, enumerate_candidates, singles

__all__ = ["Decomposition", "find_lot", "greedy", "optimal"]

_TIE_BREAK = 1e-9

_GREEDY_ORDER = (
    "covered_call",
    "covered_put",
    "protective_put",
    "protective_call",
    "vertical_spread",
    "calendar_spread",
    "diagonal_spread",
    "short_straddle",
    "short_strangle",
)


@dataclass(frozen=True, slots=True)
class Decomposition:
    """Groups and how many contracts (instances) of each are formed.

    Attributes
    ----------
    groups
        ``(candidate, instances)`` with ``instances`` in contracts (lots × lot size).
    """

    groups: tuple[tuple[Candidate, float], ...]

    @property
    def gross_im(self) -> float:
        """Σ gross initial requirement."""
        return float(sum(c.gross_im * x for c, x in self.groups))

    @property
    def gross_mm(self) -> float:
        """Σ gross maintenance requirement."""
        return float(sum(c.gross_mm * x for c, x in self.groups))

    @property
    def proceeds(self) -> float:
        """Σ short proceeds."""
        return float(sum(c.proceeds * x for c, x in self.groups))


def find_lot(quantities: Sequence[float]) -> float | None:
    """Coarsest ``10^-d`` (``d ≤ 8``) dividing every quantity, or ``None``."""
    for d in range(9):
        scale = 10.0**d
        if all(
            abs(q * scale - round(q * scale)) <= 1e-9 * max(1.0, abs(q * scale)) for q in quantities
        ):
            return 1.0 / scale
    return None


def _capacities(book: Book, lot: float) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    caps = np.array([abs(leg.qty) / lot for leg in book.legs], dtype=np.float64)
    opt = np.array([leg.kind is LegKind.OPTION for leg in book.legs], dtype=bool)
    caps[opt] = np.round(caps[opt])
    return caps


def optimal(
    book: Book, *, maintenance: bool = False, candidates: Sequence[Candidate] | None = None
) -> Decomposition:
    """Minimum-requirement decomposition of ``book`` (exact MILP, HiGHS).

    Parameters
    ----------
    book
        The legs of one underlying in one pool.
    maintenance
        Minimise maintenance instead of initial requirement.
    candidates
        Multi-leg candidates of ``book`` if already enumerated.

    Raises
    ------
    PortmarginError
        If HiGHS does not report an optimal solution (should not happen: singletons keep
        the problem feasible and costs are finite).
    """
    multi = enumerate_candidates(book) if candidates is None else list(candidates)
    cands = singles(book) + multi
    if not book.legs:
        return Decomposition(())
    lot = find_lot([leg.qty for leg in book.legs if leg.kind is LegKind.OPTION])
    n_single = len(book.legs)
    if len(cands) == n_single:  # nothing to pair
        return Decomposition(tuple((c, abs(book.legs[c.members[0][0]].qty)) for c in cands))
    rows, cols, vals = [], [], []
    for t, c in enumerate(cands):
        for i, a in c.members:
            rows.append(i)
            cols.append(t)
            vals.append(a)
    a_mat = coo_array((vals, (rows, cols)), shape=(n_single, len(cands))).tocsr()
    scale = lot if lot is not None else 1.0
    caps = _capacities(book, scale)
    primary = np.array([c.net_mm if maintenance else c.net_im for c in cands]) * scale
    secondary = np.array([c.net_im if maintenance else c.net_mm for c in cands]) * scale
    # ties on the primary requirement are broken towards the lower other requirement
    cost = primary + _TIE_BREAK * secondary
    integrality = np.zeros(len(cands), dtype=np.int64)
    if lot is not None:
        integrality[n_single:] = 1
    res = milp(
        cost,
        constraints=LinearConstraint(a_mat, caps, caps),
        integrality=integrality,
        options={"presolve": True, "mip_rel_gap": 0.0},
    )
    if res.status != 0 or res.x is None:
        raise PortmarginError(f"book {book.currency}/{book.underlying}: MILP failed: {res.message}")
    x = np.asarray(res.x)
    if lot is not None:
        x[n_single:] = np.round(x[n_single:])
    groups = tuple((c, float(v) * scale) for c, v in zip(cands, x, strict=True) if v > 1e-9)
    return Decomposition(groups)


def greedy(book: Book, *, candidates: Sequence[Candidate] | None = None) -> Decomposition:
    """Greedy baseline (margin-estimator style, ``rules_based.md`` §5): 2-leg groups only.

    Goes through the beneficial 2-leg candidates in a fixed order — covers first, then
    verticals/calendars/diagonals, then straddles/strangles; within a kind by the legs'
    stable (name) order — forming as many whole lots of each as the remaining quantities
    allow; what is left is margined leg by leg. It is a baseline, not the answer: it misses
    3–4-leg groups and is order-dependent (§4.4 traps).
    """
    lot = find_lot([leg.qty for leg in book.legs if leg.kind is LegKind.OPTION])
    scale = lot if lot is not None else 1.0
    remaining = _capacities(book, scale)
    multi = enumerate_candidates(book) if candidates is None else candidates
    pairs = [c for c in multi if c.kind in _GREEDY_ORDER]
    pairs.sort(key=lambda c: (_GREEDY_ORDER.index(c.kind), [i for i, _ in c.members]))
    groups: list[tuple[Candidate, float]] = []
    for c in pairs:
        if c.net_im >= sum(
            a * book.legs[i].single_im - a * book.legs[i].proceeds for i, a in c.members
        ):
            continue
        n = min(remaining[i] / a for i, a in c.members)
        if lot is not None:
            n = float(np.floor(n + 1e-9))
        if n <= 1e-12:
            continue
        for i, a in c.members:
            remaining[i] -= a * n
        groups.append((c, n * scale))
    for c in singles(book):
        i = c.members[0][0]
        if remaining[i] > 1e-12:
            groups.append((c, float(remaining[i]) * scale))
    return Decomposition(tuple(groups))
