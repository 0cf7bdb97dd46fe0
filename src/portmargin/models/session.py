r"""Margin many accounts at once: risk arrays once per market state, sparse products.

A :class:`MarginSession` fixes a market, a model and an instrument universe. It computes the
risk arrays of the universe once (one vectorised call per underlying) and lays them out as
one block matrix ``W`` of shape ``(n_columns, n_out)``: a column block of scenarios for each
(margin pool, underlying) pair, one equity column per pool and one long-option-value column
per pair. Accounts are the rows of a sparse matrix ``Q`` (accounts × instruments + cash
currencies), so for a chunk of accounts::

    V_k = Q[:, pair k] @ W[pair k, block k]  (+ coin collateral)   scenario P&L of pair k
    E   = Q @ W[:, equity and value columns]                        equity, cap values
    C   = 1[Q ≠ 0] @ I                   which pairs / pools each account has (indicators)

Per pool, accounts are grouped by which of the pool's pairs they hold, and each group goes
through the engine's own stage 2 (:func:`~portmargin.models.engine.pool_components`,
:func:`~portmargin.models.engine.pool_requirements`, with :meth:`MarginModel.aggregate`
before it), vectorised over the group's accounts: the rules are written once, in
:mod:`portmargin.models.engine`. There is no Python loop over accounts or positions, only
over pools, pair groups, pairs, charges and account chunks. A what-if
(:meth:`MarginSession.margin_positions`) gathers only the account's own rows of ``W``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from portmargin._tabular import Tabular
from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import Instrument, InstrumentKind
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.config import ChargeParams
from portmargin.models.engine import (
    COLLATERAL_HAIRCUT,
    LONG_OPTION_CAP,
    ChargeContext,
    PoolInputs,
    option_value_per_unit,
    pool_components,
    pool_requirements,
)
from portmargin.models.explain import explain_row
from portmargin.models.result import MarginResult
from portmargin.pricing._compiled import csr_dense_product, in_threads, kernel
from portmargin.risk import RiskArray
from portmargin.scenarios import ScenarioSet
from portmargin.units import STABLE_CURRENCIES, USD, pool_currency, usd_rate

if TYPE_CHECKING:
    from portmargin.models.model import MarginModel

__all__ = [
    "AccountBook",
    "BatchResult",
    "MarginSession",
    "PairTrace",
    "build_quantities",
    "cash_column",
]

_CASH_PREFIX = "cash:"
_NO_PARAMS = ChargeParams(kind="scanning_risk")
DEFAULT_CHUNK = 8_192  # keeps the (chunk, n_scen) temporaries in cache: ~6x faster than 65k
# Per pool, accounts are grouped by which of the pool's pairs they have and each group is
# evaluated on its own pairs only; above this many groups the pool's accounts are evaluated
# together on every pair some of them have (pairs an account lacks masked out).
MAX_PAIR_PATTERNS = 8
_MEMO_MAX = 8  # (layout, moved, pools) entries a book keeps for ticks


def cash_column(currency: str) -> str:
    """Column name of a cash balance (``cash:BTC``)."""
    return f"{_CASH_PREFIX}{currency.upper()}"


@dataclass(frozen=True, slots=True)
class _Pair:
    """One (margin pool, underlying) of the session, with its column block of ``W``."""

    pool: str
    und: str
    scen: ScenarioSet
    rate: float
    start: int  # first scenario column in W
    cols: IntArray  # universe instrument columns of this pair
    rows: IntArray  # their rows in the underlying's risk array
    risk: RiskArray | None


@dataclass(frozen=True, slots=True)
class AccountBook:
    """Accounts as a sparse matrix in a session's column space.

    Attributes
    ----------
    accounts
        Account labels in row order.
    quantities
        CSR matrix ``(n_accounts, n_columns)``: contracts per instrument column, and cash
        balances in the ``cash:CCY`` columns (explicit zeros kept for cash: a zero balance
        still opens its pool, as in :meth:`MarginModel.margin`).
    """

    accounts: Sequence[str]
    quantities: sp.csr_array
    # What sessions derive from the positions alone (exposed rows, chunk shapes), by layout
    # and moved underlyings: a tick on the same book reuses it. Never part of the value.
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.quantities.shape[0])

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its accounts and quantities (the memo stays behind)."""
        return (AccountBook, (self.accounts, self.quantities))


# The per-account arrays of a BatchResult, in constructor order after ``pools, pairs``.
_PER_ACCOUNT = (
    "present",
    "initial_margin",
    "maintenance_margin",
    "equity",
    "binding_pair",
    "binding_scenario",
    "binding_pnl",
)


@dataclass(frozen=True, slots=True)
class BatchResult(Tabular):
    """Margin of many accounts: arrays of shape ``(n_accounts, n_pools)`` in pool currency.

    ``present[a, p]`` says whether account ``a`` has pool ``p`` (a position or a cash balance
    in it); the other figures are 0 where it does not. ``binding_pair`` indexes
    :attr:`pairs` (−1 when the pool has no underlying), and ``binding_scenario`` /
    ``binding_pnl`` give the binding scenario of that pair and its aggregated P&L.
    """

    pools: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    present: BoolArray
    initial_margin: FloatArray
    maintenance_margin: FloatArray
    equity: FloatArray
    binding_pair: IntArray
    binding_scenario: IntArray
    binding_pnl: FloatArray

    def __len__(self) -> int:
        return int(self.present.shape[0])

    @property
    def excess(self) -> FloatArray:
        """Equity − initial margin."""
        out: FloatArray = self.equity - self.initial_margin
        return out

    def take(self, idx: IntArray) -> BatchResult:
        """The results of accounts ``idx``."""
        return BatchResult(self.pools, self.pairs, *(getattr(self, n)[idx] for n in _PER_ACCOUNT))

    def put(
        self, idx: IntArray, other: BatchResult, *, pools: Sequence[int] | None = None
    ) -> BatchResult:
        """A copy with the rows ``idx`` replaced by ``other``'s (only columns ``pools``)."""
        arrays = []
        for name in _PER_ACCOUNT:
            a = getattr(self, name).copy()
            if pools is None:
                a[idx] = getattr(other, name)
            else:  # column by column: a 1-D scatter each, no (rows × pools) index grid
                src = getattr(other, name)
                for p in pools:
                    a[idx, p] = src[:, p]
            arrays.append(a)
        return BatchResult(self.pools, self.pairs, *arrays)

    @staticmethod
    def concat(parts: Sequence[BatchResult]) -> BatchResult:
        """Stack results of consecutive account chunks."""
        first = parts[0]
        return BatchResult(
            first.pools,
            first.pairs,
            *(np.concatenate([getattr(p, name) for p in parts]) for name in _PER_ACCOUNT),
        )


