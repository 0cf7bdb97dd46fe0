r"""The event-driven margin monitor.

Each input event (a :class:`MarketUpdate` of one underlying, or an :class:`AccountChange`)
is processed as one unit:

1. **Validate** it. A NaN or non-positive price or vol, a time before the feed time, a
   malformed line, an unknown account or instrument, a withdrawal larger than the balance or
   the excess, a trade the pre-trade check refuses: the event is **rejected** with a reason.
2. **Apply it to the ledger** (:class:`~portmargin.accounts.Ledger`, the account layer's
   state: every account on one :class:`~portmargin.models.session.MarginSession`). A
   market update of underlying ``u`` is ``ledger.tick``: the futures and perpetuals of ``u``
   are settled to market (variation margin), the risk array of ``u`` is recomputed and only
   the accounts exposed to ``u`` are re-margined, in one vectorised pass. An account change
   is ``ledger.with_account`` and is accepted or refused by the one pre-trade rule
   (:func:`portmargin.accounts.pre_trade`). The qualification gate is applied when an
   account is first margined and on its own changes, never on a market move.
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portmargin.accounts import (
    BALANCE_CURRENCIES,
    Account,
    AccountMargin,
    AccountSettings,
    Ledger,
    instrument_known,
    pre_trade,
    trade_cash,
)
from portmargin.errors import PortmarginError
from portmargin.instruments import expiry_code
from portmargin.market.snapshot import MarketSnapshot, OptionQuote, UnderlyingQuote, build_market
from portmargin.models import MarginModel
from portmargin.models.session import MarginSession
from portmargin.monitor._events import AccountChange, FeedItem, Malformed, MarketUpdate
from portmargin.risk import RiskArray
from portmargin.storage import Store
from portmargin.units import STABLE_CURRENCIES, iso_z

__all__ = ["Monitor", "RunStats", "market_to_dict"]

STATUS_EVENTS = ("margin_call", "liquidation", "healthy")


def market_to_dict(snap: MarketSnapshot, states: Mapping[str, MarketUpdate]) -> dict[str, Any]:
    """The market-file JSON (``portmargin margin --market``) of a monitor market state."""
    return {
        "valuation_time": iso_z(snap.valuation_time),
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
    """Margin monitor over a :class:`~portmargin.storage.Store` (see the module docstring).

    The monitor orchestrates: it validates an event, applies it to the ledger, persists the
    outcome in one transaction and only then adopts the new ledger. It assembles the market
    from the feed (each underlying valued at its own last update time); every margin
    figure and decision comes from the account layer.
    """

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
        self.accounts: dict[str, Account] = {a.account_id: a for a in store.load_accounts()}
        self.statuses: dict[str, str] = store.statuses()
        self.methods: dict[str, str] = store.margin_methods()
        self.margins: dict[str, AccountMargin] = {}
        self.states: dict[str, MarketUpdate] = {}
        self.ledger: Ledger | None = None
        self.market: MarketSnapshot | None = None
        cursor = store.cursor(feed_name)
        self.last_seq = cursor.last_seq if cursor else 0
        self.feed_time: datetime | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.stats = RunStats()

    @property
    def session(self) -> MarginSession | None:
        """The ledger's session (``None`` before any market data)."""
        return None if self.ledger is None else self.ledger.session

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

    def _session_for(
        self, states: Mapping[str, MarketUpdate], snap: MarketSnapshot
    ) -> Callable[[tuple[str, ...]], MarginSession]:
        """Sessions on ``snap`` whose underlyings are each valued at their own update time.

        The current session's risk array of an underlying is reused when the universe's
        instruments on it are unchanged; any other is computed on a snapshot at the
        underlying's last update time.
        """

        def build(universe: tuple[str, ...]) -> MarginSession:
            old = self.ledger.session.arrays if self.ledger is not None else {}
            names: dict[str, list[str]] = {}
            for n in universe:
                names.setdefault(snap.instrument(n).underlying, []).append(n)
            arrays: dict[str, RiskArray] = {}
            for und, group in names.items():
                have = old.get(und)
                if have is not None and have.table.names == tuple(group):
                    arrays[und] = have
                    continue
                at = snap if states[und].time == snap.valuation_time else None
                at = at or self._snapshot(states, states[und].time)
                arrays[und] = self.model.risk_arrays([at.instrument(n) for n in group], at)[und]
            return MarginSession(snap, self.model, universe, arrays)

        return build

    def _open(self, states: Mapping[str, MarketUpdate], snap: MarketSnapshot) -> Ledger:
        """A ledger of every account whose underlyings all have data, on ``snap``."""
        ready = [a for a in self.accounts.values() if self._exposures(a, snap) <= set(states)]
        self.ledger = None  # nothing of the previous market state is reused
        return Ledger.open(
            self.model, self.settings, ready, snap, self._session_for(states, snap), self.methods
        )

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
            snap = self._snapshot(self.states, max(s.time for s in self.states.values()))
            self.ledger = self._open(self.states, snap)
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
        when = iso_z(self.feed_time) if self.feed_time else ""
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
            feed = iso_z(self.feed_time)
            return f"stale timestamp {iso_z(item.time)} is before the feed time {feed}"
        return None

    def _on_market(self, item: MarketUpdate) -> list[dict[str, Any]]:
        problem = self._market_problem(item)
        if problem is not None:
            raise _RejectedError(problem)
        und = item.underlying
        states = {**self.states, und: item}
        try:
            snap = self._snapshot(states, item.time)
            settled: dict[str, Account] = {}
            if self.ledger is None or und not in self.states:
                # First data of an underlying: more accounts may now be margined.
                ledger = self._open(states, snap)
                ids = [
                    ledger.book.accounts[int(i)]
                    for i in ledger.session.exposed(ledger.book, {und}, balances=True)
                ]
                margins = ledger.figures(ids)
                ledger = ledger.with_methods(margins)
            else:
                ledger, margins, settled = self.ledger.tick(snap, und)
        except PortmarginError as exc:
            raise _RejectedError(f"{item.underlying}: {exc}") from None
        cause = {"seq": item.seq, "input": "market", "underlying": item.underlying}
        events = self._transitions(margins, cause, iso_z(item.time))
        self.store.commit_step(
            feed=self.feed_name,
            seq=item.seq,
            market_time=iso_z(item.time),
            accounts=list(settled.values()),
            margins=margins,
            events=[(e["kind"], e["account"], e) for e in events],
        )
        self.accounts.update(settled)
        self.states, self.market, self.ledger = states, snap, ledger
        self.feed_time = item.time
        self._after_commit(item.seq, margins, events)
        return events

    def _on_account(self, item: AccountChange) -> list[dict[str, Any]]:
        acct = self.accounts.get(item.account)
        if acct is None:
            raise _RejectedError(f"unknown account {item.account!r}")
        snap, ledger = self.market, self.ledger
        if snap is None or ledger is None:
            raise _RejectedError("no market data yet")
        if item.account not in ledger.rows:
            raise _RejectedError("no market data for an underlying of the account")
        try:
            (before,) = ledger.figures([item.account])
            new = self._changed(acct, item, snap)
            if not self._exposures(new, snap) <= set(self.states):
                raise _RejectedError("no market data for an underlying of the account")
            ledger, after = ledger.with_account(new, self._session_for(self.states, snap))
        except PortmarginError as exc:
            raise _RejectedError(str(exc)) from None
        decision = pre_trade(before.pools, after.pools)
        if not decision.accepted:
            raise _RejectedError(f"{item.kind} refused: {decision.reason}")
        when = iso_z(self.feed_time) if self.feed_time else iso_z(item.time)
        cause = {"seq": item.seq, "input": item.kind, "account": item.account}
        accepted = {
            "kind": item.kind,
            "account": item.account,
            "seq": item.seq,
            "market_time": when,
            "change": item.describe(),
            "decision": decision.reason,
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
        self.ledger = ledger.with_methods([after])
        self._after_commit(item.seq, [after], events)
        return events

    @staticmethod
    def _changed(acct: Account, item: AccountChange, snap: MarketSnapshot) -> Account:
        """The account after ``item``.

        Validated: a listed instrument and a finite non-zero quantity, a known currency and a
        finite positive amount, a withdrawal within the balance.
        """
        if item.kind == "trade":
            if not (math.isfinite(item.quantity) and item.quantity != 0):
                raise _RejectedError(f"trade quantity {item.quantity!r} must be finite, non-zero")
            if not instrument_known(item.instrument, snap):
                raise _RejectedError(f"unknown instrument {item.instrument!r}")
            trades = {snap.instrument(item.instrument).name: item.quantity}
            return acct.with_trades(trades, trade_cash(trades, snap))
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
        return acct.with_trades({}, {ccy: sign * item.amount})

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
