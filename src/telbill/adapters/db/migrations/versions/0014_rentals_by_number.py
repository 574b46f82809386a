"""An index on `number_rentals.number`: an inbound toll-free call finds the renter who pays
for it by the called number (`services.number_payers`), at every CDR and session.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_number_rentals_number_status", "number_rentals", ["number", "status"])


def downgrade() -> None:
    op.drop_index("ix_number_rentals_number_status", table_name="number_rentals")
