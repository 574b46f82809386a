"""Lifecycle speed: an index on transactions.created_at for the set-based threshold check.

The spend-based threshold sums each wallet's spend over the last N days; the scheduler
reads it for every wallet at every tick, so the window must be found by an index range,
not by a scan of the whole journal.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_transactions_created_at", "transactions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_transactions_created_at", table_name="transactions")
