"""Durable state (SQLAlchemy 2 + Alembic): accounts, balances, positions, snapshots, events.

A SQLite file is the embedded default (``sqlite:///portmargin.db``); ``postgresql://...``
URLs use psycopg 3. Migrations ship in the package and run on :func:`open_store`. Database
faults raise :class:`~portmargin.errors.StorageError` (one line, password masked); a lease
(:meth:`Store.lease`, :data:`MONITOR_LEASE`) keeps a second monitor off a database in use.
"""

from portmargin.storage._lease import (
    DEFAULT_LEASE_TTL,
    MONITOR_LEASE,
    Lease,
    LeaseHeldError,
    LeaseInfo,
)
from portmargin.storage._store import (
    DEFAULT_DB_URL,
    PG_CONNECT_TIMEOUT,
    Cursor,
    Store,
    StoredEvent,
    open_store,
    upgrade,
)

__all__ = [
    "DEFAULT_DB_URL",
    "DEFAULT_LEASE_TTL",
    "MONITOR_LEASE",
    "PG_CONNECT_TIMEOUT",
    "Cursor",
    "Lease",
    "LeaseHeldError",
    "LeaseInfo",
    "Store",
    "StoredEvent",
    "open_store",
    "upgrade",
]
