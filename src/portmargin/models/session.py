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

    def __len__(self) -> int:
        return int(self.quantities.shape[0])


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
            else:
                p = np.asarray(pools, dtype=np.int64)
                a[np.ix_(idx, p)] = getattr(other, name)[:, p]
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

    def __init__(
        self,
        market: MarketSnapshot,
        model: MarginModel,
        instruments: Sequence[str | Instrument] | None = None,
        arrays: Mapping[str, RiskArray] | None = None,
    ) -> None:
        for name, value in _build(market, model, instruments, arrays or {}).items():
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
        moved_set = set(moved)
        keep = {u: a for u, a in self.arrays.items() if u not in moved_set}
        keep.update({u: a for u, a in (arrays or {}).items() if u in moved_set})
        return MarginSession(market, self.model, self.instruments, keep)

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
        self, q: sp.csr_array, chunk: int = DEFAULT_CHUNK, pools: Sequence[int] | None = None
    ) -> BatchResult:
        n = q.shape[0]
        parts = []
        for a in range(0, max(n, 1), chunk):
            rows = q[a : min(a + chunk, n)]
            parts.append(self._evaluate(rows, _presence(rows), _negatives(rows), pools=pools))
        return BatchResult.concat(parts)

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
        cols = np.array(sorted(held), dtype=np.int64)
        q = np.array([[held[int(c)] for c in cols]], dtype=np.float64)
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
        idx = self.exposed(book, moved_set)
        if idx.size == 0:
            return previous, idx
        order = sorted(pools)
        part = self._margin_rows(book.quantities[idx], pools=order)
        return previous.put(idx, part, pools=order), idx

    # -- the vectorised core -------------------------------------------------------------
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
        n = q.shape[0]
        n_pairs, n_pools = len(self.pairs), len(self.pools)
        n_scen_total = self.weights.shape[1] - n_pools - n_pairs
        v: FloatArray | None = None
        if cols is None:
            ind, short = self.indicators, self.short_indicators
            tail = np.asarray(q @ self.weights[:, n_scen_total:])  # equity and option value
        else:  # one account's own columns: one small dense product for everything
            g = self._stacked[cols]
            a, b = self.weights.shape[1], self.weights.shape[1] + self.indicators.shape[1]
            ind, short = g[:, a:b], g[:, b:]
            v = np.asarray(q @ g[:, :a])
            tail = v[:, n_scen_total:]
        c = np.asarray(pres @ ind)
        s = np.asarray(neg @ short)
        has_instr = c[:, :n_pairs] > 0
        blocks_cap = c[:, n_pairs : 2 * n_pairs] > 0
        by_coll = c[:, 2 * n_pairs : 3 * n_pairs] > 0
        exists = has_instr | by_coll
        present_pool = c[:, 3 * n_pairs :] > 0
        chunk = _Chunk(
            self,
            q,
            cols,
            v,
            has_instr & ~blocks_cap & (s == 0),
            tail[:, n_pools:],
        )
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
            for rows, ks, mask in self._pair_groups(exists, p):
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


class _Chunk:
    """Accounts being margined together, with what is derived from them per pair (cached).

    ``q`` is CSR over every column of the session (``cols`` is None) or one dense account
    over its own columns ``cols`` (with ``v = q @ W[cols]`` already computed).
    """

    __slots__ = ("_q_cache", "_raw_cache", "cap_eligible", "cols", "option_value", "q", "s", "v")

    def __init__(
        self,
        session: MarginSession,
        q: Any,
        cols: IntArray | None,
        v: FloatArray | None,
        cap_eligible: BoolArray,
        option_value: FloatArray,
    ) -> None:
        self.s = session
        self.q = q
        self.cols = cols
        self.v = v
        self.cap_eligible = cap_eligible  # (n, n_pairs)
        self.option_value = option_value  # (n, n_pairs)
        self._q_cache: dict[int, tuple[Any, IntArray]] = {}
        self._raw_cache: dict[int | str, Any] = {}

    def quantities(self, k: int) -> tuple[Any, IntArray]:
        """Quantities on pair ``k``'s columns and their rows in the pair's risk array."""
        hit = self._q_cache.get(k)
        if hit is None:
            s, pr = self.s, self.s.pairs[k]
            if self.cols is not None:
                local = np.flatnonzero(s._col_pair[self.cols] == k)
                hit = (self.q[:, local], s._col_row[self.cols[local]])
            else:
                span = s._pair_span[k]
                sub = self.q[:, span] if span is not None else self.q[:, pr.cols]
                hit = (sp.csr_array(sub), pr.rows)
            self._q_cache[k] = hit
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
                out = np.asarray(qk @ s._pair_w[k], dtype=np.float64)
                cash_w = s._cash_w[k]
                if cash_w is not None:  # coin collateral moving with its scenario
                    out = out + np.asarray(self._cash() @ cash_w)
            self._raw_cache[k] = out
        return out

    def _cash(self) -> Any:
        hit = self._raw_cache.get("cash")
        if hit is None:
            cc = self.s.cash_cols
            hit = self.q[:, int(cc[0]) : int(cc[-1]) + 1]
            self._raw_cache["cash"] = hit
        return hit


