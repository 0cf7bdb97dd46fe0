"""SQLAlchemy 2 tables of the durable monitor state.

============================  ==========================================================
``accounts``                  id, current status, margin method, portfolio-margin approval
                              and the reason it is excluded from margining (if it is)
``balances``                  (account, currency) → amount
``positions``                 (account, instrument) → quantity in contracts
``margin_snapshots``          an account's figures after each input event that touched it
``events``                    every emitted event, unique by (input seq, ordinal)
``monitor_cursor``            the last committed input sequence number and feed position
                              per feed
``leases``                    name → the process holding it (``host:pid``) and its heartbeat
============================  ==========================================================

Amounts are USD floats; times are ISO-8601 UTC strings (``...Z``), as in the JSON contract,
so SQLite and PostgreSQL store and compare them identically.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AccountRow",
    "BalanceRow",
    "Base",
    "CursorRow",
    "EventRow",
    "LeaseRow",
    "PositionRow",
    "SnapshotRow",
]


class Base(DeclarativeBase):
    """Declarative base of the storage tables."""


class AccountRow(Base):
    """An account, its last known status and margin method, approval and margining error.

    ``pm_approved`` is the venue's grant of portfolio margin (migration 0003, true for the
    rows stored before); ``error`` is null while the account is margined, else the one-line
    reason the monitor excludes it (``account_error`` events say when it changed).
    """

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="healthy")
    method: Mapped[str] = mapped_column(String(16), default="portfolio")
    pm_approved: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class BalanceRow(Base):
    """One currency balance of an account."""

    __tablename__ = "balances"
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(8), primary_key=True)
    amount: Mapped[float] = mapped_column(Float)


class PositionRow(Base):
    """One net position of an account."""

    __tablename__ = "positions"
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    instrument: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[float] = mapped_column(Float)


class SnapshotRow(Base):
    """Margin figures of one account after one input event."""

    __tablename__ = "margin_snapshots"
    __table_args__ = (UniqueConstraint("seq", "account_id", name="uq_snapshot_seq_account"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    market_time: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(16))
    initial_margin: Mapped[float] = mapped_column(Float)
    maintenance_margin: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    margin_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16))


class EventRow(Base):
    """An emitted event (margin call, liquidation, healthy, rejected, accepted)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("seq", "ordinal", name="uq_event_seq_ordinal"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    market_time: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)


class CursorRow(Base):
    """Last committed input sequence number and feed position of a feed (the resume point).

    ``position`` (migration 0003) is the feed position of the last committed input event
    (the line number of a JSON-lines feed); null for cursors written before it existed.
    """

    __tablename__ = "monitor_cursor"
    feed: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    market_time: Mapped[str] = mapped_column(String(40))
    finished: Mapped[bool] = mapped_column(Boolean, default=False)


class LeaseRow(Base):
    """A named lease: which process holds it, since when, and until when it is live.

    ``token`` identifies one acquisition (a restarted process with the same pid gets a new
    one); ``expires_at`` is the holder's last heartbeat plus its time-to-live, after which
    another process may take the lease over. ``host_key`` (host name, boot id and pid
    namespace) and ``pid`` let a process on the same machine see that the holder has died.
    """

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    token: Mapped[str] = mapped_column(String(32))
    host_key: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[str] = mapped_column(String(32))
    heartbeat_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
