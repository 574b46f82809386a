"""The event outbox: business events (`balance.low`, `session.disconnect`, `number.released`...)
written in the same database transaction as the change that caused them.

Producers (charging, lifecycle, thresholds) only append; notification delivery (in-app,
email, webhooks) reads the outbox and records its own delivery state elsewhere. `dedupe_key`
makes emitting idempotent: the same key twice keeps the first event.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table

from telbill.adapters.db.tables import Id, UTCDateTime, metadata

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=True),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("payload", JSON, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
)

Index("ix_events_account_id_id", events.c.account_id, events.c.id)
Index("ix_events_type_id", events.c.type, events.c.id)
