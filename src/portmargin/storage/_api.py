"""The margin service's tables: API keys (hashed at rest) and the API's input log.

============================  ==========================================================
``api_keys``                  key id → SHA-256 of the secret, role, account (trader keys),
                              optional rate limit, created / revoked times
``api_inputs``                (feed, seq) → an input event the service gave its monitor,
                              with the client order id of a trade (unique per account)
============================  ==========================================================

A key is ``pm_<key id>_<secret>``: the id (12 hex digits) finds the row, the secret (256
random bits, :func:`secrets.token_urlsafe`) is compared by its SHA-256 in constant time.
The secret is shown once, when the key is created, and never stored. A fast hash is
enough for a random 256-bit secret (there is no dictionary to try; OWASP's password
storage advice concerns low-entropy passwords:
https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html).

The input log is written *before* the monitor commits the input (its own transaction);
rows above the monitor's committed cursor were never applied and are dropped when the
service starts (:func:`drop_uncommitted`), so the log below the cursor is exactly what the
monitor applied, in order: a restarted service replays it with the feed to rebuild its
market state, and answers a retried client order id from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Float, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Mapped, Session, mapped_column

from portmargin.errors import InputError
from portmargin.storage._errors import guard
from portmargin.storage._schema import Base, EventRow
from portmargin.storage._store import Store, StoredEvent

__all__ = [
    "ROLES",
    "ApiInput",
    "ApiInputRow",
    "ApiKey",
    "ApiKeyRow",
    "NumberedEvent",
    "create_key",
    "drop_uncommitted",
    "event_count",
    "events_after",
    "events_at",
    "find_order",
    "forget_inputs",
    "inputs_upto",
    "last_event_id",
    "list_keys",
    "log_input",
    "revoke_key",
    "verify_key",
]

ROLES = ("admin", "risk", "trader")
_PREFIX = "pm_"


class ApiKeyRow(Base):
    """An API key: its id, the SHA-256 of its secret, role and scope."""

    __tablename__ = "api_keys"
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rate_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))
    revoked_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class ApiInputRow(Base):
    """An input event the service gave its monitor (see the module docstring)."""

    __tablename__ = "api_inputs"
    __table_args__ = (
        UniqueConstraint("account_id", "client_order_id", name="uq_api_inputs_order"),
    )
    feed: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never its secret)."""

    key_id: str
    role: str
    account_id: str | None
    rate_per_second: float | None
    label: str | None
    created_at: str
    revoked_at: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "key_id": self.key_id,
            "role": self.role,
            "account": self.account_id,
            "rate_per_second": self.rate_per_second,
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class ApiInput:
    """One logged input event."""

    feed: str
    seq: int
    kind: str
    account_id: str | None
    client_order_id: str | None
    fingerprint: str | None
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NumberedEvent:
    """A stored event with its row id, the stream's resume point (commit order)."""

    id: int
    event: StoredEvent


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        row.key_id,
        row.role,
        row.account_id,
        row.rate_per_second,
        row.label,
        row.created_at,
        row.revoked_at,
    )


