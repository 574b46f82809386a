"""CGRateS rows: calendar timings, MaxCost and data units on `tariff_rates`.

`calendar` (JSON, NULL: every day) limits a row to years, months and month days (CGRateS
timings); `max_cost_nanos` and `max_cost_strategy` cap a call's cost (CGRateS MaxCost with
``*free`` or ``*disconnect``); `rate_unit` is the number of bytes (data) or units (generic)
a data or generic row's rate is the price of. All NULL for native decks.

Revision ID: 0021
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0018"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("calendar", sa.JSON()),
    ("max_cost_nanos", sa.BigInteger()),
    ("max_cost_strategy", sa.String(16)),
    ("rate_unit", sa.BigInteger()),
)


def upgrade() -> None:
    # An earlier revision may create the table from the live definition: skip what exists.
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("tariff_rates")}
    for name, kind in _COLUMNS:
        if name not in present:
            op.add_column("tariff_rates", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tariff_rates") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
