"""The durable store: migrations on open, account state, and atomic monitor steps.

Every accepted change and every event is written in **one transaction per input event**
together with the feed cursor (:meth:`Store.commit_step`), so after a crash the database
holds either all of an input event's effects or none of them, and the cursor says which
input event to resume after. Events are unique by ``(seq, ordinal)``: a step whose ``seq``
is at or below the cursor is skipped, never written twice.

Faults are one line: :func:`open_store` and every method raise
:class:`~portmargin.errors.StorageError` (what failed, the URL with its password masked, what
to do) for a URL that cannot be parsed or has no driver, a missing or read-only directory, a
corrupt file, a full disk (the step is rolled back), an unreachable server (connections time
out after :data:`PG_CONNECT_TIMEOUT` seconds) or a newer schema. Readers open with
``create=False`` and are refused a database that does not exist instead of creating an empty
one. :meth:`Store.lease` keeps a second monitor off a database in use (see ``_lease``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    URL,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    make_url,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from portmargin.accounts import Account, AccountMargin
from portmargin.errors import InputError, StorageError
from portmargin.storage._errors import URL_HELP, describe_url, guard, storage_error
from portmargin.storage._lease import (
    DEFAULT_LEASE_TTL,
    Lease,
    LeaseInfo,
    default_owner,
    holder,
)
from portmargin.storage._schema import (
    AccountRow,
    BalanceRow,
    CursorRow,
    EventRow,
    PositionRow,
    SnapshotRow,
)

__all__ = [
    "DEFAULT_DB_URL",
    "PG_CONNECT_TIMEOUT",
    "Cursor",
    "Store",
    "StoredEvent",
    "open_store",
    "upgrade",
]

DEFAULT_DB_URL = "sqlite:///portmargin.db"
PG_CONNECT_TIMEOUT = 5
"""Seconds to wait for a PostgreSQL connection (unless the URL sets ``connect_timeout``)."""
_MIGRATION_LOCK = 0x706D6D67  # "pmmg": PostgreSQL advisory-lock key of the migrations
CREATE_HINT = (
    "create it with `portmargin accounts load FILE --db URL` or "
    "`portmargin monitor --accounts FILE --db URL`, or fix --db"
)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Resume point of a feed: last committed input sequence number and its market time.

    ``position`` is the feed position (e.g. line number) of the last committed input event,
    ``None`` for a cursor written before positions were stored (then ``last_seq`` decides).
    """

    last_seq: int
    market_time: str
    finished: bool
    position: int | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An emitted event as stored (``payload`` is the event's JSON document)."""

    seq: int
    ordinal: int
    kind: str
    account_id: str | None
    market_time: str
    payload: dict[str, Any]


def _sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL, or None (in memory, or a ``file:`` URI left to SQLite)."""
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return None
    if db.startswith("file:") or url.query.get("uri"):
        return None
    return Path(db)


def _check_sqlite_file(url: URL, path: Path, *, create: bool) -> None:
    """Refuse what SQLite would report as "unable to open database file", naming the cause."""
    where = describe_url(url)
    if path.is_dir():
        raise StorageError(f"database {where}: {path} is a directory, not a database file")
    if path.exists():
        return
    if not create:
        raise StorageError(f"no database at {path} ({where}); nothing to read: {CREATE_HINT}")
    parent = path.parent
    if not parent.exists():
        problem = "does not exist"
        if any(p.exists() and not p.is_dir() for p in parent.parents):
            problem = "cannot exist: a file stands where a directory is expected on its path"
        raise StorageError(
            f"database {where}: directory {parent} {problem}; create the directory or fix --db"
        )
    if not parent.is_dir():
        raise StorageError(f"database {where}: {parent} is a file, not a directory; fix --db")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StorageError(
            f"database {where}: directory {parent} is not writable, so the database cannot be "
            "created there; choose a writable directory for --db"
        )


def _engine(url: URL) -> Engine:
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        eng = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return eng
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def upgrade(engine: Engine) -> None:
    """Run the packaged Alembic migrations up to ``head`` on ``engine``.

    Processes opening one database at once migrate one after the other: the transaction
    first takes SQLite's write lock (``BEGIN IMMEDIATE``; https://www.sqlite.org/lang_transaction.html)
    or a PostgreSQL transaction-level advisory lock
    (https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS),
    so the later ones find the schema at ``head`` instead of failing on ``CREATE TABLE``.
    A database already at ``head`` is only read (a read-only file can be opened).
    """
    cfg = Config()
    location = resources.files("portmargin.storage") / "migrations"
    cfg.set_main_option("script_location", str(location))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with engine.begin() as conn:
        backend = engine.url.get_backend_name()
        if backend == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # pysqlite has not begun: no DML yet
        elif backend == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_store(url: str = DEFAULT_DB_URL, *, create: bool = True) -> Store:
    """Connect to ``url`` (SQLite file or ``postgresql://``), migrate, and return a store.

    Parameters
    ----------
    url
        ``sqlite:///PATH`` (relative to the working directory; ``sqlite:////abs/path``) or
        ``postgresql://USER:PASSWORD@HOST:PORT/DBNAME``.
    create
        Writers (``monitor``, ``accounts load``) create the SQLite file and the schema. With
        False (readers) a SQLite file that does not exist, or a database without the
        portmargin schema, is refused instead of being created empty.

    Raises
    ------
    StorageError
        One line naming the fault, the URL (password masked) and what to do.
    """
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise StorageError(
            f"database URL {describe_url(url)!r} cannot be parsed; {URL_HELP}"
        ) from exc
    with guard(parsed, "opening it"):
        path = _sqlite_path(parsed)
        if path is not None:
            _check_sqlite_file(parsed, path, create=create)
        try:
            engine = _engine(parsed)
        except ImportError as exc:
            raise storage_error(exc, parsed, "opening it") from exc
    try:
        with guard(parsed, "opening it"):
            if not create and not inspect(engine).has_table("alembic_version"):
                raise StorageError(
                    f"database {describe_url(parsed)} holds no portmargin data (no schema); "
                    f"nothing to read: {CREATE_HINT}"
                )
        with guard(parsed, "migrating its schema"):
            upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, url=parsed)


class Store:
    """Accounts, snapshots, events and the feed cursor in one SQL database.

    A context manager: leaving the ``with`` block calls :meth:`close`.

    Parameters
    ----------
    engine
        The database (migrated: see :func:`open_store`).
    url
        The URL as given, for messages (default: the engine's); its password is masked.
    """

    def __init__(self, engine: Engine, *, url: str | URL | None = None) -> None:
        self.engine = engine
        self.url: str | URL = engine.url if url is None else url
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._leases: dict[str, Lease] = {}

    def close(self) -> None:
        """Release the leases still held and dispose of the connection pool."""
        for held in list(self._leases.values()):
            held.release()
        self._leases.clear()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _guard(self, action: str) -> AbstractContextManager[None]:
        """Database faults inside the block become one-line StorageError messages."""
        return guard(self.url, action)

    # -- leases -------------------------------------------------------------------------
    @contextmanager
    def lease(
        self,
        name: str,
        *,
        owner: str | None = None,
        ttl: float = DEFAULT_LEASE_TTL,
        heartbeat: bool = True,
    ) -> Iterator[Lease]:
        """Hold the lease ``name`` for the ``with`` block; refuse if another process holds it.

        The lease is taken atomically (an ``INSERT``, or the takeover of a lease whose
        holder has not beaten for ``ttl`` seconds), renewed by a daemon thread every
        ``ttl / 3`` s (``heartbeat``) and by every :meth:`commit_step` of this store (in the
        step's transaction: a step of a process whose lease was taken over is refused and
        rolled back), and released on exit. A holder killed with SIGKILL blocks others for
        at most ``ttl`` seconds.

        Parameters
        ----------
        name
            Lease name; ``portmargin monitor`` holds :data:`MONITOR_LEASE` (one monitor per
            database).
        owner
            Holder shown to others, ``host:pid`` by default.
        ttl
            Seconds after the last heartbeat at which another process may take over.
        heartbeat
            Renew from a background thread (else only on :meth:`commit_step` and
            :meth:`Lease.renew`).

        Raises
        ------
        LeaseHeldError
            Another live process holds it; the message names the holder, its last heartbeat
            and when the lease expires.
        StorageError
            On a database fault.
        """
        if name in self._leases:
            raise StorageError(f"lease {name!r} is already held by this store")
        held = Lease(self.engine, self.url, name, owner or default_owner(), ttl)
        held.acquire()
        self._leases[name] = held
        try:
            if heartbeat:
                held.start_heartbeat()
            yield held
        finally:
            self._leases.pop(name, None)
            held.release()

    def lease_holder(self, name: str) -> LeaseInfo | None:
        """The stored lease ``name`` (live or expired), or None."""
        with self._guard(f"reading lease {name!r}"), self.engine.connect() as conn:
            return holder(conn, name)

    # -- accounts -----------------------------------------------------------------------
    def save_accounts(self, accounts: Sequence[Account], *, replace: bool = False) -> int:
        """Insert (or with ``replace`` overwrite) accounts in one transaction.

        Raises
        ------
        InputError
            If an account id exists already and ``replace`` is False.
        StorageError
            On a database fault (nothing is written).
        """
        with self._guard("saving accounts"), self._session.begin() as s:
            existing = set(s.scalars(select(AccountRow.id)))
            clash = sorted(a.account_id for a in accounts if a.account_id in existing)
            if clash and not replace:
                raise InputError(
                    f"accounts already stored: {', '.join(clash[:5])}"
                    + (" ..." if len(clash) > 5 else "")
                )
            s.add_all(
                AccountRow(
                    id=a.account_id,
                    status="healthy",
                    method="portfolio",
                    pm_approved=a.pm_approved,
                )
                for a in accounts
                if a.account_id not in existing
            )
            replaced = [a for a in accounts if a.account_id in existing]
            if replaced:
                s.execute(
                    update(AccountRow),
                    [{"id": a.account_id, "pm_approved": a.pm_approved} for a in replaced],
                )
            s.flush()
            self._write_accounts(s, accounts)
        return len(accounts)

    @staticmethod
    def _write_accounts(s: Session, accounts: Sequence[Account]) -> None:
        """Replace the balances and positions of ``accounts``: two deletes, two inserts."""
        if not accounts:
            return
        ids = [a.account_id for a in accounts]
        s.execute(delete(BalanceRow).where(BalanceRow.account_id.in_(ids)))
        s.execute(delete(PositionRow).where(PositionRow.account_id.in_(ids)))
        balances = [
            {"account_id": a.account_id, "currency": c, "amount": v}
            for a in accounts
            for c, v in a.balances.items()
        ]
        positions = [
            {"account_id": a.account_id, "instrument": i, "quantity": q}
            for a in accounts
            for i, q in a.positions.items()
        ]
        if balances:
            s.execute(insert(BalanceRow), balances)
        if positions:
            s.execute(insert(PositionRow), positions)

    def load_accounts(self) -> list[Account]:
        """Every stored account, sorted by id."""
        with self._guard("reading accounts"), self._session() as s:
            bal: dict[str, dict[str, float]] = {}
            for b in s.scalars(select(BalanceRow)):
                bal.setdefault(b.account_id, {})[b.currency] = b.amount
            pos: dict[str, dict[str, float]] = {}
            for p in s.scalars(select(PositionRow)):
                pos.setdefault(p.account_id, {})[p.instrument] = p.quantity
            rows = s.execute(
                select(AccountRow.id, AccountRow.pm_approved).order_by(AccountRow.id)
            ).all()
        return [Account(i, pos.get(i, {}), bal.get(i, {}), bool(ok)) for i, ok in rows]

    def account_errors(self) -> dict[str, str]:
        """Accounts the monitor excludes from margining, with the one-line reason."""
        with self._guard("reading account errors"), self._session() as s:
            rows = s.execute(
                select(AccountRow.id, AccountRow.error).where(AccountRow.error.is_not(None))
            )
            return {r.id: str(r.error) for r in rows}

    def statuses(self) -> dict[str, str]:
        """Last committed status of every account."""
        with self._guard("reading account statuses"), self._session() as s:
            return {r.id: r.status for r in s.scalars(select(AccountRow))}

    def margin_methods(self) -> dict[str, str]:
        """Margin method (``portfolio``/``rules``) of every account margined so far."""
        with self._guard("reading margin methods"), self._session() as s:
            margined = select(SnapshotRow.account_id).distinct()
            rows = s.execute(
                select(AccountRow.id, AccountRow.method).where(AccountRow.id.in_(margined))
            )
            return {r.id: r.method for r in rows}

    def latest_snapshot(self, account_id: str) -> dict[str, Any] | None:
        """The account's most recent margin snapshot, or None."""
        with self._guard("reading margin snapshots"), self._session() as s:
            row = s.scalars(
                select(SnapshotRow)
                .where(SnapshotRow.account_id == account_id)
                .order_by(SnapshotRow.seq.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            return {
                "seq": row.seq,
                "market_time": row.market_time,
                "method": row.method,
                "initial_margin": row.initial_margin,
                "maintenance_margin": row.maintenance_margin,
                "equity": row.equity,
                "margin_ratio": row.margin_ratio,
                "status": row.status,
            }

    def latest_snapshots(self) -> dict[str, dict[str, Any]]:
        """Every margined account's most recent snapshot (as :meth:`latest_snapshot`)."""
        with self._guard("reading margin snapshots"), self._session() as s:
            newest = (
                select(SnapshotRow.account_id, func.max(SnapshotRow.seq).label("seq"))
                .group_by(SnapshotRow.account_id)
                .subquery()
            )
            rows = s.scalars(
                select(SnapshotRow).join(
                    newest,
                    (SnapshotRow.account_id == newest.c.account_id)
                    & (SnapshotRow.seq == newest.c.seq),
                )
            ).all()
            out: dict[str, dict[str, Any]] = {}
            for row in rows:  # one step may write an account twice: keep the last row
                out[row.account_id] = {
                    "seq": row.seq,
                    "market_time": row.market_time,
                    "method": row.method,
                    "initial_margin": row.initial_margin,
                    "maintenance_margin": row.maintenance_margin,
                    "equity": row.equity,
                    "margin_ratio": row.margin_ratio,
                    "status": row.status,
                }
            return out

    # -- the monitor --------------------------------------------------------------------
    def cursor(self, feed: str) -> Cursor | None:
        """The committed resume point of ``feed``, or None before its first step."""
        with self._guard("reading the feed cursor"), self._session() as s:
            row = s.get(CursorRow, feed)
            if row is None:
                return None
            return Cursor(row.last_seq, row.market_time, row.finished, row.position)

    def commit_step(
        self,
        *,
        feed: str,
        seq: int,
        market_time: str,
        accounts: Sequence[Account] = (),
        margins: Sequence[AccountMargin] = (),
        events: Sequence[tuple[str, str | None, dict[str, Any]]] = (),
        errors: Mapping[str, str | None] | None = None,
        position: int | None = None,
        anchored: bool = False,
        finished: bool = False,
    ) -> bool:
        """Write one input event's effects and advance the cursor, atomically.

        Parameters
        ----------
        feed
            Feed name (the cursor key).
        seq
            The input event's sequence number; must exceed the cursor's, except for a
            rejected input without a usable sequence number (``anchored``).
        market_time
            Market time the effects refer to.
        accounts
            Accounts whose positions or balances changed (written in full).
        margins
            Recomputed figures (a snapshot row each; the account's status is updated).
        events
            ``(kind, account_id, payload)`` in emission order (ordinal = index, after the
            events already stored at ``seq``).
        errors
            Account id → the reason it is excluded from margining, or None to clear it.
        position
            Feed position of the input event (e.g. its line number). When both this and the
            cursor's position are known, the step is new iff its position exceeds the
            cursor's; otherwise iff ``seq`` does.
        anchored
            A rejected input whose own sequence number is unusable (unreadable, out of range,
            not increasing): it is written at the cursor's ``seq`` (pass that), its events
            after the events already stored there (by ordinal); the cursor's ``seq`` stays
            and its position moves to ``position``.
        finished
            Mark the feed as finished.

        Returns
        -------
        bool
            False if the input event was already committed (nothing written).

        Raises
        ------
        StorageError
            On a database fault (a full disk, a lost connection), or if a lease held through
            this store was taken over by another process: the step is rolled back, nothing of
            it is written and the cursor stays where it was.
        """
        step = f"input event {seq} of feed {feed!r}"
        with self._guard(f"committing {step}"), self._session.begin() as s:
            cur = s.get(CursorRow, feed, with_for_update=True)
            if cur is not None:
                if position is not None and cur.position is not None:
                    if position <= cur.position:
                        return False
                elif seq < cur.last_seq or (seq == cur.last_seq and not anchored):
                    return False
                if seq < cur.last_seq or (seq == cur.last_seq and not anchored):
                    raise InputError(
                        f"{step}: sequence number not above the cursor's {cur.last_seq}"
                    )
            first = 0
            if anchored:  # written after the events already stored at this seq
                top = s.scalar(select(func.max(EventRow.ordinal)).where(EventRow.seq == seq))
                first = 0 if top is None else int(top) + 1
            for held in self._leases.values():
                held.renew_in(s, what=step)
            self._write_accounts(s, accounts)
            if errors:
                s.execute(update(AccountRow), [{"id": k, "error": v} for k, v in errors.items()])
            if margins:
                # Core executemany: one statement per table, not one ORM unit per row.
                s.execute(
                    insert(SnapshotRow),
                    [
                        {
                            "seq": seq,
                            "account_id": m.account_id,
                            "market_time": m.valuation_time,
                            "method": m.method,
                            "initial_margin": m.initial_margin_usd,
                            "maintenance_margin": m.maintenance_margin_usd,
                            "equity": m.equity_usd,
                            # ranks accounts: MM / equity of the worst pool
                            "margin_ratio": _finite_or_none(m.worst_pool_ratio),
                            "status": m.status.value,
                        }
                        for m in margins
                    ],
                )
                s.execute(
                    update(AccountRow),
                    [
                        {"id": m.account_id, "status": m.status.value, "method": m.method}
                        for m in margins
                    ],
                )
            if events:
                s.execute(
                    insert(EventRow),
                    [
                        {
                            "seq": seq,
                            "ordinal": first + i,
                            "kind": kind,
                            "account_id": account_id,
                            "market_time": market_time,
                            "payload": json.dumps(payload, sort_keys=True, allow_nan=False),
                        }
                        for i, (kind, account_id, payload) in enumerate(events)
                    ],
                )
            if cur is None:
                s.add(
                    CursorRow(
                        feed=feed,
                        last_seq=seq,
                        position=position,
                        market_time=market_time,
                        finished=finished,
                    )
                )
            else:
                cur.last_seq = seq
                cur.position = position
                cur.market_time = market_time
                cur.finished = finished
        return True

    def events(self, *, kinds: Sequence[str] | None = None) -> list[StoredEvent]:
        """Stored events in emission order (optionally only some kinds)."""
        with self._guard("reading events"), self._session() as s:
            q = select(EventRow).order_by(EventRow.seq, EventRow.ordinal)
            if kinds is not None:
                q = q.where(EventRow.kind.in_(list(kinds)))
            return [
                StoredEvent(
                    r.seq, r.ordinal, r.kind, r.account_id, r.market_time, json.loads(r.payload)
                )
                for r in s.scalars(q)
            ]


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