def create_key(
    store: Store,
    *,
    role: str,
    account_id: str | None = None,
    rate_per_second: float | None = None,
    label: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it and the token ``pm_<id>_<secret>`` (shown once, not stored).

    Raises
    ------
    InputError
        For an unknown role, a trader key without an account, or an account on another role.
    StorageError
        On a database fault.
    """
    if role not in ROLES:
        raise InputError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if role == "trader" and not account_id:
        raise InputError("a trader key needs --account ID (the account it may read and trade)")
    if role != "trader" and account_id:
        raise InputError(f"--account is for trader keys only; an {role} key sees every account")
    if rate_per_second is not None and not (0 < rate_per_second <= 1e6):
        raise InputError("rate: requests per second must be in (0, 1e6]")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKeyRow(
        key_id=key_id,
        secret_sha256=_digest(secret),
        role=role,
        account_id=account_id,
        rate_per_second=rate_per_second,
        label=label,
        created_at=_now(),
        revoked_at=None,
    )
    key = _key(row)
    with guard(store.url, "creating an API key"), Session(store.engine) as s, s.begin():
        s.add(row)
    return key, f"{_PREFIX}{key_id}_{secret}"


def verify_key(store: Store, token: str) -> ApiKey | None:
    """The live key of ``token``, or None (malformed, unknown, wrong secret or revoked)."""
    if not token.startswith(_PREFIX) or len(token) > 200:
        return None
    key_id, sep, secret = token[len(_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    with guard(store.url, "checking an API key"), Session(store.engine) as s:
        row = s.get(ApiKeyRow, key_id)
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return None
        return _key(row)


def list_keys(store: Store) -> list[ApiKey]:
    """Every key (revoked ones too), oldest first."""
    with guard(store.url, "listing API keys"), Session(store.engine) as s:
        rows = s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id))
        return [_key(r) for r in rows]


def revoke_key(store: Store, key_id: str) -> bool:
    """Revoke a key; False if there is no such live key."""
    with guard(store.url, "revoking an API key"), Session(store.engine) as s, s.begin():
        done = s.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=_now())
        )
        return bool(getattr(done, "rowcount", 0))


# -- the input log ---------------------------------------------------------------------------
def _input(row: ApiInputRow) -> ApiInput:
    return ApiInput(
        row.feed,
        row.seq,
        row.kind,
        row.account_id,
        row.client_order_id,
        row.fingerprint,
        json.loads(row.document),
    )


def log_input(
    store: Store,
    entry: ApiInput,
    *,
    forget: Sequence[int] = (),
) -> ApiInput | None:
    """Write ``entry`` (and first delete the rows ``forget`` of its feed), in one transaction.

    Returns None once written, or the logged input that already holds the entry's client
    order id for its account (nothing is written then).

    Raises
    ------
    StorageError
        On a database fault (nothing is written).
    """
    with guard(store.url, f"logging input event {entry.seq}"), Session(store.engine) as s:
        try:
            with s.begin():
                if forget:
                    s.execute(
                        delete(ApiInputRow).where(
                            ApiInputRow.feed == entry.feed, ApiInputRow.seq.in_(list(forget))
                        )
                    )
                if entry.client_order_id is not None:
                    prior = _order(s, entry.account_id, entry.client_order_id)
                    if prior is not None:
                        return prior
                s.add(
                    ApiInputRow(
                        feed=entry.feed,
                        seq=entry.seq,
                        kind=entry.kind,
                        account_id=entry.account_id,
                        client_order_id=entry.client_order_id,
                        fingerprint=entry.fingerprint,
                        document=json.dumps(entry.document, sort_keys=True, allow_nan=False),
                    )
                )
        except sa_exc.IntegrityError:
            if entry.client_order_id is None:
                raise
            prior = _order(s, entry.account_id, entry.client_order_id)
            if prior is None:
                raise
            return prior
    return None


def _order(s: Session, account_id: str | None, client_order_id: str) -> ApiInput | None:
    row = s.scalars(
        select(ApiInputRow).where(
            ApiInputRow.account_id == account_id,
            ApiInputRow.client_order_id == client_order_id,
        )
    ).first()
    return None if row is None else _input(row)


def find_order(store: Store, account_id: str, client_order_id: str) -> ApiInput | None:
    """The logged trade of ``account_id`` with ``client_order_id``, or None."""
    with guard(store.url, "reading the input log"), Session(store.engine) as s:
        return _order(s, account_id, client_order_id)


def inputs_upto(store: Store, feed: str, seq: int) -> list[ApiInput]:
    """The logged inputs of ``feed`` with sequence number ≤ ``seq``, in order."""
    with guard(store.url, "reading the input log"), Session(store.engine) as s:
        rows = s.scalars(
            select(ApiInputRow)
            .where(ApiInputRow.feed == feed, ApiInputRow.seq <= seq)
            .order_by(ApiInputRow.seq)
        )
        return [_input(r) for r in rows]


def forget_inputs(store: Store, feed: str, seqs: Sequence[int]) -> None:
    """Delete the logged inputs ``seqs`` of ``feed`` (inputs that were not applied)."""
    with guard(store.url, "cleaning the input log"), Session(store.engine) as s, s.begin():
        s.execute(
            delete(ApiInputRow).where(ApiInputRow.feed == feed, ApiInputRow.seq.in_(list(seqs)))
        )


def drop_uncommitted(store: Store, feed: str, cursor: int) -> int:
    """Delete the logged inputs of ``feed`` above the committed ``cursor``; how many."""
    with guard(store.url, "cleaning the input log"), Session(store.engine) as s, s.begin():
        done = s.execute(
            delete(ApiInputRow).where(ApiInputRow.feed == feed, ApiInputRow.seq > cursor)
        )
        return int(getattr(done, "rowcount", 0) or 0)


# -- events by row id (the stream's order) -------------------------------------------------
def events_after(
    store: Store,
    after_id: int,
    *,
    account_id: str | None = None,
    limit: int = 1000,
) -> list[NumberedEvent]:
    """Stored events with row id > ``after_id`` (commit order), optionally of one account."""
    with guard(store.url, "reading events"), Session(store.engine) as s:
        q = select(EventRow).where(EventRow.id > after_id)
        if account_id is not None:
            q = q.where(EventRow.account_id == account_id)
        rows = s.scalars(q.order_by(EventRow.id).limit(limit))
        return [
            NumberedEvent(
                r.id,
                StoredEvent(
                    r.seq, r.ordinal, r.kind, r.account_id, r.market_time, json.loads(r.payload)
                ),
            )
            for r in rows
        ]


def events_at(store: Store, seq: int, account_id: str | None) -> list[NumberedEvent]:
    """The stored events of input ``seq`` (of one account), in order."""
    with guard(store.url, "reading events"), Session(store.engine) as s:
        q = select(EventRow).where(EventRow.seq == seq)
        if account_id is not None:
            q = q.where(EventRow.account_id == account_id)
        return [
            NumberedEvent(
                r.id,
                StoredEvent(
                    r.seq, r.ordinal, r.kind, r.account_id, r.market_time, json.loads(r.payload)
                ),
            )
            for r in s.scalars(q.order_by(EventRow.id))
        ]


def event_count(store: Store, *, account_id: str | None = None) -> int:
    """How many events are stored (of one account)."""
    from sqlalchemy import func

    with guard(store.url, "counting events"), Session(store.engine) as s:
        q = select(func.count(EventRow.id))
        if account_id is not None:
            q = q.where(EventRow.account_id == account_id)
        return int(s.scalar(q) or 0)


def last_event_id(store: Store) -> int:
    """The largest event row id (0 with none)."""
    from sqlalchemy import func

    with guard(store.url, "reading events"), Session(store.engine) as s:
        return int(s.scalar(select(func.max(EventRow.id))) or 0)
