"""Indexes of the usage reports on `charges` (the table is `charging_tables`').

Both are covering: they hold every column the report totals and the period counters read,
so a month of a busy account is aggregated from the index alone (SQLite reads no table row;
PostgreSQL does an index-only scan once autovacuum has marked the pages visible).

* `ix_charges_reports`: an account's (or a subtree's) charges of a period: call totals,
  counters per account and per campaign, and the ordered ids of a report's rows (the id
  last: SQLite's indexes carry the rowid anyway, PostgreSQL's need it named).
* `ix_charges_campaign_reports`: a campaign's own charges of a period.
"""

from __future__ import annotations

from sqlalchemy import Index

from telbill.adapters.db.charging_tables import charges

REPORT_COLUMNS = (
    "account_id", "occurred_at", "service", "revision", "billed_units", "amount_micros",
    "currency", "campaign_id", "id",
)  # fmt: skip
CAMPAIGN_REPORT_COLUMNS = (
    "campaign_id", "occurred_at", "service", "account_id", "revision", "billed_units",
)  # fmt: skip

reports_index = Index("ix_charges_reports", *(charges.c[name] for name in REPORT_COLUMNS))
campaign_reports_index = Index(
    "ix_charges_campaign_reports", *(charges.c[name] for name in CAMPAIGN_REPORT_COLUMNS)
)

__all__ = ["CAMPAIGN_REPORT_COLUMNS", "REPORT_COLUMNS", "campaign_reports_index", "reports_index"]
