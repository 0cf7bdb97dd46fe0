"""Optimal pairing: an exact set-partitioning MILP solved by parts, and the greedy baseline.

Model (``docs/methodology/rules.md`` §3), per underlying (its books in every pool, a coin
balance shared between them)::

    minimise    Σ_t c_t · x_t                       c_t = net requirement of group t, USD
    subject to  Σ_t a_{i,t} · x_t = |q_i| / lot     for every leg i
                x_t ∈ ℤ≥0 for multi-leg groups,  x_t ≥ 0 (continuous) for legs alone

``lot`` is the coarsest power of ten (10⁰ … 10⁻⁸) of which every option quantity is an
integer multiple, so 0.5 BTC is 5 lots of 0.1 and groups are formed in whole lots; when no
such lot exists every variable is continuous (documented LP relaxation). Proceeds are the
same for every decomposition, so minimising net = minimising gross.

Solving it exactly at thousands of legs:

1. **Straddles and strangles as a flow.** A short call ``c`` and a short put ``p`` paired
   cost ``max(e_c, e_p)`` (``e`` a short's naked requirement net of its premium), i.e. they
   save ``min(e_c, e_p)``. Given how many contracts of each short go into such pairs
   (``u_c``, ``v_p``, with ``Σu = Σv``), the best pairing — both sorted by ``e`` — saves
   ``Σ_j (λ_j − λ_{j+1}) · min(U_j, V_j)`` over the distinct levels ``λ_1 > λ_2 > …`` of
   ``e``, ``U_j`` the contracts of calls with ``e ≥ λ_j`` (layer-cake formula). That is
   linear: ``O(n)`` variables instead of one column per call × put.
2. **Greedy** incumbent (:func:`greedy` order): an upper bound ``UB``.
3. **Column generation** on the LP relaxation: a restricted LP over the legs alone, the
   straddle flow, the greedy's groups and each leg's most saving groups, priced against
   every candidate (vectorised reduced costs ``c̄_t = c_t − Σ_i a_{i,t} y_i``) until none is
   negative. Its value ``z_LP`` is a proven lower bound.
4. A **restricted MILP** over the generated columns improves ``UB``; if it meets ``z_LP``
   it is optimal.
5. **Reduced-cost fixing**: any solution of cost ≤ ``UB`` uses only groups with
   ``c̄_t ≤ UB − z_LP`` (cost = ``z_LP + Σ c̄_t x_t`` with every ``c̄ ≥ 0``), so every
   other candidate is dropped without loss of optimality.
6. The kept groups split the legs into **connected components** (legs that can never share
   a group: other expiries, types, underlyings); each component is an independent MILP.
7. In each MILP only the groups of three or more legs, the covers and the straddle flow's
   per-leg contracts are integer: once they are fixed, spreads pair one leg of
   {short calls, long puts} with one of {long calls, short puts} — a bipartite b-matching,
   whose LP has integral vertices (totally unimodular: Rudd & Schroeder, "The Calculation
   of Minimum Margin", Management Science 28(12), 1982; Matsypura & Timkovsky, "Margining
   option portfolios by network flows", Networks, 2012, doi:10.1002/net.20465), so they
   are declared continuous; a fractional vertex is re-solved as integer if ever returned.

``scipy.optimize.milp`` (SciPy ≤ 1.17) accepts no starting solution, so HiGHS is not
warm-started from the greedy; the greedy enters through ``UB`` (fixing) and as the fallback
incumbent. With a time limit, the best solution found is returned with its proven bound
(``z_LP`` or HiGHS's dual bound, whichever is higher); without one the result is exact (to
HiGHS's tolerances: absolute gap 1e-6 on costs normalised to the costliest leg alone).
Ties are broken towards the lower other requirement (``+ 1e-9 ×`` it, best effort), and two
spreads forming a recognised group of the same cost (long box, long iron condor, short
butterfly, ...) are shown as that group.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any, cast

import numpy as np
from scipy.optimize import LinearConstraint, linprog, milp
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import connected_components

from portmargin.errors import PortmarginError
from portmargin.rules._book import Book, BoolArray, FloatArray, IntArray, LegKind
from portmargin.rules._enumerate import CandidateTable, candidate_table, straddles_as_columns
from portmargin.rules._strategies import KINDS, Candidate, price_group, singles

__all__ = [
    "Decomposition",
    "Solution",
    "find_lot",
    "greedy",
    "greedy_books",
    "optimal",
    "pair_books",
    "solve_books",
]

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
_SPREADS = ("vertical_spread", "calendar_spread", "diagonal_spread")
_COVER2 = ("covered_call", "covered_put", "protective_put", "protective_call")
_TIE_BREAK = 1e-9
_RC_TOL = 1e-7  # normalised cost units: HiGHS's dual tolerance
_DIRECT = 4_000  # candidates up to which the MILP is solved whole, without column generation
_MERGE_CAP = 40  # groups per expiry tried for display merges (pairs: 780)


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


@dataclass(frozen=True, slots=True)
class Solution:
    """Decompositions of the books of one problem and the proof of their quality.

    Attributes
    ----------
    decompositions
        One per book, in the order given.
    objective, bound
        Net requirement of the decompositions and a proven lower bound on it, USD.
    """

    decompositions: tuple[Decomposition, ...]
    objective: float
    bound: float

    @property
    def gap(self) -> float:
        """``objective − bound`` (USD, ≥ 0; 0 when proven optimal)."""
        return max(0.0, self.objective - self.bound)


def find_lot(quantities: Sequence[float]) -> float | None:
    """Coarsest ``10^-d`` (``d ≤ 8``) dividing every quantity, or ``None``."""
    for d in range(9):
        scale = 10.0**d
        if all(
            abs(q * scale - round(q * scale)) <= 1e-9 * max(1.0, abs(q * scale)) for q in quantities
        ):
            return 1.0 / scale
    return None


# --- the problem -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Block:
    """Short straddles/strangles of one book and multiplier as a flow over excess levels.

    ``call_rows``/``put_rows`` are rows, ``call_legs``/``put_legs`` leg indices in the book,
    ``e_call``/``e_put`` their normalised net stand-alone cost per lot, ``level_call`` /
    ``level_put`` the index of that cost in ``levels`` (distinct, descending).
    """

    book: int
    call_rows: IntArray
    put_rows: IntArray
    call_legs: IntArray
    put_legs: IntArray
    e_call: FloatArray
    e_put: FloatArray
    levels: FloatArray
    level_call: IntArray
    level_put: IntArray

    @property
    def n_vars(self) -> int:
        """U (calls), v (puts), U, V (cumulative per level), m (per level)."""
        return len(self.call_rows) + len(self.put_rows) + 3 * len(self.levels)

    @property
    def deltas(self) -> FloatArray:
        """``λ_j − λ_{j+1}`` with ``λ_{L+1} = 0``."""
        return np.asarray(self.levels - np.r_[self.levels[1:], 0.0])


@dataclass(frozen=True, slots=True)
class _Problem:
    """One underlying's legs (rows) and groups (columns), costs normalised per lot.

    Singles (a leg alone) are columns of their own: ``single_row[k]`` is the row of single
    ``k``; multi-leg columns have ``members`` (rows, ``-1`` padded) and ``ratio``.
    """

    books: tuple[Book, ...]
    tables: tuple[CandidateTable, ...]
    caps: FloatArray  # lots
    lot: float | None
    single_book: IntArray
    single_leg: IntArray
    single_row: IntArray
    single_cost: FloatArray
    col_book: IntArray
    col_index: IntArray  # row in its book's table
    col_kind: IntArray  # code in KINDS
    members: np.ndarray[tuple[int, int], np.dtype[np.int64]]
    ratio: np.ndarray[tuple[int, int], np.dtype[np.float64]]
    cost: FloatArray
    integral: BoolArray  # multi columns that must be integer
    blocks: tuple[_Block, ...]
    scale: float  # USD per unit of normalised cost

    @property
    def n_rows(self) -> int:
        return int(self.caps.shape[0])

    @property
    def n_single(self) -> int:
        return int(self.single_row.shape[0])

    @property
    def n_multi(self) -> int:
        return int(self.cost.shape[0])


def _blocks(
    books: Sequence[Book], row_of: list[IntArray], single_cost: list[FloatArray]
) -> list[_Block]:
    out = []
    for b, book in enumerate(books):
        if book.rules.engine == "per_leg" or "straddle" not in book.rules.strategies.families:
            continue
        if straddles_as_columns(book):
            continue  # plain columns of the candidate table
        a = book.arrays
        shorts = np.flatnonzero(a.is_option & a.is_short)
        for units in np.unique(a.units[shorts]):
            sel = shorts[a.units[shorts] == units]
            calls, puts = sel[a.is_call[sel]], sel[~a.is_call[sel]]
            if not len(calls) or not len(puts):
                continue
            e_c, e_p = single_cost[b][calls], single_cost[b][puts]
            levels = np.unique(np.concatenate([e_c, e_p]))[::-1]
            out.append(
                _Block(
                    book=b,
                    call_rows=row_of[b][calls],
                    put_rows=row_of[b][puts],
                    call_legs=calls,
                    put_legs=puts,
                    e_call=e_c,
                    e_put=e_p,
                    levels=levels,
                    level_call=np.searchsorted(-levels, -e_c),
                    level_put=np.searchsorted(-levels, -e_p),
                )
            )
    return out


def _build(
    books: Sequence[Book], tables: Sequence[CandidateTable], *, maintenance: bool
) -> _Problem:
    rows: dict[str, int] = {}
    row_of: list[IntArray] = []
    caps: list[float] = []
    is_opt: list[bool] = []
    for b, book in enumerate(books):
        idx = []
        for leg in book.legs:
            key = leg.name if leg.kind is LegKind.COIN else f"{b}/{leg.name}"
            if key not in rows:
                rows[key] = len(caps)
                caps.append(abs(leg.qty))
                is_opt.append(leg.kind is LegKind.OPTION)
            idx.append(rows[key])
        row_of.append(np.array(idx, dtype=np.int64).reshape(-1))
    lot = find_lot([leg.qty for book in books for leg in book.legs if leg.kind is LegKind.OPTION])
    per_lot = lot if lot is not None else 1.0
    cap = np.array(caps, dtype=np.float64).reshape(-1) / per_lot
    opt = np.array(is_opt, dtype=bool).reshape(-1)
    cap[opt] = np.round(cap[opt])
    straddles = np.array([KINDS.index(k) for k in ("short_straddle", "short_strangle")])
    continuous = np.array([KINDS.index(k) for k in (*_SPREADS, "short_straddle", "short_strangle")])
    s_book, s_leg, s_cost, pure = [], [], [], []
    c_book, c_idx, c_kind, mem, rat, cost, integral = [], [], [], [], [], [], []
    for b, (book, table) in enumerate(zip(books, tables, strict=True)):
        a = book.arrays
        rate = book.usd_rate * per_lot
        im = (a.single_im - a.proceeds) * rate
        mm = (a.single_mm - a.proceeds) * rate
        s_book.append(np.full(len(book.legs), b, dtype=np.int64))
        s_leg.append(np.arange(len(book.legs), dtype=np.int64))
        s_cost.append((mm + _TIE_BREAK * im) if maintenance else (im + _TIE_BREAK * mm))
        pure.append(mm if maintenance else im)
        # with a straddle flow for this book, its straddle columns (if any) are redundant
        keep = np.ones(len(table), dtype=bool)
        if not straddles_as_columns(book):
            keep = ~np.isin(table.kind, straddles)
        if keep.any():
            n = int(keep.sum())
            c_book.append(np.full(n, b, dtype=np.int64))
            c_idx.append(np.flatnonzero(keep).astype(np.int64))
            c_kind.append(table.kind[keep].astype(np.int64))
            m = table.members[keep]
            mem.append(np.where(m >= 0, row_of[b][np.where(m >= 0, m, 0)], -1))
            rat.append(table.ratio[keep])
            t_im = (table.gross_im[keep] - table.proceeds[keep]) * rate
            t_mm = (table.gross_mm[keep] - table.proceeds[keep]) * rate
            cost.append((t_mm + _TIE_BREAK * t_im) if maintenance else (t_im + _TIE_BREAK * t_mm))
            integral.append(~np.isin(table.kind[keep], continuous))
    single_cost = np.concatenate(s_cost)
    scale = float(np.max(np.abs(single_cost), initial=0.0)) or 1.0
    empty_i = np.zeros(0, dtype=np.int64)
    blocks = _blocks(books, row_of, [c / scale for c in pure])
    return _Problem(
        books=tuple(books),
        tables=tuple(tables),
        caps=cap,
        lot=lot,
        single_book=np.concatenate(s_book),
        single_leg=np.concatenate(s_leg),
        single_row=np.concatenate(row_of),
        single_cost=single_cost / scale,
        col_book=np.concatenate(c_book) if c_book else empty_i,
        col_index=np.concatenate(c_idx) if c_idx else empty_i,
        col_kind=np.concatenate(c_kind) if c_kind else empty_i,
        members=np.concatenate(mem) if mem else np.zeros((0, 4), dtype=np.int64),
        ratio=np.concatenate(rat) if rat else np.zeros((0, 4)),
        cost=(np.concatenate(cost) / scale) if cost else np.zeros(0),
        integral=np.concatenate(integral) if integral else np.zeros(0, dtype=bool),
        blocks=tuple(blocks),
        scale=scale,
    )


# --- LP / MILP models --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sub:
    """A model over some rows: its singles, multi columns and straddle blocks."""

    rows: IntArray
    singles: IntArray
    cols: IntArray
    blocks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Model:
    """Matrices of a :class:`_Sub`: variables are singles, columns, then block variables."""

    c: FloatArray
    a_eq: csr_array
    b_eq: FloatArray
    a_ub: csr_array | None
    integer: BoolArray
    n_legs: int  # the first rows of ``a_eq`` are the legs


def _model(prob: _Problem, sub: _Sub, caps: FloatArray | None = None) -> _Model:
    remap = np.full(prob.n_rows, -1, dtype=np.int64)
    remap[sub.rows] = np.arange(len(sub.rows))
    n_s, n_c = len(sub.singles), len(sub.cols)
    mem = prob.members[sub.cols]
    live = mem >= 0
    er = [remap[prob.single_row[sub.singles]], remap[mem[live]]]
    ec = [np.arange(n_s), (n_s + np.arange(n_c))[:, None].repeat(4, axis=1)[live]]
    ev = [np.ones(n_s), prob.ratio[sub.cols][live]]
    ur: list[IntArray] = []
    uc: list[IntArray] = []
    uv: list[FloatArray] = []
    cost = [prob.single_cost[sub.singles], prob.cost[sub.cols]]
    integer = [np.zeros(n_s, dtype=bool), prob.integral[sub.cols]]
    b_extra: list[FloatArray] = []
    n_eq = len(sub.rows)
    n_ub = 0
    var = n_s + n_c
    for k in sub.blocks:
        blk = prob.blocks[k]
        nc, npt, nl = len(blk.call_rows), len(blk.put_rows), len(blk.levels)
        u0, v0, cu0, cv0, m0 = var, var + nc, var + nc + npt, var + nc + npt + nl, var
        m0 = var + nc + npt + 2 * nl
        # leg rows: the contracts of each short in pairs
        er += [remap[blk.call_rows], remap[blk.put_rows]]
        ec += [u0 + np.arange(nc), v0 + np.arange(npt)]
        ev += [np.ones(nc), np.ones(npt)]
        # balance: Σu − Σv = 0
        er += [np.full(nc + npt, n_eq)]
        ec += [np.arange(u0, u0 + nc + npt)]
        ev += [np.r_[np.ones(nc), -np.ones(npt)]]
        b_extra.append(np.zeros(1))
        n_eq += 1
        # cumulative per level: U_j − U_{j−1} − Σ_{level(c)=j} u_c = 0 (same for V)
        for first, cum0, lv, n in ((u0, cu0, blk.level_call, nc), (v0, cv0, blk.level_put, npt)):
            j = np.arange(nl)
            er += [n_eq + j, n_eq + j[1:], n_eq + lv]
            ec += [cum0 + j, cum0 + j[:-1], first + np.arange(n)]
            ev += [np.ones(nl), -np.ones(nl - 1), -np.ones(n)]
            b_extra.append(np.zeros(nl))
            n_eq += nl
        # m_j ≤ U_j, m_j ≤ V_j
        j = np.arange(nl)
        ur += [n_ub + j, n_ub + j, n_ub + nl + j, n_ub + nl + j]
        uc += [m0 + j, cu0 + j, m0 + j, cv0 + j]
        uv += [np.ones(nl), -np.ones(nl), np.ones(nl), -np.ones(nl)]
        n_ub += 2 * nl
        cost += [blk.e_call, blk.e_put, np.zeros(2 * nl), -blk.deltas]
        integer += [np.ones(nc + npt, dtype=bool), np.zeros(3 * nl, dtype=bool)]
        var += blk.n_vars
    a_eq = coo_array(
        (np.concatenate(ev), (np.concatenate(er), np.concatenate(ec))), shape=(n_eq, var)
    ).tocsr()
    a_ub = None
    if n_ub:
        a_ub = coo_array(
            (np.concatenate(uv), (np.concatenate(ur), np.concatenate(uc))), shape=(n_ub, var)
        ).tocsr()
    caps_all = prob.caps if caps is None else caps
    b_eq = np.concatenate([caps_all[sub.rows], *b_extra])
    return _Model(np.concatenate(cost), a_eq, b_eq, a_ub, np.concatenate(integer), len(sub.rows))


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.perf_counter())


def _lp(
    prob: _Problem, sub: _Sub, deadline: float | None = None
) -> tuple[float, FloatArray, FloatArray] | None:
    """LP value, the legs' duals and the solution; ``None`` past the deadline."""
    m = _model(prob, sub)
    # sparse matrices are accepted by the HiGHS methods (the stubs only know dense ones)
    a_eq: Any = m.a_eq
    a_ub: Any = m.a_ub
    b_ub = None if m.a_ub is None else np.zeros(m.a_ub.shape[0])
    options: dict[str, Any] = {}
    left = _remaining(deadline)
    if left is not None:
        options["time_limit"] = max(left, 1e-3)
    res = linprog(
        m.c, A_eq=a_eq, b_eq=m.b_eq, A_ub=a_ub, b_ub=b_ub, bounds=(0.0, None), method="highs",
        options=cast(Any, options),
    )  # fmt: skip
    if res.status == 1:  # iteration or time limit
        return None
    if res.status != 0 or res.fun is None:
        raise PortmarginError(f"rules pairing: LP failed: {res.message}")
    y = np.zeros(prob.n_rows)
    y[sub.rows] = np.asarray(res.eqlin.marginals, dtype=np.float64)[: m.n_legs]
    return float(res.fun), y, np.asarray(res.x, dtype=np.float64)


