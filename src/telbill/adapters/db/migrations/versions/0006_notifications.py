"""Notifications: thresholds, in-app read marks, endpoints and the delivery outbox.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "threshold_settings",
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("fixed_levels_micros", sa.JSON, nullable=False),
        sa.Column("spend_days", sa.Integer, nullable=True),
        sa.Column("spend_window_days", sa.Integer, nullable=True),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_table(
        "threshold_states",
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("threshold_key", sa.String(64), primary_key=True),
        sa.Column("armed", sa.Boolean, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_table(
        "notification_reads",
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("event_id", Id, sa.ForeignKey("events.id"), primary_key=True),
        sa.Column("read_at", When, nullable=False),
    )
    op.create_table(
        "notification_endpoints",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(200), nullable=True),
        sa.Column("event_types", sa.JSON, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("last_event_id", Id, nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.CheckConstraint("kind IN ('webhook', 'email')", name="ck_notification_endpoints_kind"),
    )
    op.create_index(
        "ix_notification_endpoints_account_id", "notification_endpoints", ["account_id"]
    )
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", Id, sa.ForeignKey("events.id"), nullable=False),
        sa.Column("endpoint_id", Id, sa.ForeignKey("notification_endpoints.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", When, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_at", When, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_deliveries_event_endpoint"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name="ck_deliveries_status"
        ),
    )
    op.create_index("ix_deliveries_status_next", "deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("notification_endpoints")
    op.drop_table("notification_reads")
    op.drop_table("threshold_states")
    op.drop_table("threshold_settings")
