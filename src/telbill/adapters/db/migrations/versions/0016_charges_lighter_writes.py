"""Charges: lighter writes. No foreign keys, and no index that another index covers.

`charges` takes a row per charged leg, the busiest insert of the engine. On PostgreSQL the
COPY of a chunk's 5,000 rows was nearly all of a chunk's time, and measured per row
(`INSERT ... SELECT` of 20,000 rows) half of it was the four foreign keys' checks (account,
payer, transaction, campaign: one lookup each per row). Every id a charge holds is read or
created by the posting code in the same transaction, and accounts, transactions and
campaigns are never deleted; `telbill reconcile` now proves every charge's references exist.

`ix_charges_payer_id` (payer_id) is the leading column of `ix_charges_payer_id_created_at`
and `ix_charges_payer_id_occurred_at_id`; `ix_charges_account_id_occurred_at` is the leading
pair of `ix_charges_account_id_occurred_at_id` and `ix_charges_reports`: every posted CDR
wrote an entry into each for no query that needed them.

On SQLite dropping a foreign key copies the table (batch mode): on a large database this
revision takes a while (about as long as `VACUUM`).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_DROPPED_INDEXES = (
    ("ix_charges_payer_id", ["payer_id"]),
    ("ix_charges_account_id_occurred_at", ["account_id", "occurred_at"]),
)
_FOREIGN_KEYS = (
    ("fk_charges_account_id_accounts", "account_id", "accounts"),
    ("fk_charges_payer_id_accounts", "payer_id", "accounts"),
    ("fk_charges_transaction_id_transactions", "transaction_id", "transactions"),
    ("fk_charges_campaign_id_campaigns", "campaign_id", "campaigns"),
)


def upgrade() -> None:
    # 0004 creates `charges` from the live table object: a database made before this
    # revision has these indexes and keys, one made after has none of them.
    for name, _ in _DROPPED_INDEXES:
        op.drop_index(name, table_name="charges", if_exists=True)
    inspector = sa.inspect(op.get_bind())
    present = {fk["name"] for fk in inspector.get_foreign_keys("charges")}
    dropping = [name for name, _, _ in _FOREIGN_KEYS if name in present]
    if dropping:
        with op.batch_alter_table("charges") as batch:
            for name in dropping:
                batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        for name, column, table in _FOREIGN_KEYS:
            batch.create_foreign_key(name, table, [column], ["id"])
    for name, columns in _DROPPED_INDEXES:
        op.create_index(name, "charges", columns, if_not_exists=True)
