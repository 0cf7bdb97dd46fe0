r"""The event-driven margin monitor.

Each input event (a :class:`MarketUpdate` of one underlying, or an :class:`AccountChange`)
is processed as one unit:

1. **Validate** it (:mod:`portmargin.monitor._validate`: sequence number, time, bounds of every
   number, known underlying, account, currency and instrument, a withdrawal within the
   balance, the pre-trade rule). A refused event is **rejected** with a one-line reason.
2. **Apply it to the ledger** (:class:`~portmargin.accounts.Ledger`, the account layer's
   state: every account on one :class:`~portmargin.models.session.MarginSession`). A
   market update of underlying ``u`` is ``ledger.tick``: the futures and perpetuals of ``u``
   are settled to market (variation margin), the risk array of ``u`` is recomputed and only
   the accounts exposed to ``u`` are re-margined, in one vectorised pass. Options and dated
   futures of ``u`` that expired by the update's time are then **settled**: an option pays
   its intrinsic value against the expiry's settlement price into the settlement-currency
   balance, a future has been settled to that price by the variation margin; the position is
   removed (an ``expiry`` event per account). An account change is ``ledger.with_account``
   and is accepted or refused by the one pre-trade rule
   (:func:`portmargin.accounts.pre_trade`). The qualification gate is applied when an
   account is first margined and on its own changes, never on a market move.
3. **Emit** events: ``margin_call``, ``liquidation`` and ``healthy`` (back to healthy) on a
   status change, each with the account, its figures, the market time and the input event
   that caused it; ``trade``/``deposit``/``withdrawal`` for accepted changes; ``expiry``;
   ``account_error`` / ``account_restored``; ``rejected``.
4. **Commit** the changed accounts, their snapshots, the events and the feed cursor in one
   transaction (:meth:`Store.commit_step`), and only then update the in-memory state.

**Nothing stops the monitor on data.** Any exception while applying one event (a
:class:`~portmargin.errors.PortmarginError`, a bug, a NumPy error, a non-finite figure found
before the commit) rolls that event back and records it as a rejection with its reason; the
cursor moves past it. Only storage faults (:class:`~portmargin.errors.StorageError`: a full
disk, a lost server, a lease taken over) stop the monitor, with one line.

**One account cannot blind the desk.** An account whose figures cannot be computed (it
holds an option that expired without a settlement price, or its figures are not finite) is
excluded from margining with an ``account_error`` event naming the reason; every other
account is margined as usual. It is checked again on each update of its underlyings and
comes back with an ``account_restored`` event once its figures can be computed (its
variation margin restarts from the marks of that moment). Account changes to it are refused
meanwhile. Exclusions are stored with the account and survive restarts.

**Re-pricing.** A market update of ``u`` re-prices the options of ``u`` only: the snapshot
it ticks on is built (:func:`~portmargin.market.build_market`) from every underlying's
index, forwards and settlements but the option quotes of ``u`` alone, and the risk arrays of
the other underlyings are reused. The snapshot with every quote (:attr:`Monitor.market`) is
built when something needs it: an account change (premiums, the gate's rules fallback), an
expiry, an account on the rules fallback that holds other underlyings, a (re)opening.

Resume: input events at or below the committed cursor (by feed position, or by ``seq`` for
items without one) are not reprocessed: market updates are only folded into the market
state (no output; those rejected before are skipped again), account changes are already in
the database.

Time: the risk array of an underlying is computed at that underlying's own update time, so
between the updates of two underlyings each keeps the valuation time of its last update.
A feed that updates every underlying at each step (the replay does) is, after the last
update of a step, margined exactly as ``portmargin margin`` on that step's market.
"""

from __future__ import annotations

import dataclasses
import time as _time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from portmargin.accounts import (
    Account,
    AccountMargin,
    AccountSettings,
    Ledger,
    evaluate_account,
    pre_trade,
)
from portmargin.errors import PortmarginError, StorageError
from portmargin.instruments import (
    BUILTIN_PRODUCTS,
    Instrument,
    Option,
    ProductSpec,
    expiry_code,
    parse_instrument,
)
from portmargin.market.snapshot import MarketSnapshot, OptionQuote, UnderlyingQuote, build_market
from portmargin.models import MarginModel
from portmargin.models.session import MarginSession
from portmargin.monitor._events import (
    SEQ_MAX,
    AccountChange,
    FeedItem,
    Malformed,
    MarketUpdate,
    jsonable,
    one_line,
)
from portmargin.monitor._validate import (
    RejectedError,
    check_change,
    check_market,
    check_seq,
    check_time,
    finite_figures,
    merged_state,
    settlement_prices,
)
from portmargin.risk import RiskArray
from portmargin.storage import Store
from portmargin.units import STABLE_CURRENCIES, iso_z

__all__ = ["Monitor", "RunStats", "market_to_dict", "states_of"]

STATUS_EVENTS = ("margin_call", "liquidation", "healthy")
Settled = Mapping[tuple[str, datetime], float]