@dataclass(frozen=True, slots=True, eq=False)
class MarginSession:
    """Market + model + instrument universe, with the risk arrays computed once.

    An immutable value: everything is derived once, in the constructor, and its arrays are
    read-only. A new market state is a new session (:meth:`with_market`).

    Parameters
    ----------
    market
        The market state.
    model
        The margin model.
    instruments
        The universe: instrument names (resolved against the market) or resolved
        instruments; ``None`` (the default) means every quoted option, dated future and
        perpetual of the market. Kept grouped by underlying (in the given order within one).
    arrays
        Risk arrays to reuse per underlying (from a previous session; see
        :meth:`with_market`). One is reused only if it covers exactly this universe's
        instruments of its underlying.

    Examples
    --------
    >>> import portmargin as pm
    >>> from portmargin.batch import MarginSession
    >>> s = MarginSession(pm.demo_market(), pm.load_model("deribit"))
    >>> r = s.margin_positions({"BTC-27MAR26-70000-P": -1, "BTC-27MAR26-69000-P": 1})
    >>> r.pools, bool(r.initial_margin[0, 0] > 0)
    (('BTC',), True)
    """

    market: MarketSnapshot = field(init=False)
    model: MarginModel = field(init=False)
    instruments: tuple[str, ...] = field(init=False)
    arrays: Mapping[str, RiskArray] = field(init=False)
    columns: tuple[str, ...] = field(init=False)
    index: Mapping[str, int] = field(init=False)
    pools: tuple[str, ...] = field(init=False)
    pairs: tuple[_Pair, ...] = field(init=False)
    weights: FloatArray = field(init=False)
    indicators: FloatArray = field(init=False)
    short_indicators: FloatArray = field(init=False)
    cash_cols: IntArray = field(init=False)
    _haircut: FloatArray = field(init=False)
    _col_pair: IntArray = field(init=False)
    _col_row: IntArray = field(init=False)
    _pool_pairs: tuple[tuple[int, ...], ...] = field(init=False)
    _stacked: FloatArray = field(init=False)  # [W | I | S], gathered at once by a what-if
    _pair_w: tuple[FloatArray, ...] = field(init=False)  # W[pair cols, pair block]
    _cash_w: tuple[FloatArray | None, ...] = field(init=False)  # W[cash cols, pair block]
    _pair_span: tuple[slice | None, ...] = field(init=False)  # pair cols as a slice if contiguous
    _layout: _Layout = field(init=False)  # where the market's figures go in W
    _tail_w: FloatArray = field(init=False)  # W's equity and value columns, contiguous

    def __init__(
        self,
        market: MarketSnapshot,
        model: MarginModel,
        instruments: Sequence[str | Instrument] | None = None,
        arrays: Mapping[str, RiskArray] | None = None,
        *,
        _base: MarginSession | None = None,
        _moved: frozenset[str] = frozenset(),
    ) -> None:
        fields = _build(market, model, instruments, arrays or {}, _base, _moved)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as what rebuilds it: market, model, universe and risk arrays.

        The risk arrays travel as they are (a worker does not recompute them); the block
        matrices are rebuilt from them on arrival, bit for bit the same.
        """
        return (
            _restore_session,
            (self.market, _portable(self.model), self.instruments, dict(self.arrays)),
        )

    # -- construction --------------------------------------------------------------------
    def with_market(
        self,
        market: MarketSnapshot,
        *,
        moved: Collection[str],
        arrays: Mapping[str, RiskArray] | None = None,
    ) -> MarginSession:
        """The session on ``market``, recomputing only the risk arrays of ``moved`` underlyings.

        The other underlyings' risk arrays are reused as they are: the caller asserts that
        their market data did not change. ``arrays`` gives risk arrays of moved underlyings
        already computed on ``market`` (a cluster's driver broadcasts them to its workers).
        """
        moved_set = frozenset(moved)
        keep = {u: a for u, a in self.arrays.items() if u not in moved_set}
        keep.update({u: a for u, a in (arrays or {}).items() if u in moved_set})
        return MarginSession(
            market, self.model, self.instruments, keep, _base=self, _moved=moved_set
        )

    def settlement(self, previous: MarginSession, underlying: str) -> sp.csr_array | None:
        r"""Variation margin of ``underlying``'s futures and perpetuals since ``previous``.

        Per contract, from the previous mark ``F₀`` to this session's ``F₁`` (the delta-one
        P&L of :mod:`portmargin.risk` at ``m = F₁/F₀ − 1``)::

            linear    M·(F₁ − F₀)        credited in the quote currency (USDC)
            inverse   M·(1 − F₀/F₁)      credited in the coin, and the size rescaled by
                                         F₀/F₁ coin per coin

        An inverse contract has a fixed USD face (``q·F`` at the mark), so a position of
        ``q`` coins at ``F₀`` is ``q·F₀/F₁`` coins at ``F₁``; the settlements then telescope to
        ``q₀·(1 − F₀/F_n)``, the P&L of the USD notional ``q₀·F₀`` held throughout.

        Returns ``S`` (columns × columns) such that a book's change is ``ΔQ = Q @ S``: each
        future's column maps to the cash column of its settlement currency at its P&L per
        contract, and to itself at ``F₀/F₁ − 1`` if inverse. ``None`` when there is nothing
        to settle (no futures, or the two sessions hold different instruments).
        """
        a0, a1 = previous.arrays.get(underlying), self.arrays.get(underlying)
        if a0 is None or a1 is None or a0.table.names != a1.table.names:
            return None
        tab = a1.table
        kinds = (InstrumentKind.FUTURE, InstrumentKind.PERPETUAL)
        d1 = np.flatnonzero([x.kind in kinds for x in tab.instruments])
        if d1.size == 0:
            return None
        f0, f1 = a0.table.F[d1], tab.F[d1]
        pnl = tab.multiplier[d1] * np.where(tab.inverse[d1], 1.0 - f0 / f1, f1 - f0)
        rows = [self.index[tab.names[i]] for i in d1]
        cash = [self.index[cash_column(tab.instruments[i].settlement_currency)] for i in d1]
        inv = tab.inverse[d1]
        own = [r for r, x in zip(rows, inv, strict=True) if x]
        n = len(self.columns)
        values = np.concatenate([pnl, (f0 / f1 - 1.0)[inv]])
        return sp.csr_array((values, (rows + own, cash + own)), shape=(n, n))

    def book(self, accounts: Sequence[str], quantities: sp.csr_array) -> AccountBook:
        """An :class:`AccountBook` (checks the shape against this session's columns)."""
        if quantities.shape != (len(accounts), len(self.columns)):
            raise InputError(
                f"quantities: shape {quantities.shape} != ({len(accounts)}, {len(self.columns)})"
            )
        return AccountBook(accounts, quantities)

    def book_from_positions(
        self,
        positions: Mapping[str, Mapping[str, float]],
        cash: Mapping[str, Mapping[str, float]] | None = None,
    ) -> AccountBook:
        """An :class:`AccountBook` from ``{account: {instrument: quantity}}`` (small data)."""
        accounts = list(dict.fromkeys([*positions, *(cash or {})]))
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for a, acc in enumerate(accounts):
            for name, q in positions.get(acc, {}).items():
                rows.append(a)
                cols.append(self.column(name))
                vals.append(float(q))
            for ccy, amount in (cash or {}).get(acc, {}).items():
                rows.append(a)
                cols.append(self.column(cash_column(ccy)))
                vals.append(float(amount))
        quantities = build_quantities(
            np.asarray(rows, np.int64),
            np.asarray(cols, np.int64),
            np.asarray(vals, np.float64),
            (len(accounts), len(self.columns)),
            self.cash_cols,
        )
        return AccountBook(accounts, quantities)

    def column(self, name: str) -> int:
        """Column index of an instrument or ``cash:CCY``."""
        key = name.strip()
        if key.lower().startswith(_CASH_PREFIX):
            key = cash_column(key[len(_CASH_PREFIX) :].strip())
        try:
            return self.index[key]
        except KeyError:
            raise InputError(f"{name!r}: not in this session's instruments or currencies") from None

    # -- margin --------------------------------------------------------------------------
    def margin(self, book: AccountBook, *, chunk: int = DEFAULT_CHUNK) -> BatchResult:
        """Margin every account of ``book`` (dense intermediates bounded by ``chunk`` rows)."""
        return self._margin_rows(book.quantities, chunk)

    def _margin_rows(
        self,
        q: sp.csr_array,
        chunk: int = DEFAULT_CHUNK,
        pools: Sequence[int] | None = None,
        shapes: list[_Shape | None] | None = None,
    ) -> BatchResult:
        """Margin the rows of ``q`` chunk by chunk; ``shapes`` caches each chunk's shape."""
        n = q.shape[0]
        starts = list(range(0, max(n, 1), chunk))
        if shapes is not None and len(shapes) < len(starts):  # the first pass fills the cache
            shapes.extend([None] * (len(starts) - len(shapes)))

        def one(i: int) -> BatchResult:
            shape = shapes[i] if shapes is not None else None
            if shape is None:
                a = starts[i]
                shape = self._shape(q[a : min(a + chunk, n)])
                if shapes is not None:
                    shapes[i] = shape
            return self._evaluate_shape(shape, pools=pools)

        return BatchResult.concat(in_threads(one, len(starts)))

    def margin_positions(
        self, positions: Mapping[str, float], cash: Mapping[str, float] | None = None
    ) -> BatchResult:
        """Margin one account: the batch path restricted to the account's own columns.

        Only the account's own columns are gathered: ``q @ W[held]`` and the charges see the
        held rows of each pair; pairs it does not have are skipped.
        """
        cols, q = self._account_row(positions, cash)
        return self._evaluate(q, np.ones_like(q), (q < 0).astype(np.float64), cols)

    def explain(
        self,
        positions: Mapping[str, float],
        cash: Mapping[str, float] | None = None,
        *,
        name: str = "portfolio",
    ) -> MarginResult:
        """Margin one account and explain it: :meth:`margin_positions` plus every line.

        The figures are those of :meth:`margin_positions` (the same stage 1 and stage 2); the
        explanation adds, per (pool, underlying), the components, the scenario lines (raw and
        aggregated P&L) and the binding scenario, and per position its mark value, delta and
        P&L in the binding scenario (:func:`portmargin.models.explain.explain_row`).

        Raises
        ------
        InputError
            For an instrument or currency outside the session, naming it and ``name``.
        """
        try:
            cols, q = self._account_row(positions, cash)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from None
        trace: list[PairTrace] = []
        res = self._evaluate(q, np.ones_like(q), (q < 0).astype(np.float64), cols, trace=trace)
        return explain_row(self, cols, q[0], res, trace)

    def _account_row(
        self, positions: Mapping[str, float], cash: Mapping[str, float] | None
    ) -> tuple[IntArray, FloatArray]:
        """The account's own columns (sorted) and its quantities on them, shape ``(1, k)``."""
        index = self.index
        held: dict[int, float] = {}
        for name, qty in positions.items():
            c = index.get(name)
            if c is None:
                c = self.column(name)
            held[c] = held.get(c, 0.0) + qty
        held = {c: x for c, x in held.items() if x != 0}  # a zero net position is no position
        for ccy, amount in (cash or {}).items():
            c = self.column(cash_column(ccy))
            held[c] = held.get(c, 0.0) + amount  # a balance opens its pool, even at 0
        keys = sorted(held)
        cols = np.array(keys, dtype=np.int64)
        q = np.array([[held[c] for c in keys]], dtype=np.float64)
        return cols, q

    def exposed(
        self, book: AccountBook, moved: Collection[str], *, balances: bool | None = None
    ) -> IntArray:
        """Rows of ``book`` holding an instrument of a ``moved`` underlying or a balance in it.

        ``balances`` (default: in cross mode only, where a coin balance is margined in USD)
        says whether a balance in a moved coin counts; explicit cash zeros count.
        """
        moved_set = set(moved)
        cols = [int(c) for pr in self.pairs if pr.und in moved_set for c in pr.cols]
        if self.model.cross if balances is None else balances:
            cols += [self.index[cash_column(u)] for u in moved_set if cash_column(u) in self.index]
        q = book.quantities
        touched = np.zeros(len(self.columns), dtype=np.uint8)
        touched[cols] = 1
        # a running count over the stored entries, compared at the row bounds
        seen: npt.NDArray[np.integer[Any]] = np.empty(
            q.nnz + 1, dtype=np.int32 if q.nnz < 2**31 else np.int64
        )
        seen[0] = 0
        np.cumsum(touched[q.indices], dtype=seen.dtype, out=seen[1:])
        return np.flatnonzero(seen[q.indptr[1:]] > seen[q.indptr[:-1]]).astype(np.int64)

    def remargin(
        self, book: AccountBook, previous: BatchResult, *, moved: Collection[str]
    ) -> tuple[BatchResult, IntArray]:
        """Re-margin only the accounts exposed to the ``moved`` underlyings.

        ``previous`` is the result of ``book`` before the move; this session is the one after
        it (see :meth:`with_market`). An account is exposed if it holds an instrument of a
        moved underlying or, in cross mode, a balance in that coin (its USD value moved).
        Only the pools with a moved (pool, underlying) pair are recomputed (in cross mode the
        one USD pool); an exposed account's other pools keep their previous figures.

        Returns
        -------
        tuple
            The full updated result and the indices of the re-margined accounts.
        """
        moved_set = set(moved)
        pools = {self.pools.index(pr.pool) for pr in self.pairs if pr.und in moved_set}
        if self.model.cross:
            pools.add(self.pools.index(USD))
        order = sorted(pools)
        key = (id(self._layout), frozenset(moved_set), tuple(order))
        hit = book._memo.get(key)
        if hit is None or hit[0] is not self._layout:  # first tick of this kind on this book
            idx = self.exposed(book, moved_set)
            hit = (self._layout, idx, book.quantities[idx] if idx.size else None, [])
            if len(book._memo) >= _MEMO_MAX:
                book._memo.pop(next(iter(book._memo)))
            book._memo[key] = hit
        _, idx, sub, shapes = hit
        if sub is None:
            return previous, idx
        part = self._margin_rows(sub, pools=order, shapes=shapes)
        return previous.put(idx, part, pools=order), idx

    # -- the vectorised core -------------------------------------------------------------
    def _shape(
        self, q: Any, pres: Any = None, neg: Any = None, cols: IntArray | None = None
    ) -> _Shape:
        """What the rows of ``q`` (CSR, or one dense account on ``cols``) are, positions only.

        Which pairs and pools each account has, which pairs may take the long-option cap,
        and (lazily) the pair groups and per-pair column slices: valid for every session of
        this one's layout (:meth:`with_market`), so a tick reuses it.
        """
        n_pairs = len(self.pairs)
        if pres is None:
            pres, neg = _presence(q), _negatives(q)
        if cols is None:
            ind, short = self.indicators, self.short_indicators
            g = None
        else:  # one account's own columns: its rows of [W | I | S], gathered once
            g = self._stacked[cols]
            a, b = self.weights.shape[1], self.weights.shape[1] + self.indicators.shape[1]
            ind, short = g[:, a:b], g[:, b:]
        c = np.asarray(pres @ ind)
        sh = np.asarray(neg @ short)
        has_instr = c[:, :n_pairs] > 0
        blocks_cap = c[:, n_pairs : 2 * n_pairs] > 0
        by_coll = c[:, 2 * n_pairs : 3 * n_pairs] > 0
        out = _Shape(
            q,
            cols,
            c[:, 3 * n_pairs :] > 0,
            has_instr | by_coll,
            has_instr & ~blocks_cap & (sh == 0),
        )
        out.rows_w = None if g is None else g[:, : self.weights.shape[1]]
        return out

    def _evaluate(
        self,
        q: Any,
        pres: Any,
        neg: Any,
        cols: IntArray | None = None,
        pools: Sequence[int] | None = None,
        trace: list[PairTrace] | None = None,
    ) -> BatchResult:
        """Margin the rows of ``q`` (CSR, or dense) with their presence and short masks.

        ``cols`` names the universe columns of ``q``'s columns (default: all of them, in
        order): the what-if path passes only an account's own columns. ``pools`` restricts
        the requirement and binding figures to those pool indices (the others are 0;
        presence and equity are always complete). ``trace`` (one account only) collects
        each evaluated pair's stage-1 and stage-2 figures for :meth:`explain`.
        """
        return self._evaluate_shape(self._shape(q, pres, neg, cols), pools, trace)

    def _evaluate_shape(
        self,
        shape: _Shape,
        pools: Sequence[int] | None = None,
        trace: list[PairTrace] | None = None,
    ) -> BatchResult:
        """Margin the rows of a :class:`_Shape` on this session's market (see :meth:`_evaluate`)."""
        q, cols = shape.q, shape.cols
        n = q.shape[0]
        n_pairs, n_pools = len(self.pairs), len(self.pools)
        n_scen_total = self.weights.shape[1] - n_pools - n_pairs
        v: FloatArray | None = None
        if cols is None:
            tail = _product(q, self._tail_w)  # equity and option value
        else:  # one account's own columns: one small dense product for everything
            v = np.asarray(q @ shape.rows_w)
            tail = v[:, n_scen_total:]
        present_pool = shape.present_pool
        chunk = _Chunk(self, shape, v, tail[:, n_pools:])
        haircut = None
        if self.model.cross and self._haircut.any():
            h = self._haircut if cols is None else self._haircut[cols]
            pos = np.maximum(q, 0.0) if isinstance(q, np.ndarray) else _positives(q)
            haircut = np.asarray(pos @ h, dtype=np.float64).reshape(n)

        im = np.zeros((n, n_pools))
        mm = np.zeros((n, n_pools))
        bind_pair = np.full((n, n_pools), -1, dtype=np.int64)
        bind_scen = np.full((n, n_pools), -1, dtype=np.int64)
        bind_pnl = np.zeros((n, n_pools))
        for p in range(n_pools) if pools is None else pools:
            pooled: dict[str, FloatArray] = {}
            groups = shape.groups.get(p)
            if groups is None:
                groups = shape.groups[p] = self._pair_groups(shape.exists, p)
            for rows, ks, mask in groups:
                sums, bp, bs, bv = self._pool_rows(p, ks, rows, mask, chunk, trace)
                at = slice(None) if rows is None else rows
                for name, val in sums.items():
                    if rows is None:
                        pooled[name] = val
                    else:
                        pooled.setdefault(name, np.zeros(n))[rows] = val
                bind_pair[at, p] = bp
                bind_scen[at, p] = bs
                bind_pnl[at, p] = bv
            if haircut is not None and self.pools[p] == USD:
                pooled[COLLATERAL_HAIRCUT] = haircut
            if pooled:
                im[:, p], mm[:, p] = pool_requirements(self.model.params, pooled)
        equity = tail[:, :n_pools]
        return BatchResult(
            self.pools,
            tuple((pr.pool, pr.und) for pr in self.pairs),
            present_pool,
            np.where(present_pool, im, 0.0),
            np.where(present_pool, mm, 0.0),
            np.where(present_pool, equity, 0.0),
            bind_pair,
            bind_scen,
            bind_pnl,
        )

    def _pair_groups(
        self, exists: BoolArray, p: int
    ) -> list[tuple[IntArray | None, list[int], BoolArray | None]]:
        """Accounts of pool ``p`` grouped by the pool's pairs they have.

        Each group is ``(rows or None for all, pairs, mask)``: ``mask`` is ``None`` when every
        account of the group has every pair (the pattern groups), else ``exists`` of the
        group's rows and pairs (the fallback above :data:`MAX_PAIR_PATTERNS` patterns).
        """
        ks_all = self._pool_pairs[p]
        if not ks_all:
            return []
        ex = exists[:, ks_all]
        if ex.shape[0] == 1:  # one account (what-if): its own pairs
            ks = [k for i, k in enumerate(ks_all) if ex[0, i]]
            return [(None, ks, None)] if ks else []
        if len(ks_all) <= 12:
            code = ex.astype(np.int64) @ (1 << np.arange(len(ks_all), dtype=np.int64))
            counts = np.bincount(code, minlength=1 << len(ks_all))
            codes = [int(x) for x in np.flatnonzero(counts[1:]) + 1]
            if len(codes) <= MAX_PAIR_PATTERNS:
                out: list[tuple[IntArray | None, list[int], BoolArray | None]] = []
                for cd in codes:
                    sel = code == cd
                    rows = None if len(codes) == 1 and bool(sel.all()) else np.flatnonzero(sel)
                    out.append((rows, [k for i, k in enumerate(ks_all) if cd >> i & 1], None))
                return out
        has = ex.any(axis=1)
        act: BoolArray = np.asarray(ex.any(axis=0))
        ks = [k for i, k in enumerate(ks_all) if act[i]]
        if not ks:
            return []
        if bool(has.all()):
            return [(None, ks, ex[:, act])]
        rows = np.flatnonzero(has)
        return [(rows, ks, ex[rows][:, act])]

    def _pool_rows(
        self,
        p: int,
        ks: list[int],
        rows: IntArray | None,
        mask: BoolArray | None,
        chunk: _Chunk,
        trace: list[PairTrace] | None = None,
    ) -> tuple[dict[str, FloatArray], IntArray, IntArray, FloatArray]:
        """Pool ``p`` on pairs ``ks`` for accounts ``rows`` of the chunk (``None``: all).

        Returns the components summed over the pairs (masked by ``mask``), and the binding
        pair, scenario and aggregated P&L of each account; appends each pair's figures to
        ``trace`` when given (one account).
        """
        model, params = self.model, self.model.params
        if rows is None:
            eligible, value = chunk.cap_eligible[:, ks], chunk.option_value[:, ks]
        else:
            eligible, value = chunk.cap_eligible[rows][:, ks], chunk.option_value[rows][:, ks]
        # Stage 1 per pair: raw scenario P&L, aggregation, charge context.
        raws: list[FloatArray] = []
        aggs: list[FloatArray] = []
        ctxs: list[ChargeContext | None] = []
        for k in ks:
            pr = self.pairs[k]
            raw = chunk.raw(k) if rows is None else chunk.raw(k)[rows]
            raws.append(raw)
            aggs.append(model.aggregate(raw, pr.und, pr.pool, pr.rate))
            ctx = None
            if pr.risk is not None and (params.charges or params.credits or trace is not None):
                qk, rr = chunk.quantities(k)
                if rr.size:
                    ctx = ChargeContext(
                        pool=pr.pool,
                        usd_rate=pr.rate,
                        risk=pr.risk,
                        rows=rr,
                        quantities=qk if rows is None else qk[rows],
                        scenario_pnl=aggs[-1],
                        market=self.market,
                        params=_NO_PARAMS,
                        raw_pnl=raw,
                    )
            ctxs.append(ctx)
        # Stage 2: the engine's own per-pool rules.
        inputs = PoolInputs(
            self.pools[p],
            self.pairs[ks[0]].rate,
            tuple(self.pairs[k].und for k in ks),
            tuple(ctxs),
            tuple(raws),
            tuple(aggs),
            value,
            eligible,
        )
        comps = pool_components(params, inputs, self.market)
        if trace is not None:
            trace.extend(_pair_traces(ks, comps, raws, aggs, ctxs))
        m = value.shape[0]
        req_by_pair = np.zeros((m, len(ks)))
        sums: dict[str, FloatArray] = {}
        for name, val in comps.items():
            masked = val if mask is None else np.where(mask, val, 0.0)
            req_by_pair += masked
            sums[name] = masked.sum(axis=1)
        # binding: the pair with the largest requirement, and its worst scenario
        every = np.arange(m)
        if len(aggs) == 1 and mask is None:  # the usual group: accounts of one pair
            j = np.argmin(aggs[0], axis=1)
            return sums, np.full(m, ks[0], dtype=np.int64), j, aggs[0][every, j]
        best = np.argmax(req_by_pair if mask is None else np.where(mask, req_by_pair, -np.inf), 1)
        worst = np.stack([np.argmin(agg, axis=1) for agg in aggs])  # (pairs, m)
        pnl = np.stack([agg[every, j] for agg, j in zip(aggs, worst, strict=True)])
        bind_pair = np.asarray(ks, dtype=np.int64)[best]
        bind_scen = worst[best, every]
        bind_pnl = pnl[best, every]
        if mask is not None:  # rows that have none of these pairs bind nothing
            none = ~mask.any(axis=1)
            bind_pair[none], bind_scen[none], bind_pnl[none] = -1, -1, 0.0
        return sums, bind_pair, bind_scen, bind_pnl


@dataclass(frozen=True, slots=True)
class PairTrace:
    """One evaluated (pool, underlying) pair of one account, for :meth:`MarginSession.explain`.

    ``components`` add up to the pair's requirement before the pool's multipliers (the
    long-option cap only where it binds); ``raw`` and ``aggregated`` are the pair's
    scenario P&L before and after aggregation, shape ``(n_scen,)``, in the pool currency.
    """

    pair: int
    components: Mapping[str, float]
    raw: FloatArray
    aggregated: FloatArray
    context: ChargeContext | None


def _pair_traces(
    ks: Sequence[int],
    comps: Mapping[str, FloatArray],
    raws: Sequence[FloatArray],
    aggs: Sequence[FloatArray],
    ctxs: Sequence[ChargeContext | None],
) -> list[PairTrace]:
    """Row 0's figures of each pair ``ks[i]`` (components ``(1, len(ks))``)."""
    cap = comps.get(LONG_OPTION_CAP)
    out = []
    for i, k in enumerate(ks):
        own = {
            name: float(val[0, i])
            for name, val in comps.items()
            if name != LONG_OPTION_CAP or (cap is not None and cap[0, i] != 0.0)
        }
        out.append(PairTrace(k, own, raws[i][0], aggs[i][0], ctxs[i]))
    return out


class _Shape:
    """Positions-only facts of a chunk of accounts under one session layout (see ``_shape``).

    ``q`` is CSR over every column of the session (``cols`` is None) or one dense account
    over its own columns ``cols``. ``groups`` (per pool) and ``slices`` (per pair: the
    quantities on the pair's columns and their rows in its risk array) fill in as pools
    are evaluated; every session with the same layout may read them.
    """

    __slots__ = (
        "cap_eligible",
        "cash",
        "cols",
        "exists",
        "groups",
        "present_pool",
        "q",
        "rows_w",
        "slices",
    )

    def __init__(
        self,
        q: Any,
        cols: IntArray | None,
        present_pool: BoolArray,
        exists: BoolArray,
        cap_eligible: BoolArray,
    ) -> None:
        self.q = q
        self.cols = cols
        self.present_pool = present_pool  # (n, n_pools)
        self.exists = exists  # (n, n_pairs)
        self.cap_eligible = cap_eligible  # (n, n_pairs)
        self.groups: dict[int, list[tuple[IntArray | None, list[int], BoolArray | None]]] = {}
        self.slices: dict[int, tuple[Any, IntArray]] = {}
        self.cash: Any = None
        self.rows_w: FloatArray | None = None  # one account: its rows of W


class _Chunk:
    """A :class:`_Shape` on one session's market: scenario P&L per pair (cached per call)."""

    __slots__ = ("_raw_cache", "cap_eligible", "option_value", "s", "shape", "v")

    def __init__(
        self, session: MarginSession, shape: _Shape, v: FloatArray | None, option_value: FloatArray
    ) -> None:
        self.s = session
        self.shape = shape
        self.v = v  # one account: q @ W[cols], already computed
        self.cap_eligible = shape.cap_eligible
        self.option_value = option_value  # (n, n_pairs)
        self._raw_cache: dict[int, FloatArray] = {}

    def quantities(self, k: int) -> tuple[Any, IntArray]:
        """Quantities on pair ``k``'s columns and their rows in the pair's risk array."""
        shape = self.shape
        hit = shape.slices.get(k)
        if hit is None:
            s, pr = self.s, self.s.pairs[k]
            if shape.cols is not None:
                local = np.flatnonzero(s._col_pair[shape.cols] == k)
                hit = (shape.q[:, local], s._col_row[shape.cols[local]])
            else:
                span = s._pair_span[k]
                sub = shape.q[:, span] if span is not None else shape.q[:, pr.cols]
                hit = (sp.csr_array(sub), pr.rows)
            shape.slices[k] = hit
        return hit

    def raw(self, k: int) -> FloatArray:
        """Weighted scenario P&L of pair ``k`` before aggregation, ``(n, n_scen)``."""
        out: FloatArray | None = self._raw_cache.get(k)
        if out is None:
            s, pr = self.s, self.s.pairs[k]
            if self.v is not None:
                out = np.ascontiguousarray(self.v[:, pr.start : pr.start + len(pr.scen)])
            else:
                qk, _ = self.quantities(k)
                out = _product(qk, s._pair_w[k])
                cash_w = s._cash_w[k]
                if cash_w is not None:  # coin collateral moving with its scenario
                    out = out + _product(self._cash(), cash_w)
            self._raw_cache[k] = out
        return out

    def _cash(self) -> Any:
        shape = self.shape
        if shape.cash is None:
            cc = self.s.cash_cols
            shape.cash = sp.csr_array(shape.q[:, int(cc[0]) : int(cc[-1]) + 1])
        return shape.cash


def _product(q: Any, w: FloatArray) -> FloatArray:
    """``q @ w`` for CSR ``q``: the compiled row-parallel kernel, bit for bit SciPy's."""
    if kernel() == "numba" and isinstance(q, sp.csr_array) and q.shape[0] > 0:
        return csr_dense_product(q.indptr, q.indices, q.data, w)
    out: FloatArray = np.asarray(q @ w, dtype=np.float64)
    return out


def _build(
    market: MarketSnapshot,
    model: MarginModel,
    instruments: Sequence[str | Instrument] | None,
    given: Mapping[str, RiskArray],
    base: MarginSession | None = None,
    moved: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Every field of a :class:`MarginSession` (see its docstring), derived once.

    With ``base`` (a session of the same model and universe, see
    :meth:`MarginSession.with_market`), only what depends on the ``moved`` underlyings'
    market data is rebuilt: their risk arrays, the rows of their pairs in ``W`` (scenario
    block, equity and value columns), the coin rows and rates of moved coins; the layout
    (columns, pairs, indicators) and every other block are the base's, as they are.
    """
    if base is not None and base.model is model and instruments == base.instruments:
        return _rebuild(base, market, given, moved)
    names = _market_universe(market) if instruments is None else list(instruments)
    # instruments of reused risk arrays are not parsed again (a tick keeps most of them)
    known = {x.name: x for arr in given.values() for x in arr.table.instruments}
    insts: list[Instrument] = []
    for name in dict.fromkeys(names):
        if not isinstance(name, str):  # already resolved
            insts.append(name)
            continue
        inst = known.get(name)
        if inst is None:
            try:
                inst = market.instrument(name)
            except PortmarginError as exc:
                raise InputError(f"instrument {name!r}: {exc}") from None
        insts.append(inst)
    by_und: dict[str, list[Instrument]] = {}
    for inst in insts:
        by_und.setdefault(inst.underlying, []).append(inst)
    insts = [x for und in sorted(by_und) for x in by_und[und]]
    out: dict[str, Any] = {"market": market, "model": model}
    out["instruments"] = universe = tuple(x.name for x in insts)
    arrays = dict(given)
    for und, group in by_und.items():
        have = arrays.get(und)
        if have is None or have.table.names != tuple(x.name for x in group):
            arrays[und] = model.risk_arrays(group, market)[und]
    risk = out["arrays"] = MappingProxyType({und: arrays[und] for und in sorted(by_und)})
    cash_ccys = sorted({*market.underlyings, USD, *STABLE_CURRENCIES})
    columns = out["columns"] = universe + tuple(cash_column(c) for c in cash_ccys)
    index = {name: i for i, name in enumerate(columns)}
    out["index"] = MappingProxyType(index)
    cash_cols = out["cash_cols"] = np.arange(len(insts), len(columns), dtype=np.int64)
    cross, scen_coll = model.cross, model.params.collateral == "scenario"

    # Pairs: from the universe's instruments, plus coin collateral in cross mode.
    pair_cols: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    col = 0
    for und, arr in risk.items():
        pool_by_ccy: dict[str, str] = {}
        for r, ccy in enumerate(arr.table.settlement_currencies):
            pool = pool_by_ccy.get(ccy)
            if pool is None:  # model.pool_of, once per settlement currency
                pool = pool_by_ccy[ccy] = model.pool_of(arr.table.instruments[r])
            c, rr = pair_cols.setdefault((pool, und), ([], []))
            c.append(col)
            rr.append(r)
            col += 1
    coll_coins = [c for c in cash_ccys if c in market.underlyings] if cross and scen_coll else []
    for coin in coll_coins:
        pair_cols.setdefault((USD, coin), ([], []))
    pools = sorted(
        {p for p, _ in pair_cols} | {USD if cross else pool_currency(c) for c in cash_ccys}
    )
    out["pools"] = tuple(pools)
    pairs: list[_Pair] = []
    start = 0
    for (pool, und), (c, rr) in sorted(pair_cols.items()):
        scen = model.scenario_set(und)
        pairs.append(
            _Pair(
                pool,
                und,
                scen,
                usd_rate(pool, market),
                start,
                np.asarray(c, dtype=np.int64),
                np.asarray(rr, dtype=np.int64),
                risk[und] if c else None,
            )
        )
        start += len(scen)
    out["pairs"] = tuple(pairs)
    n_pairs, n_pools, n_cols = len(pairs), len(pools), len(columns)
    n_scen_total = start
    # W = [scenario blocks | equity per pool | long-option value per pair]
    w = np.zeros((n_cols, n_scen_total + n_pools + n_pairs))
    # I = [pair has an instrument | pair blocks the cap | pair opened by collateral |
    #      pool present]
    ind = np.zeros((n_cols, 3 * n_pairs + n_pools))
    short = np.zeros((n_cols, n_pairs))
    col_pair = np.full(n_cols, -1, dtype=np.int64)
    col_row = np.full(n_cols, -1, dtype=np.int64)
    pool_idx = {p: i for i, p in enumerate(pools)}
    layout = _Layout(n_scen_total, n_pools, n_pairs, pool_idx, tuple(coll_coins), index)
    for k, pr in enumerate(pairs):
        layout.fill_pair(w, k, pr, model, market)
        if pr.risk is not None:
            tab, rows = pr.risk.table, pr.rows
            col_pair[pr.cols] = k
            col_row[pr.cols] = rows
            ind[pr.cols, k] = 1.0
            ind[pr.cols, n_pairs + k] = np.where(tab.is_option[rows], 0.0, 1.0)
            ind[pr.cols, 3 * n_pairs + pool_idx[pr.pool]] = 1.0
            short[pr.cols, k] = 1.0
        if pr.und in coll_coins and pr.pool == USD:
            cc = index[cash_column(pr.und)]
            ind[cc, n_pairs + k] = 1.0
            ind[cc, 2 * n_pairs + k] = 1.0
    haircut = np.zeros(n_cols)  # IM-only haircut per unit of a positive balance
    for i, ccy in enumerate(cash_ccys):
        cc = int(cash_cols[i])
        layout.fill_cash(w, haircut, cc, ccy, model, market)
        pool = USD if cross else pool_currency(ccy)
        ind[cc, 3 * n_pairs + pool_idx[pool]] = 1.0
    out["_layout"] = layout
    out["weights"] = _frozen(w)
    out["indicators"] = _frozen(ind)
    out["short_indicators"] = _frozen(short)
    out["_haircut"] = _frozen(haircut)
    out["_col_pair"] = _frozen(col_pair)
    out["_col_row"] = _frozen(col_row)
    out["_pool_pairs"] = tuple(
        tuple(k for k, pr in enumerate(pairs) if pr.pool == pool) for pool in pools
    )
    out["_stacked"] = _frozen(np.hstack([w, ind, short]))
    out["_tail_w"] = _frozen(np.ascontiguousarray(w[:, n_scen_total:]))
    # Per-pair blocks of W: a chunk's scenario P&L is computed pair by pair on the pair's
    # own columns (nnz × n_scen of that pair, not × every pair's scenarios).
    out["_pair_w"] = tuple(_pair_block(w, pr) for pr in pairs)
    out["_cash_w"] = tuple(_cash_block(w, cash_cols, pr) for pr in pairs)
    out["_pair_span"] = tuple(
        slice(int(pr.cols[0]), int(pr.cols[-1]) + 1)
        if pr.cols.size and int(pr.cols[-1]) - int(pr.cols[0]) + 1 == pr.cols.size
        else None
        for pr in pairs
    )
    return out


def _pair_block(w: FloatArray, pr: _Pair) -> FloatArray:
    out: FloatArray = _frozen(
        np.ascontiguousarray(w[pr.cols][:, pr.start : pr.start + len(pr.scen)])
    )
    return out


def _cash_block(w: FloatArray, cash_cols: IntArray, pr: _Pair) -> FloatArray | None:
    x = w[cash_cols][:, pr.start : pr.start + len(pr.scen)]
    return _frozen(np.ascontiguousarray(x)) if x.any() else None


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where things are in ``W``, and how the market fills them (shared by a session's ticks)."""

    n_scen_total: int
    n_pools: int
    n_pairs: int
    pool_idx: Mapping[str, int]
    coll_coins: tuple[str, ...]
    index: Mapping[str, int]

    def fill_pair(
        self, w: FloatArray, k: int, pr: _Pair, model: MarginModel, market: MarketSnapshot
    ) -> None:
        """Write pair ``k``'s rows of ``W``: its scenario block, equity and value columns."""
        cross = model.cross
        block = slice(pr.start, pr.start + len(pr.scen))
        if pr.risk is not None:
            arr, rows = pr.risk, pr.rows
            tab = arr.table
            weighted = arr.weighted_usd() if cross else arr.weighted_settle()
            w[pr.cols, block] = weighted[rows]
            mark = tab.mark_settle[rows] * np.where(cross & tab.inverse[rows], tab.F[rows], 1.0)
            w[pr.cols, self.n_scen_total + self.pool_idx[pr.pool]] = mark
            value = option_value_per_unit(tab, rows, cross=cross)
            w[pr.cols, self.n_scen_total + self.n_pools + k] = value
        if pr.und in self.coll_coins and pr.pool == USD:
            cc = self.index[cash_column(pr.und)]
            spot = market.index_price(pr.und)
            w[cc, block] = spot * pr.scen.price_moves * pr.scen.weights

    def fill_cash(
        self,
        w: FloatArray,
        haircut: FloatArray,
        cc: int,
        ccy: str,
        model: MarginModel,
        market: MarketSnapshot,
    ) -> None:
        """Write cash column ``cc``'s equity entry (and its haircut in cross mode)."""
        if model.cross:
            rate = usd_rate(ccy, market)
            hc = model.params.currency(ccy).haircut
            at = self.n_scen_total + self.pool_idx[USD]
            if model.params.collateral == "haircut":
                w[cc, at] = rate * (1.0 - hc)
            else:
                w[cc, at] = rate
                haircut[cc] = hc * rate
        else:
            w[cc, self.n_scen_total + self.pool_idx[pool_currency(ccy)]] = 1.0


def _rebuild(
    base: MarginSession,
    market: MarketSnapshot,
    given: Mapping[str, RiskArray],
    moved: frozenset[str],
) -> dict[str, Any]:
    """``base``'s fields on ``market``, only the ``moved`` underlyings' parts rebuilt."""
    model = base.model
    arrays = dict(base.arrays)
    for und, arr in base.arrays.items():
        if und in moved:
            have = given.get(und)
            if have is None or have.table.names != arr.table.names:
                have = model.risk_arrays(arr.table.instruments, market)[und]
            arrays[und] = have
    layout = base._layout
    pairs = list(base.pairs)
    w = base.weights.copy()
    haircut = base._haircut.copy()
    pair_w, cash_w = list(base._pair_w), list(base._cash_w)
    touched = False
    for k, pr in enumerate(base.pairs):
        if pr.und not in moved and pr.pool not in moved:
            continue
        pairs[k] = pr = _Pair(
            pr.pool,
            pr.und,
            pr.scen,
            usd_rate(pr.pool, market),
            pr.start,
            pr.cols,
            pr.rows,
            arrays[pr.und] if pr.risk is not None else None,
        )
        layout.fill_pair(w, k, pr, model, market)
        touched = True
    cash_ccys = [c.split(":", 1)[1] for c in base.columns[int(base.cash_cols[0]) :]]
    for i, ccy in enumerate(cash_ccys):
        if ccy in moved:
            layout.fill_cash(w, haircut, int(base.cash_cols[i]), ccy, model, market)
    for k, pr in enumerate(pairs):
        if pr is not base.pairs[k]:
            pair_w[k] = _pair_block(w, pr)
            cash_w[k] = _cash_block(w, base.cash_cols, pr)
    out = {f: getattr(base, f) for f in _FIELDS}
    out["market"] = market
    out["arrays"] = MappingProxyType(arrays)
    out["pairs"] = tuple(pairs)
    out["weights"] = _frozen(w)
    out["_haircut"] = _frozen(haircut)
    stacked = base._stacked.copy()
    if touched or moved:
        stacked[:, : w.shape[1]] = w
    out["_stacked"] = _frozen(stacked)
    out["_tail_w"] = _frozen(np.ascontiguousarray(w[:, layout.n_scen_total :]))
    out["_pair_w"] = tuple(pair_w)
    out["_cash_w"] = tuple(cash_w)
    return out


_FIELDS = (
    "model",
    "instruments",
    "columns",
    "index",
    "pools",
    "indicators",
    "short_indicators",
    "cash_cols",
    "_col_pair",
    "_col_row",
    "_pool_pairs",
    "_pair_span",
    "_layout",
)


def _portable(model: MarginModel) -> Any:
    """``model`` as a picklable value: a :class:`MarginModel` by its parameters and mode."""
    from portmargin.models.model import MarginModel

    if type(model) is MarginModel:
        return _ModelRecipe(model.params, model.cross)
    return model


@dataclass(frozen=True, slots=True)
class _ModelRecipe:
    params: Any
    cross: bool

    def build(self) -> MarginModel:
        from portmargin.models.model import MarginModel

        return MarginModel(self.params, cross=self.cross)


def _restore_session(
    market: MarketSnapshot, model: Any, instruments: tuple[str, ...], arrays: dict[str, RiskArray]
) -> MarginSession:
    """Unpickle a :class:`MarginSession` (see ``MarginSession.__reduce__``)."""
    built = model.build() if isinstance(model, _ModelRecipe) else model
    return MarginSession(market, built, instruments, arrays)


def _frozen(a: npt.NDArray[Any]) -> Any:
    """``a`` made read-only (the session's matrices are shared, never written)."""
    a.setflags(write=False)
    return a


def _presence(q: sp.csr_array) -> sp.csr_array:
    p = q.copy()
    p.data = np.ones_like(p.data)
    return p


def _negatives(q: sp.csr_array) -> sp.csr_array:
    p = q.copy()
    p.data = (p.data < 0).astype(np.float64)
    return p


def _positives(q: sp.csr_array) -> sp.csr_array:
    p = q.copy()
    p.data = np.maximum(p.data, 0.0)
    return p


def build_quantities(
    rows: IntArray, cols: IntArray, vals: FloatArray, shape: tuple[int, int], cash_cols: IntArray
) -> sp.csr_array:
    """CSR quantities with duplicates summed; zero net positions dropped, cash zeros kept."""
    if rows.size and bool(np.all(rows[1:] >= rows[:-1])):
        # rows already grouped (a file sorted by account): CSR directly, no COO conversion
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
        q = sp.csr_array(
            (np.array(vals, dtype=np.float64), np.array(cols, dtype=np.int64), indptr),
            shape=shape,
        )
    else:
        q = sp.csr_array((vals, (rows, cols)), shape=shape)
    q.sum_duplicates()
    is_cash = np.zeros(shape[1], dtype=np.bool_)
    is_cash[cash_cols] = True
    keep = (q.data != 0) | is_cash[q.indices]
    if not keep.all():  # drop in place: entries stay sorted, row bounds move by the drops
        dropped = np.flatnonzero(~keep)  # few (zero nets), so no cumulative count over all
        per_row = np.bincount(
            np.searchsorted(q.indptr, dropped, side="right") - 1, minlength=shape[0]
        )
        indptr = q.indptr.astype(np.int64, copy=True)
        indptr[1:] -= np.cumsum(per_row)
        q = sp.csr_array((q.data[keep], q.indices[keep], indptr), shape=shape)
    return q


def _market_universe(market: MarketSnapshot) -> list[str]:
    names = list(market.option_names()) + list(market.futures)
    names += [f"{u}-PERPETUAL" for u in market.underlyings]
    return names
