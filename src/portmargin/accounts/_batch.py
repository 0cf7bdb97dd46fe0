r"""Margin many accounts at one market state in one vectorised pass.

:class:`BatchMargin` puts accounts on a :class:`~portmargin.batch.MarginSession` whose
instrument universe is the union of what the accounts hold: the risk arrays are computed
**once per underlying** for that universe, the accounts become the rows of one sparse
quantity matrix (positions and balances), and the whole set is margined by the session's
sparse product and vectorised charges, with no Python loop over accounts or positions.
The session's figures per pool are then converted to USD (``Σ_pools x_pool·usd_rate_pool``,
as :func:`~portmargin.accounts.margin_usd` does for one engine result) and finished per
account: haircuts, the qualification gate (ineligible accounts go to the rules-based
fallback, the only per-account computation) and the status.

The figures equal :func:`~portmargin.accounts.evaluate_account` (the engine's
``MarginModel.margin``, i.e. ``portmargin margin``) to rounding; tests hold them to 1e-9.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence

import numpy as np

from portmargin.accounts._account import Account, AccountMargin, AccountSettings, finish, usd_rate
from portmargin.batch import AccountBook, BatchResult, MarginSession
from portmargin.errors import InputError, PortmarginError
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel
from portmargin.risk import RiskArray

__all__ = ["BatchMargin", "canonical", "canonical_positions"]


def canonical_positions(account: Account, market: MarketSnapshot) -> dict[str, float]:
    """The account's positions under the market's canonical instrument names (summed).

    Raises
    ------
    InputError
        For a name the market cannot resolve, naming the account.
    """
    out: dict[str, float] = {}
    for name, qty in account.positions.items():
        try:
            key = market.instrument(name).name
        except PortmarginError as exc:
            raise InputError(f"{account.account_id}: positions: {exc}") from None
        out[key] = out.get(key, 0.0) + qty
    return out


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
        ``market``. An empty universe (cash-only accounts) falls back to the session's
        default universe, the market's quoted instruments.
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

        ``IM, MM, equity (USD) = Σ_pools x_pool·usd_rate_pool``, then haircuts, gate and
        status per account (:func:`~portmargin.accounts._account.finish`). An account in
        ``methods`` keeps that margin method instead of passing the gate again.
        """
        kept = methods or {}
        # Pool by pool, in pool order, as margin_usd sums an engine result: a BLAS ``@``
        # here can round differently with the array's length and alignment, and the
        # monitor's figures must not depend on which other accounts share the pass.
        n = len(accounts)
        im, mm, eq = np.zeros(n), np.zeros(n), np.zeros(n)
        for p, pool in enumerate(result.pools):
            rate = usd_rate(pool, market)
            im = im + result.initial_margin[:, p] * rate
            mm = mm + result.maintenance_margin[:, p] * rate
            eq = eq + result.equity[:, p] * rate
        return [
            finish(
                a,
                market,
                self.settings,
                (float(im[k]), float(mm[k]), float(eq[k])),
                kept.get(a.account_id),
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
