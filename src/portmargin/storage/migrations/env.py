"""Alembic environment: runs on the connection handed over by :func:`upgrade`."""

from __future__ import annotations

from alembic import context

from portmargin.storage._schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through portmargin.storage
    raise RuntimeError("portmargin migrations run through portmargin.storage.upgrade()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
