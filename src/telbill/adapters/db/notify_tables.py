"""Tables of notifications: threshold settings and states, in-app read marks, notification
endpoints (webhooks, email addresses) and the delivery outbox.

Delivery state lives apart from the event outbox (`event_tables.events`): producers only
append events; `deliveries` holds one row per (event, endpoint) with its attempts, next
attempt time and status (pending, delivered, dead).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from telbill.adapters.db.tables import Id, UTCDateTime, metadata

# One row per account that changed its thresholds; accounts without one use the defaults.
threshold_settings = Table(
    "threshold_settings",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    # Fixed levels in micro-units of the account's currency, e.g. [500000, 0].
    Column("fixed_levels_micros", JSON, nullable=False),
    # Mode per level ("below" / "at_or_below"), parallel to the levels; NULL: each default.
    Column("fixed_modes", JSON, nullable=True),
    # NULL disables the spend-based threshold.
    Column("spend_days", Integer, nullable=True),
    Column("spend_window_days", Integer, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Arm state per (account, threshold key); a missing row means armed, generation 0.
threshold_states = Table(
    "threshold_states",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("threshold_key", String(64), primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# In-app channel: an account's events are its notifications; a row here marks one read.
notification_reads = Table(
    "notification_reads",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("event_id", Id, ForeignKey("events.id"), primary_key=True),
    Column("read_at", UTCDateTime(), nullable=False),
)

notification_endpoints = Table(
    "notification_endpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    # A URL for webhooks, an address for email.
    Column("target", String(500), nullable=False),
    # HMAC-SHA256 key of a webhook (NULL for email).
    Column("secret", String(200), nullable=True),
    # Event types wanted; NULL means every type.
    Column("event_types", JSON, nullable=True),
    Column("active", Boolean, nullable=False),
    # Events up to this id have had their deliveries created (fan-out cursor).
    Column("last_event_id", Id, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("kind IN ('webhook', 'email')", name="kind"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("events.id"), nullable=False),
    Column("endpoint_id", Id, ForeignKey("notification_endpoints.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("event_id", "endpoint_id", name="uq_deliveries_event_endpoint"),
    CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
)

Index("ix_deliveries_status_next", deliveries.c.status, deliveries.c.next_attempt_at)
