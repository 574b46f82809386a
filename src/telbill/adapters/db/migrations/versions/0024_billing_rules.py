"""Billing rules of issue 17: per-level low-balance modes.

* ``threshold_settings.fixed_modes``: the mode of each fixed level (``below`` or
  ``at_or_below``), parallel to ``fixed_levels_micros``; NULL means each level's default
  (``at_or_below`` for zero, ``below`` for the others).
* ``invoice_settings.empty_month``: what a month without a charge gives the customer,
  ``invoice`` (a zero invoice) or ``statement``; NULL: the provider's choice.
* ``number_grace_overrides``: support's longer number grace period for one billing account.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "number_grace_overrides",
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("grace_months", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("grace_months >= 0", name="ck_number_grace_overrides_grace_months"),
    )
    with op.batch_alter_table("threshold_settings") as batch:
        batch.add_column(sa.Column("fixed_modes", sa.JSON, nullable=True))
    with op.batch_alter_table("invoice_settings") as batch:
        batch.add_column(sa.Column("empty_month", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_table("number_grace_overrides")
    with op.batch_alter_table("invoice_settings") as batch:
        batch.drop_column("empty_month")
    with op.batch_alter_table("threshold_settings") as batch:
        batch.drop_column("fixed_modes")
