r"""Margin many accounts at once: risk arrays once per market state, one sparse product.

A :class:`MarginSession` fixes a market, a model and an instrument universe. It computes the
risk arrays of the universe once (one vectorised call per underlying) and lays them out as
one block matrix ``W`` of shape ``(n_columns, n_out)``: a column block of scenarios for each
(margin pool, underlying) pair, one equity column per pool and one long-option-cap column per
pair. Accounts are the rows of a sparse matrix ``Q`` (accounts × instruments + cash
currencies), so for a chunk of accounts::

    V = Q @ W                    weighted scenario P&L of every pair, equity, cap numerators
    C = 1[Q ≠ 0] @ I             which pairs / pools each account has (indicator products)

and everything after is element-wise over ``(n_accounts, n_scen)`` arrays using the engine's
own pure pieces (:meth:`MarginModel.aggregate`, :func:`~portmargin.models.engine.compose`,
the ``CHARGES`` and ``CREDITS`` registries, which are vectorised over accounts). There is no
Python loop over accounts or positions, only over pairs, charges and account chunks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from portmargin._types import BoolArray, FloatArray, IntArray
from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import STABLE_CURRENCIES, Instrument
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models.config import ChargeParams
from portmargin.models.engine import (
    CHARGES,
    CREDITS,
    USD,
    ChargeContext,
    CreditContext,
    MarginModel,
    compose,
    pool_currency,
)
from portmargin.risk import RiskArray
from portmargin.scenarios import ScenarioSet

__all__ = ["AccountBook", "BatchResult", "MarginSession"]

_CASH_PREFIX = "cash:"
_NO_PARAMS = ChargeParams(kind="scanning_risk")
DEFAULT_CHUNK = 8_192  # keeps the (chunk, n_scen) temporaries in cache: ~6x faster than 65k


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


@dataclass(frozen=True, slots=True)
class BatchResult:
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
        return BatchResult(
            self.pools,
            self.pairs,
            self.present[idx],
            self.initial_margin[idx],
            self.maintenance_margin[idx],
            self.equity[idx],
            self.binding_pair[idx],
            self.binding_scenario[idx],
            self.binding_pnl[idx],
        )

    def put(self, idx: IntArray, other: BatchResult) -> BatchResult:
        """A copy with the rows ``idx`` replaced by ``other``'s."""
        arrays = []
        for name in (
            "present",
            "initial_margin",
            "maintenance_margin",
            "equity",
            "binding_pair",
            "binding_scenario",
            "binding_pnl",
        ):
            a = getattr(self, name).copy()
            a[idx] = getattr(other, name)
            arrays.append(a)
        return BatchResult(self.pools, self.pairs, *arrays)

    @staticmethod
    def concat(parts: Sequence[BatchResult]) -> BatchResult:
        """Stack results of consecutive account chunks."""
        first = parts[0]
        return BatchResult(
            first.pools,
            first.pairs,
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in (
                    "present",
                    "initial_margin",
                    "maintenance_margin",
                    "equity",
                    "binding_pair",
                    "binding_scenario",
                    "binding_pnl",
                )
            ),
        )


