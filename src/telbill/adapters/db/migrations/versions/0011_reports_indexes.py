"""Reports: covering indexes on `charges` for the call-report totals and the period
counters, per account and per campaign (see `adapters.db.report_tables`).

Revision ID: 0011_reports
Revises: 0010
"""

from __future__ import annotations

from alembic import op

from telbill.adapters.db.report_tables import CAMPAIGN_REPORT_COLUMNS, REPORT_COLUMNS

revision = "0011_reports"
down_revision = "0010"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_charges_reports", list(REPORT_COLUMNS)),
    ("ix_charges_campaign_reports", list(CAMPAIGN_REPORT_COLUMNS)),
)


def upgrade() -> None:
    # 0004 creates `charges` from the table object, which carries these indexes when the
    # reports' tables module is imported: create them only where they are missing.
    for name, columns in _INDEXES:
        op.create_index(name, "charges", columns, if_not_exists=True)


def downgrade() -> None:
    for name, _ in _INDEXES:
        op.drop_index(name, table_name="charges")
