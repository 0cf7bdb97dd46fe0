r"""The event-driven margin monitor.

Each input event (a :class:`MarketUpdate` of one underlying, or an :class:`AccountChange`)
is processed as one unit:

1. **Validate** it. A NaN or non-positive price or vol, a time before the feed time, a
   malformed line, an unknown account or instrument, a withdrawal larger than the balance or
   the excess, a trade the pre-trade check refuses: the event is **rejected** with a reason.
2. **Recompute only what it touches**, in one vectorised pass. The monitor keeps a
   :class:`~portmargin.batch.MarginSession` over the held instruments, the accounts as one
   sparse book and the last result. A market update of underlying ``u`` first settles the
   futures and perpetuals of ``u`` to market (variation margin, :meth:`_settle_futures`:
   the P&L since the previous mark is credited to the balance, so equity carries it; the
   accounts file has no entry prices, so the first marks seen are the reference). It then
   recomputes the risk array of ``u`` (``with_market(moved={u})``) and margins only the
   rows exposed to ``u`` (a position on it or a ``u`` balance) with one ``margin()`` call.
   An account change re-margins that account's row; a trade in an instrument nobody held
   grows the universe and re-margins every row on the new session.
   The qualification gate (portfolio margin or the rules fallback) is applied when an
   account is first margined and on each of its own changes, never on a market move: a
   switch of method mid-crash is a pro-cyclical cliff (on the crash-day replay, seven
   put-spread books that dipped below the gate were liquidated at once by the switch to
   strategy rules). ``eligible`` reports the gate's current verdict.
3. **Emit** events: ``margin_call``, ``liquidation`` and ``healthy`` (back to healthy) on a
   status change, each with the account, its figures, the market time and the input event
   that caused it; ``trade``/``deposit``/``withdrawal`` for accepted changes; ``rejected``.
4. **Commit** the changed accounts, their snapshots, the events and the feed cursor in one
   transaction (:meth:`Store.commit_step`), and only then update the in-memory state.

Nothing is half-applied: a failure before the commit leaves memory and database unchanged.
On restart, events at or below the committed cursor are not reprocessed: market updates are
only folded into the market state (no output), account changes are already in the database.

Time: the risk array of an underlying is computed at that underlying's own update time, so
between the updates of two underlyings each keeps the valuation time of its last update.
A feed that updates every underlying at each step (the replay does) is, after the last
update of a step, margined exactly as ``portmargin margin`` on that step's market.
"""

from __future__ import annotations

import math
import time as _time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

from portmargin.accounts import (
    BALANCE_CURRENCIES,
    Account,
    AccountMargin,
    AccountSettings,
    BatchMargin,
    instrument_known,
    trade_cash,
)
from portmargin.accounts._batch import canonical, canonical_positions
from portmargin.batch import AccountBook, BatchResult, MarginSession, cash_column
from portmargin.errors import PortmarginError
from portmargin.instruments import STABLE_CURRENCIES, InstrumentKind, expiry_code
from portmargin.market.snapshot import MarketSnapshot, OptionQuote, UnderlyingQuote, build_market
from portmargin.models import MarginModel
from portmargin.monitor._events import AccountChange, FeedItem, Malformed, MarketUpdate
from portmargin.risk import RiskArray
from portmargin.storage import Store

__all__ = ["Monitor", "RunStats", "market_to_dict"]

STATUS_EVENTS = ("margin_call", "liquidation", "healthy")


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def market_to_dict(snap: MarketSnapshot, states: Mapping[str, MarketUpdate]) -> dict[str, Any]:
    """The market-file JSON (``portmargin margin --market``) of a monitor market state."""
    return {
        "valuation_time": _iso(snap.valuation_time),
        "underlyings": {u: {"spot": s.index} for u, s in states.items()},
        "futures": {
            f"{u}-PERPETUAL": {"mark_price": s.perpetual}
            for u, s in states.items()
            if s.perpetual is not None
        },
        "forwards": {
            u: {expiry_code(e): f for e, f in s.forwards.items()} for u, s in states.items()
        },
        "options": {n: {"mark_iv": v} for s in states.values() for n, v in s.vols.items()},
    }


