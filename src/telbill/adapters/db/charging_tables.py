"""Charging tables, on the shared `metadata`: plans, plan assignments, charges, quarantined
CDRs, real-time sessions and campaigns.

* `charging_plans` / `account_plans`: what an account is sold (tariff, fixed or markup
  pricing, allowed call classes, cut-off policy, maximum call length). An account without
  an assignment uses the nearest ancestor's plan.
* `charges`: one row per rated leg of a CDR or a session (the explanation of every money
  movement caused by usage), with the carrier's cost when known (margin). Unique on (leaf
  account, CDR id, leg, revision): revision 0 is the first posting, a rerating adds
  revision n+1 carrying only the difference (of money and of cost).
* `cdr_quarantine`: rows that could not be read, rated or posted, with line and reason, and
  the tenant (provider, account) that owns them: each tenant lists and reposts its own.
* `sessions`: calls in progress (authorised, holding money) and their outcome.
* `campaigns`: auto-dialer / voice-bot campaigns, paused when the wallet runs dry.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from telbill.adapters.db.tables import Id, UTCDateTime, metadata

charging_plans = Table(
    "charging_plans",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("tariff", String(200), nullable=False),
    Column("pricing", String(16), nullable=False),
    # Decimal text (exact): "25" for 25 %; min margin in micro-units of the tariff currency.
    Column("markup_percent", String(40), nullable=False, default="0"),
    Column("min_margin_micros", BigInteger, nullable=False, default=0),
    # Comma-separated CallClass values.
    Column("allowed_call_classes", String(200), nullable=False),
    Column("cut_off", String(8), nullable=False),
    Column("max_call_s", Integer, nullable=False, default=3600),
    Column("created_at", UTCDateTime(), nullable=False),
    # A fixed-price plan's carrier cost tariff (NULL: cost unknown), for margin (0015).
    Column("cost_tariff", String(200), nullable=True),
    # The provider whose catalogue holds it (NULL: the operator's), 0017; names unique per owner.
    Column("owner_id", Id, ForeignKey("accounts.id"), nullable=True),
    CheckConstraint("pricing IN ('fixed', 'relative')", name="pricing"),
    CheckConstraint("cut_off IN ('hard', 'soft')", name="cut_off"),
    CheckConstraint("max_call_s > 0", name="max_call_s"),
)

PLAN_OWNER_INDEX = "uq_charging_plans_owner_name"
Index(
    PLAN_OWNER_INDEX,
    func.coalesce(charging_plans.c.owner_id, 0),
    charging_plans.c.name,
    unique=True,
)

account_plans = Table(
    "account_plans",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("plan_id", Id, ForeignKey("charging_plans.id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# One row per charged leg: the busiest insert of the engine (a row per CDR). It declares no
# foreign keys (migration 0016): every id it holds was read or created by the posting code in
# the same transaction, accounts, transactions and campaigns are never deleted, and
# `telbill reconcile` proves every charge's account, payer, transaction and campaign exist.
# On PostgreSQL the per-row checks were half the server's cost of a chunk's COPY.
charges = Table(
    "charges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("cdr_id", String(200), nullable=False),
    Column("leg", String(16), nullable=False),
    Column("revision", Integer, nullable=False, default=0),
    Column("account_id", Id, nullable=False),
    Column("payer_id", Id, nullable=False),
    Column("service", String(16), nullable=False),
    Column("direction", String(16), nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("unit", String(40), nullable=False),
    Column("billed_units", BigInteger, nullable=False),
    # Units taken from a package bucket (seconds, messages) instead of money.
    Column("package_units", BigInteger, nullable=False, default=0),
    Column("tariff", String(200), nullable=True),
    Column("tariff_version", Integer, nullable=True),
    Column("prefix", String(40), nullable=True),
    Column("explanation", JSON, nullable=False),
    # What was rated (to rerate later) and a hash of it (a reused CDR id is refused).
    Column("usage", JSON, nullable=True),
    Column("usage_hash", String(64), nullable=True),
    Column("transaction_id", Id, nullable=True),
    Column("source", String(200), nullable=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # The campaign (auto-dialer / voice-bot run) that made the usage, when the CDR names one.
    Column("campaign_id", Id, nullable=True),
    # The carrier's cost of the leg in micro-units of `currency`, before any markup and
    # whatever packages covered (NULL: unknown). A rerating revision holds the difference.
    Column("cost_micros", BigInteger, nullable=True),
    UniqueConstraint("account_id", "cdr_id", "leg", "revision", name="uq_charges_cdr_leg"),
)
# (account_id, occurred_at) and payer_id alone are leading columns of the composite indexes
# declared with the dashboard's and the invoices' tables (migration 0016 dropped both).
Index("ix_charges_account_id_campaign_id", charges.c.account_id, charges.c.campaign_id)

cdr_quarantine = Table(
    "cdr_quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("line", Integer, nullable=True),
    Column("cdr_id", String(200), nullable=True),
    Column("reason", Text, nullable=False),
    Column("raw", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    # source + line + raw content: the same bad row posted twice is quarantined once.
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # The tenant that owns the row: the account that made the usage when known, else the
    # poster's; and that account's provider. Both NULL: the platform admin's alone.
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=True),
    CheckConstraint("status IN ('open', 'fixed', 'reposted')", name="status"),
)
Index("ix_cdr_quarantine_provider_id_id", cdr_quarantine.c.provider_id, cdr_quarantine.c.id)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, nullable=False),
    Column("payer_id", Id, nullable=False),
    Column("state", String(16), nullable=False),
    Column("call_id", String(200), nullable=True),
    Column("direction", String(16), nullable=False),
    Column("from_number", String(40), nullable=True),
    Column("to_number", String(40), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("hold_id", Id, ForeignKey("holds.id"), nullable=True),
    Column("package_hold_id", Id, ForeignKey("holds.id"), nullable=True),
    Column("max_seconds", Integer, nullable=False),
    Column("reported_seconds", Integer, nullable=False, default=0),
    Column("last_update_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("billed_seconds", Integer, nullable=True),
    Column("charged_micros", BigInteger, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("state IN ('active', 'ended')", name="state"),
)
Index("ix_sessions_state_last_update_at", sessions.c.state, sessions.c.last_update_at)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("paused_reason", String(64), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("status IN ('running', 'paused', 'stopped')", name="status"),
)

__all__ = [
    "account_plans",
    "campaigns",
    "cdr_quarantine",
    "charges",
    "charging_plans",
    "sessions",
]
