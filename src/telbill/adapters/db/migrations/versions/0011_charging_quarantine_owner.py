"""CDR quarantine per tenant: the provider and the account that own each quarantined row.

A tenant lists, fixes and reposts only its own rows. Rows quarantined before this revision
have no owner (NULL): only the platform admin (the CLI without --account) sees them.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INDEX = "ix_cdr_quarantine_provider_id_id"
COLUMNS = ("provider_id", "account_id")


def upgrade() -> None:
    # 0004 creates `cdr_quarantine` from the live table definition: on a database created
    # by it after this change, the columns and the index already exist.
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("cdr_quarantine")}
    for column in COLUMNS:
        if column in present:
            continue
        # Batch mode: SQLite cannot add a foreign key to an existing table in place (the
        # table is copied); PostgreSQL gets a plain ALTER TABLE.
        with op.batch_alter_table("cdr_quarantine") as batch:
            reference = sa.ForeignKey("accounts.id", name=f"fk_cdr_quarantine_{column}_accounts")
            batch.add_column(sa.Column(column, Id, reference, nullable=True))
    if INDEX not in {i["name"] for i in inspector.get_indexes("cdr_quarantine")}:
        op.create_index(INDEX, "cdr_quarantine", ["provider_id", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="cdr_quarantine")
    for column in reversed(COLUMNS):
        with op.batch_alter_table("cdr_quarantine") as batch:
            batch.drop_column(column)
