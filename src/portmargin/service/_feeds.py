r"""Market sources of the service: a static snapshot, the replayed feeds, and Deribit live.

Every source is an asynchronous iterator of the monitor's input events
(:class:`~portmargin.monitor.MarketUpdate`, or an account change / malformed line of a
JSON-lines feed). A source is **replayable** (``replay``, ``simulated``, ``jsonl:FILE`` and
a static ``--market`` snapshot: the same items every run, resumed by the monitor's cursor)
or **live** (``deribit``: what arrives now; nothing is replayed after a restart).

Deribit (https://docs.deribit.com/, JSON-RPC over WebSocket ``/ws/api/v2``): the adapter
sends ``public/set_heartbeat`` and ``public/subscribe`` for

* ``deribit_price_index.{btc,eth}_usd``: the index (``data.price``, ``data.timestamp`` ms);
* ``markprice.options.{btc,eth}_usd``: every option's mark IV (``data[].iv``, a decimal)
  and mark price;
* ``ticker.{instrument}.100ms`` of each held future, perpetual and option: the mark price
  (futures: that expiry's forward; perpetuals: ``perpetual``), an option's
  ``underlying_price`` (its expiry's forward) and ``mark_iv`` (in percent);

answers the server's ``test_request`` heartbeats with ``public/test``, and emits at most one
:class:`MarketUpdate` per underlying per ``min_interval`` seconds, only once that
underlying's index has arrived on the current connection. A lost connection is retried
with exponential back-off (``0.5·2^k`` s, capped at 30 s, with jitter) and every channel is
subscribed again. Staleness is judged on the wall clock (:meth:`DeribitFeed.stale`): an
underlying whose index has not arrived for ``stale_after`` seconds is stale, and the
service flags it and refuses to margin on it instead of using old prices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from portmargin.errors import InputError, PortmarginError
from portmargin.instruments import Future, Option, Perpetual, parse_instrument
from portmargin.market.snapshot import MarketSnapshot
from portmargin.monitor import FeedItem, MarketUpdate

__all__ = [
    "FEED_STRIDE",
    "DeribitFeed",
    "Source",
    "snapshot_updates",
    "source_for",
]

log = logging.getLogger("portmargin.service.feed")

FEED_STRIDE = 1 << 20
"""A replayable feed's item ``n`` is the monitor's input ``n·FEED_STRIDE``; the inputs of the
API between two feed items take the numbers in between, so a restarted service replays the
feed and its logged API inputs in the order they were first processed."""


def snapshot_updates(
    snap: MarketSnapshot, held: Iterable[str], *, first_seq: int = 1
) -> list[MarketUpdate]:
    """A market snapshot as one :class:`MarketUpdate` per underlying, at its valuation time.

    Every listed, live option of the snapshot gets its vol (quoted, or the smile's for a held
    option without a quote), and every expiry of those options and of the held futures its
    forward; the perpetual mark where the snapshot has one.
    """
    when = snap.valuation_time
    held_by: dict[str, list[str]] = {}
    for name in held:
        try:
            inst = snap.instrument(name)
        except PortmarginError:
            continue
        held_by.setdefault(inst.underlying, []).append(inst.name)
    out = []
    for k, und in enumerate(sorted(snap.underlyings)):
        names = dict.fromkeys([*snap.option_names(und), *held_by.get(und, [])])
        options = []
        expiries: set[datetime] = set()
        for n in names:
            inst = snap.instrument(n)
            if inst.expiry is not None and inst.expiry <= when:
                continue
            if isinstance(inst, Option):
                options.append(inst)
            if isinstance(inst, Option | Future) and inst.expiry is not None:
                expiries.add(inst.expiry)
        vols: list[float] = [float(v) for v in snap.option_vols(options)] if options else []
        try:
            perpetual: float | None = snap.perpetual_price(und)
        except PortmarginError:
            perpetual = None
        out.append(
            MarketUpdate(
                first_seq + k,
                when,
                und,
                snap.index_price(und),
                perpetual,
                MappingProxyType({e: snap.forward(und, e) for e in sorted(expiries)}),
                MappingProxyType({o.name: float(v) for o, v in zip(options, vols, strict=True)}),
            )
        )
    return out


@dataclass
class Source:
    """A market source: its name (the monitor's cursor key), kind, and items.

    ``items`` yields feed items numbered by the source (1, 2, ...); :meth:`numbered`
    renumbers a replayable source's item ``n`` to ``n·FEED_STRIDE``.
    """

    name: str
    kind: str
    replayable: bool
    items: AsyncIterator[FeedItem]
    speed: float = 0.0
    live: DeribitFeed | None = None
    status: str = "starting"

    async def numbered(self) -> AsyncIterator[FeedItem]:
        """The items, renumbered for the service's input sequence (replayable sources)."""
        async for item in self.items:
            if self.replayable and item.seq is not None:
                item = replace(item, seq=item.seq * FEED_STRIDE)
            yield item


async def _threaded(items: Iterable[FeedItem]) -> AsyncIterator[FeedItem]:
    """A synchronous feed iterated in a worker thread (its items may take computing)."""
    it: Iterator[FeedItem] = iter(items)

    def step() -> FeedItem | None:
        return next(it, None)

    while (item := await asyncio.to_thread(step)) is not None:
        yield item


async def _listed(items: Sequence[FeedItem]) -> AsyncIterator[FeedItem]:
    for item in items:
        yield item


def source_for(
    *,
    feed: str | None,
    market: MarketSnapshot | None,
    held: Iterable[str],
    data_dir: Path | None,
    steps: int,
    seed: int,
    speed: float,
    deribit_url: str,
    stale_after: float,
) -> Source:
    """The source ``--feed`` / ``--market`` ask for (see the module docstring).

    Raises
    ------
    InputError
        For an unknown feed or a missing file or folder.
    """
    from portmargin.monitor import JsonlFeed, ReplayFeed, SimulatedFeed, load_crash_day

    if feed is None:
        if market is None:
            from portmargin.market import demo_market

            market = demo_market()
        updates = snapshot_updates(market, held)
        name = "market" if market.source in ("", "memory") else Path(market.source).name
        return Source(f"serve:{name}"[:64], "static", True, _listed(updates))
    if feed == "deribit":
        live = DeribitFeed(deribit_url, held, stale_after=stale_after)
        return Source("serve:deribit", "deribit", False, live.items(), live=live)
    if feed in ("replay", "simulated"):
        if data_dir is not None and not data_dir.is_dir():
            raise InputError(
                f"--feed {feed}: the crash-day data folder {data_dir} is not there; give --data"
            )
        if feed == "replay":
            rf = ReplayFeed(data_dir, steps=steps)
            return Source(f"serve:{rf.name}", "replay", True, _threaded(rf), speed=speed)
        m0, _, _ = load_crash_day(data_dir)
        sf = SimulatedFeed(m0, seed=seed, steps=steps)
        return Source(f"serve:{sf.name}", "simulated", True, _threaded(sf), speed=speed)
    if feed.startswith("jsonl:"):
        path = Path(feed[len("jsonl:") :])
        if not path.is_file():
            raise InputError(f"--feed {feed}: no such file {path}")
        jf = JsonlFeed(path)
        return Source(f"serve:{jf.name}"[:64], "jsonl", True, _threaded(jf), speed=speed)
    raise InputError(f"--feed {feed!r}: use replay, simulated, jsonl:FILE or deribit")


# -- Deribit ----------------------------------------------------------------------------------
@dataclass
class _Book:
    """What arrived for one underlying on the current connection."""

    index: float | None = None
    index_wall: float = 0.0
    exchange_ms: int = 0
    perpetual: float | None = None
    forwards: dict[datetime, float] = field(default_factory=dict)
    vols: dict[str, float] = field(default_factory=dict)
    dirty: bool = False
    emitted_wall: float = 0.0


def _ms_time(ms: object) -> datetime | None:
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms):
        return None
    return datetime.fromtimestamp(float(ms) / 1000.0, tz=UTC)


