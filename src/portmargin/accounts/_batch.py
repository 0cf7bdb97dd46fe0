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

from portmargin.accounts._account import (
    Account,
    AccountMargin,
    AccountSettings,
    account_margin,
    batch_pools,
    canonical_positions,
)
from portmargin.batch import AccountBook, BatchResult, MarginSession
from portmargin.errors import InputError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel
from portmargin.risk import RiskArray

__all__ = ["BatchMargin", "canonical", "canonical_positions"]


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


class BatchMargin:
    """Account margining under one model and one set of settings, many accounts per call."""

    def __init__(self, model: MarginModel, settings: AccountSettings) -> None:
        self.model = model
        self.settings = settings

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
