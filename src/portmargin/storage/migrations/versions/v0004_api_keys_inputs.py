"""The margin service: API keys (hashed) and the API's input log.

* ``api_keys``: one row per key of ``portmargin serve`` (``portmargin keys create``): a
  public id, the SHA-256 of the secret (never the secret), the role (``admin``, ``risk``,
  ``trader``), the account of a trader key, an optional rate limit, creation and revocation
  times.
* ``api_inputs``: every input event the service gave its monitor (a trade, deposit,
  withdrawal, account upsert or pushed market update), keyed by the monitor's sequence
  number, written before the monitor commits the event; with the client order id of a
  trade, unique per account, so a retried order is answered from the log instead of being
  applied twice.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``api_keys`` and ``api_inputs``."""
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=True),
        sa.Column("rate_per_second", sa.Float, nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.String(40), nullable=True),
    )
    op.create_table(
        "api_inputs",
        sa.Column("feed", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=True),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.UniqueConstraint("account_id", "client_order_id", name="uq_api_inputs_order"),
    )


def downgrade() -> None:
    """Drop ``api_inputs`` and ``api_keys``."""
    op.drop_table("api_inputs")
    op.drop_table("api_keys")
