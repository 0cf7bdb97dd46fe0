r"""Margin many accounts at one market state in one vectorised pass.

:class:`BatchMargin` puts accounts on a :class:`~portmargin.batch.MarginSession` whose
instrument universe is the union of what the accounts hold: the risk arrays are computed
**once per underlying** for that universe, the accounts become the rows of one sparse
quantity matrix (positions and balances), and the whole set is margined by the session's
sparse product and vectorised charges, with no Python loop over accounts or positions.
The session's figures per pool are then finished per account: haircuts, the qualification
gate (ineligible accounts go to the rules-based fallback, the only per-account
computation) and the status, pool by pool (:func:`~portmargin.accounts.account_margin`).

:func:`~portmargin.accounts.evaluate_account` is the same path with one account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass

import numpy as np

from portmargin._types import FloatArray, IntArray
from portmargin.accounts._account import (
    Account,
    AccountMargin,
    AccountSettings,
    account_margin,
    batch_pools,
    canonical_positions,
)
from portmargin.accounts._policy import classify_many
from portmargin.batch import AccountBook, BatchResult, MarginSession
from portmargin.errors import InputError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel
from portmargin.risk import RiskArray
from portmargin.units import USD, pool_currency, usd_rate

__all__ = ["BatchMargin", "PoolArrays", "canonical", "canonical_positions"]


def canonical(book: AccountBook) -> AccountBook:
    """The book with each row's entries in column order.

    A row's products ``Q @ W`` sum its entries in storage order, so two books equal in
    value but stored in different orders can differ in the last bit; the monitor's figures
    must not depend on how a book was assembled (a restart rebuilds it from the database).
    """
    q = book.quantities.copy()
    q.has_sorted_indices = False  # force the check: the flag is not kept by every operation
    q.sort_indices()
    return AccountBook(book.accounts, q)


@dataclass(frozen=True, slots=True)
class PoolArrays:
    """Portfolio-margin decisions of many accounts, arrays ``(n_accounts, n_pools)``.

    ``haircut`` (pool currency) and ``equity`` after it, ``status`` the severity code of
    each pool (:data:`~portmargin.accounts.STATUSES`; 0 where the pool is absent) and
    ``account_status`` the worst pool's code per account.
    """

    haircut: FloatArray
    equity: FloatArray
    status: IntArray
    account_status: IntArray


class BatchMargin:
    """Account margining under one model and one set of settings, many accounts per call."""

    def __init__(self, model: MarginModel, settings: AccountSettings) -> None:
        self.model = model
        self.settings = settings

    def decide(self, session: MarginSession, book: AccountBook, result: BatchResult) -> PoolArrays:
        """Haircuts and statuses of every pool of ``book`` under portfolio margin, vectorised.

        The same rules as :func:`~portmargin.accounts.account_margin` with
        ``method="portfolio"`` (no gate: the caller decided the method), over arrays:
        ``haircut_p = Σ_{c ∈ p} max(balance_c, 0)·h_c·usd_rate(c)/usd_rate(p)``, then the
        status rule (:func:`~portmargin.accounts.classify_many`) per pool, the worst per account.
        """
        market, cross = session.market, self.model.cross
        pools = list(result.pools)
        haircut = np.zeros(result.initial_margin.shape)
        q = book.quantities
        for c in session.cash_cols.tolist():
            ccy = session.columns[c].split(":", 1)[1]
            h = self.settings.haircuts.get(ccy, 0.0)
            pool = USD if cross else pool_currency(ccy)
            if h <= 0.0 or pool not in pools:
                continue
            bal = np.maximum(np.asarray(q[:, [c]].toarray()).ravel(), 0.0)
            if bal.any():
                scale = h * usd_rate(ccy, market) / usd_rate(pool, market)
                haircut[:, pools.index(pool)] += bal * scale
        haircut = np.where(result.present, haircut, 0.0)
        equity = result.equity - haircut
        codes = classify_many(
            equity, result.initial_margin, result.maintenance_margin, self.settings
        )
        codes = np.where(result.present, codes, 0)
        worst: IntArray = codes.max(axis=1) if codes.shape[1] else np.zeros(len(codes), np.int64)
        return PoolArrays(haircut, equity, codes, worst)

    @staticmethod
    def universe(accounts: Iterable[Account], market: MarketSnapshot) -> tuple[str, ...]:
        """Sorted canonical names of every instrument any of ``accounts`` holds."""
        names: set[str] = set()
        for a in accounts:
            names.update(canonical_positions(a, market))
        return tuple(sorted(names))

    def session(
        self,
        market: MarketSnapshot,
        universe: Sequence[str],
        arrays: Mapping[str, RiskArray] | None = None,
    ) -> MarginSession:
        """A session on ``market`` over ``universe``, reusing matching ``arrays``.

        A risk array in ``arrays`` is reused when it covers exactly the universe's
        instruments of its underlying (in universe order); the others are computed on
        ``market``.
        """
        return MarginSession(market, self.model, tuple(universe), dict(arrays or {}))

    @staticmethod
    def book(
        session: MarginSession, accounts: Sequence[Account], market: MarketSnapshot
    ) -> AccountBook:
        """The accounts as rows of ``session``'s sparse quantity matrix (positions + cash)."""
        positions = {a.account_id: canonical_positions(a, market) for a in accounts}
        cash = {a.account_id: dict(a.balances) for a in accounts}
        book = session.book_from_positions(positions, cash)
        if len(book) != len(accounts):
            raise InputError("accounts: duplicate account ids in one batch")
        return canonical(book)

    def figures(
        self,
        accounts: Sequence[Account],
        result: BatchResult,
        market: MarketSnapshot,
        methods: Mapping[str, str] | None = None,
    ) -> list[AccountMargin]:
        """Finish the session figures of ``accounts`` (rows of ``result``, same order).

        Per account, its pools (:func:`~portmargin.accounts._account.batch_pools`) go
        through haircuts, the qualification gate and the status rule
        (:func:`~portmargin.accounts.account_margin`). An account in ``methods`` keeps that
        margin method instead of passing the gate again.
        """
        kept = methods or {}
        cross = self.model.cross
        return [
            account_margin(
                a,
                market,
                self.settings,
                batch_pools(result, k),
                cross=cross,
                method=kept.get(a.account_id),
            )
            for k, a in enumerate(accounts)
        ]

    def evaluate(
        self,
        accounts: Sequence[Account],
        market: MarketSnapshot,
        arrays: MutableMapping[str, RiskArray] | None = None,
    ) -> list[AccountMargin]:
        """Margin every account (same order) on ``market`` in one vectorised pass.

        Parameters
        ----------
        accounts
            The accounts (distinct ids).
        market
            The market state.
        arrays
            Risk arrays per underlying computed on ``market``, reused where they cover the
            accounts' instruments; the arrays used are stored back into the mapping.

        Raises
        ------
        InputError
            For an instrument the market cannot resolve (naming the account).
        """
        session = self.session(market, self.universe(accounts, market), arrays)
        if arrays is not None:
            arrays.update(session.arrays)
        book = self.book(session, accounts, market)
        return self.figures(accounts, session.margin(book), market)
