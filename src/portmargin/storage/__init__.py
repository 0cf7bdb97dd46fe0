"""Durable state (SQLAlchemy 2 + Alembic): accounts, balances, positions, snapshots, events.

A SQLite file is the embedded default (``sqlite:///portmargin.db``); ``postgresql://...``
URLs use psycopg 3. Migrations ship in the package and run on :func:`open_store`.
"""

from portmargin.storage._store import (
    DEFAULT_DB_URL,
    Cursor,
    Store,
    StoredEvent,
    open_store,
    upgrade,
)

__all__ = ["DEFAULT_DB_URL", "Cursor", "Store", "StoredEvent", "open_store", "upgrade"]
