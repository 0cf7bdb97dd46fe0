"""Accounts keep their portfolio-margin approval and a margining error; the cursor a position.

* ``accounts.pm_approved`` (boolean, default true for the rows already stored): the venue's
  grant of portfolio margin (:class:`portmargin.accounts.Account`), an input of the
  qualification gate, so that it survives a reload.
* ``accounts.error`` (text, null when the account is margined): why the monitor excludes the
  account from margining (e.g. an option that expired without a settlement price).
* ``monitor_cursor.position`` (null for cursors written before): the feed position (line
  number of a JSON-lines feed) of the last committed input event, so that a line whose own
  sequence number is unusable is rejected once and skipped on a restart.

Columns are added with ``ALTER TABLE ... ADD COLUMN`` (no table copy: ``accounts`` is the
parent of two ``ON DELETE CASCADE`` foreign keys).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``accounts.pm_approved``, ``accounts.error`` and ``monitor_cursor.position``."""
    op.add_column(
        "accounts",
        sa.Column("pm_approved", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.add_column("accounts", sa.Column("error", sa.Text, nullable=True))
    op.add_column("monitor_cursor", sa.Column("position", sa.BigInteger, nullable=True))


def downgrade() -> None:
    """Drop the three columns (``ALTER TABLE ... DROP COLUMN``, SQLite 3.35 or later)."""
    op.drop_column("monitor_cursor", "position")
    op.drop_column("accounts", "error")
    op.drop_column("accounts", "pm_approved")