def market_to_dict(snap: MarketSnapshot, states: Mapping[str, MarketUpdate]) -> dict[str, Any]:
    """The market-file JSON (``portmargin margin --market``) of a monitor market state."""
    doc: dict[str, Any] = {
        "valuation_time": iso_z(snap.valuation_time),
        "underlyings": {u: {"spot": s.index, "rate": s.rate or 0.0} for u, s in states.items()},
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
    settlements: dict[str, dict[str, float]] = {}
    for (u, e), p in snap.settlements.items():
        settlements.setdefault(u, {})[expiry_code(e)] = p
    if settlements:
        doc["settlements"] = settlements
    custom = {k: p for k, p in snap.products.items() if BUILTIN_PRODUCTS.get(k) != p}
    if custom:
        doc["products"] = {
            k: {
                "settlement": p.settlement.value,
                "quote_currency": p.quote_currency,
                "multiplier": p.multiplier,
                "underlying": p.underlying,
            }
            for k, p in custom.items()
        }
    return doc


def states_of(market: MarketSnapshot) -> dict[str, MarketUpdate]:
    """The monitor's per-underlying states of a snapshot (a feed seeded with ``--market``).

    Index, perpetual and rate as given; a forward for every expiry the snapshot quotes (its
    explicit forwards, and ``market.forward`` of each quoted option's and marked future's
    expiry); the mark vols of the quoted options.
    """
    out: dict[str, MarketUpdate] = {}
    for u, q in market.underlyings.items():
        names = market.option_names(u)
        expiries = {e for (v, e) in market.forwards if v == u}
        expiries |= {x.expiry for n in names if (x := market.instrument(n)).expiry is not None}
        for name in market.futures:
            x = market.instrument(name)
            if x.underlying == u and x.expiry is not None:
                expiries.add(x.expiry)
        live = sorted(e for e in expiries if e > market.valuation_time)
        out[u] = MarketUpdate(
            0,
            market.valuation_time,
            u,
            q.spot,
            q.perpetual,
            MappingProxyType({e: market.forward(u, e) for e in live}),
            MappingProxyType({n: market.option_iv[n] for n in names}),
            MappingProxyType({}),
            q.rate,
        )
    return out


@dataclass
class RunStats:
    """Counters of a monitor run."""

    processed: int = 0
    skipped: int = 0
    rejected: int = 0
    emitted: int = 0
    seconds: float = 0.0
    market_seconds: list[float] = field(default_factory=list)

    @property
    def updates_per_second(self) -> float:
        """Processed input events per wall-clock second."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0


class _NonFiniteError(Exception):
    """Figures that are not finite, by account (internal control flow)."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{a}: {r}" for a, r in problems.items()))
        self.problems = dict(problems)


@dataclass
class _Step:
    """The outcome of one market event, before it is committed."""

    ledger: Ledger
    snap: MarketSnapshot
    full: bool
    margins: dict[str, AccountMargin] = field(default_factory=dict)
    changed: dict[str, Account] = field(default_factory=dict)
    errors: dict[str, str | None] = field(default_factory=dict)
    expiries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)