def _milp(
    prob: _Problem, sub: _Sub, deadline: float | None, *, caps: FloatArray | None = None,
    all_integer: bool = False,
) -> tuple[FloatArray | None, float, bool]:  # fmt: skip
    """Solve ``sub``; returns (x or None, dual bound, proven optimal)."""
    m = _model(prob, sub, caps)
    cons = [LinearConstraint(m.a_eq, m.b_eq, m.b_eq)]
    if m.a_ub is not None:
        cons.append(LinearConstraint(m.a_ub, -np.inf, np.zeros(m.a_ub.shape[0])))
    integrality = np.zeros(len(m.c), dtype=np.int64)
    if prob.lot is not None:
        n_s = len(sub.singles)
        integrality[:] = m.integer
        if all_integer:
            integrality[n_s : n_s + len(sub.cols)] = 1
    left = _remaining(deadline)
    limit = math.inf if left is None else max(left, 1e-3)
    res = milp(
        m.c,
        constraints=cons,
        integrality=integrality,
        options={"presolve": True, "mip_rel_gap": 0.0, "time_limit": limit},
    )
    if res.x is None:
        return None, -math.inf, False
    x = np.asarray(res.x, dtype=np.float64)
    proven = res.status == 0
    bound = float(m.c @ x) if proven else float(getattr(res, "mip_dual_bound", -math.inf))
    if prob.lot is not None:
        n_s, n_c = len(sub.singles), len(sub.cols)
        xm = x[n_s : n_s + n_c]
        frac = np.abs(xm - np.round(xm)) > 1e-6
        if frac.any() and not all_integer:
            # not a vertex of the b-matching part: re-solve with every column integer (the
            # integer ones fixed; what is left has an integral LP, closed at the root)
            fixed = prob.integral[sub.cols]
            left_caps = prob.caps.copy() if caps is None else caps.copy()
            for t, v in zip(sub.cols[fixed].tolist(), np.round(xm[fixed]).tolist(), strict=True):
                live = prob.members[t] >= 0
                left_caps[prob.members[t][live]] -= prob.ratio[t][live] * v
            rsub = replace(sub, cols=sub.cols[~fixed])
            xr, _, _ = _milp(prob, rsub, deadline, caps=left_caps, all_integer=True)
            if xr is not None:
                new = np.round(xm)
                new[~fixed] = xr[n_s : n_s + len(rsub.cols)]
                x = np.concatenate([xr[:n_s], new, xr[n_s + len(rsub.cols) :]])
        x[n_s : n_s + n_c] = np.round(x[n_s : n_s + n_c])
    return x, bound, proven


