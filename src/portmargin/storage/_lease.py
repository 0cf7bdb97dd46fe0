"""Named leases in the database: one live holder at a time, taken over once it stops beating.

A lease is a row of ``leases`` keyed by its name. It is acquired by an ``INSERT`` (which fails
on the primary key while any row exists) or, if a row exists whose ``expires_at`` has passed,
by an ``UPDATE ... WHERE name = :name AND expires_at < :now`` that only one contender can
win: SQLite serialises writers, and PostgreSQL re-evaluates the ``WHERE`` of a concurrent
``UPDATE`` on the row version the winner committed (READ COMMITTED;
https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED), so the
loser updates nothing. The holder's heartbeat moves ``expires_at`` forward (a background
thread every ``ttl / 3`` s, and every committed monitor step); a process that dies, even by
SIGKILL, stops beating and its lease can be taken over ``ttl`` seconds after its last beat.
On the holder's own machine (same host name, boot id and pid namespace) a dead holder is
seen at once, so a monitor restarted after a crash starts without waiting: the lease is then
taken by an ``UPDATE`` conditional on the dead holder's token (one winner again). A pid that
is alive, even reused by another program, counts as alive: the TTL still applies.

Every renewal is conditional on the acquisition's random ``token``, so a holder whose lease
was taken over learns it at its next write and writes nothing more (a fencing check).

Times are the holders' UTC wall clocks as fixed-width ISO-8601 strings (``...123456Z``),
which compare correctly as text on every backend; processes sharing a PostgreSQL database
from several hosts need clocks synchronised (NTP) to well within the TTL.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import URL, CursorResult, Engine, Table, delete, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from portmargin.errors import StorageError
from portmargin.storage._errors import describe_url, guard
from portmargin.storage._schema import LeaseRow

__all__ = [
    "DEFAULT_LEASE_TTL",
    "MONITOR_LEASE",
    "Lease",
    "LeaseHeldError",
    "LeaseInfo",
    "default_owner",
]

DEFAULT_LEASE_TTL = 30.0
"""Seconds after its last heartbeat at which a lease may be taken over."""

MONITOR_LEASE = "monitor"
"""The lease a process holds while it writes account state (one per database)."""

_TABLE = cast(Table, LeaseRow.__table__)
_ATTEMPTS = 5


class LeaseHeldError(StorageError):
    """The lease is held by another live process (the message names it and what to do)."""


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease as stored: who holds it and its times (ISO-8601 UTC)."""

    name: str
    owner: str
    acquired_at: str
    heartbeat_at: str
    expires_at: str


