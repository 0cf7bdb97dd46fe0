"""Initial schema: accounts, balances, positions, snapshots, events, cursor.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
    )
    op.create_table(
        "balances",
        sa.Column(
            "account_id",
            sa.String(64),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("currency", sa.String(8), primary_key=True),
        sa.Column("amount", sa.Float, nullable=False),
    )
    op.create_table(
        "positions",
        sa.Column(
            "account_id",
            sa.String(64),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("instrument", sa.String(64), primary_key=True),
        sa.Column("quantity", sa.Float, nullable=False),
    )
    op.create_table(
        "margin_snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False, index=True),
        sa.Column("account_id", sa.String(64), nullable=False, index=True),
        sa.Column("market_time", sa.String(40), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("initial_margin", sa.Float, nullable=False),
        sa.Column("maintenance_margin", sa.Float, nullable=False),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("margin_ratio", sa.Float, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.UniqueConstraint("seq", "account_id", name="uq_snapshot_seq_account"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False, index=True),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False, index=True),
        sa.Column("account_id", sa.String(64), nullable=True, index=True),
        sa.Column("market_time", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.UniqueConstraint("seq", "ordinal", name="uq_event_seq_ordinal"),
    )
    op.create_table(
        "monitor_cursor",
        sa.Column("feed", sa.String(64), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("market_time", sa.String(40), nullable=False),
        sa.Column("finished", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    """Drop every table."""
    for table in ("monitor_cursor", "events", "margin_snapshots", "positions", "balances"):
        op.drop_table(table)
    op.drop_table("accounts")
