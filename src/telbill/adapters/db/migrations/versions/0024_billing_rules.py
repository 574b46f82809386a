"""Billing rules of issue 17: per-level low-balance modes.

* ``threshold_settings.fixed_modes``: the mode of each fixed level (``below`` or
  ``at_or_below``), parallel to ``fixed_levels_micros``; NULL means each level's default
  (``at_or_below`` for zero, ``below`` for the others).
* ``invoice_settings.empty_month``: what a month without a charge gives the customer,
  ``invoice`` (a zero invoice) or ``statement``; NULL: the provider's choice.

Revision ID: 0024
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("threshold_settings") as batch:
        batch.add_column(sa.Column("fixed_modes", sa.JSON, nullable=True))
    with op.batch_alter_table("invoice_settings") as batch:
        batch.add_column(sa.Column("empty_month", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice_settings") as batch:
        batch.drop_column("empty_month")
    with op.batch_alter_table("threshold_settings") as batch:
        batch.drop_column("fixed_modes")