def _positive(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) and v > 0 else None


class DeribitFeed:
    """Deribit's public WebSocket API as a live source (see the module docstring).

    Parameters
    ----------
    url
        ``wss://www.deribit.com/ws/api/v2`` (a local server in tests).
    held
        Instruments the accounts hold (their tickers are subscribed).
    stale_after
        Seconds without an index message after which an underlying is stale.
    min_interval
        Seconds between two updates of one underlying.
    """

    def __init__(
        self,
        url: str,
        held: Iterable[str],
        *,
        stale_after: float = 10.0,
        min_interval: float = 1.0,
        heartbeat: int = 10,
        max_backoff: float = 30.0,
    ) -> None:
        self.url = url
        self.stale_after = stale_after
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self.max_backoff = max_backoff
        self.instruments: dict[str, str] = {}  # name -> underlying
        for name in held:
            try:
                inst = parse_instrument(name)
            except PortmarginError:
                continue
            if isinstance(inst, Option | Future | Perpetual):
                self.instruments[inst.name] = inst.underlying
        self.underlyings = sorted(set(self.instruments.values()) or {"BTC", "ETH"})
        self.books: dict[str, _Book] = {u: _Book() for u in self.underlyings}
        self.connected = False
        self.connections = 0
        self.last_error: str | None = None
        self._last_time: datetime | None = None
        self._seq = 0

    # -- state --------------------------------------------------------------------------
    def channels(self) -> list[str]:
        """Every channel subscribed on each connection."""
        out = []
        for u in self.underlyings:
            idx = f"{u.lower()}_usd"
            out += [f"deribit_price_index.{idx}", f"markprice.options.{idx}"]
        out += [f"ticker.{n}.100ms" for n in sorted(self.instruments)]
        return out

    def stale(self, now: float | None = None) -> dict[str, float | None]:
        """Underlying → seconds since its last index message, for the stale ones (None: never)."""
        t = time.monotonic() if now is None else now
        out: dict[str, float | None] = {}
        for u, b in self.books.items():
            if b.index is None:
                out[u] = None
            elif t - b.index_wall > self.stale_after:
                out[u] = t - b.index_wall
        return out

    def state(self) -> dict[str, Any]:
        """JSON-ready connection and freshness state."""
        stale = self.stale()
        return {
            "url": self.url,
            "connected": self.connected,
            "connections": self.connections,
            "last_error": self.last_error,
            "stale": {u: (None if s is None else round(s, 3)) for u, s in stale.items()},
        }

    # -- messages -----------------------------------------------------------------------
    def on_message(self, doc: Mapping[str, Any]) -> None:
        """Fold one notification into the books (unknown channels are ignored)."""
        params = doc.get("params")
        if not isinstance(params, Mapping):
            return
        channel = params.get("channel")
        data = params.get("data")
        if not isinstance(channel, str):
            return
        now = time.monotonic()
        if channel.startswith("deribit_price_index.") and isinstance(data, Mapping):
            und = channel.split(".", 1)[1].split("_", 1)[0].upper()
            price = _positive(data.get("price"))
            book = self.books.get(und)
            if book is None or price is None:
                return
            book.index, book.index_wall, book.dirty = price, now, True
            book.exchange_ms = max(book.exchange_ms, int(data.get("timestamp") or 0))
        elif channel.startswith("markprice.options.") and isinstance(data, list):
            und = channel.split(".", 2)[2].split("_", 1)[0].upper()
            book = self.books.get(und)
            if book is None:
                return
            for row in data:
                if not isinstance(row, Mapping):
                    continue
                name, iv = row.get("instrument_name"), _positive(row.get("iv"))
                if isinstance(name, str) and iv is not None and iv < 20:
                    book.vols[name] = iv
                    book.dirty = True
                    book.exchange_ms = max(book.exchange_ms, int(row.get("timestamp") or 0))
        elif channel.startswith("ticker.") and isinstance(data, Mapping):
            self._on_ticker(data)

    def _on_ticker(self, data: Mapping[str, Any]) -> None:
        name = data.get("instrument_name")
        if not isinstance(name, str) or name not in self.instruments:
            return
        book = self.books[self.instruments[name]]
        inst = parse_instrument(name)
        mark = _positive(data.get("mark_price"))
        if isinstance(inst, Perpetual) and mark is not None:
            book.perpetual = mark
        elif isinstance(inst, Future) and mark is not None and inst.expiry is not None:
            book.forwards[inst.expiry] = mark
        elif isinstance(inst, Option) and inst.expiry is not None:
            fwd = _positive(data.get("underlying_price"))
            if fwd is not None:
                book.forwards.setdefault(inst.expiry, fwd)
            iv = _positive(data.get("mark_iv"))
            if iv is not None and iv < 2000:
                book.vols[name] = iv / 100.0  # the ticker's mark_iv is in percent
        else:
            return
        book.dirty = True
        book.exchange_ms = max(book.exchange_ms, int(data.get("timestamp") or 0))

    def due(self, now: float | None = None) -> list[MarketUpdate]:
        """Updates for the underlyings with news, a fresh index and ``min_interval`` elapsed."""
        t = time.monotonic() if now is None else now
        out = []
        for und, b in self.books.items():
            if not b.dirty or b.index is None or t - b.emitted_wall < self.min_interval:
                continue
            if t - b.index_wall > self.stale_after:
                continue  # never an update built on an old index
            when = _ms_time(b.exchange_ms) or datetime.now(UTC)
            if self._last_time is not None and when < self._last_time:
                when = self._last_time  # the monitor refuses a time going backwards
            self._last_time = when
            self._seq += 1
            out.append(
                MarketUpdate(
                    self._seq,
                    when,
                    und,
                    b.index,
                    b.perpetual,
                    MappingProxyType(dict(b.forwards)),
                    MappingProxyType(dict(b.vols)),
                )
            )
            b.dirty, b.emitted_wall = False, t
        return out

    # -- the connection -----------------------------------------------------------------
    async def items(self) -> AsyncIterator[FeedItem]:
        """Market updates, forever; reconnects with back-off and subscribes again."""
        queue: asyncio.Queue[MarketUpdate] = asyncio.Queue(maxsize=1000)
        runner = asyncio.create_task(self._run(queue))
        try:
            while True:
                yield await queue.get()
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner

    async def _run(self, queue: asyncio.Queue[MarketUpdate]) -> None:
        failures = 0
        while True:
            try:
                await self._session(queue)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any network or protocol fault: reconnect
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("deribit feed: %s; reconnecting", self.last_error)
            self.connected = False
            delay = min(self.max_backoff, 0.5 * 2**failures) * (0.5 + random.random() / 2)
            failures = min(failures + 1, 16)
            await asyncio.sleep(delay)

    async def _session(self, queue: asyncio.Queue[MarketUpdate]) -> None:
        import websockets

        async with websockets.connect(self.url, open_timeout=10, max_size=2**24) as ws:
            self.connected = True
            self.connections += 1
            for b in self.books.values():
                b.index = None  # only an index from this connection counts as fresh
            calls = [
                ("public/set_heartbeat", {"interval": self.heartbeat}),
                ("public/subscribe", {"channels": self.channels()}),
            ]
            for i, (method, params) in enumerate(calls, start=1):
                await ws.send(
                    json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
                )
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=min(1.0, self.min_interval))
                except TimeoutError:
                    raw = None
                if raw is not None:
                    doc = json.loads(raw)
                    if not isinstance(doc, dict):
                        continue
                    if doc.get("error"):
                        raise InputError(f"deribit answered an error: {doc['error']}")
                    if doc.get("method") == "heartbeat":
                        if (doc.get("params") or {}).get("type") == "test_request":
                            await ws.send(
                                json.dumps(
                                    {
                                        "jsonrpc": "2.0",
                                        "id": 99,
                                        "method": "public/test",
                                        "params": {},
                                    }
                                )
                            )
                        continue
                    if doc.get("method") == "subscription":
                        self.on_message(doc)
                for upd in self.due():
                    await queue.put(upd)