@dataclass
class RunStats:
    """Counters of a monitor run."""

    processed: int = 0
    skipped: int = 0
    rejected: int = 0
    emitted: int = 0
    seconds: float = 0.0

    @property
    def updates_per_second(self) -> float:
        """Processed input events per wall-clock second."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0


class _RejectedError(Exception):
    """An input event refused with a reason (internal control flow)."""


class Monitor:
    """Margin monitor over a :class:`~portmargin.storage.Store` (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        model: MarginModel,
        settings: AccountSettings,
        *,
        feed_name: str,
        recent: int = 50,
    ) -> None:
        self.store = store
        self.model = model
        self.settings = settings
        self.feed_name = feed_name
        self.batch = BatchMargin(model, settings)
        self.accounts: dict[str, Account] = {a.account_id: a for a in store.load_accounts()}
        self.statuses: dict[str, str] = store.statuses()
        self.methods: dict[str, str] = store.margin_methods()
        self.margins: dict[str, AccountMargin] = {}
        self.states: dict[str, MarketUpdate] = {}
        self.session: MarginSession | None = None
        self.book: AccountBook | None = None
        self.result: BatchResult | None = None
        self._rows: dict[str, int] = {}
        self.market: MarketSnapshot | None = None
        cursor = store.cursor(feed_name)
        self.last_seq = cursor.last_seq if cursor else 0
        self.feed_time: datetime | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.stats = RunStats()

    # -- market state -------------------------------------------------------------------
    def _snapshot(self, states: Mapping[str, MarketUpdate], when: datetime) -> MarketSnapshot:
        return build_market(
            valuation_time=when,
            underlyings={u: UnderlyingQuote(s.index, 0.0, s.perpetual) for u, s in states.items()},
            forwards={(u, e): f for u, s in states.items() for e, f in s.forwards.items()},
            options={n: OptionQuote(mark_iv=v) for s in states.values() for n, v in s.vols.items()},
            source=self.feed_name,
        )

    def _exposures(self, a: Account, snap: MarketSnapshot) -> set[str]:
        unds = {snap.instrument(n).underlying for n in a.positions}
        unds |= {c for c in a.balances if c not in STABLE_CURRENCIES}
        return unds

    def _session(
        self,
        states: Mapping[str, MarketUpdate],
        snap: MarketSnapshot,
        universe: tuple[str, ...],
        moved: Collection[str] = (),
    ) -> MarginSession:
        """A session over ``universe`` on ``snap``, each underlying valued at its own time.

        The current session's risk array of an underlying is reused when that underlying
        has not ``moved`` and the universe's instruments on it are unchanged; any other is
        computed on a snapshot at the underlying's last update time.
        """
        old = self.session.arrays if self.session is not None else {}
        names: dict[str, list[str]] = {}
        for n in universe:
            names.setdefault(snap.instrument(n).underlying, []).append(n)
        arrays: dict[str, RiskArray] = {}
        for und, group in names.items():
            have = old.get(und)
            if und not in moved and have is not None and have.table.names == tuple(group):
                arrays[und] = have
                continue
            at = snap if states[und].time == snap.valuation_time else None
            at = at or self._snapshot(states, states[und].time)
            arrays[und] = self.model.risk_arrays([at.instrument(n) for n in group], at)[und]
        return self.batch.session(snap, universe, arrays)

    def _rebuild(
        self, states: Mapping[str, MarketUpdate], snap: MarketSnapshot, moved: Collection[str]
    ) -> tuple[MarginSession, AccountBook, BatchResult]:
        """Session, book and result of every account whose underlyings all have data."""
        ready = [a for a in self.accounts.values() if self._exposures(a, snap) <= set(states)]
        session = self._session(states, snap, self.batch.universe(ready, snap), moved)
        book = self.batch.book(session, ready, snap)
        return session, book, session.margin(book)

    def _settle_futures(
        self, old: MarginSession, new: MarginSession, book: AccountBook, und: str
    ) -> tuple[AccountBook, dict[str, Account]]:
        r"""Settle the futures and perpetuals of ``und`` to the new marks (variation margin).

        Per contract, from the old mark ``F₀`` to the new ``F₁`` (the delta-one P&L of
        :mod:`portmargin.risk` at ``m = F₁/F₀ − 1``)::

            linear    M·(F₁ − F₀)        credited in the quote currency (USDC)
            inverse   M·(1 − F₀/F₁)      credited in the coin, and the size rescaled by
                                         F₀/F₁ coin per coin

        An inverse contract has a fixed USD face (``q·F`` at the mark, deribit.md §1.4), so a
        position of ``q`` coins at ``F₀`` is ``q·F₀/F₁`` coins at ``F₁``; the settlements then
        telescope to ``q₀·(1 − F₀/F_n)``, the P&L of the USD notional ``q₀·F₀`` held
        throughout. As one sparse product ``ΔQ = Q @ S`` (``S`` maps each future's column to
        the cash column of its settlement currency at its per-contract P&L, and to itself at
        ``F₀/F₁ − 1`` if inverse). Returns the book with ``Q + ΔQ`` and the accounts whose
        balances and positions changed (not yet stored).
        """
        a0, a1 = old.arrays.get(und), new.arrays.get(und)
        if a0 is None or a1 is None or a0.table.names != a1.table.names:
            return book, {}
        tab = a1.table
        kinds = (InstrumentKind.FUTURE, InstrumentKind.PERPETUAL)
        d1 = np.flatnonzero([x.kind in kinds for x in tab.instruments])
        if d1.size == 0:
            return book, {}
        f0, f1 = a0.table.F[d1], tab.F[d1]
        pnl = tab.multiplier[d1] * np.where(tab.inverse[d1], 1.0 - f0 / f1, f1 - f0)
        ccys = [tab.instruments[i].settlement_currency for i in d1]
        ccy_of = {new.index[cash_column(c)]: c for c in ccys}
        rows = [new.index[tab.names[i]] for i in d1]
        inv = tab.inverse[d1]
        n = len(new.columns)
        s_rows = rows + [r for r, x in zip(rows, inv, strict=True) if x]
        s_cols = [new.index[cash_column(c)] for c in ccys] + s_rows[len(rows) :]
        s_vals = np.concatenate([pnl, (f0 / f1 - 1.0)[inv]])
        delta = book.quantities @ sp.csr_array((s_vals, (s_rows, s_cols)), shape=(n, n))
        delta.eliminate_zeros()
        cash: dict[str, dict[str, float]] = {}
        size: dict[str, dict[str, float]] = {}
        coo = delta.tocoo()
        for r, c, v in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True):
            acct = book.accounts[r]
            if c in ccy_of:
                cash.setdefault(acct, {})[ccy_of[c]] = v
            else:
                size.setdefault(acct, {})[new.columns[c]] = v
        changed = {
            a: self.accounts[a].with_trades(size.get(a, {}), cash.get(a, {}))
            for a in {*cash, *size}
        }
        return canonical(AccountBook(book.accounts, (book.quantities + delta).tocsr())), changed

    def _adopt(self, session: MarginSession, book: AccountBook, result: BatchResult) -> None:
        self.session, self.book, self.result = session, book, result
        self._rows = {a: i for i, a in enumerate(book.accounts)}

    # -- processing ---------------------------------------------------------------------
    def process(self, item: FeedItem) -> list[dict[str, Any]] | None:
        """Process one input event; returns the emitted events, or None if already committed."""
        if item.seq <= self.last_seq:
            if isinstance(item, MarketUpdate) and self._market_problem(item) is None:
                self.states[item.underlying] = item
                self.feed_time = item.time
                self.market = None
            self.stats.skipped += 1
            return None
        if self.market is None and self.states:
            # Resumed: rebuild the market and every account's margin from the replayed
            # prefix (no output: those figures were committed before the restart).
            self.session = None
            snap = self._snapshot(self.states, max(s.time for s in self.states.values()))
            self._adopt(*self._rebuild(self.states, snap, self.states))
            self.market = snap
        try:
            if isinstance(item, Malformed):
                raise _RejectedError(f"malformed feed line: {item.reason}")
            if isinstance(item, MarketUpdate):
                return self._on_market(item)
            return self._on_account(item)
        except _RejectedError as exc:
            return self._reject(item, str(exc))

    def _reject(self, item: FeedItem, reason: str) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {"seq": item.seq, "input": item.kind, "reason": reason}
        account = item.account if isinstance(item, AccountChange) else None
        if isinstance(item, AccountChange):
            payload["account"] = item.account
            payload["change"] = item.describe()
        if isinstance(item, Malformed):
            payload["line"] = item.line
        when = _iso(self.feed_time) if self.feed_time else ""
        payload["market_time"] = when
        self.store.commit_step(
            feed=self.feed_name,
            seq=item.seq,
            market_time=when,
            events=[("rejected", account, payload)],
        )
        self.last_seq = item.seq
        self.stats.processed += 1
        self.stats.rejected += 1
        out = [{"kind": "rejected", **payload}]
        self._remember(out)
        return out

    def _market_problem(self, item: MarketUpdate) -> str | None:
        def bad(x: float | None) -> bool:
            return x is None or not math.isfinite(x) or x <= 0

        if bad(item.index):
            return f"{item.underlying}: index {item.index!r} is not a positive finite number"
        if item.perpetual is not None and bad(item.perpetual):
            return f"{item.underlying}: perpetual {item.perpetual!r} is not positive and finite"
        for e, f in item.forwards.items():
            if bad(f):
                return f"{item.underlying}: forward {expiry_code(e)} {f!r} is not valid"
        for n, v in item.vols.items():
            if bad(v) or v > 20:
                return f"{n}: implied vol {v!r} is not a positive finite decimal"
        if self.feed_time is not None and item.time < self.feed_time:
            return (
                f"stale timestamp {_iso(item.time)} is before the feed time {_iso(self.feed_time)}"
            )
        return None

    def _on_market(self, item: MarketUpdate) -> list[dict[str, Any]]:
        problem = self._market_problem(item)
        if problem is not None:
            raise _RejectedError(problem)
        und = item.underlying
        states = {**self.states, und: item}
        try:
            snap = self._snapshot(states, item.time)
            if (
                self.session is None
                or self.book is None
                or self.result is None
                or (und not in self.states)
            ):
                # First data of an underlying: more accounts may now be margined.
                session, book, result = self._rebuild(states, snap, {und})
                settled: dict[str, Account] = {}
            else:
                # One vectorised pass over the accounts exposed to the moved underlying.
                session = self.session.with_market(snap, moved={und})
                book, settled = self._settle_futures(self.session, session, self.book, und)
                result, _ = session.remargin(book, self.result, moved={und})
            # A balance in the moved coin changes an account's USD figures in any mode.
            idx = session.exposed(book, {und}, balances=True)
            part = result.take(idx)
            accounts = {**self.accounts, **settled}
            touched = [accounts[book.accounts[int(i)]] for i in idx]
            margins = self.batch.figures(touched, part, snap, self.methods)
        except PortmarginError as exc:
            raise _RejectedError(f"{item.underlying}: {exc}") from None
        cause = {"seq": item.seq, "input": "market", "underlying": item.underlying}
        events = self._transitions(margins, cause, _iso(item.time))
        self.store.commit_step(
            feed=self.feed_name,
            seq=item.seq,
            market_time=_iso(item.time),
            accounts=list(settled.values()),
            margins=margins,
            events=[(e["kind"], e["account"], e) for e in events],
        )
        self.accounts = accounts
        self.states, self.market = states, snap
        self._adopt(session, book, result)
        self.feed_time = item.time
        self._after_commit(item.seq, margins, events)
        return events

    def _on_account(self, item: AccountChange) -> list[dict[str, Any]]:
        acct = self.accounts.get(item.account)
        if acct is None:
            raise _RejectedError(f"unknown account {item.account!r}")
        snap, session, book, result = self.market, self.session, self.book, self.result
        if snap is None or session is None or book is None or result is None:
            raise _RejectedError("no market data yet")
        row = self._rows.get(item.account)
        if row is None:
            raise _RejectedError("no market data for an underlying of the account")
        try:
            before = self.batch.figures([acct], result.take(np.asarray([row])), snap, self.methods)[
                0
            ]
            if item.kind == "trade":
                if not (math.isfinite(item.quantity) and item.quantity != 0):
                    raise _RejectedError(
                        f"trade quantity {item.quantity!r} must be finite, non-zero"
                    )
                if not instrument_known(item.instrument, snap):
                    raise _RejectedError(f"unknown instrument {item.instrument!r}")
                name = snap.instrument(item.instrument).name
                trades = {name: item.quantity}
                new = acct.with_trades(trades, trade_cash(trades, snap))
            else:
                ccy = item.currency.upper()
                if ccy not in BALANCE_CURRENCIES:
                    raise _RejectedError(f"unsupported currency {item.currency!r}")
                if not (math.isfinite(item.amount) and item.amount > 0):
                    raise _RejectedError(f"{item.kind} amount {item.amount!r} must be positive")
                sign = 1.0 if item.kind == "deposit" else -1.0
                if sign < 0 and acct.balances.get(ccy, 0.0) < item.amount:
                    raise _RejectedError(
                        f"withdrawal of {item.amount:g} {ccy} exceeds the balance "
                        f"{acct.balances.get(ccy, 0.0):g} {ccy}"
                    )
                new = acct.with_trades({}, {ccy: sign * item.amount})
            if not self._exposures(new, snap) <= set(self.states):
                raise _RejectedError("no market data for an underlying of the account")
            session, book, result, part = self._with_account(
                new, row, snap, (session, book, result)
            )
            after = self.batch.figures([new], part, snap)[0]
        except PortmarginError as exc:
            raise _RejectedError(str(exc)) from None
        raising = after.initial_margin_usd > before.initial_margin_usd
        if item.kind == "trade" and after.excess_usd < 0 and raising:
            raise _RejectedError(
                f"pre-trade check failed: IM would be {after.initial_margin_usd:,.2f} USD "
                f"with equity {after.equity_usd:,.2f} USD"
            )
        if item.kind == "withdrawal" and after.excess_usd < 0:
            raise _RejectedError(
                f"withdrawal larger than the excess ({before.excess_usd:,.2f} USD available)"
            )
        when = _iso(self.feed_time) if self.feed_time else _iso(item.time)
        cause = {"seq": item.seq, "input": item.kind, "account": item.account}
        accepted = {
            "kind": item.kind,
            "account": item.account,
            "seq": item.seq,
            "market_time": when,
            "change": item.describe(),
            "figures": after.to_dict(),
        }
        events = [accepted, *self._transitions([after], cause, when)]
        self.store.commit_step(
            feed=self.feed_name,
            seq=item.seq,
            market_time=when,
            accounts=[new],
            margins=[after],
            events=[(e["kind"], e["account"], e) for e in events],
        )
        self.accounts[new.account_id] = new
        self._adopt(session, book, result)
        self._after_commit(item.seq, [after], events)
        return events

    def _with_account(
        self,
        new: Account,
        row: int,
        snap: MarketSnapshot,
        state: tuple[MarginSession, AccountBook, BatchResult],
    ) -> tuple[MarginSession, AccountBook, BatchResult, BatchResult]:
        """Session, book and result with row ``row`` replaced by ``new``, and ``new``'s row.

        Nothing is stored: the caller adopts them once the change is committed.
        """
        session, book, result = state
        universe = tuple(sorted({*session.instruments, *canonical_positions(new, snap)}))
        if universe != session.instruments:
            # A new instrument: its underlying's risk array grows. Re-margin every account
            # on the new session, so that all rows index the same (pool, underlying) pairs.
            accounts = [self.accounts[a] if a != new.account_id else new for a in book.accounts]
            session = self._session(self.states, snap, universe)
            book = self.batch.book(session, accounts, snap)
            result = session.margin(book)
            return session, book, result, result.take(np.asarray([row]))
        line = self.batch.book(session, [new], snap).quantities
        q = book.quantities
        book = canonical(
            AccountBook(book.accounts, sp.vstack([q[:row], line, q[row + 1 :]], format="csr"))
        )
        part = session.margin(AccountBook([new.account_id], line))
        return session, book, result.put(np.asarray([row]), part), part

    def _transitions(
        self, margins: Iterable[AccountMargin], cause: dict[str, Any], when: str
    ) -> list[dict[str, Any]]:
        out = []
        for m in margins:
            prev = self.statuses.get(m.account_id, "healthy")
            if m.status.value != prev:
                out.append(
                    {
                        "kind": m.status.value,
                        "account": m.account_id,
                        "previous": prev,
                        "market_time": when,
                        "cause": cause,
                        "figures": m.to_dict(),
                    }
                )
        return out

    def _after_commit(
        self, seq: int, margins: list[AccountMargin], events: list[dict[str, Any]]
    ) -> None:
        self.last_seq = seq
        for m in margins:
            self.margins[m.account_id] = m
            self.statuses[m.account_id] = m.status.value
            self.methods[m.account_id] = m.method
        self.stats.processed += 1
        self.stats.emitted += len(events)
        self._remember(events)

    def _remember(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self.recent.appendleft(e)

    # -- driving ------------------------------------------------------------------------
    def run(
        self,
        feed: Iterable[FeedItem],
        *,
        max_events: int | None = None,
        speed: float = 0.0,
        on_step: Callable[[Monitor], None] | None = None,
    ) -> RunStats:
        """Process ``feed`` (``max_events`` new input events at most).

        ``speed`` paces the feed: feed seconds per wall second (0 = as fast as possible).
        """
        start = _time.monotonic()
        first: datetime | None = None
        new = 0
        for item in feed:
            if max_events is not None and new >= max_events:
                break
            if self.process(item) is None:
                continue
            new += 1
            t = getattr(item, "time", None)
            if speed > 0 and isinstance(t, datetime):
                first = first or t
                due = (t - first).total_seconds() / speed
                lag = due - (_time.monotonic() - start)
                if lag > 0:
                    _time.sleep(lag)
            self.stats.seconds = _time.monotonic() - start
            if on_step is not None:
                on_step(self)
        self.stats.seconds = _time.monotonic() - start
        return self.stats