# --- solutions ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _X:
    """A solution: singles and multi columns (lots), per-block contracts in pairs."""

    s: FloatArray
    m: FloatArray
    u: list[FloatArray]
    v: list[FloatArray]

    def copy(self) -> _X:
        return _X(self.s.copy(), self.m.copy(), [a.copy() for a in self.u],
                  [a.copy() for a in self.v])  # fmt: skip


def _block_value(blk: _Block, u: FloatArray, v: FloatArray) -> float:
    """Cost of the best pairing of ``u`` call and ``v`` put contracts (layer cake)."""
    cum_u = np.cumsum(np.bincount(blk.level_call, weights=u, minlength=len(blk.levels)))
    cum_v = np.cumsum(np.bincount(blk.level_put, weights=v, minlength=len(blk.levels)))
    saving = float(blk.deltas @ np.minimum(cum_u, cum_v))
    return float(blk.e_call @ u + blk.e_put @ v) - saving


def _entering(prob: _Problem, neg: IntArray, rc: FloatArray, limit: int) -> IntArray:
    """Columns to add to the restricted LP: for each leg, its most negative reduced cost."""
    mem = prob.members[neg]
    rows = mem.reshape(-1)
    cols = np.repeat(neg, mem.shape[1])
    live = rows >= 0
    rows, cols = rows[live], cols[live]
    order = np.lexsort((rc[cols], rows))
    rows, cols = rows[order], cols[order]
    first = np.r_[True, rows[1:] != rows[:-1]]
    chosen = np.unique(cols[first])
    return chosen[np.argsort(rc[chosen], kind="stable")[:limit]]


