"""Tables of the lifecycle area: number inventory and rentals, verification records,
subscription plans and subscriptions, package catalogue and purchases, number policies, and
the scheduler's exactly-once key (`job_runs`).

Money columns are integer micro-units (``*_micros``); unit amounts are integer minor units
of their unit (seconds, messages). Unlike ledger rows these rows have a state that moves
(available -> rented -> quarantined -> available); every move that costs or gives money
is also a ledger transaction, written in the same database transaction.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from telbill.adapters.db.tables import Id, UTCDateTime, metadata, transactions

NUMBER_TYPES = ("local", "mobile", "toll_free", "national")
INVENTORY_STATUSES = ("available", "rented", "suspended", "quarantined")
RENTAL_STATUSES = ("pending", "active", "suspended", "released")

number_inventory = Table(
    "number_inventory",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("number", String(20), nullable=False, unique=True),
    Column("country", String(2), nullable=False),
    Column("number_type", String(16), nullable=False),
    Column("region", String(100), nullable=True),
    Column("locality", String(100), nullable=True),
    Column("area_code", String(10), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("monthly_price_micros", BigInteger, nullable=False),
    Column("setup_price_micros", BigInteger, nullable=False),
    Column("verification_required", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("quarantine_until", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("number_type IN ('local', 'mobile', 'toll_free', 'national')", name="type"),
    CheckConstraint(
        "status IN ('available', 'rented', 'suspended', 'quarantined')", name="status"
    ),
    CheckConstraint("monthly_price_micros >= 0 AND setup_price_micros >= 0", name="prices"),
)
Index(
    "ix_number_inventory_search",
    number_inventory.c.country,
    number_inventory.c.number_type,
    number_inventory.c.status,
)

number_rentals = Table(
    "number_rentals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("number_id", Id, ForeignKey("number_inventory.id"), nullable=False, index=True),
    Column("number", String(20), nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("bought_at", UTCDateTime(), nullable=False),
    # Day of month (1..31) the number renews on, clamped to each month's end.
    Column("anchor_day", Integer, nullable=False),
    Column("paid_until", UTCDateTime(), nullable=True),
    Column("grace_until", UTCDateTime(), nullable=True),
    Column("suspended_at", UTCDateTime(), nullable=True),
    Column("released_at", UTCDateTime(), nullable=True),
    Column("release_reason", String(32), nullable=True),
    Column("trial", Boolean, nullable=False),
    # The account's main outgoing number: where a suspended number's outbound calls go.
    Column("is_main", Boolean, nullable=False),
    Column("last_traffic_at", UTCDateTime(), nullable=True),
    Column("renewals", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("status IN ('pending', 'active', 'suspended', 'released')", name="status"),
    CheckConstraint("anchor_day BETWEEN 1 AND 31", name="anchor_day"),
)
Index("ix_number_rentals_status_paid_until", number_rentals.c.status, number_rentals.c.paid_until)
# The renter of a called number (toll-free calls are paid by it): services.number_payers.
Index("ix_number_rentals_number_status", number_rentals.c.number, number_rentals.c.status)

verification_records = Table(
    "verification_records",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("country", String(2), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reference", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("decided_at", UTCDateTime(), nullable=True),
    CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
)

number_policies = Table(
    "number_policies",
    metadata,
    Column("provider_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("grace_months", Integer, nullable=False),
    Column("quarantine_days", Integer, nullable=False),
    # Release a number after this many days without traffic; NULL: never.
    Column("idle_release_days", Integer, nullable=True),
    CheckConstraint("grace_months >= 0 AND quarantine_days >= 0", name="periods"),
)

# Support's exception for one billing account: its unpaid numbers are kept this many months
# after the missed renewal instead of its provider's `number_policies.grace_months`.
number_grace_overrides = Table(
    "number_grace_overrides",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("grace_months", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("grace_months >= 0", name="grace_months"),
)

subscription_plans = Table(
    "subscription_plans",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("monthly_fee_micros", BigInteger, nullable=False),
    # Monthly free calling credit as a share of the fee, in parts per million (0.2 -> 200000).
    Column("free_credit_ppm", Integer, nullable=False),
    Column("trial_credit_micros", BigInteger, nullable=False),
    Column("trial_number_days", Integer, nullable=False),
    # After a late number payment, keep the original anniversary instead of the payment date.
    Column("keep_anniversary", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("provider_id", "code", name="uq_subscription_plans_provider_code"),
    CheckConstraint("monthly_fee_micros >= 0 AND trial_credit_micros >= 0", name="amounts"),
    CheckConstraint("free_credit_ppm BETWEEN 0 AND 1000000", name="free_credit"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("plan_id", Id, ForeignKey("subscription_plans.id"), nullable=False),
    Column("seats", Integer, nullable=False),
    # [{"code": "sip_connector", "name": "...", "fee_micros": 5000000, "quantity": 1}, ...]
    Column("addons", JSON, nullable=False),
    Column("anchor_day", Integer, nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("cancelled_at", UTCDateTime(), nullable=True),
    CheckConstraint("seats >= 1", name="seats"),
    CheckConstraint("status IN ('active', 'past_due', 'cancelled')", name="status"),
)
Index("ix_subscriptions_status_period_end", subscriptions.c.status, subscriptions.c.period_end)

packages = Table(
    "packages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    # The unit of the bucket it fills: "s:call", "s:speech", "msg:sms".
    Column("unit", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("price_micros", BigInteger, nullable=False),
    Column("validity_days", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("provider_id", "code", name="uq_packages_provider_code"),
    CheckConstraint("amount > 0 AND price_micros >= 0", name="amounts"),
)

package_purchases = Table(
    "package_purchases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("package_id", Id, ForeignKey("packages.id"), nullable=False),
    Column("bucket_id", Id, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("bought_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("expired", Boolean, nullable=False),
)
Index("ix_package_purchases_expiry", package_purchases.c.expired, package_purchases.c.expires_at)

# The scheduler's exactly-once key: a job's effect and its row commit together or not at all.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("period", String(64), nullable=False),
    Column("ran_at", UTCDateTime(), nullable=False),
    Column("outcome", String(32), nullable=False),
    UniqueConstraint("job", "entity", "period", name="uq_job_runs_job_entity_period"),
)

# The scheduler's threshold check sums every wallet's spend of the last days at each tick.
Index("ix_transactions_created_at", transactions.c.created_at)

__all__ = [
    "number_grace_overrides",
    "INVENTORY_STATUSES",
    "NUMBER_TYPES",
    "RENTAL_STATUSES",
    "job_runs",
    "number_inventory",
    "number_policies",
    "number_rentals",
    "package_purchases",
    "packages",
    "subscription_plans",
    "subscriptions",
    "verification_records",
]
