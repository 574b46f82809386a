"""Charges: drop two indexes that other indexes already cover.

`ix_charges_payer_id` (payer_id) is the leading column of `ix_charges_payer_id_created_at`
and `ix_charges_payer_id_occurred_at_id`; `ix_charges_account_id_occurred_at` is the leading
pair of `ix_charges_account_id_occurred_at_id` and `ix_charges_reports`. Every CDR posted
wrote an entry into each of them for no query that needed it: on PostgreSQL the COPY of a
chunk's charges rows is most of a chunk's time, and each index is part of it.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_DROPPED = (
    ("ix_charges_payer_id", ["payer_id"]),
    ("ix_charges_account_id_occurred_at", ["account_id", "occurred_at"]),
)


def upgrade() -> None:
    # 0004 created `charges` from the table object of its day: a database made before this
    # revision has both; one made after does not.
    for name, _ in _DROPPED:
        op.drop_index(name, table_name="charges", if_exists=True)


def downgrade() -> None:
    for name, columns in _DROPPED:
        op.create_index(name, "charges", columns, if_not_exists=True)