def _objective(prob: _Problem, x: _X) -> float:
    total = float(prob.single_cost @ x.s + prob.cost @ x.m)
    for blk, u, v in zip(prob.blocks, x.u, x.v, strict=True):
        total += _block_value(blk, u, v)
    return total


def _unpack(prob: _Problem, sub: _Sub, vec: FloatArray, into: _X) -> None:
    n_s, n_c = len(sub.singles), len(sub.cols)
    into.s[sub.singles] = vec[:n_s]
    into.m[sub.cols] = vec[n_s : n_s + n_c]
    pos = n_s + n_c
    for k in sub.blocks:
        blk = prob.blocks[k]
        nc, npt = len(blk.call_rows), len(blk.put_rows)
        into.u[k] = np.round(vec[pos : pos + nc]) if prob.lot is not None else vec[pos : pos + nc]
        into.v[k] = (
            np.round(vec[pos + nc : pos + nc + npt])
            if prob.lot is not None
            else vec[pos + nc : pos + nc + npt]
        )
        pos += blk.n_vars


def _pairs(blk: _Block, u: FloatArray, v: FloatArray) -> list[tuple[int, int, float]]:
    """The best pairing (both sides by decreasing cost, then leg order): (call, put, lots)."""
    cs = sorted((-blk.e_call[i], int(blk.call_legs[i]), float(u[i])) for i in range(len(u)))
    ps = sorted((-blk.e_put[i], int(blk.put_legs[i]), float(v[i])) for i in range(len(v)))
    cs = [c for c in cs if c[2] > 1e-9]
    ps = [p for p in ps if p[2] > 1e-9]
    out = []
    i = j = 0
    left_c = cs[0][2] if cs else 0.0
    left_p = ps[0][2] if ps else 0.0
    while i < len(cs) and j < len(ps):
        n = min(left_c, left_p)
        out.append((cs[i][1], ps[j][1], n))
        left_c -= n
        left_p -= n
        if left_c <= 1e-9:
            i += 1
            left_c = cs[i][2] if i < len(cs) else 0.0
        if left_p <= 1e-9:
            j += 1
            left_p = ps[j][2] if j < len(ps) else 0.0
    return out


