"""Carrier cost per charge, for margin: `charges.cost_micros` (NULL: cost unknown, never 0
for unknown) and `charging_plans.cost_tariff` (a fixed-price plan's carrier cost tariff).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    # 0004 creates both tables from the live definitions: on a database created by it after
    # this change, the columns already exist.
    if "cost_micros" not in _columns("charges"):
        op.add_column("charges", sa.Column("cost_micros", sa.BigInteger(), nullable=True))
    if "cost_tariff" not in _columns("charging_plans"):
        op.add_column("charging_plans", sa.Column("cost_tariff", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("charging_plans") as batch:
        batch.drop_column("cost_tariff")
    with op.batch_alter_table("charges") as batch:
        batch.drop_column("cost_micros")