def default_owner() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _host_key() -> str:
    """Host name, Linux boot id and pid-namespace inode: who can see whose pids."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return "|".join((socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), pidns))


def _dead(pid: int) -> bool:
    """Whether process ``pid`` of this machine has exited (POSIX; False when unsure)."""
    if os.name != "posix" or pid <= 0:
        return False  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by another user
    stat = _read(f"/proc/{pid}/stat")  # Linux: a killed, unreaped child is a zombie
    return bool(stat) and stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"])


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def holder(conn: Connection | Session, name: str) -> LeaseInfo | None:
    """The stored lease ``name``, or None."""
    row = _row(conn, name)
    if row is None:
        return None
    return LeaseInfo(row.name, row.owner, row.acquired_at, row.heartbeat_at, row.expires_at)


def _row(conn: Connection | Session, name: str) -> Any:
    return conn.execute(select(_TABLE).where(_TABLE.c.name == name)).first()


def _short(iso: str) -> str:
    """``2026-02-25T08:00:00.123456Z`` → ``2026-02-25T08:00:00Z`` (messages)."""
    return iso[:19] + "Z" if len(iso) >= 19 else iso


class Lease:
    """A held lease (see the module docstring); made by :meth:`Store.lease`.

    Parameters
    ----------
    engine
        The store's engine.
    url
        The database URL (messages only; its password is masked).
    name
        Lease name, e.g. :data:`MONITOR_LEASE`.
    owner
        Who holds it, ``host:pid`` by default.
    ttl
        Seconds after the last heartbeat at which others may take the lease over.
    """

    def __init__(self, engine: Engine, url: str | URL, name: str, owner: str, ttl: float) -> None:
        if not ttl > 0:
            raise ValueError(f"lease ttl must be positive, got {ttl!r}")
        self.engine = engine
        self.url = url
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    # -- statements -----------------------------------------------------------------------
    def _times(self) -> dict[str, str]:
        now = _now()
        return {"heartbeat_at": _iso(now), "expires_at": _iso(now + timedelta(seconds=self.ttl))}

    def renew_in(self, conn: Connection | Session, *, what: str) -> None:
        """Move the heartbeat forward inside the caller's transaction (a fencing check).

        ``what`` names the caller's write in the message if the lease is lost.

        Raises
        ------
        StorageError
            If the lease is no longer this acquisition's (taken over or removed); the
            caller's transaction must then be rolled back.
        """
        stmt = (
            update(_TABLE)
            .where(_TABLE.c.name == self.name, _TABLE.c.token == self.token)
            .values(**self._times())
        )
        result = cast(CursorResult[Any], conn.execute(stmt))
        if result.rowcount != 1:
            self.lost = True
            raise self._lost_error(holder(conn, self.name), what)

    def _lost_error(self, now: LeaseInfo | None, what: str) -> StorageError:
        where = describe_url(self.url)
        by = (
            f"taken over by {now.owner} at {_short(now.acquired_at)}"
            if now is not None
            else "removed"
        )
        return StorageError(
            f"database {where}: lease {self.name!r} of this process ({self.owner}) was {by} "
            f"(no heartbeat from this process for {self.ttl:g} s); {what} was not written; "
            "stop this process: the database now belongs to the other one"
        )

    def renew(self) -> None:
        """Move the heartbeat forward in a transaction of its own.

        Raises
        ------
        StorageError
            If the database fails, or the lease was taken over (then :attr:`lost` is True).
        """
        with guard(self.url, f"renewing lease {self.name!r}"), self.engine.begin() as conn:
            self.renew_in(conn, what="the heartbeat")

    # -- acquisition ----------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease, or raise :class:`LeaseHeldError` naming its live holder."""
        with guard(self.url, f"acquiring lease {self.name!r}"):
            for _ in range(_ATTEMPTS):
                acquired_at = _iso(_now())
                row = {
                    "name": self.name,
                    "owner": self.owner,
                    "token": self.token,
                    "host_key": _host_key(),
                    "pid": os.getpid(),
                    "acquired_at": acquired_at,
                    **self._times(),
                }
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(_TABLE).values(**row))
                    return
                except sa_exc.IntegrityError:
                    pass  # a row exists: take it over only if it has expired
                with self.engine.begin() as conn:
                    stale = _TABLE.c.expires_at < acquired_at
                    current = _row(conn, self.name)
                    if (
                        current is not None
                        and current.host_key == row["host_key"]
                        and _dead(current.pid)
                    ):
                        stale = _TABLE.c.token == current.token  # its holder died here
                    result = cast(
                        CursorResult[Any],
                        conn.execute(
                            update(_TABLE).where(_TABLE.c.name == self.name, stale).values(**row)
                        ),
                    )
                    if result.rowcount == 1:
                        return
                    live = holder(conn, self.name)
                if live is not None:
                    raise self._held_error(live)
                # Released between our INSERT and UPDATE: try again.
        raise LeaseHeldError(
            f"database {describe_url(self.url)}: lease {self.name!r} changed hands "
            f"{_ATTEMPTS} times while this process tried to take it; run the command again"
        )

    def _held_error(self, live: LeaseInfo) -> LeaseHeldError:
        beat = _parse(live.heartbeat_at)
        ago = f" ({max(0.0, (_now() - beat).total_seconds()):.0f} s ago)" if beat else ""
        return LeaseHeldError(
            f"database {describe_url(self.url)} is in use: lease {self.name!r} is held by "
            f"{live.owner} since {_short(live.acquired_at)}, last heartbeat "
            f"{_short(live.heartbeat_at)}{ago}; stop that process first, or if it is no longer "
            f"running wait until its lease expires at {_short(live.expires_at)} and run again"
        )

    # -- heartbeat and release ------------------------------------------------------------
    def start_heartbeat(self) -> None:
        """Renew every ``ttl / 3`` s from a daemon thread until :meth:`release`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._beat, name=f"portmargin-lease-{self.name}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except Exception:
                # A busy or briefly unreachable database: the next beat retries (a heartbeat
                # must never kill its process). A lost lease is final; the owner's next
                # commit refuses to write (fencing).
                if self.lost:
                    return

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this acquisition's.

        Never raises: a lease that cannot be deleted (database gone, disk full) simply
        expires ``ttl`` seconds after its last heartbeat.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, self.ttl))
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(_TABLE).where(_TABLE.c.name == self.name, _TABLE.c.token == self.token)
                )
        except Exception:  # see the docstring
            return