def _greedy(prob: _Problem) -> tuple[_X, list[list[tuple[int, int, float]]]]:
    """Greedy solution (lots) and its straddle pairs per block: see :func:`greedy`."""
    left = prob.caps.tolist()
    x = _X(
        np.zeros(prob.n_single),
        np.zeros(prob.n_multi),
        [np.zeros(len(b.call_rows)) for b in prob.blocks],
        [np.zeros(len(b.put_rows)) for b in prob.blocks],
    )
    rank = np.full(len(KINDS), -1)
    for o, name in enumerate(_GREEDY_ORDER):
        rank[KINDS.index(name)] = o
    benefit = _greedy_benefit(prob)
    whole = prob.lot is not None
    pairs: list[list[tuple[int, int, float]]] = [[] for _ in prob.blocks]
    for b, table in enumerate(prob.tables):
        sel = np.flatnonzero(prob.col_book == b)
        sel = sel[(rank[prob.col_kind[sel]] >= 0) & benefit[sel]]
        # the fixed kind order, then the legs' stable (name) order
        legs = table.members[prob.col_index[sel]]
        legs = np.where(legs >= 0, legs, np.iinfo(np.int64).max)
        order = np.lexsort(
            [legs[:, 3], legs[:, 2], legs[:, 1], legs[:, 0], rank[prob.col_kind[sel]]]
        )
        chosen = sel[order]
        for t, mem, rat in zip(
            chosen.tolist(), prob.members[chosen].tolist(), prob.ratio[chosen].tolist(), strict=True
        ):
            use = [(i, r) for i, r in zip(mem, rat, strict=True) if i >= 0]
            n = min(left[i] / r for i, r in use)
            if whole:
                n = math.floor(n + 1e-9)
            if n <= 1e-12:
                continue
            for i, r in use:
                left[i] -= r * n
            x.m[t] += n
        for k, blk in enumerate(prob.blocks):
            if blk.book == b:
                pairs[k] = _greedy_straddles(prob.books[b], blk, left, x.u[k], x.v[k], whole=whole)
    remaining = np.array(left, dtype=np.float64).reshape(-1)
    _, first = np.unique(prob.single_row, return_index=True)
    x.s[first] = np.maximum(remaining[prob.single_row[first]], 0.0)
    return x, pairs


