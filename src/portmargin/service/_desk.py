r"""The monitor inside the service: one input sequence, one worker thread, durable steps.

Every change of state is an input event of the one :class:`~portmargin.monitor.Monitor`:
feed items (market updates, and the account changes of a JSON-lines feed) and the API's
inputs (trades, deposits, withdrawals, new accounts, pushed market data) are processed one
at a time, in the order they are given a sequence number, on a single worker thread, each
committed by the monitor in one transaction (accounts, snapshots, events, cursor) before
memory changes. The pre-trade rule, the qualification gate and the status rule are the
monitor's: the service only numbers, logs and forwards inputs.

Numbering (:data:`~portmargin.service._feeds.FEED_STRIDE` ``= 2^20``): a replayable
feed's item ``n`` is input ``n·2^20``; an API input takes the next free number after the
last one processed. The API's inputs are logged (:mod:`portmargin.storage._api`) before
they are processed, so a restarted service replays the feed *and* the logged inputs, in
their first order, and the monitor (which skips what its cursor has committed) folds the
market state back exactly; logged inputs above the cursor never happened and are dropped.

Readers never touch the monitor: after each step the worker publishes an immutable
:class:`View` (accounts, figures, statuses, market) that requests read on the event loop,
and the events the step committed, read back with their row ids (commit order), go to the
stream's subscribers (:class:`Hub`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from portmargin.accounts import Account, AccountMargin, AccountSettings, load_accounts
from portmargin.errors import InputError, StorageError
from portmargin.instruments import expiry_code, expiry_from_code
from portmargin.market.snapshot import MarketSnapshot
from portmargin.models import MarginModel, load_model
from portmargin.monitor import AccountChange, FeedItem, MarketUpdate, Monitor
from portmargin.service._feeds import FEED_STRIDE, Source, source_for
from portmargin.service._problems import Problem
from portmargin.service._settings import DEFAULT_ACCOUNTS, ServiceSettings
from portmargin.storage import MONITOR_LEASE, Store, open_store
from portmargin.storage._api import (
    ApiInput,
    NumberedEvent,
    drop_uncommitted,
    events_after,
    events_at,
    forget_inputs,
    inputs_upto,
    last_event_id,
    log_input,
)
from portmargin.units import iso_z

__all__ = ["Desk", "Hub", "Outcome", "Subscriber", "View", "event_json"]

log = logging.getLogger("portmargin.service")


def event_json(n: NumberedEvent) -> dict[str, Any]:
    """A numbered event as the API and the stream send it."""
    e = n.event
    return {
        "id": n.id,
        "seq": e.seq,
        "kind": e.kind,
        "account": e.account_id,
        "market_time": e.market_time,
        "payload": e.payload,
    }


@dataclass(frozen=True, slots=True)
class View:
    """What readers see: the state after the last committed input (immutable)."""

    seq: int
    accounts: Mapping[str, Account]
    margins: Mapping[str, AccountMargin]
    statuses: Mapping[str, str]
    market: MarketSnapshot | None
    states: Mapping[str, MarketUpdate]
    feed_time: datetime | None
    last_event_id: int


@dataclass(slots=True)
class Outcome:
    """What one input did."""

    seq: int
    events: list[dict[str, Any]] = field(default_factory=list)
    numbered: list[NumberedEvent] = field(default_factory=list)
    changed: list[AccountMargin] = field(default_factory=list)
    duplicate: ApiInput | None = None
    skipped: bool = False

    @property
    def rejection(self) -> str | None:
        """The reason if the monitor rejected the input."""
        for e in self.events:
            if e.get("kind") == "rejected":
                return str(e.get("reason", "rejected"))
        return None


# -- the stream's fan-out ------------------------------------------------------------------
class Subscriber:
    """One stream client's queue (bounded) and filter."""

    def __init__(self, accounts: frozenset[str] | None, size: int) -> None:
        self.accounts = accounts
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def wants(self, account: str | None) -> bool:
        """True for events of a followed account (every event when following all)."""
        return self.accounts is None or (account is not None and account in self.accounts)

    def offer(self, message: dict[str, Any]) -> None:
        """Queue ``message``; a full queue marks the client as overflowed (it must resume)."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue = asyncio.Queue(maxsize=1)
            self.queue.put_nowait({"type": "overflow"})


class Hub:
    """Delivers committed events (in commit order) and margin updates to subscribers."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()

    def subscribe(self, accounts: frozenset[str] | None, size: int) -> Subscriber:
        """A new subscriber (buffers from now on)."""
        sub = Subscriber(accounts, size)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget ``sub``."""
        self.subscribers.discard(sub)

    def publish(
        self, seq: int, numbered: list[NumberedEvent], changed: list[AccountMargin]
    ) -> None:
        """Send one step's events, then its margin updates, to whoever follows them."""
        if not self.subscribers:
            return
        for n in numbered:
            msg = {"type": "event", **event_json(n)}
            for sub in list(self.subscribers):
                if sub.wants(n.event.account_id):
                    sub.offer(msg)
        for m in changed:
            msg = {"type": "margin", "seq": seq, "account": m.account_id, "figures": m.to_dict()}
            for sub in list(self.subscribers):
                if sub.wants(m.account_id):
                    sub.offer(msg)


