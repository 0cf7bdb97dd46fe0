"""The durable store: migrations on open, account state, and atomic monitor steps.

Every accepted change and every event is written in **one transaction per input event**
together with the feed cursor (:meth:`Store.commit_step`), so after a crash the database
holds either all of an input event's effects or none of them, and the cursor says which
input event to resume after. Events are unique by ``(seq, ordinal)``: a step whose ``seq``
is at or below the cursor is skipped, never written twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from portmargin.accounts import Account, AccountMargin
from portmargin.errors import InputError
from portmargin.storage._schema import (
    AccountRow,
    BalanceRow,
    CursorRow,
    EventRow,
    PositionRow,
    SnapshotRow,
)

__all__ = ["DEFAULT_DB_URL", "Cursor", "Store", "StoredEvent", "open_store", "upgrade"]

DEFAULT_DB_URL = "sqlite:///portmargin.db"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Resume point of a feed: last committed input sequence number and its market time."""

    last_seq: int
    market_time: str
    finished: bool


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An emitted event as stored (``payload`` is the event's JSON document)."""

    seq: int
    ordinal: int
    kind: str
    account_id: str | None
    market_time: str
    payload: dict[str, Any]


def _engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return eng
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine) -> None:
    """Run the packaged Alembic migrations up to ``head`` on ``engine``."""
    cfg = Config()
    location = resources.files("portmargin.storage") / "migrations"
    cfg.set_main_option("script_location", str(location))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_store(url: str = DEFAULT_DB_URL) -> Store:
    """Connect to ``url`` (SQLite file or ``postgresql://``), migrate, and return a store."""
    engine = _engine(url)
    upgrade(engine)
    return Store(engine)


class Store:
    """Accounts, snapshots, events and the feed cursor in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    # -- accounts -----------------------------------------------------------------------
    def save_accounts(self, accounts: Sequence[Account], *, replace: bool = False) -> int:
        """Insert (or with ``replace`` overwrite) accounts in one transaction.

        Raises
        ------
        InputError
            If an account id exists already and ``replace`` is False.
        """
        with self._session.begin() as s:
            existing = set(s.scalars(select(AccountRow.id)))
            clash = sorted(a.account_id for a in accounts if a.account_id in existing)
            if clash and not replace:
                raise InputError(
                    f"accounts already stored: {', '.join(clash[:5])}"
                    + (" ..." if len(clash) > 5 else "")
                )
            s.add_all(
                AccountRow(id=a.account_id, status="healthy", method="portfolio")
                for a in accounts
                if a.account_id not in existing
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
        with self._session() as s:
            bal: dict[str, dict[str, float]] = {}
            for b in s.scalars(select(BalanceRow)):
                bal.setdefault(b.account_id, {})[b.currency] = b.amount
            pos: dict[str, dict[str, float]] = {}
            for p in s.scalars(select(PositionRow)):
                pos.setdefault(p.account_id, {})[p.instrument] = p.quantity
            ids = list(s.scalars(select(AccountRow.id).order_by(AccountRow.id)))
        return [Account(i, pos.get(i, {}), bal.get(i, {})) for i in ids]

    def statuses(self) -> dict[str, str]:
        """Last committed status of every account."""
        with self._session() as s:
            return {r.id: r.status for r in s.scalars(select(AccountRow))}

    def margin_methods(self) -> dict[str, str]:
        """Margin method (``portfolio``/``rules``) of every account margined so far."""
        with self._session() as s:
            margined = select(SnapshotRow.account_id).distinct()
            rows = s.execute(
                select(AccountRow.id, AccountRow.method).where(AccountRow.id.in_(margined))
            )
            return {r.id: r.method for r in rows}

    def latest_snapshot(self, account_id: str) -> dict[str, Any] | None:
        """The account's most recent margin snapshot, or None."""
        with self._session() as s:
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

    # -- the monitor --------------------------------------------------------------------
    def cursor(self, feed: str) -> Cursor | None:
        """The committed resume point of ``feed``, or None before its first step."""
        with self._session() as s:
            row = s.get(CursorRow, feed)
            return None if row is None else Cursor(row.last_seq, row.market_time, row.finished)

    def commit_step(
        self,
        *,
        feed: str,
        seq: int,
        market_time: str,
        accounts: Sequence[Account] = (),
        margins: Sequence[AccountMargin] = (),
        events: Sequence[tuple[str, str | None, dict[str, Any]]] = (),
        finished: bool = False,
    ) -> bool:
        """Write one input event's effects and advance the cursor, atomically.

        Parameters
        ----------
        feed
            Feed name (the cursor key).
        seq
            The input event's sequence number; must exceed the cursor.
        market_time
            Market time the effects refer to.
        accounts
            Accounts whose positions or balances changed (written in full).
        margins
            Recomputed figures (a snapshot row each; the account's status is updated).
        events
            ``(kind, account_id, payload)`` in emission order (ordinal = index).
        finished
            Mark the feed as finished.

        Returns
        -------
        bool
            False if ``seq`` was already committed (nothing written).
        """
        with self._session.begin() as s:
            cur = s.get(CursorRow, feed, with_for_update=True)
            if cur is not None and seq <= cur.last_seq:
                return False
            self._write_accounts(s, accounts)
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
                            "margin_ratio": _finite_or_none(m.margin_ratio),
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
                            "ordinal": i,
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
                    CursorRow(feed=feed, last_seq=seq, market_time=market_time, finished=finished)
                )
            else:
                cur.last_seq = seq
                cur.market_time = market_time
                cur.finished = finished
        return True

    def events(self, *, kinds: Sequence[str] | None = None) -> list[StoredEvent]:
        """Stored events in emission order (optionally only some kinds)."""
        with self._session() as s:
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