def _greedy_straddles(
    book: Book, blk: _Block, left: list[float], u: FloatArray, v: FloatArray, *, whole: bool
) -> list[tuple[int, int, float]]:
    """Short call × short put pairs, straddles first, then by the legs' (name) order."""
    a = book.arrays
    grid = np.meshgrid(np.arange(len(blk.call_legs)), np.arange(len(blk.put_legs)), indexing="ij")
    i, j = grid[0].reshape(-1), grid[1].reshape(-1)
    keep = np.minimum(blk.e_call[i], blk.e_put[j]) > 0
    i, j = i[keep], j[keep]
    c, p = blk.call_legs[i], blk.put_legs[j]
    same = (a.strike[c] == a.strike[p]) & (a.expiry[c] == a.expiry[p])
    order = np.lexsort([np.maximum(c, p), np.minimum(c, p), ~same])
    out = []
    for ii, jj in zip(i[order].tolist(), j[order].tolist(), strict=True):
        rc, rp = int(blk.call_rows[ii]), int(blk.put_rows[jj])
        n = min(left[rc], left[rp])
        if whole:
            n = math.floor(n + 1e-9)
        if n <= 1e-12:
            continue
        left[rc] -= n
        left[rp] -= n
        u[ii] += n
        v[jj] += n
        out.append((int(blk.call_legs[ii]), int(blk.put_legs[jj]), float(n)))
    return out


def _greedy_benefit(prob: _Problem) -> BoolArray:
    """Groups whose net initial requirement beats their legs alone (the greedy's test)."""
    out = np.zeros(prob.n_multi, dtype=bool)
    for b, (book, table) in enumerate(zip(prob.books, prob.tables, strict=True)):
        sel = np.flatnonzero(prob.col_book == b)
        if not len(sel):
            continue
        t = prob.col_index[sel]
        a = book.arrays
        safe = np.where(table.members[t] >= 0, table.members[t], 0)
        alone = (table.ratio[t] * (a.single_im - a.proceeds)[safe]).sum(axis=1)
        out[sel] = (table.gross_im[t] - table.proceeds[t]) < alone
    return out


def _initial_columns(prob: _Problem, x_m: FloatArray, per_row: int = 4) -> IntArray:
    """Greedy's groups and, for each leg, its ``per_row`` most saving groups."""
    best_single = np.full(prob.n_rows, np.inf)
    np.minimum.at(best_single, prob.single_row, prob.single_cost)
    safe = np.where(prob.members >= 0, prob.members, 0)
    saving = (prob.ratio * best_single[safe]).sum(axis=1) - prob.cost
    rows = prob.members.reshape(-1)
    cols = np.repeat(np.arange(prob.n_multi), 4)
    live = rows >= 0
    rows, cols = rows[live], cols[live]
    order = np.lexsort((-saving[cols], rows))
    rows, cols = rows[order], cols[order]
    start = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    rank = np.arange(len(rows)) - np.repeat(start, np.diff(np.r_[start, len(rows)]))
    chosen = np.unique(np.concatenate([cols[rank < per_row], np.flatnonzero(x_m > 0)]))
    return chosen.astype(np.int64)


def _solve(prob: _Problem, deadline: float | None, start: _X | None = None) -> tuple[_X, float]:
    """Optimal solution (past ``deadline``: the best found) and a proven lower bound.

    Both in normalised cost units; ``start`` is the greedy solution if already known.
    """
    best = _greedy(prob)[0] if start is None else start.copy()
    ub = _objective(prob, best)
    all_rows = np.arange(prob.n_rows)
    all_singles = np.arange(prob.n_single)
    all_blocks = tuple(range(len(prob.blocks)))
    if prob.n_multi == 0 and not prob.blocks:
        return best, ub
    if prob.n_multi <= _DIRECT:  # small: one MILP per component over every candidate
        return _by_components(prob, np.arange(prob.n_multi), best, deadline, None)
    # column generation on the LP relaxation
    in_work = np.zeros(prob.n_multi, dtype=bool)
    if prob.n_multi:
        in_work[_initial_columns(prob, best.m)] = True
    per_round = max(256, 4 * prob.n_rows)
    safe = np.where(prob.members >= 0, prob.members, 0)
    # upper bound of each column: the fewest instances its legs allow
    col_ub = np.min(
        np.where(prob.members >= 0, prob.caps[safe] / np.where(prob.ratio > 0, prob.ratio, 1.0),
                 np.inf), axis=1, initial=np.inf,
    )  # fmt: skip
    lower = -math.inf
    y: FloatArray | None = None
    rc = np.zeros(prob.n_multi)
    while True:
        work = np.flatnonzero(in_work)
        solved = _lp(prob, _Sub(all_rows, all_singles, work, all_blocks), deadline)
        if solved is None:  # out of time before the first LP: the greedy, unproven
            if y is None:
                return best, -math.inf
            converged = False
            break
        z_rmp, y, _ = solved
        rc = prob.cost - (prob.ratio * y[safe]).sum(axis=1)
        # Lagrangian bound, valid for any duals: z_RMP + Σ_t min(0, c̄_t)·(most instances of t)
        lower = max(lower, z_rmp + float(np.minimum(rc, 0.0) @ col_ub))
        neg = np.flatnonzero((rc < -_RC_TOL) & ~in_work)
        if not len(neg):
            converged = True
            break
        left = _remaining(deadline)
        if left is not None and left <= 0:
            converged = False
            break
        in_work[_entering(prob, neg, rc, per_round)] = True
    # restricted MILP over the generated columns: a better incumbent
    sub = _Sub(all_rows, all_singles, np.flatnonzero(in_work), all_blocks)
    vec, _, proven_r = _milp(prob, sub, deadline)
    if vec is not None:
        cand = best.copy()
        cand.m[:] = 0.0
        _unpack(prob, sub, vec, cand)
        obj = _objective(prob, cand)
        if obj < ub:
            ub, best = obj, cand
    left = _remaining(deadline)
    if not converged or (left is not None and left <= 0):
        return best, lower
    tol = 1e-9 * max(1.0, abs(ub))
    if ub - lower <= tol:
        return best, ub  # the incumbent meets the LP bound
    # reduced-cost fixing
    keep = rc <= (ub - lower) + tol
    if proven_r and not (keep & ~in_work).any():
        return best, ub  # every candidate that could improve was in the MILP
    keep |= best.m > 0
    out, bound = _by_components(prob, np.flatnonzero(keep), best, deadline, y)
    return out, max(lower, bound)