def _build(
    market: MarketSnapshot,
    model: MarginModel,
    instruments: Sequence[str | Instrument] | None,
    given: Mapping[str, RiskArray],
) -> dict[str, Any]:
    """Every field of a :class:`MarginSession` (see its docstring), derived once."""
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
    for k, pr in enumerate(pairs):
        block = slice(pr.start, pr.start + len(pr.scen))
        ppos = n_scen_total + pool_idx[pr.pool]
        if pr.risk is not None:
            arr, rows = pr.risk, pr.rows
            tab = arr.table
            weighted = arr.weighted_usd() if cross else arr.weighted_settle()
            w[pr.cols, block] = weighted[rows]
            mark = tab.mark_settle[rows] * np.where(cross & tab.inverse[rows], tab.F[rows], 1.0)
            w[pr.cols, ppos] = mark
            w[pr.cols, n_scen_total + n_pools + k] = option_value_per_unit(tab, rows, cross=cross)
            col_pair[pr.cols] = k
            col_row[pr.cols] = rows
            ind[pr.cols, k] = 1.0
            ind[pr.cols, n_pairs + k] = np.where(tab.is_option[rows], 0.0, 1.0)
            ind[pr.cols, 3 * n_pairs + pool_idx[pr.pool]] = 1.0
            short[pr.cols, k] = 1.0
        if pr.und in coll_coins and pr.pool == USD:
            cc = index[cash_column(pr.und)]
            spot = market.index_price(pr.und)
            w[cc, block] = spot * pr.scen.price_moves * pr.scen.weights
            ind[cc, n_pairs + k] = 1.0
            ind[cc, 2 * n_pairs + k] = 1.0
    haircut = np.zeros(n_cols)  # IM-only haircut per unit of a positive balance
    for i, ccy in enumerate(cash_ccys):
        cc = int(cash_cols[i])
        rate = usd_rate(ccy, market)
        if cross:
            hc = model.params.currency(ccy).haircut
            if model.params.collateral == "haircut":
                w[cc, n_scen_total + pool_idx[USD]] = rate * (1.0 - hc)
            else:
                w[cc, n_scen_total + pool_idx[USD]] = rate
                haircut[cc] = hc * rate
            ind[cc, 3 * n_pairs + pool_idx[USD]] = 1.0
        else:
            pool = pool_currency(ccy)
            w[cc, n_scen_total + pool_idx[pool]] = 1.0
            ind[cc, 3 * n_pairs + pool_idx[pool]] = 1.0
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
    # Per-pair blocks of W: a chunk's scenario P&L is computed pair by pair on the pair's
    # own columns (nnz × n_scen of that pair, not × every pair's scenarios).
    blocks = [slice(pr.start, pr.start + len(pr.scen)) for pr in pairs]
    out["_pair_w"] = tuple(
        _frozen(np.ascontiguousarray(w[pr.cols][:, b])) for pr, b in zip(pairs, blocks, strict=True)
    )
    cash_w = [w[cash_cols][:, b] for b in blocks]
    out["_cash_w"] = tuple(_frozen(np.ascontiguousarray(x)) if x.any() else None for x in cash_w)
    out["_pair_span"] = tuple(
        slice(int(pr.cols[0]), int(pr.cols[-1]) + 1)
        if pr.cols.size and int(pr.cols[-1]) - int(pr.cols[0]) + 1 == pr.cols.size
        else None
        for pr in pairs
    )

    return out


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
        kept = np.zeros(keep.size + 1, dtype=np.int64)
        np.cumsum(keep, out=kept[1:])
        q = sp.csr_array((q.data[keep], q.indices[keep], kept[q.indptr]), shape=shape)
    return q


def _market_universe(market: MarketSnapshot) -> list[str]:
    names = list(market.option_names()) + list(market.futures)
    names += [f"{u}-PERPETUAL" for u in market.underlyings]
    return names