class Monitor:
    """Margin monitor over a :class:`~portmargin.storage.Store` (see the module docstring).

    The monitor orchestrates: it validates an event, applies it to the ledger, persists the
    outcome in one transaction and only then adopts the new ledger. It assembles the market
    from the feed (each underlying valued at its own last update time); every margin
    figure and decision comes from the account layer.

    Parameters
    ----------
    store
        The durable state (accounts, cursor, events).
    model
        The portfolio-margin model.
    settings
        Account settings (haircuts, levels, the qualification gate).
    feed_name
        The cursor key of the feed.
    recent
        How many recent events :attr:`recent` keeps (for a view).
    market
        A seed market (``portmargin monitor --market FILE``): its state is the first state of
        every underlying, so that later lines may update only some fields (an index-only
        line moves forwards and perpetual with the index, vols unchanged).
    full_market
        Build every step's market with every underlying's quotes (one build), for a caller
        that reads :attr:`market` after each step (the service's view); by default a step
        builds the moved underlying's quotes only and :attr:`market` is built when asked.
    """

    def __init__(
        self,
        store: Store,
        model: MarginModel,
        settings: AccountSettings,
        *,
        feed_name: str,
        recent: int = 50,
        market: MarketSnapshot | None = None,
        full_market: bool = False,
    ) -> None:
        self.full_market = full_market
        self.store = store
        self.model = model
        self.settings = settings
        self.feed_name = feed_name
        self.accounts: dict[str, Account] = {a.account_id: a for a in store.load_accounts()}
        self.statuses: dict[str, str] = store.statuses()
        self.methods: dict[str, str] = store.margin_methods()
        self.errors: dict[str, str] = store.account_errors()
        self.margins: dict[str, AccountMargin] = {}
        self.products: Mapping[str, ProductSpec] = (
            BUILTIN_PRODUCTS if market is None else market.products
        )
        self.states: dict[str, MarketUpdate] = {}
        self.settled: dict[tuple[str, datetime], float] = {}
        self.feed_time: datetime | None = None
        if market is not None:
            self.states = states_of(market)
            self.settled = dict(market.settlements)
            self.feed_time = market.valuation_time
        self.start_index: dict[str, float] = {u: s.index for u, s in self.states.items()}
        self.ledger: Ledger | None = None
        cursor = store.cursor(feed_name)
        self.last_seq = cursor.last_seq if cursor else 0
        self.cursor_position: int | None = cursor.position if cursor else None
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.stats = RunStats()
        self._full: MarketSnapshot | None = None
        self._pending: dict[str, str] = {}
        self._rejected_before: tuple[set[int], set[int]] | None = None
        self._parsed: dict[str, Instrument] = {}
        self._quote_cache: dict[str, tuple[MarketUpdate, dict[str, OptionQuote]]] = {}
        self._held: dict[str, dict[datetime, set[str]]] | None = None
        self._expiry_cache: dict[str, tuple[MarketUpdate, set[datetime]]] = {}
        self._underlyings = {p.underlying for p in self.products.values()}

    def reload(self) -> None:
        """Read the accounts, statuses, methods and exclusions from the store again.

        For a caller that changed the stored accounts (e.g. added one) between two events:
        the market state is kept, and the ledger is rebuilt from the store at the next event
        (as on a restart).
        """
        self.accounts = {a.account_id: a for a in self.store.load_accounts()}
        self.statuses = self.store.statuses()
        self.methods = self.store.margin_methods()
        self.errors = self.store.account_errors()
        self.margins = {a: m for a, m in self.margins.items() if a in self.accounts}
        self.ledger = None
        self._held = None

    @property
    def margined(self) -> bool:
        """Whether the accounts have been margined on the current state (a ledger is open)."""
        return self.ledger is not None

    # -- views of the state -------------------------------------------------------------
    @property
    def session(self) -> MarginSession | None:
        """The ledger's session (``None`` before any market data)."""
        return None if self.ledger is None else self.ledger.session

    @property
    def market(self) -> MarketSnapshot | None:
        """The market state with every quote, at the feed time (built when first asked)."""
        if self._full is None and self.states:
            when = max(s.time for s in self.states.values())
            self._full = self._snapshot(self.states, self.settled, when, None)
        return self._full

    def status_counts(self) -> dict[str, int]:
        """Accounts per status (``healthy``, ``margin_call``, ``liquidation``, ``error``)."""
        out = dict.fromkeys((*STATUS_EVENTS, "error"), 0)
        for a in self.accounts:
            key = "error" if a in self.errors else self.statuses.get(a, "healthy")
            out[key] = out.get(key, 0) + 1
        return out

    # -- instruments and market snapshots -----------------------------------------------
    def _inst(self, name: str) -> Instrument:
        inst = self._parsed.get(name)
        if inst is None:
            inst = self._parsed[name] = parse_instrument(name, self.products)
        return inst

    def _expiry(self, name: str) -> datetime:
        e = self._inst(name).expiry
        if e is None:
            raise RejectedError(f"{name} has no expiry")
        return e

    def _option_underlying(self, name: str) -> str:
        inst = self._inst(name)
        if not isinstance(inst, Option):
            raise RejectedError(f"{name} is not an option")
        return inst.underlying

    def _quotes(self, state: MarketUpdate) -> dict[str, OptionQuote]:
        hit = self._quote_cache.get(state.underlying)
        if hit is not None and hit[0] is state:
            return hit[1]
        quotes = {n: OptionQuote(mark_iv=v) for n, v in state.vols.items()}
        self._quote_cache[state.underlying] = (state, quotes)
        return quotes

    def _snapshot(
        self,
        states: Mapping[str, MarketUpdate],
        settled: Settled,
        when: datetime,
        only: str | None,
    ) -> MarketSnapshot:
        """The market at ``when`` with the option quotes of ``only`` (all when ``None``).

        Every underlying's index, rate, perpetual, forwards and settlement prices are in it;
        the option quotes (and so the smile) only of ``only``.
        """
        options: dict[str, OptionQuote] = {}
        for u, s in states.items():
            if only is None or u == only:
                options.update(self._quotes(s))
        return build_market(
            valuation_time=when,
            underlyings={
                u: UnderlyingQuote(s.index, s.rate or 0.0, s.perpetual) for u, s in states.items()
            },
            products=self.products,
            forwards={(u, e): f for u, s in states.items() for e, f in s.forwards.items()},
            options=options,
            settlements={k: p for k, p in settled.items() if k[1] <= when},
            source=self.feed_name,
        )

    def _session_for(
        self,
        states: Mapping[str, MarketUpdate],
        settled: Settled,
        snap: MarketSnapshot,
        only: str | None,
        base: Ledger | None,
    ) -> Callable[[tuple[str, ...]], MarginSession]:
        """Sessions on ``snap`` whose underlyings are each valued at their own update time.

        ``base``'s risk array of an underlying is reused when the universe's instruments on
        it are unchanged; any other is computed on a snapshot of that underlying's quotes at
        its last update time (``snap`` itself when it has them at that time).
        """

        def build(universe: tuple[str, ...]) -> MarginSession:
            old = base.session.arrays if base is not None else {}
            names: dict[str, list[str]] = {}
            for n in universe:
                names.setdefault(self._inst(n).underlying, []).append(n)
            arrays: dict[str, RiskArray] = {}
            for und, group in names.items():
                have = old.get(und)
                if have is not None and have.table.names == tuple(group):
                    arrays[und] = have
                    continue
                t = states[und].time
                own = t == snap.valuation_time and only in (None, und)
                at = snap if own else self._snapshot(states, settled, t, und)
                arrays[und] = self.model.risk_arrays([at.instrument(n) for n in group], at)[und]
            return MarginSession(snap, self.model, universe, arrays)

        return build

    # -- accounts, exposures and problems -----------------------------------------------
    def _exposures(self, a: Account) -> set[str]:
        unds = {self._inst(n).underlying for n in a.positions}
        unds |= {c for c in a.balances if c not in STABLE_CURRENCIES}
        return unds

    def _held_expiries(self, u: str) -> dict[datetime, set[str]]:
        """Expiries of ``u``'s instruments held by any account, with their holders."""
        if self._held is None:
            held: dict[str, dict[datetime, set[str]]] = {}
            for a in self.accounts.values():
                for n in a.positions:
                    x = self._inst(n)
                    if x.expiry is not None:
                        held.setdefault(x.underlying, {}).setdefault(x.expiry, set()).add(
                            a.account_id
                        )
            self._held = held
        return self._held.get(u, {})

    def _known_expiries(self, u: str, prev: MarketUpdate | None) -> set[datetime]:
        """Expiries of ``u`` the monitor knows of: held, in the universe, quoted, forwarded."""
        out = set(self._held_expiries(u))
        if self.ledger is not None:
            out |= {
                e
                for n in self.ledger.session.instruments
                if (x := self._inst(n)).underlying == u and (e := x.expiry) is not None
            }
        if prev is not None:
            out |= set(prev.forwards)
            out |= self._quoted_expiries(prev)
        return out

    def _quoted_expiries(self, state: MarketUpdate) -> set[datetime]:
        """Expiries of the options a state quotes (computed once per state)."""
        hit = self._expiry_cache.get(state.underlying)
        if hit is not None and hit[0] is state:
            return hit[1]
        names = state.vols
        prev = self._expiry_cache.get(state.underlying)
        if prev is not None and prev[0].vols.keys() == names.keys():
            out = prev[1]  # the same options (a full restatement): the same expiries
        else:
            out = {self._expiry(n) for n in names}
        self._expiry_cache[state.underlying] = (state, out)
        return out

    def _unpriced(self, a: Account, settled: Settled, states: Mapping[str, MarketUpdate]) -> str:
        """Why ``a`` cannot be valued: an expired position without a settlement price ("")."""
        for n in a.positions:
            x = self._inst(n)
            s = states.get(x.underlying)
            if x.expiry is None or s is None or x.expiry > s.time:
                continue
            if (x.underlying, x.expiry) not in settled:
                return (
                    f"{x.name} expired at {iso_z(x.expiry)} and no settlement price is known "
                    f"for {x.underlying} {expiry_code(x.expiry)}"
                )
        return ""

    def _account_problem(
        self,
        a: Account,
        full: MarketSnapshot,
        states: Mapping[str, MarketUpdate],
        settled: Settled,
    ) -> str:
        """Why ``a``'s figures cannot be computed on ``full`` ("" if they can)."""
        why = self._unpriced(a, settled, states)
        if why:
            return why
        try:
            m = evaluate_account(
                a, full, self.model, self.settings, method=self.methods.get(a.account_id)
            )
        except StorageError:
            raise
        except Exception as exc:
            return one_line(exc)
        return finite_figures(m) or ""

    def _ready(self, states: Mapping[str, MarketUpdate], skip: Iterable[str]) -> list[Account]:
        """Accounts with data for every underlying they are exposed to, except ``skip``."""
        excluded = set(skip)
        out = []
        for a in self.accounts.values():
            if a.account_id in excluded:
                continue
            try:
                exposed = self._exposures(a)
            except PortmarginError:
                continue  # an unparseable name: refused when the account was loaded
            if exposed <= set(states):
                out.append(a)
        return out

    def _open(
        self,
        states: Mapping[str, MarketUpdate],
        settled: Settled,
        full: MarketSnapshot,
        skip: Iterable[str],
        base: Ledger | None,
    ) -> tuple[Ledger, dict[str, str]]:
        """A ledger of the ready accounts on ``full``, excluding those that fail (and why)."""
        ready = self._ready(states, skip)
        bad = {a.account_id: why for a in ready if (why := self._unpriced(a, settled, states))}
        ready = [a for a in ready if a.account_id not in bad]
        session_for = self._session_for(states, settled, full, None, base)
        try:
            ledger = Ledger.open(self.model, self.settings, ready, full, session_for, self.methods)
        except (StorageError, RejectedError):
            raise
        except Exception:
            more = {
                a.account_id: why
                for a in ready
                if (why := self._account_problem(a, full, states, settled))
            }
            if not more:
                raise
            bad.update(more)
            ready = [a for a in ready if a.account_id not in more]
            ledger = Ledger.open(self.model, self.settings, ready, full, session_for, self.methods)
        return ledger, bad

    def _current_ledger(self) -> Ledger | None:
        """The ledger of the committed state; opened on a resume (failing accounts excluded).

        Accounts excluded here are recorded with the next committed step.
        """
        if self.ledger is None and self.states:
            full = self.market
            assert full is not None
            ledger, bad = self._open(self.states, self.settled, full, self.errors, None)
            self.ledger = ledger
            self.errors.update(bad)
            self._pending.update(bad)
        return self.ledger

    def _on_full(self, ledger: Ledger, full: MarketSnapshot) -> Ledger:
        """``ledger`` on the snapshot with every quote (same risk arrays, same figures)."""
        if ledger.market is full:
            return ledger
        session = ledger.session
        return dataclasses.replace(
            ledger, session=MarginSession(full, self.model, session.instruments, session.arrays)
        )

    def _rules_elsewhere(self, u: str) -> bool:
        """An account on the rules fallback exposed to ``u`` holds another underlying."""
        if self.ledger is None:
            return False
        for a, method in self.ledger.methods.items():
            if method != "rules":
                continue
            unds = self._exposures(self.ledger.accounts[a])
            if u in unds and len(unds - {u} - set(STABLE_CURRENCIES)) > 0:
                return True
        return False

    def _expiring(self, u: str, when: datetime) -> bool:
        """Some instrument of ``u``, held or in the universe, has expired by ``when``."""
        if any(e <= when for e in self._held_expiries(u)):
            return True
        if self.ledger is None:
            return False
        return any(
            (x := self._inst(n)).underlying == u and x.expiry is not None and x.expiry <= when
            for n in self.ledger.session.instruments
        )

    # -- processing ---------------------------------------------------------------------
    def _committed(self, item: FeedItem) -> bool:
        if item.position is not None and self.cursor_position is not None:
            return item.position <= self.cursor_position
        return item.seq is not None and item.seq <= self.last_seq

    def _was_rejected(self, item: MarketUpdate) -> bool:
        if self._rejected_before is None:
            positions: set[int] = set()
            seqs: set[int] = set()
            for e in self.store.events(kinds=["rejected"]):
                p = e.payload
                if p.get("input") != "market" or p.get("feed", self.feed_name) != self.feed_name:
                    continue
                if isinstance(p.get("position"), int):
                    positions.add(p["position"])
                elif isinstance(p.get("seq"), int):
                    seqs.add(p["seq"])
            self._rejected_before = (positions, seqs)
        positions, seqs = self._rejected_before
        if item.position is not None and item.position in positions:
            return True
        return item.seq in seqs

    def process(self, item: FeedItem) -> list[dict[str, Any]] | None:
        """Process one input event; returns the emitted events, or None if already committed.

        Never raises on data: a refused or failing event is recorded as ``rejected``. A
        :class:`~portmargin.errors.StorageError` (nothing of the event written) propagates.
        """
        if self._committed(item):
            if isinstance(item, MarketUpdate) and not self._was_rejected(item):
                self._fold(item)
            self.stats.skipped += 1
            return None
        try:
            return self._apply(item)
        except StorageError:
            raise
        except (RejectedError, PortmarginError) as exc:
            reason = one_line(exc)
        except Exception as exc:  # a bug or a numerical fault: roll back this event only
            reason = one_line(f"internal error while applying it ({type(exc).__name__}: {exc})")
        return self._reject(item, reason)

    def _fold(self, item: MarketUpdate) -> None:
        """Fold an already committed market update into the state (no output)."""
        try:
            t = check_time(item.time, None)
            item = dataclasses.replace(item, time=t)
            u = item.underlying
            prev = self.states.get(u)
            known = {e: p for (v, e), p in self.settled.items() if v == u}
            prices = settlement_prices(prev, item, self._known_expiries(u, prev), known)
            state = merged_state(prev, item, self._expiry)
        except (RejectedError, PortmarginError):
            return
        self.settled.update({(u, e): p for e, p in prices.items()})
        self.states[u] = state
        self.start_index.setdefault(u, state.index)
        self.feed_time = t
        self._full = None
        self.ledger = None  # rebuilt from the folded state at the first new event

    def _apply(self, item: FeedItem) -> list[dict[str, Any]]:
        if isinstance(item, Malformed):
            raise RejectedError(f"malformed feed line: {item.reason}")
        check_seq(item.seq, self.last_seq)
        t = check_time(item.time, self.feed_time)
        if isinstance(item, MarketUpdate):
            return self._on_market(dataclasses.replace(item, time=t))
        return self._on_account(item)

    def _reject(self, item: FeedItem, reason: str) -> list[dict[str, Any]]:
        usable = item.seq is not None and 1 <= item.seq <= SEQ_MAX and item.seq > self.last_seq
        seq = item.seq if usable and item.seq is not None else self.last_seq
        when = iso_z(self.feed_time) if self.feed_time else ""
        payload: dict[str, Any] = {
            "seq": item.seq,
            "position": item.position,
            "feed": self.feed_name,
            "input": item.kind,
            "reason": reason,
            "market_time": when,
        }
        if isinstance(item, AccountChange):
            payload["account"] = item.account
            payload["change"] = item.describe()
        if isinstance(item, Malformed):
            payload["line"] = item.line
        cause = {"seq": seq, "input": item.kind}
        events = [{"kind": "rejected", **payload}, *self._error_events(self._pending, cause, when)]
        self.store.commit_step(
            feed=self.feed_name,
            seq=seq,
            position=item.position,
            market_time=when,
            events=[(e["kind"], e.get("account"), jsonable(e)) for e in events],
            errors=dict(self._pending),
            anchored=not usable,
        )
        self._pending.clear()
        self.last_seq = seq
        self.cursor_position = item.position
        self.stats.processed += 1
        self.stats.rejected += 1
        self.stats.emitted += len(events) - 1
        self._remember(events)
        return events

    def _error_events(
        self, errors: Mapping[str, str | None], cause: dict[str, Any], when: str
    ) -> list[dict[str, Any]]:
        return [
            {
                "kind": "account_error",
                "account": a,
                "reason": why,
                "previous": self.statuses.get(a, "healthy"),
                "market_time": when,
                "cause": cause,
            }
            for a, why in errors.items()
            if why is not None
        ]

    # -- market updates -----------------------------------------------------------------
    def _on_market(self, item: MarketUpdate) -> list[dict[str, Any]]:
        t0 = _time.perf_counter()
        u = item.underlying
        check_market(item, underlyings=self._underlyings, option_underlying=self._option_underlying)
        prev = self.states.get(u)
        known = {e: p for (v, e), p in self.settled.items() if v == u}
        prices = settlement_prices(prev, item, self._known_expiries(u, prev), known)
        state = merged_state(prev, item, self._expiry)
        states = {**self.states, u: state}
        settled = {**self.settled, **{(u, e): p for e, p in prices.items()}}
        step = self._market_step(item, states, settled)
        when = iso_z(item.time)
        cause = {"seq": item.seq, "input": "market", "underlying": u}
        errors = {**self._pending, **step.errors}
        events = self._error_events(errors, cause, when)
        for a, lines in step.expiries.items():
            fig = step.margins.get(a)
            events.append(
                {
                    "kind": "expiry",
                    "account": a,
                    "market_time": when,
                    "cause": cause,
                    "settled": lines,
                    "balances": dict(step.changed[a].balances),
                    "figures": None if fig is None else fig.to_dict(),
                }
            )
        for a in step.restored:
            events.append(
                {
                    "kind": "account_restored",
                    "account": a,
                    "market_time": when,
                    "cause": cause,
                    "figures": step.margins[a].to_dict(),
                }
            )
        margins = list(step.margins.values())
        events += self._transitions(margins, cause, when)
        self.store.commit_step(
            feed=self.feed_name,
            seq=item.seq,
            position=item.position,
            market_time=when,
            accounts=list(step.changed.values()),
            margins=margins,
            events=[(e["kind"], e["account"], e) for e in events],
            errors=errors,
        )
        self._adopt_accounts(step.changed)
        for a, why in errors.items():
            if why is None:
                self.errors.pop(a, None)
            else:
                self.errors[a] = why
        self._pending.clear()
        self.states, self.settled, self.ledger = states, settled, step.ledger
        self._full = step.snap if step.full else None
        self.feed_time = item.time
        self.start_index.setdefault(u, state.index)
        self._after_commit(item, margins, events)
        self.stats.market_seconds.append(_time.perf_counter() - t0)
        return events

    def _market_step(
        self, item: MarketUpdate, states: dict[str, MarketUpdate], settled: Settled
    ) -> _Step:
        """Tick, settle expiries, exclude failing accounts and restore healed ones."""
        u, when = item.underlying, item.time
        light = (
            self.ledger is not None
            and u in self.states
            and not self._expiring(u, when)
            and not self._rules_elsewhere(u)
        )
        snap_full = not light or self.full_market
        snap = self._snapshot(states, settled, when, None if snap_full else u)
        exclude: dict[str, str] = {}
        for attempt in (0, 1):
            try:
                return self._tick(
                    item,
                    states,
                    settled,
                    snap,
                    full=snap_full,
                    exclude=exclude,
                    rebuild=attempt > 0,
                )
            except (StorageError, RejectedError):
                raise
            except _NonFiniteError as exc:
                if attempt:
                    raise
                exclude = exc.problems
            except Exception:
                if attempt:
                    raise
                full = snap if snap_full else self._snapshot(states, settled, when, None)
                base = self.ledger
                accounts = base.accounts.values() if base is not None else self.accounts.values()
                exclude = {
                    a.account_id: why
                    for a in accounts
                    if a.account_id not in self.errors
                    and u in self._exposures(a)
                    and (why := self._account_problem(a, full, states, settled))
                }
            if not snap_full:
                snap, snap_full = self._snapshot(states, settled, when, None), True
        raise AssertionError("unreachable")  # pragma: no cover

    def _tick(
        self,
        item: MarketUpdate,
        states: dict[str, MarketUpdate],
        settled: Settled,
        snap: MarketSnapshot,
        *,
        full: bool,
        exclude: Mapping[str, str],
        rebuild: bool,
    ) -> _Step:
        u, when = item.underlying, item.time
        base = self._current_ledger()
        errors: dict[str, str | None] = dict(exclude)
        skip = {*self.errors, *exclude}
        if base is None or u not in self.states:
            # First data of an underlying: more accounts may now be margined.
            assert full, "a ledger is opened on the snapshot with every quote"
            ledger, bad = self._open(states, settled, snap, skip, base)
            errors.update(bad)
            exposed = ledger.session.exposed(ledger.book, {u}, balances=True)
            ids = [ledger.book.accounts[int(i)] for i in exposed]
            figures = ledger.figures(ids)
            ledger = ledger.with_methods(figures)
            step = _Step(ledger, snap, full, {m.account_id: m for m in figures})
        else:
            unpriced: dict[str, str] = {}
            if self._expiring(u, when):
                unpriced = {
                    a: why
                    for a, acct in base.accounts.items()
                    if a not in skip and (why := self._unpriced(acct, settled, states))
                }
            errors.update(unpriced)
            if unpriced or exclude or rebuild:
                # Rebuild on the previous market without them (keeps variation margin).
                prev = self.market
                assert prev is not None
                keep = [a for a in base.accounts.values() if a.account_id not in errors]
                session_for = self._session_for(self.states, self.settled, prev, None, base)
                base = Ledger.open(self.model, self.settings, keep, prev, session_for, base.methods)
            ledger, figures, changed = base.tick(snap, u)
            step = _Step(ledger, snap, full, {m.account_id: m for m in figures}, dict(changed))
        step.errors = errors
        problems = {
            a: f"its figures are not finite ({issue})"
            for a, m in step.margins.items()
            if (issue := finite_figures(m))
        }
        if problems:
            raise _NonFiniteError(problems)
        self._settle_expired(step, u, when, states, settled)
        self._restore(step, u, states, settled)
        return step

    def _settle_expired(
        self,
        step: _Step,
        u: str,
        when: datetime,
        states: Mapping[str, MarketUpdate],
        settled: Settled,
    ) -> None:
        """Settle the options and futures of ``u`` expired by ``when`` (module docstring)."""
        excluded = {a for a, why in step.errors.items() if why is not None}
        holders = set()
        for e, ids in self._held_expiries(u).items():
            if e <= when:
                holders |= ids - excluded
        if not holders:
            return
        ledger = step.ledger
        only = None if step.full else u
        session_for = self._session_for(states, settled, step.snap, only, ledger)
        in_ledger = []
        for a in sorted(holders):
            margined = a in ledger.rows
            acct = ledger.accounts[a] if margined else step.changed.get(a, self.accounts[a])
            new, lines = _expired(acct, step.snap, u, when, settled, futures=margined)
            if not lines:
                continue
            step.changed[a] = new
            step.expiries[a] = lines
            if margined:
                ledger, _ = ledger.with_account(new, session_for)
                in_ledger.append(a)
        if in_ledger:
            for m in ledger.figures(in_ledger):
                step.margins[m.account_id] = m
        step.ledger = ledger

    def _restore(
        self, step: _Step, u: str, states: Mapping[str, MarketUpdate], settled: Settled
    ) -> None:
        """Bring back excluded accounts exposed to ``u`` whose figures can be computed now."""
        candidates = [
            step.changed.get(a, self.accounts[a])
            for a in sorted(self.errors)
            if a in self.accounts
            and a not in step.errors
            and u in self._exposures(self.accounts[a])  # as it was: an expiry may end it
        ]
        candidates = [a for a in candidates if self._exposures(a) <= set(states)]
        if not candidates:
            return
        full = step.snap if step.full else self._snapshot(states, settled, states[u].time, None)
        healed = [a for a in candidates if not self._account_problem(a, full, states, settled)]
        if not healed:
            return
        ledger = step.ledger
        keep = [*ledger.accounts.values(), *healed]
        session_for = self._session_for(states, settled, full, None, ledger)
        methods = {**self.methods, **ledger.methods}
        ledger = Ledger.open(self.model, self.settings, keep, full, session_for, methods)
        ids = [a.account_id for a in healed]
        for m in ledger.figures(ids):
            step.margins[m.account_id] = m
        step.ledger = ledger.with_methods([step.margins[a] for a in ids])
        step.snap, step.full = full, True
        for a in ids:
            step.errors[a] = None
            step.restored.append(a)

    # -- account changes ----------------------------------------------------------------
    def _on_account(self, item: AccountChange) -> list[dict[str, Any]]:
        acct = self.accounts.get(item.account)
        if acct is None:
            raise RejectedError(f"unknown account {item.account!r}")
        if item.account in self.errors:
            why = self.errors[item.account]
            raise RejectedError(f"account {item.account} is excluded from margining: {why}")
        ledger = self._current_ledger()
        full = self.market
        if full is None or ledger is None:
            raise RejectedError("no market data yet")
        if item.account not in ledger.rows:
            raise RejectedError("no market data for an underlying of the account")
        ledger = self._on_full(ledger, full)
        (before,) = ledger.figures([item.account])
        new = check_change(acct, item, full)
        if not self._exposures(new) <= set(self.states):
            raise RejectedError("no market data for an underlying of the account")
        session_for = self._session_for(self.states, self.settled, full, None, ledger)
        ledger, after = ledger.with_account(new, session_for)
        problem = finite_figures(after)
        if problem:
            raise RejectedError(f"the figures after the {item.kind} would not be finite: {problem}")
        decision = pre_trade(before.pools, after.pools)
        if not decision.accepted:
            raise RejectedError(f"{item.kind} refused: {decision.reason}")
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
        errors = dict(self._pending)
        events = [
            *self._error_events(errors, cause, when),
            accepted,
            *self._transitions([after], cause, when),
        ]
        self.store.commit_step(
            feed=self.feed_name,
            seq=item.seq,
            position=item.position,
            market_time=when,
            accounts=[new],
            margins=[after],
            events=[(e["kind"], e["account"], e) for e in events],
            errors=errors,
        )
        self._pending.clear()
        self._adopt_accounts({new.account_id: new})
        self.ledger = ledger.with_methods([after])
        self._after_commit(item, [after], events)
        return events

    # -- events and bookkeeping ---------------------------------------------------------
    def _adopt_accounts(self, changed: Mapping[str, Account]) -> None:
        """Adopt committed accounts; the held expiries are recomputed if holdings changed.

        Variation margin rescales inverse futures in place (same names): no recompute.
        """
        for a, new in changed.items():
            old = self.accounts.get(a)
            if old is None or old.positions.keys() != new.positions.keys():
                self._held = None
            self.accounts[a] = new

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
        self, item: FeedItem, margins: Sequence[AccountMargin], events: list[dict[str, Any]]
    ) -> None:
        self.last_seq = item.seq if item.seq is not None else self.last_seq
        self.cursor_position = item.position
        for m in margins:
            self.margins[m.account_id] = m
            self.statuses[m.account_id] = m.status.value
            self.methods[m.account_id] = m.method
        for a in self.errors:
            self.margins.pop(a, None)
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
        on_events: Callable[[list[dict[str, Any]]], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> RunStats:
        """Process ``feed`` (``max_events`` new input events at most).

        ``speed`` paces the feed: feed seconds per wall second (0 = as fast as possible).
        ``on_events`` receives the events of each processed input event (rejections
        included), ``on_step`` the monitor after it; the run ends early when ``stop()``
        returns true (checked before each input event and while pacing).
        """
        start = _time.monotonic()
        first: datetime | None = None
        new = 0
        for item in feed:
            if stop is not None and stop():
                break
            if max_events is not None and new >= max_events:
                break
            out = self.process(item)
            if out is None:
                continue
            new += 1
            if on_events is not None:
                on_events(out)
            t = getattr(item, "time", None)
            if speed > 0 and isinstance(t, datetime):
                first = first or t
                due = (t - first).total_seconds() / speed
                while (lag := due - (_time.monotonic() - start)) > 0:
                    if stop is not None and stop():
                        break
                    _time.sleep(min(lag, 0.1))
            self.stats.seconds = _time.monotonic() - start
            if on_step is not None:
                on_step(self)
        self.stats.seconds = _time.monotonic() - start
        return self.stats


def _expired(
    acct: Account,
    snap: MarketSnapshot,
    u: str,
    when: datetime,
    settled: Settled,
    *,
    futures: bool,
) -> tuple[Account, list[dict[str, Any]]]:
    r"""``acct`` with its instruments of ``u`` expired by ``when`` settled, and the lines.

    An option of ``q`` contracts pays ``q·M·v`` in its settlement currency, ``v`` its settled
    value per unit (:meth:`MarketSnapshot.settled_value`: ``max(±(P − K), 0)`` USD, divided by
    ``P`` in coin for inverse products) and ``M`` the multiplier. A dated future was settled
    to ``P`` by this event's variation margin, so it pays nothing more; ``futures=False``
    (an account excluded from margining, whose variation margin stopped) leaves futures in
    place. The positions are removed.
    """
    trades: dict[str, float] = {}
    cash: dict[str, float] = {}
    lines: list[dict[str, Any]] = []
    for name, q in acct.positions.items():
        x = snap.instrument(name)
        if x.underlying != u or x.expiry is None or x.expiry > when:
            continue
        price = settled.get((u, x.expiry))
        if price is None:
            continue
        if isinstance(x, Option):
            value = snap.settled_value(x) * x.multiplier
        elif futures:
            value = 0.0
        else:
            continue
        amount = q * value
        trades[name] = -q
        ccy = x.settlement_currency
        cash[ccy] = cash.get(ccy, 0.0) + amount
        lines.append(
            {
                "instrument": x.name,
                "quantity": q,
                "expiry": iso_z(x.expiry),
                "settlement_price": price,
                "value_per_contract": value,
                "currency": ccy,
                "cash": amount,
            }
        )
    if not lines:
        return acct, lines
    return acct.with_trades(trades, cash), lines