def _by_components(
    prob: _Problem, cols: IntArray, best: _X, deadline: float | None, y: FloatArray | None
) -> tuple[_X, float]:
    """Solve the candidates ``cols`` as independent MILPs, one per connected component.

    ``best`` is the incumbent (kept where a component's MILP finds nothing better); ``y``
    the LP duals, whose ``Σ y_i b_i`` over a component bounds it from below.
    """
    # independent components (a straddle block joins all its shorts)
    mem = prob.members[cols]
    src = [np.repeat(mem[:, 0], 3)]
    dst = [mem[:, 1:].reshape(-1)]
    for blk in prob.blocks:
        r = np.r_[blk.call_rows, blk.put_rows]
        src.append(np.full(len(r), r[0]))
        dst.append(r)
    s_all, d_all = np.concatenate(src), np.concatenate(dst)
    live = d_all >= 0
    graph = coo_array(
        (np.ones(int(live.sum())), (s_all[live], d_all[live])), shape=(prob.n_rows, prob.n_rows)
    )
    _, label = connected_components(graph, directed=False)
    col_comp = label[mem[:, 0]]
    single_comp = label[prob.single_row]
    block_comp = [int(label[blk.call_rows[0]]) for blk in prob.blocks]
    out = best.copy()
    bound = 0.0
    for comp in np.unique(label).tolist():
        ccols = cols[col_comp == comp]
        cblocks = tuple(k for k, c in enumerate(block_comp) if c == comp)
        csingles = np.flatnonzero(single_comp == comp)
        crows = np.flatnonzero(label == comp)
        if not len(ccols) and not cblocks:
            bound += float(prob.single_cost[csingles] @ best.s[csingles])
            continue
        sub = _Sub(crows, csingles, ccols, cblocks)
        z_lp = -math.inf if y is None else float(y[crows] @ prob.caps[crows])
        inc = _part_objective(prob, sub, best)
        vec, dual, _ = _milp(prob, sub, deadline)
        if vec is not None:
            cand = best.copy()
            _unpack(prob, sub, vec, cand)
            if _part_objective(prob, sub, cand) <= inc:
                _unpack(prob, sub, vec, out)
        bound += max(dual, z_lp)
    return out, bound


def _part_objective(prob: _Problem, sub: _Sub, x: _X) -> float:
    total = float(prob.single_cost[sub.singles] @ x.s[sub.singles])
    total += float(prob.cost[sub.cols] @ x.m[sub.cols])
    for k in sub.blocks:
        total += _block_value(prob.blocks[k], x.u[k], x.v[k])
    return total


# --- results ---------------------------------------------------------------------------------


def _expiry(book: Book, cand: Candidate) -> float | None:
    """The one expiry of a group's options (``None`` if none or several)."""
    exps = {leg.expiry for leg in (book.legs[i] for i, _ in cand.members) if leg.is_option}
    return exps.pop() if len(exps) == 1 else None


def _merge(book: Book, groups: list[tuple[Candidate, float]]) -> None:
    """Show two groups as one recognised group when that costs no more.

    No more initial and no more maintenance: two spreads as a long box, long iron condor or
    short butterfly, a cover and an option alone as a collar or conversion, ...

    Display only (the minimised requirement does not change; the other one may fall). Pairs
    are tried by expiry, in a fixed order.
    """
    by_exp: dict[float, list[int]] = {}
    for k, (c, _) in enumerate(groups):
        if (
            c.kind in _SPREADS[:1]
            or c.kind in _COVER2
            or (c.is_single and book.legs[c.members[0][0]].kind is LegKind.OPTION)
        ):
            e = _expiry(book, c)
            if e is not None:
                by_exp.setdefault(e, []).append(k)
    for exp in sorted(by_exp):
        for a_k, b_k in combinations(by_exp[exp][:_MERGE_CAP], 2):
            ca, xa = groups[a_k]
            cb, xb = groups[b_k]
            n = min(xa, xb)
            if n <= 1e-12 or (ca.is_single and cb.is_single):
                continue
            if ca.is_single or cb.is_single:
                if (cb if ca.is_single else ca).kind not in _COVER2:
                    continue
            elif ca.kind not in _SPREADS[:1] or cb.kind not in _SPREADS[:1]:
                continue
            legs = sorted({i for i, _ in ca.members} | {i for i, _ in cb.members})
            if not 3 <= len(legs) <= 4:
                continue
            merged = price_group(book, legs)
            if merged is None:
                continue
            want: dict[int, float] = {}
            for i, a in (*ca.members, *cb.members):
                want[i] = want.get(i, 0.0) + a
            if {i: round(a, 9) for i, a in merged.members} != {
                i: round(a, 9) for i, a in want.items()
            }:
                continue
            tol = 1e-9 * max(1.0, abs(ca.gross_im + cb.gross_im), abs(ca.gross_mm + cb.gross_mm))
            if (
                merged.gross_im > ca.gross_im + cb.gross_im + tol
                or merged.gross_mm > ca.gross_mm + cb.gross_mm + tol
            ):
                continue
            groups[a_k] = (ca, xa - n)
            groups[b_k] = (cb, xb - n)
            groups.append((merged, n))
    groups[:] = [(c, x) for c, x in groups if x > 1e-12]