# -- the desk --------------------------------------------------------------------------------
def _fingerprint(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _update_doc(u: MarketUpdate) -> dict[str, Any]:
    return {
        "underlying": u.underlying,
        "time": iso_z(u.time),
        "index": u.index,
        "perpetual": u.perpetual,
        "forwards": {expiry_code(e): f for e, f in u.forwards.items()},
        "vols": dict(u.vols),
    }


def update_from_doc(seq: int, doc: Mapping[str, Any]) -> MarketUpdate:
    """A logged (or posted) market update document as the monitor's input."""
    t = doc["time"]
    when = t if isinstance(t, datetime) else datetime.fromisoformat(str(t).replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise InputError("time: needs a time zone (append Z for UTC)")
    perp = doc.get("perpetual")
    return MarketUpdate(
        seq,
        when.astimezone(UTC),
        str(doc["underlying"]),
        float(doc["index"]),
        None if perp is None else float(perp),
        MappingProxyType(
            {expiry_from_code(k): float(v) for k, v in doc.get("forwards", {}).items()}
        ),
        MappingProxyType({str(k): float(v) for k, v in doc.get("vols", {}).items()}),
    )


def _logged_item(entry: ApiInput) -> FeedItem | None:
    d = entry.document
    if entry.kind == "market":
        return update_from_doc(entry.seq, d)
    if entry.kind in ("trade", "deposit", "withdrawal"):
        when = datetime.fromisoformat(str(d["time"]).replace("Z", "+00:00"))
        return AccountChange(
            entry.seq,
            when,
            entry.kind,
            str(d["account"]),
            str(d.get("instrument", "")),
            float(d.get("quantity", 0.0)),
            str(d.get("currency", "")),
            float(d.get("amount", 0.0)),
        )
    return None  # an account upsert: already in the accounts table


class Desk:
    """The service's state machine (see the module docstring). Build with :meth:`open`."""

    def __init__(
        self,
        settings: ServiceSettings,
        store: Store,
        model: MarginModel,
        account_settings: AccountSettings,
        source: Source,
    ) -> None:
        self.settings = settings
        self.store = store
        self.model = model
        self.account_settings = account_settings
        self.source = source
        self.feed_name = source.name
        self.hub = Hub()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pm-monitor")
        self._lock = asyncio.Lock()
        self._monitor = Monitor(
            store, model, account_settings, feed_name=self.feed_name, full_market=True
        )
        self._assigned = self._monitor.last_seq
        self._dead: list[int] = []
        self._last_event = last_event_id(store)
        self._tasks: list[asyncio.Task[None]] = []
        self.feed_status = "starting"
        self.feed_error: str | None = None
        self.db_ok = True
        self.view = self._make_view()

    # -- building --------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: ServiceSettings) -> tuple[Desk, Callable[[], None]]:
        """Open the database (holding the monitor lease), load accounts, pick the source.

        Returns the desk and a function that releases the lease and closes the database.

        Raises
        ------
        PortmarginError
            One line for a bad database, accounts file, market file or feed.
        """
        from portmargin.io import load_market

        store = open_store(settings.db_url)
        stack = contextlib.ExitStack()
        stack.callback(store.close)
        try:
            stack.enter_context(store.lease(MONITOR_LEASE))
            accounts_file = settings.accounts_file
            if accounts_file is None and DEFAULT_ACCOUNTS.is_file():
                accounts_file = DEFAULT_ACCOUNTS
            account_settings = AccountSettings()
            if accounts_file is not None:
                accts, account_settings = load_accounts(accounts_file)
                if not store.load_accounts():
                    store.save_accounts(accts)
            held = {n for a in store.load_accounts() for n in a.positions}
            market = None if settings.market_file is None else load_market(settings.market_file)
            data_dir = settings.data_dir  # None: the crash day shipped in the package
            source = source_for(
                feed=settings.feed,
                market=market,
                held=held,
                data_dir=data_dir,
                steps=settings.replay_steps,
                seed=settings.seed,
                speed=settings.speed,
                deribit_url=settings.deribit_url,
                stale_after=settings.stale_after_seconds,
            )
            drop_uncommitted(store, source.name, _cursor(store, source.name))
            desk = cls(settings, store, load_model(settings.model), account_settings, source)
        except BaseException:
            stack.close()
            raise
        return desk, stack.close

    async def start(self) -> None:
        """Start consuming the feed (a background task)."""
        self._tasks.append(asyncio.create_task(self._consume(), name="pm-feed"))

    async def stop(self) -> None:
        """Stop the feed task and the worker thread."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the worker thread -------------------------------------------------------------------
    def _make_view(self) -> View:
        mon = self._monitor
        margins = dict(mon.margins)
        ledger = mon.ledger
        if ledger is not None:
            missing = [a for a in ledger.rows if a not in margins]
            if missing:  # margined on a rebuilt ledger, not re-committed: the same figures
                margins.update({m.account_id: m for m in ledger.figures(missing)})
        return View(
            mon.last_seq,
            MappingProxyType(dict(mon.accounts)),
            MappingProxyType(margins),
            MappingProxyType(dict(mon.statuses)),
            mon.market,
            MappingProxyType(dict(mon.states)),
            mon.feed_time,
            self._last_event,
        )

    def _next_seq(self) -> int:
        seq = max(self._monitor.last_seq, self._assigned) + 1
        if self.source.replayable and seq % FEED_STRIDE == 0:
            raise Problem(503, "too many API inputs since the last feed update; retry later")
        self._assigned = seq
        return seq

    def _step(
        self,
        make: Callable[[int], FeedItem] | None,
        item: FeedItem | None,
        entry: Callable[[int], ApiInput] | None,
        check: Callable[[View], None] | None,
    ) -> tuple[Outcome, View]:
        """Process one input on the worker thread; returns its outcome and the new view."""
        mon = self._monitor
        if item is None:
            assert make is not None
            item = make(self._next_seq())
        if item.seq is None:
            item = dataclasses.replace(item, seq=self._next_seq())
        seq: int = item.seq if item.seq is not None else 0
        if entry is not None:
            prior = log_input(self.store, entry(seq), forget=self._dead)
            self._dead.clear()
            if prior is not None:
                return Outcome(seq, duplicate=prior), self.view
        if check is not None:
            try:
                check(self.view)
            except BaseException:
                self._forget(seq)
                raise
        before = dict(mon.margins)
        try:
            events = mon.process(item)
        except BaseException:
            if entry is not None:
                self._forget(seq)
            raise
        out = Outcome(seq, events or [], skipped=events is None)
        if events is None:
            return out, self._make_view() if mon.margined else self.view
        out.changed = [m for a, m in mon.margins.items() if before.get(a) is not m]
        try:
            out.numbered = events_after(self.store, self._last_event, limit=100_000)
        except StorageError:
            out.numbered = []  # committed; delivered with the next step that can read them
        if out.numbered:
            self._last_event = out.numbered[-1].id
        return out, self._make_view()

    def _forget(self, seq: int) -> None:
        """Drop the log row of an input that was not applied (later, if the database is down)."""
        try:
            forget_inputs(self.store, self.feed_name, [seq])
        except StorageError:
            self._dead.append(seq)

    async def _run(
        self,
        *,
        item: FeedItem | None = None,
        make: Callable[[int], FeedItem] | None = None,
        entry: Callable[[int], ApiInput] | None = None,
        check: Callable[[View], None] | None = None,
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        async with self._lock:
            try:
                out, view = await loop.run_in_executor(
                    self._pool, self._step, make, item, entry, check
                )
            except StorageError:
                self.db_ok = False
                raise
            self.db_ok = True
            self.view = view
            self.hub.publish(out.seq, out.numbered, out.changed)
            return out

    # -- the feed ---------------------------------------------------------------------------
    async def _consume(self) -> None:
        src = self.source
        cursor = self._monitor.last_seq
        try:
            logged = [
                i for e in inputs_upto(self.store, self.feed_name, cursor) if (i := _logged_item(e))
            ]
        except StorageError as exc:
            self.feed_status, self.feed_error = "db_unavailable", str(exc)
            logged = []
        self.feed_status = "live" if src.live is not None else "replaying"
        if src.live is not None:
            for it in logged:
                await self._feed_item(it)
            logged = []
            await self._warm_up()
        start_wall: float | None = None
        start_feed: datetime | None = None
        try:
            async for item in src.numbered():
                n = item.seq
                while logged and n is not None and (logged[0].seq or 0) < n:
                    await self._feed_item(logged.pop(0))
                t = getattr(item, "time", None)
                new = n is None or n > cursor
                if src.speed > 0 and new and isinstance(t, datetime):
                    if start_wall is None or start_feed is None:
                        start_wall, start_feed = time.monotonic(), t
                    due = (t - start_feed).total_seconds() / src.speed
                    lag = due - (time.monotonic() - start_wall)
                    if lag > 0:
                        await asyncio.sleep(lag)
                await self._feed_item(item)
            for it in logged:
                await self._feed_item(it)
            await self._warm_up()
            self.feed_status = "finished" if src.kind != "static" else "static"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.feed_status, self.feed_error = "failed", str(exc)[:300]
            log.error("feed %s failed: %s", self.feed_name, exc, exc_info=exc)

    async def _feed_item(self, item: FeedItem) -> None:
        """Process a feed item; a database fault is retried with back-off until it passes."""
        delay = 0.2
        while True:
            try:
                await self._run(item=item)
                if self.feed_status == "db_unavailable":
                    self.feed_status = "live" if self.source.live is not None else "replaying"
                return
            except StorageError as exc:
                self.feed_status, self.feed_error = "db_unavailable", str(exc)[:300]
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _warm_up(self) -> None:
        """After a restart, margin every account on the folded market state (one input)."""
        mon = self._monitor
        if mon.ledger is not None or not mon.states or mon.feed_time is None:
            return
        latest = [u for u in mon.states.values() if u.time == mon.feed_time][-1]

        def make(seq: int) -> FeedItem:
            return MarketUpdate(
                seq,
                latest.time,
                latest.underlying,
                latest.index,
                latest.perpetual,
                latest.forwards,
                latest.vols,
            )

        await self._run(make=make)

    # -- API inputs --------------------------------------------------------------------------
    def stale_problem(self, underlyings: Iterable[str] | None = None) -> str | None:
        """Why the service market must not be margined on now (stale live data), or None."""
        live = self.source.live
        if live is None:
            return None
        stale = live.stale()
        names = sorted(stale if underlyings is None else set(stale) & set(underlyings))
        if not names:
            return None
        parts = [
            f"{u} (no index on this connection)"
            if stale[u] is None
            else f"{u} ({stale[u]:.1f} s old)"
            for u in names
        ]
        return "market data is stale for " + ", ".join(parts) + "; not margining on old prices"

    def market(self) -> MarketSnapshot:
        """The service's current market, or a 503 problem before data / on stale data."""
        snap = self.view.market
        if snap is None:
            raise Problem(
                503,
                "no market data yet; retry when the feed has delivered prices",
                headers={"Retry-After": "1"},
            )
        problem = self.stale_problem()
        if problem is not None:
            raise Problem(503, problem, headers={"Retry-After": "1"})
        return snap

    async def account_change(
        self,
        *,
        kind: str,
        account: str,
        instrument: str = "",
        quantity: float = 0.0,
        currency: str = "",
        amount: float = 0.0,
        client_order_id: str | None = None,
    ) -> Outcome:
        """A trade, deposit or withdrawal through the monitor (logged; idempotent by order id)."""
        self.market()  # refuse on stale or missing data
        doc: dict[str, Any] = {"account": account, "kind": kind}
        if kind == "trade":
            doc.update(instrument=instrument, quantity=quantity)
        else:
            doc.update(currency=currency.upper(), amount=amount)
        fp = _fingerprint(doc)

        def make(seq: int) -> FeedItem:
            when = self.view.feed_time or datetime.now(UTC)
            return AccountChange(
                seq, when, kind, account, instrument, quantity, currency.upper(), amount
            )

        def entry(seq: int) -> ApiInput:
            when = self.view.feed_time or datetime.now(UTC)
            return ApiInput(
                self.feed_name,
                seq,
                kind,
                account,
                client_order_id,
                fp,
                {**doc, "time": iso_z(when), "client_order_id": client_order_id},
            )

        out = await self._run(make=make, entry=entry)
        if out.duplicate is not None and out.duplicate.fingerprint != fp:
            raise Problem(
                409,
                f"client_order_id {client_order_id!r} was used for a different order "
                f"(input {out.duplicate.seq}); use a new id",
                field="client_order_id",
            )
        if out.duplicate is not None:
            out.numbered = await asyncio.to_thread(
                events_at, self.store, out.duplicate.seq, account
            )
            out.seq = out.duplicate.seq
            out.events = [n.event.payload | {"kind": n.event.kind} for n in out.numbered]
        return out

    async def push_market(self, updates: list[MarketUpdate]) -> list[Outcome]:
        """Pushed market data, one input per underlying (logged)."""
        outs = []
        for u in updates:
            doc = _update_doc(u)

            def make(seq: int, u: MarketUpdate = u) -> FeedItem:
                return MarketUpdate(
                    seq, u.time, u.underlying, u.index, u.perpetual, u.forwards, u.vols
                )

            def entry(seq: int, doc: dict[str, Any] = doc) -> ApiInput:
                return ApiInput(self.feed_name, seq, "market", None, None, None, doc)

            outs.append(await self._run(make=make, entry=entry))
        return outs

    async def upsert_account(self, account: Account) -> tuple[bool, Outcome | None]:
        """Store a new account and margin it (a market input re-asserting the latest state).

        Returns ``(created, outcome)``; an identical existing account is left alone.

        Raises
        ------
        Problem
            409 if the account exists with other holdings (change it by trades and transfers).
        """
        have = self.view.accounts.get(account.account_id)
        if have is not None:
            if have.to_dict() == account.to_dict():
                return False, None
            raise Problem(
                409,
                f"account {account.account_id!r} exists with other holdings; change it with "
                "trades, deposits and withdrawals (they pass the pre-trade rule)",
            )
        loop = asyncio.get_running_loop()
        async with self._lock:
            await loop.run_in_executor(self._pool, self._add_account, account)
        mon = self._monitor
        if not mon.states or mon.feed_time is None:
            return True, None
        latest = [u for u in mon.states.values() if u.time == mon.feed_time][-1]
        doc = _update_doc(latest)

        def make(seq: int) -> FeedItem:
            return update_from_doc(seq, doc)

        def entry(seq: int) -> ApiInput:
            return ApiInput(self.feed_name, seq, "market", None, None, None, doc)

        return True, await self._run(make=make, entry=entry)

    def _add_account(self, account: Account) -> None:
        """Store ``account`` and restart the monitor on the stored accounts (worker thread)."""
        self.store.save_accounts([account])
        self._monitor.reload()  # the market state (settlements, start indices) is kept
        self.view = self._make_view()


def _cursor(store: Store, feed: str) -> int:
    c = store.cursor(feed)
    return 0 if c is None else c.last_seq
