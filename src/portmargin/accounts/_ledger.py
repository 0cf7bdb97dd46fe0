r"""The accounts of a venue margined together: the pipeline's state between two events.

A :class:`Ledger` is an immutable value: the accounts, the margin method each is on, one
:class:`~portmargin.models.session.MarginSession` over every instrument they hold, the
accounts as one sparse book (rows) and the session's last result. Each operation returns a
new ledger and the account figures it produced; nothing is changed in place, so a caller
(the monitor) can commit the figures first and adopt the new ledger only once they are
durable.

``tick(market, underlying)``
    A market move of one underlying. Its futures and perpetuals are settled to the new
    marks (variation margin, :meth:`MarginSession.settlement`: the P&L since the previous
    mark is credited to the balance, so equity carries it), its risk array is recomputed
    (``with_market``), and only the rows exposed to it (a position on it or a balance in
    it) are re-margined, in one vectorised pass.
``with_account(account)``
    A change of one account (a trade, a deposit, a withdrawal): its row is replaced; when it
    holds an instrument nobody held, the universe grows and every row is re-margined on
    the new session, so all rows index the same (pool, underlying) pairs.
``figures(ids)``
    The account figures of rows (:func:`~portmargin.accounts.account_margin`: haircuts,
    the gate and the status, pool by pool).

The qualification gate is applied when an account is first margined and on its own
changes, never on a market move: a switch of method mid-crash is a pro-cyclical cliff.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp

from portmargin.accounts._account import (
    Account,
    AccountMargin,
    AccountSettings,
    account_margin,
    batch_pools,
)
from portmargin.accounts._batch import BatchMargin, canonical
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel
from portmargin.models.session import AccountBook, BatchResult, MarginSession, cash_column

__all__ = ["Ledger", "SessionFor"]

SessionFor = Callable[[tuple[str, ...]], MarginSession]
"""Builds the session of a universe (the caller decides how each underlying is valued)."""


@dataclass(frozen=True, slots=True, eq=False)
class Ledger:
    """Accounts margined on one session (see the module docstring).

    Build one with :meth:`open`.
    """

    model: MarginModel
    settings: AccountSettings
    session: MarginSession
    book: AccountBook
    result: BatchResult
    accounts: Mapping[str, Account]
    methods: Mapping[str, str]
    rows: Mapping[str, int]

    @classmethod
    def open(
        cls,
        model: MarginModel,
        settings: AccountSettings,
        accounts: Sequence[Account],
        market: MarketSnapshot,
        session_for: SessionFor,
        methods: Mapping[str, str] | None = None,
    ) -> Ledger:
        """Margin ``accounts`` on the session ``session_for`` builds for their universe.

        ``market`` resolves the accounts' instrument names; ``methods`` are the margin
        methods already decided (the others are decided by the gate when first margined).
        """
        session = session_for(BatchMargin.universe(accounts, market))
        return cls._of(model, settings, session, accounts, methods or {})

    @classmethod
    def _of(
        cls,
        model: MarginModel,
        settings: AccountSettings,
        session: MarginSession,
        accounts: Sequence[Account],
        methods: Mapping[str, str],
    ) -> Ledger:
        book = BatchMargin.book(session, accounts, session.market)
        return cls._adopt(model, settings, session, book, session.margin(book), accounts, methods)

    @classmethod
    def _adopt(
        cls,
        model: MarginModel,
        settings: AccountSettings,
        session: MarginSession,
        book: AccountBook,
        result: BatchResult,
        accounts: Sequence[Account],
        methods: Mapping[str, str],
    ) -> Ledger:
        by_id = {a.account_id: a for a in accounts}
        return cls(
            model,
            settings,
            session,
            book,
            result,
            MappingProxyType(by_id),
            MappingProxyType({k: v for k, v in methods.items() if k in by_id}),
            MappingProxyType({a: i for i, a in enumerate(book.accounts)}),
        )

    @property
    def market(self) -> MarketSnapshot:
        """The market state of the last evaluation."""
        return self.session.market

    def figures(
        self, ids: Sequence[str] | None = None, *, regate: bool = False
    ) -> list[AccountMargin]:
        """Figures of the accounts ``ids`` (default: all, in row order).

        Each keeps its recorded margin method unless ``regate`` (or it has none yet), in
        which case the qualification gate decides it now.
        """
        names = list(self.book.accounts) if ids is None else list(ids)
        idx = np.asarray([self.rows[a] for a in names], dtype=np.int64)
        part = self.result.take(idx)
        cross = self.model.cross
        return [
            account_margin(
                self.accounts[a],
                self.market,
                self.settings,
                batch_pools(part, k),
                cross=cross,
                method=None if regate else self.methods.get(a),
            )
            for k, a in enumerate(names)
        ]

    def with_methods(self, figures: Sequence[AccountMargin]) -> Ledger:
        """The ledger with the margin methods of ``figures`` recorded."""
        methods = {**self.methods, **{f.account_id: f.method for f in figures}}
        return Ledger(
            self.model,
            self.settings,
            self.session,
            self.book,
            self.result,
            self.accounts,
            MappingProxyType(methods),
            self.rows,
        )

    def tick(
        self, market: MarketSnapshot, underlying: str
    ) -> tuple[Ledger, list[AccountMargin], dict[str, Account]]:
        """A move of ``underlying`` to ``market`` (see the module docstring).

        Returns the new ledger, the figures of every account exposed to the move (a
        position on it or a balance in it, in any mode: a coin balance moves USD figures),
        and the accounts whose balances or positions the settlement changed.
        """
        session = self.session.with_market(market, moved={underlying})
        book, settled = self._settle(session, underlying)
        result, _ = session.remargin(book, self.result, moved={underlying})
        accounts = {**self.accounts, **settled}
        ledger = Ledger._adopt(
            self.model,
            self.settings,
            session,
            book,
            result,
            [accounts[a] for a in book.accounts],
            self.methods,
        )
        idx = session.exposed(book, {underlying}, balances=True)
        figs = ledger.figures([book.accounts[int(i)] for i in idx])
        return ledger.with_methods(figs), figs, settled

    def _settle(
        self, session: MarginSession, underlying: str
    ) -> tuple[AccountBook, dict[str, Account]]:
        """The book after variation margin of ``underlying``, and the accounts it changed."""
        s = session.settlement(self.session, underlying)
        if s is None:
            return self.book, {}
        book = self.book
        delta = book.quantities @ s
        delta.eliminate_zeros()
        if delta.nnz == 0:
            return book, {}
        cash_of = {session.index[cash_column(c)]: c for c in _currencies(session)}
        cash: dict[str, dict[str, float]] = {}
        size: dict[str, dict[str, float]] = {}
        coo = delta.tocoo()
        for r, c, v in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True):
            acct = book.accounts[r]
            if c in cash_of:
                cash.setdefault(acct, {})[cash_of[c]] = v
            else:
                size.setdefault(acct, {})[session.columns[c]] = v
        changed = {
            a: self.accounts[a].with_trades(size.get(a, {}), cash.get(a, {}))
            for a in {*cash, *size}
        }
        settled = canonical(AccountBook(book.accounts, (book.quantities + delta).tocsr()))
        return settled, changed

    def with_account(
        self, account: Account, session_for: SessionFor
    ) -> tuple[Ledger, AccountMargin]:
        """The ledger with ``account`` (already in it) replaced, and its figures after.

        The qualification gate is applied to it again (its own change). The new account's
        method is not recorded: record it once the change is accepted (:meth:`with_methods`).
        """
        row = self.rows[account.account_id]
        market = self.market
        accounts = [self.accounts[a] if a != account.account_id else account for a in self.rows]
        held = BatchMargin.universe([account], market)
        if not set(held) <= set(self.session.instruments):
            # A new instrument: its underlying's risk array grows; re-margin every row.
            universe = tuple(sorted({*self.session.instruments, *held}))
            session = session_for(universe)
            ledger = Ledger._of(self.model, self.settings, session, accounts, self.methods)
        else:
            line = BatchMargin.book(self.session, [account], market).quantities
            q = self.book.quantities
            stacked = sp.vstack([q[:row], line, q[row + 1 :]], format="csr")
            book = canonical(AccountBook(self.book.accounts, stacked))
            part = self.session.margin(AccountBook([account.account_id], line))
            result = self.result.put(np.asarray([row]), part)
            ledger = Ledger._adopt(
                self.model, self.settings, self.session, book, result, accounts, self.methods
            )
        return ledger, ledger.figures([account.account_id], regate=True)[0]


def _currencies(session: MarginSession) -> list[str]:
    """The cash currencies of a session's columns."""
    return [c.split(":", 1)[1] for c in session.columns[int(session.cash_cols[0]) :]]
