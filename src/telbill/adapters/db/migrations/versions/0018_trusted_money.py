"""Trusted money sources and API key lifetimes.

* `top_up_requests`: a customer's bank transfer waits for its provider's confirmation.
* `payment_callback_secrets`: per-provider secret of signed card-payment callbacks.
* `api_keys.expires_at` (optional end of a key's life) and `api_keys.last_used_at`.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "top_up_requests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("provider_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reference", sa.String(150), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("requested_by", sa.String(254), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("decided_by", sa.String(254), nullable=True),
        sa.Column("decided_at", When, nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("receipt_id", Id, sa.ForeignKey("receipts.id"), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'confirmed', 'rejected')", name="status"),
        sa.CheckConstraint("amount_micros > 0", name="amount_positive"),
    )
    op.create_index(
        "ix_top_up_requests_provider_id_status", "top_up_requests", ["provider_id", "status"]
    )
    op.create_index("ix_top_up_requests_account_id_id", "top_up_requests", ["account_id", "id"])
    op.create_table(
        "payment_callback_secrets",
        sa.Column(
            "provider_id", Id, sa.ForeignKey("accounts.id"), primary_key=True,
            autoincrement=False,
        ),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("created_at", When, nullable=False),
    )  # fmt: skip
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", When, nullable=True))
        batch.add_column(sa.Column("last_used_at", When, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
    op.drop_table("payment_callback_secrets")
    op.drop_index("ix_top_up_requests_account_id_id", "top_up_requests")
    op.drop_index("ix_top_up_requests_provider_id_status", "top_up_requests")
    op.drop_table("top_up_requests")