@dataclass(slots=True)
class MarginSession:
    """Market + model + instrument universe, with the risk arrays computed once.

    Parameters
    ----------
    market
        The market state.
    model
        The margin model.
    instruments
        Instrument names of the universe (default: every quoted option, dated future and
        perpetual of the market).
    arrays
        Risk arrays to reuse per underlying (from a previous session; see
        :meth:`with_market`).

    Examples
    --------
    >>> import portmargin as pm
    >>> from portmargin.batch import MarginSession
    >>> s = MarginSession(pm.demo_market(), pm.load_model("deribit"))
    >>> r = s.margin_positions({"BTC-27MAR26-70000-P": -1, "BTC-27MAR26-69000-P": 1})
    >>> r.pools, bool(r.initial_margin[0, 0] > 0)
    (('BTC',), True)
    """

    market: MarketSnapshot
    model: MarginModel
    instruments: tuple[str, ...] = ()
    arrays: Mapping[str, RiskArray] = field(default_factory=dict)
    columns: tuple[str, ...] = field(init=False)
    index: dict[str, int] = field(init=False)
    pools: tuple[str, ...] = field(init=False)
    pairs: tuple[_Pair, ...] = field(init=False)
    weights: FloatArray = field(init=False)
    indicators: FloatArray = field(init=False)
    short_indicators: FloatArray = field(init=False)
    cash_cols: IntArray = field(init=False)
    _haircut: FloatArray = field(init=False)
    _col_pool_pair: IntArray = field(init=False)

    def __post_init__(self) -> None:
        market, model = self.market, self.model
        names = self.instruments or _market_universe(market)
        insts: list[Instrument] = []
        for name in dict.fromkeys(names):
            try:
                insts.append(market.instrument(name))
            except PortmarginError as exc:
                raise InputError(f"instrument {name!r}: {exc}") from None
        by_und: dict[str, list[Instrument]] = {}
        for inst in insts:
            by_und.setdefault(inst.underlying, []).append(inst)
        insts = [x for und in sorted(by_und) for x in by_und[und]]
        self.instruments = tuple(x.name for x in insts)
        arrays = dict(self.arrays)
        for und, group in by_und.items():
            have = arrays.get(und)
            if have is None or have.table.names != tuple(x.name for x in group):
                arrays[und] = model.risk_arrays(group, market)[und]
        self.arrays = {und: arrays[und] for und in sorted(by_und)}
        cash_ccys = sorted({*market.underlyings, USD, *STABLE_CURRENCIES})
        self.columns = self.instruments + tuple(cash_column(c) for c in cash_ccys)
        self.index = {name: i for i, name in enumerate(self.columns)}
        self.cash_cols = np.arange(len(insts), len(self.columns), dtype=np.int64)
        usd_rates = {USD: 1.0, **{u: market.index_price(u) for u in market.underlyings}}
        cross, scen_coll = model.cross, model.params.collateral == "scenario"

        # Pairs: from the universe's instruments, plus coin collateral in cross mode.
        pair_cols: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        col = 0
        for und, arr in self.arrays.items():
            for r, inst in enumerate(arr.table.instruments):
                c, rr = pair_cols.setdefault((model.pool_of(inst), und), ([], []))
                c.append(col)
                rr.append(r)
                col += 1
        coll_coins = (
            [c for c in cash_ccys if c in market.underlyings] if cross and scen_coll else []
        )
        for coin in coll_coins:
            pair_cols.setdefault((USD, coin), ([], []))
        pools = sorted(
            {p for p, _ in pair_cols} | {USD if cross else pool_currency(c) for c in cash_ccys}
        )
        self.pools = tuple(pools)
        pairs: list[_Pair] = []
        start = 0
        for (pool, und), (c, rr) in sorted(pair_cols.items()):
            scen = model.scenario_set(und)
            pairs.append(
                _Pair(
                    pool,
                    und,
                    scen,
                    usd_rates.get(pool, 1.0),
                    start,
                    np.asarray(c, dtype=np.int64),
                    np.asarray(rr, dtype=np.int64),
                    self.arrays[und] if c else None,
                )
            )
            start += len(scen)
        self.pairs = tuple(pairs)
        n_pairs, n_pools, n_cols = len(pairs), len(pools), len(self.columns)
        n_scen_total = start
        # W = [scenario blocks | equity per pool | long-option cap numerator per pair]
        w = np.zeros((n_cols, n_scen_total + n_pools + n_pairs))
        # I = [pair has an instrument | pair blocks the cap | pair opened by collateral |
        #      pool present]
        ind = np.zeros((n_cols, 3 * n_pairs + n_pools))
        short = np.zeros((n_cols, n_pairs))
        max_mult = max(model.params.im_multiplier, model.params.mm_multiplier)
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
                per_unit = tab.value_usd[rows]
                if not cross:
                    per_unit = per_unit / np.where(tab.inverse[rows], tab.F[rows], 1.0)
                w[pr.cols, n_scen_total + n_pools + k] = per_unit / max_mult
                ind[pr.cols, k] = 1.0
                ind[pr.cols, n_pairs + k] = np.where(tab.is_option[rows], 0.0, 1.0)
                ind[pr.cols, 3 * n_pairs + pool_idx[pr.pool]] = 1.0
                short[pr.cols, k] = 1.0
            if pr.und in coll_coins and pr.pool == USD:
                cc = self.index[cash_column(pr.und)]
                spot = market.index_price(pr.und)
                w[cc, block] = spot * pr.scen.price_moves * pr.scen.weights
                ind[cc, n_pairs + k] = 1.0
                ind[cc, 2 * n_pairs + k] = 1.0
        haircut = np.zeros(len(cash_ccys))
        for i, ccy in enumerate(cash_ccys):
            cc = int(self.cash_cols[i])
            rate = usd_rates.get(pool_currency(ccy), 1.0)
            if cross:
                hc = model.params.currency(ccy).haircut
                if model.params.collateral == "haircut":
                    w[cc, n_scen_total + pool_idx[USD]] = rate * (1.0 - hc)
                else:
                    w[cc, n_scen_total + pool_idx[USD]] = rate
                    haircut[i] = hc * rate
                ind[cc, 3 * n_pairs + pool_idx[USD]] = 1.0
            else:
                pool = pool_currency(ccy)
                w[cc, n_scen_total + pool_idx[pool]] = 1.0
                ind[cc, 3 * n_pairs + pool_idx[pool]] = 1.0
        self.weights = w
        self.indicators = ind
        self.short_indicators = short
        self._haircut = haircut

    # -- construction --------------------------------------------------------------------
    def with_market(self, market: MarketSnapshot, *, moved: Collection[str]) -> MarginSession:
        """The session on ``market``, recomputing only the risk arrays of ``moved`` underlyings.

        The other underlyings' risk arrays are reused as they are: the caller asserts that
        their market data did not change.
        """
        keep = {u: a for u, a in self.arrays.items() if u not in set(moved)}
        return MarginSession(market, self.model, self.instruments, keep)

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
        q = book.quantities
        n = q.shape[0]
        parts = [self._evaluate(q[a : min(a + chunk, n)]) for a in range(0, max(n, 1), chunk)]
        return BatchResult.concat(parts) if n else self._evaluate(q[:0])

    def margin_positions(
        self, positions: Mapping[str, float], cash: Mapping[str, float] | None = None
    ) -> BatchResult:
        """Margin one account (what-if fast path: a dense ``q @ W`` on cached risk arrays)."""
        q = np.zeros((1, len(self.columns)))
        present = np.zeros((1, len(self.columns)), dtype=np.bool_)
        for name, qty in positions.items():
            c = self.column(name)
            q[0, c] += qty
        present[0] = q[0] != 0
        for ccy, amount in (cash or {}).items():
            c = self.column(cash_column(ccy))
            q[0, c] += amount
            present[0, c] = True
        return self._evaluate(q, present)

    def remargin(
        self, book: AccountBook, previous: BatchResult, *, moved: Collection[str]
    ) -> tuple[BatchResult, IntArray]:
        """Re-margin only the accounts exposed to the ``moved`` underlyings.

        ``previous`` is the result of ``book`` before the move; this session is the one after
        it (see :meth:`with_market`). An account is exposed if it holds an instrument of a
        moved underlying or, in cross mode, a balance in that coin (its USD value moved).

        Returns
        -------
        tuple
            The full updated result and the indices of the re-margined accounts.
        """
        moved_set = set(moved)
        cols = [int(c) for pr in self.pairs if pr.und in moved_set for c in pr.cols]
        if self.model.cross:
            cols += [self.index[cash_column(u)] for u in moved_set if cash_column(u) in self.index]
        q = book.quantities
        touched = np.zeros(len(self.columns))
        touched[cols] = 1.0
        hit = (_presence(q) @ touched) > 0
        idx = np.flatnonzero(hit).astype(np.int64)
        if idx.size == 0:
            return previous, idx
        part = self.margin(AccountBook([book.accounts[int(i)] for i in idx], q[idx]))
        return previous.put(idx, part), idx

    # -- the vectorised core -------------------------------------------------------------
    def _evaluate(self, q: Any, present: BoolArray | None = None) -> BatchResult:
        """Margin the rows of ``q`` (CSR, or dense with its ``present`` mask)."""
        model, params = self.model, self.model.params
        dense = isinstance(q, np.ndarray)
        if dense:
            assert present is not None
            pres: FloatArray | sp.csr_array = present.astype(np.float64)
            neg: FloatArray | sp.csr_array = (q < 0).astype(np.float64)
        else:
            pres = _presence(q)
            neg = _negatives(q)
        n = q.shape[0]
        n_pairs, n_pools = len(self.pairs), len(self.pools)
        v = np.asarray(q @ self.weights)
        c = np.asarray(pres @ self.indicators)
        s = np.asarray(neg @ self.short_indicators)
        n_scen_total = self.weights.shape[1] - n_pools - n_pairs
        has_instr = c[:, :n_pairs] > 0
        blocks_cap = c[:, n_pairs : 2 * n_pairs] > 0
        by_coll = c[:, 2 * n_pairs : 3 * n_pairs] > 0
        exists = has_instr | by_coll
        present_pool = c[:, 3 * n_pairs :] > 0

        # Stage 1 per pair: raw scenario P&L (one slice of V), aggregation, contexts.
        aggs: list[FloatArray] = []
        raws: list[FloatArray] = []
        ctxs: list[ChargeContext | None] = []
        for pr in self.pairs:
            raw = np.ascontiguousarray(v[:, pr.start : pr.start + len(pr.scen)])
            agg = model.aggregate(raw, pr.und, pr.pool, pr.rate)
            raws.append(raw)
            aggs.append(agg)
            ctx = None
            if pr.risk is not None and (params.charges or params.credits):
                sub = q[:, pr.cols] if dense else q[:, pr.cols].tocsr()
                ctx = ChargeContext(
                    pool=pr.pool,
                    usd_rate=pr.rate,
                    risk=pr.risk,
                    rows=pr.rows,
                    quantities=sub,
                    scenario_pnl=agg,
                    market=self.market,
                    params=_NO_PARAMS,
                    raw_pnl=raw,
                )
            ctxs.append(ctx)

        im = np.zeros((n, n_pools))
        mm = np.zeros((n, n_pools))
        bind_pair = np.full((n, n_pools), -1, dtype=np.int64)
        bind_scen = np.full((n, n_pools), -1, dtype=np.int64)
        bind_pnl = np.zeros((n, n_pools))
        im_only = {cp.kind for cp in params.charges if not cp.in_maintenance}
        rows_n = np.arange(n)
        for p, pool in enumerate(self.pools):
            ks = [k for k, pr in enumerate(self.pairs) if pr.pool == pool]
            risk_part = np.zeros(n)
            im_part = np.zeros(n)
            if ks:
                comps = self._pool_components(pool, ks, aggs, raws, ctxs, blocks_cap, by_coll)
                v_cap = v[:, n_scen_total + n_pools :]
                # long-option cap, per pair (see MarginModel.margin)
                total = sum(comps.values())
                assert isinstance(total, np.ndarray)
                cap = v_cap[:, ks]
                eligible = has_instr[:, ks] & ~blocks_cap[:, ks] & (s[:, ks] == 0)
                over = eligible & (total > cap)
                if over.any():
                    comps["long_option_value_cap"] = np.where(over, cap - total, 0.0)
                ex = exists[:, ks]
                req_by_pair = np.zeros((n, len(ks)))
                for name, val in comps.items():
                    masked = np.where(ex, val, 0.0)
                    req_by_pair += masked
                    pooled = masked.sum(axis=1)
                    if name in im_only:
                        im_part += pooled
                    else:
                        risk_part += pooled
                best = np.argmax(np.where(ex, req_by_pair, -np.inf), axis=1)
                anyex = ex.any(axis=1)
                kk = np.asarray(ks)[best]
                bind_pair[:, p] = np.where(anyex, kk, -1)
                for b, k in enumerate(ks):
                    sel = anyex & (best == b)
                    if sel.any():
                        j = np.argmin(aggs[k][sel], axis=1)
                        bind_scen[sel, p] = j
                        bind_pnl[sel, p] = aggs[k][sel][np.arange(j.size), j]
            if self.model.cross and pool == USD and self._haircut.any():
                cash = q[:, self.cash_cols]
                cash_d = cash if dense else cash.toarray()
                hc = np.maximum(cash_d, 0.0) @ self._haircut
                im_part = im_part + hc
            im[:, p] = params.im_multiplier * risk_part + im_part
            mm[:, p] = params.mm_multiplier * risk_part
        del rows_n
        equity = v[:, n_scen_total : n_scen_total + n_pools]
        pres_b = present_pool
        return BatchResult(
            self.pools,
            tuple((pr.pool, pr.und) for pr in self.pairs),
            pres_b,
            np.where(pres_b, im, 0.0),
            np.where(pres_b, mm, 0.0),
            np.where(pres_b, equity, 0.0),
            bind_pair,
            bind_scen,
            bind_pnl,
        )

    def _pool_components(
        self,
        pool: str,
        ks: list[int],
        aggs: list[FloatArray],
        raws: list[FloatArray],
        ctxs: list[ChargeContext | None],
        blocks_cap: BoolArray,
        by_coll: BoolArray,
    ) -> dict[str, FloatArray]:
        """Components ``(n_accounts, n_pairs_of_pool)`` of one pool, as the engine composes them."""
        params = self.model.params
        n = aggs[ks[0]].shape[0]
        scanning = np.stack([np.maximum(-np.min(aggs[k], axis=1), 0.0) for k in ks], axis=1)
        addons: dict[str, FloatArray] = {}
        minimums: dict[str, FloatArray] = {}
        for cp in params.charges:
            out = np.zeros((n, len(ks)))
            for u, k in enumerate(ks):
                ctx = ctxs[k]
                if ctx is not None:
                    val = CHARGES[cp.kind](dc_replace(ctx, params=cp))
                    out[:, u] = np.asarray(val, dtype=np.float64).reshape(-1)
            target = minimums if cp.role == "minimum" else addons
            target[cp.kind] = target.get(cp.kind, np.zeros((n, len(ks)))) + out
        credits: dict[str, FloatArray] = {}
        if params.credits:
            cctx = CreditContext(
                pool,
                self.pairs[ks[0]].rate,
                tuple(self.pairs[k].und for k in ks),
                tuple(ctxs[k] for k in ks),
                tuple(raws[k] for k in ks),
                tuple(aggs[k] for k in ks),
                scanning,
                self.market,
                _NO_PARAMS,
            )
            for cp in params.credits:
                amount = np.asarray(CREDITS[cp.kind](dc_replace(cctx, params=cp)), np.float64)
                credits[cp.kind] = credits.get(cp.kind, np.zeros((n, len(ks)))) + amount
        del blocks_cap, by_coll
        return dict(compose(scanning, addons, credits, minimums))


def _presence(q: sp.csr_array) -> sp.csr_array:
    p = q.copy()
    p.data = np.ones_like(p.data)
    return p


def _negatives(q: sp.csr_array) -> sp.csr_array:
    p = q.copy()
    p.data = (p.data < 0).astype(np.float64)
    return p


def build_quantities(
    rows: IntArray, cols: IntArray, vals: FloatArray, shape: tuple[int, int], cash_cols: IntArray
) -> sp.csr_array:
    """CSR quantities with duplicates summed; zero net positions dropped, cash zeros kept."""
    q = sp.csr_array((vals, (rows, cols)), shape=shape)
    q.sum_duplicates()
    is_cash = np.zeros(shape[1], dtype=np.bool_)
    is_cash[cash_cols] = True
    drop = (q.data == 0) & ~is_cash[q.indices]
    if drop.any():
        coo = q.tocoo()
        keep = ~((coo.data == 0) & ~is_cash[coo.col])
        q = sp.csr_array((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=shape)
    return q


def _market_universe(market: MarketSnapshot) -> list[str]:
    names = list(market.option_names()) + list(market.futures)
    names += [f"{u}-PERPETUAL" for u in market.underlyings]
    return names
