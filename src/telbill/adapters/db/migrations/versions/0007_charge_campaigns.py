"""Charges name the campaign that made the usage (per-campaign counters).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INDEX = "ix_charges_account_id_campaign_id"


def upgrade() -> None:
    # 0004 creates `charges` from the live table definition: on a database created by it
    # after this change, the column and its index already exist.
    inspector = sa.inspect(op.get_bind())
    if "campaign_id" not in {c["name"] for c in inspector.get_columns("charges")}:
        # Batch mode: SQLite cannot add a foreign key to an existing table in place (the
        # table is copied); PostgreSQL gets a plain ALTER TABLE.
        with op.batch_alter_table("charges") as batch:
            batch.add_column(
                sa.Column(
                    "campaign_id",
                    Id,
                    sa.ForeignKey("campaigns.id", name="fk_charges_campaign_id_campaigns"),
                    nullable=True,
                )
            )
    if INDEX not in {i["name"] for i in inspector.get_indexes("charges")}:
        op.create_index(INDEX, "charges", ["account_id", "campaign_id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="charges")
    with op.batch_alter_table("charges") as batch:
        batch.drop_column("campaign_id")
