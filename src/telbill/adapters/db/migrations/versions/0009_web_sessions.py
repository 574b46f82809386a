"""Dashboard: people with a password, a server-side row per logged-in browser, and the
indexes of the usage page.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
_USAGE_INDEXES = (
    ("ix_charges_payer_id_occurred_at_id", ["payer_id", "occurred_at", "id"]),
    ("ix_charges_account_id_occurred_at_id", ["account_id", "occurred_at", "id"]),
)


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("disabled_at", When, nullable=True),
        sa.UniqueConstraint("email", name="uq_web_users_email"),
        sa.CheckConstraint(
            "role IN ('provider_admin', 'org_admin', 'user')", name="ck_web_users_role"
        ),
    )
    op.create_index("ix_web_users_account_id", "web_users", ["account_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("api_key_id", Id, sa.ForeignKey("api_keys.id"), nullable=True),
        sa.Column("user_id", Id, sa.ForeignKey("web_users.id"), nullable=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),
        sa.CheckConstraint("(api_key_id IS NULL) <> (user_id IS NULL)", name="ck_web_sessions_who"),
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    # The usage page reads a wallet's (or an account's) charges newest first, a keyset page
    # at a time, in (occurred_at, id) order. 0004 creates `charges` from the table object,
    # which already carries these indexes when the dashboard's tables module is imported:
    # create them only where they are missing.
    for index, columns in _USAGE_INDEXES:
        op.create_index(index, "charges", columns, if_not_exists=True)


def downgrade() -> None:
    for index, _ in _USAGE_INDEXES:
        op.drop_index(index, table_name="charges", if_exists=True)
    op.drop_index("ix_web_sessions_expires_at", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index("ix_web_users_account_id", table_name="web_users")
    op.drop_table("web_users")