def _decompositions(
    prob: _Problem, x: _X, pairs: list[list[tuple[int, int, float]]] | None = None
) -> tuple[Decomposition, ...]:
    per_lot = prob.lot if prob.lot is not None else 1.0
    out: list[list[tuple[Candidate, float]]] = [[] for _ in prob.books]
    single_cands = [singles(book) for book in prob.books]
    for k in np.flatnonzero(x.s > 1e-9).tolist():
        b = int(prob.single_book[k])
        out[b].append((single_cands[b][int(prob.single_leg[k])], float(x.s[k]) * per_lot))
    for t in np.flatnonzero(x.m > 1e-9).tolist():
        b = int(prob.col_book[t])
        cand = prob.tables[b].candidate(int(prob.col_index[t]))
        out[b].append((cand, float(x.m[t]) * per_lot))
    for k, blk in enumerate(prob.blocks):
        book = prob.books[blk.book]
        chosen = pairs[k] if pairs is not None else _pairs(blk, x.u[k], x.v[k])
        for c, p, n in chosen:
            pair = price_group(book, (c, p))
            if pair is None:  # pragma: no cover - every short call × short put is a pair
                raise PortmarginError(f"rules pairing: {c}, {p} is not a straddle")
            out[blk.book].append((pair, n * per_lot))
    if pairs is None:  # the greedy baseline is shown as formed
        for book, groups in zip(prob.books, out, strict=True):
            _merge(book, groups)
    return tuple(Decomposition(tuple(g)) for g in out)


def solve_books(
    books: Sequence[Book],
    tables: Sequence[CandidateTable],
    *,
    maintenance: bool = False,
    deadline: float | None = None,
) -> Solution:
    """Minimum-requirement decompositions of the books of one underlying.

    Parameters
    ----------
    books, tables
        The books (one per pool) and their candidate tables; a coin balance leg in two
        books is one leg (it can be pledged once).
    maintenance
        Minimise maintenance instead of initial requirement.
    deadline
        ``time.perf_counter()`` value past which the best solution found is returned.

    Returns
    -------
    Solution
        Decompositions, their net requirement and a proven lower bound (USD).
    """
    if not any(book.legs for book in books):
        return Solution(tuple(Decomposition(()) for _ in books), 0.0, 0.0)
    return _solution(_build(books, tables, maintenance=maintenance), deadline, None)


def _solution(prob: _Problem, deadline: float | None, start: _X | None) -> Solution:
    x, lower = _solve(prob, deadline, start)
    obj = _objective(prob, x)
    bound = min(lower, obj)
    if obj - bound <= 1e-9 * max(1.0, abs(obj)):
        bound = obj
    return Solution(_decompositions(prob, x), obj * prob.scale, bound * prob.scale)


def pair_books(
    books: Sequence[Book],
    tables: Sequence[CandidateTable],
    *,
    deadline_im: float | None = None,
    deadline_mm: float | None = None,
) -> tuple[Solution, Solution, tuple[Decomposition, ...]]:
    """Initial- and maintenance-minimising decompositions and the greedy baseline.

    The greedy runs once (its choices do not depend on the minimised requirement) and starts
    both searches; deadlines as in :func:`solve_books`.
    """
    if not any(book.legs for book in books):
        empty = Solution(tuple(Decomposition(()) for _ in books), 0.0, 0.0)
        return empty, empty, empty.decompositions
    prob_im = _build(books, tables, maintenance=False)
    prob_mm = _build(books, tables, maintenance=True)
    start, pairs = _greedy(prob_im)
    greedy = _decompositions(prob_im, start, pairs)
    return (
        _solution(prob_im, deadline_im, start),
        _solution(prob_mm, deadline_mm, start),
        greedy,
    )


def greedy_books(
    books: Sequence[Book], tables: Sequence[CandidateTable]
) -> tuple[Decomposition, ...]:
    """The greedy baseline for the books of one underlying (see :func:`greedy`)."""
    if not any(book.legs for book in books):
        return tuple(Decomposition(()) for _ in books)
    prob = _build(books, tables, maintenance=False)
    x, pairs = _greedy(prob)
    return _decompositions(prob, x, pairs)


def optimal(
    book: Book, *, maintenance: bool = False, table: CandidateTable | None = None
) -> Decomposition:
    """Minimum-requirement decomposition of one ``book`` (exact)."""
    tab = candidate_table(book) if table is None else table
    return solve_books([book], [tab], maintenance=maintenance).decompositions[0]


def greedy(book: Book, *, table: CandidateTable | None = None) -> Decomposition:
    """Greedy baseline (margin-estimator style): 2-leg groups only.

    Goes through the beneficial 2-leg candidates in a fixed order — covers first, then
    verticals/calendars/diagonals, then straddles/strangles; within a kind by the legs'
    stable (name) order — forming as many whole lots of each as the remaining quantities
    allow; what is left is margined leg by leg. It is a baseline, not the answer: it misses
    3–4-leg groups and is order-dependent, like the pairing of
    ``tastyware/margin-estimator`` (https://github.com/tastyware/margin-estimator).
    """
    tab = candidate_table(book) if table is None else table
    return greedy_books([book], [tab])[0]
