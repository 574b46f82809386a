"""Charging: plans, plan assignments, charges, quarantined CDRs, sessions, campaigns.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

from telbill.adapters.db.charging_tables import (
    account_plans,
    campaigns,
    cdr_quarantine,
    charges,
    charging_plans,
    sessions,
)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Created from the live table definitions: a fresh database gets the columns later
# revisions add too (those revisions skip what exists). campaigns before charges, which
# refers to it since 0007.
TABLES = (charging_plans, account_plans, campaigns, charges, cdr_quarantine, sessions)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind)
