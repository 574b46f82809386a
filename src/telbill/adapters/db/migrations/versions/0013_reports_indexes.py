"""Reports: covering indexes on `charges` for the call-report totals and the period
counters, per account and per campaign (see `adapters.db.report_tables`).

On PostgreSQL an index-only scan reads the table for every row on a page not yet marked
all-visible by a vacuum, and the rows not yet vacuumed are the newest: the current month's.
By default autovacuum visits an insert-only table after 20 % new rows (20 million on a
table of 100 million), so `charges` asks for a visit after every 50,000 new rows instead
(cheap on an append-only table: it marks pages visible, it has little to clean).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# As declared in `adapters.db.report_tables` when this revision was written.
_INDEXES = (
    ("ix_charges_reports", [
        "account_id", "occurred_at", "service", "revision", "billed_units", "amount_micros",
        "currency", "campaign_id", "id",
    ]),
    ("ix_charges_campaign_reports", [
        "campaign_id", "occurred_at", "service", "account_id", "revision", "billed_units",
    ]),
)  # fmt: skip


_AUTOVACUUM = {
    "autovacuum_vacuum_insert_threshold": "50000",
    "autovacuum_vacuum_insert_scale_factor": "0",
    "autovacuum_analyze_threshold": "50000",
    "autovacuum_analyze_scale_factor": "0.02",
}


def upgrade() -> None:
    # 0004 creates `charges` from the table object, which carries these indexes when the
    # reports' tables module is imported: create them only where they are missing.
    for name, columns in _INDEXES:
        op.create_index(name, "charges", columns, if_not_exists=True)
    if op.get_bind().dialect.name == "postgresql":
        settings = ", ".join(f"{k} = {v}" for k, v in _AUTOVACUUM.items())
        op.execute(f"ALTER TABLE charges SET ({settings})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE charges RESET ({', '.join(_AUTOVACUUM)})")
    for name, _ in _INDEXES:
        op.drop_index(name, table_name="charges")
