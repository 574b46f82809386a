"""Switch endpoints: where telbill pushes the disconnect of a running call (Kamailio JSON-RPC).

Revision ID: 0023
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0021"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "switch_endpoints",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rpc_url", sa.String(500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("last_event_id", Id, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.CheckConstraint("kind IN ('kamailio')", name="ck_switch_endpoints_kind"),
    )
    op.create_index("ix_switch_endpoints_account_id", "switch_endpoints", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_switch_endpoints_account_id", table_name="switch_endpoints")
    op.drop_table("switch_endpoints")
