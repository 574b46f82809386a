"""Lifecycle: number inventory and rentals, verification, subscriptions, packages, job runs.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, Id, sa.ForeignKey(target), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "number_inventory",
        _id(),
        _fk("provider_id", "accounts.id"),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("number_type", sa.String(16), nullable=False),
        sa.Column("region", sa.String(100), nullable=True),
        sa.Column("locality", sa.String(100), nullable=True),
        sa.Column("area_code", sa.String(10), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("monthly_price_micros", sa.BigInteger, nullable=False),
        sa.Column("setup_price_micros", sa.BigInteger, nullable=False),
        sa.Column("verification_required", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("quarantine_until", nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("number", name="uq_number_inventory_number"),
        sa.CheckConstraint(
            "number_type IN ('local', 'mobile', 'toll_free', 'national')",
            name="ck_number_inventory_type",
        ),
        sa.CheckConstraint(
            "status IN ('available', 'rented', 'suspended', 'quarantined')",
            name="ck_number_inventory_status",
        ),
        sa.CheckConstraint(
            "monthly_price_micros >= 0 AND setup_price_micros >= 0",
            name="ck_number_inventory_prices",
        ),
    )
    op.create_index(
        "ix_number_inventory_search", "number_inventory", ["country", "number_type", "status"]
    )
    op.create_table(
        "number_rentals",
        _id(),
        _fk("number_id", "number_inventory.id"),
        sa.Column("number", sa.String(20), nullable=False),
        _fk("account_id", "accounts.id"),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("bought_at"),
        sa.Column("anchor_day", sa.Integer, nullable=False),
        _ts("paid_until", nullable=True),
        _ts("grace_until", nullable=True),
        _ts("suspended_at", nullable=True),
        _ts("released_at", nullable=True),
        sa.Column("release_reason", sa.String(32), nullable=True),
        sa.Column("trial", sa.Boolean, nullable=False),
        sa.Column("is_main", sa.Boolean, nullable=False),
        _ts("last_traffic_at", nullable=True),
        sa.Column("renewals", sa.Integer, nullable=False),
        _ts("created_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'suspended', 'released')",
            name="ck_number_rentals_status",
        ),
        sa.CheckConstraint("anchor_day BETWEEN 1 AND 31", name="ck_number_rentals_anchor_day"),
    )
    op.create_index("ix_number_rentals_number_id", "number_rentals", ["number_id"])
    op.create_index("ix_number_rentals_account_id", "number_rentals", ["account_id"])
    op.create_index(
        "ix_number_rentals_status_paid_until", "number_rentals", ["status", "paid_until"]
    )
    op.create_table(
        "verification_records",
        _id(),
        _fk("account_id", "accounts.id"),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        _ts("created_at"),
        _ts("decided_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')",
            name="ck_verification_records_status",
        ),
    )
    op.create_index("ix_verification_records_account_id", "verification_records", ["account_id"])
    op.create_table(
        "number_policies",
        sa.Column("provider_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("grace_months", sa.Integer, nullable=False),
        sa.Column("quarantine_days", sa.Integer, nullable=False),
        sa.Column("idle_release_days", sa.Integer, nullable=True),
        sa.CheckConstraint(
            "grace_months >= 0 AND quarantine_days >= 0", name="ck_number_policies_periods"
        ),
    )
    op.create_table(
        "subscription_plans",
        _id(),
        _fk("provider_id", "accounts.id"),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("monthly_fee_micros", sa.BigInteger, nullable=False),
        sa.Column("free_credit_ppm", sa.Integer, nullable=False),
        sa.Column("trial_credit_micros", sa.BigInteger, nullable=False),
        sa.Column("trial_number_days", sa.Integer, nullable=False),
        sa.Column("keep_anniversary", sa.Boolean, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("provider_id", "code", name="uq_subscription_plans_provider_code"),
        sa.CheckConstraint(
            "monthly_fee_micros >= 0 AND trial_credit_micros >= 0",
            name="ck_subscription_plans_amounts",
        ),
        sa.CheckConstraint(
            "free_credit_ppm BETWEEN 0 AND 1000000", name="ck_subscription_plans_free_credit"
        ),
    )
    op.create_table(
        "subscriptions",
        _id(),
        _fk("account_id", "accounts.id"),
        _fk("plan_id", "subscription_plans.id"),
        sa.Column("seats", sa.Integer, nullable=False),
        sa.Column("addons", sa.JSON, nullable=False),
        sa.Column("anchor_day", sa.Integer, nullable=False),
        _ts("period_start"),
        _ts("period_end"),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("cancelled_at", nullable=True),
        sa.CheckConstraint("seats >= 1", name="ck_subscriptions_seats"),
        sa.CheckConstraint(
            "status IN ('active', 'past_due', 'cancelled')", name="ck_subscriptions_status"
        ),
    )
    op.create_index("ix_subscriptions_account_id", "subscriptions", ["account_id"])
    op.create_index(
        "ix_subscriptions_status_period_end", "subscriptions", ["status", "period_end"]
    )
    op.create_table(
        "packages",
        _id(),
        _fk("provider_id", "accounts.id"),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("price_micros", sa.BigInteger, nullable=False),
        sa.Column("validity_days", sa.Integer, nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("provider_id", "code", name="uq_packages_provider_code"),
        sa.CheckConstraint("amount > 0 AND price_micros >= 0", name="ck_packages_amounts"),
    )
    op.create_table(
        "package_purchases",
        _id(),
        _fk("account_id", "accounts.id"),
        _fk("package_id", "packages.id"),
        _fk("bucket_id", "ledger_accounts.id"),
        _ts("bought_at"),
        _ts("expires_at", nullable=True),
        sa.Column("expired", sa.Boolean, nullable=False),
    )
    op.create_index("ix_package_purchases_account_id", "package_purchases", ["account_id"])
    op.create_index(
        "ix_package_purchases_expiry", "package_purchases", ["expired", "expires_at"]
    )
    op.create_table(
        "job_runs",
        _id(),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        _ts("ran_at"),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.UniqueConstraint("job", "entity", "period", name="uq_job_runs_job_entity_period"),
    )


def downgrade() -> None:
    for table in (
        "job_runs",
        "package_purchases",
        "packages",
        "subscriptions",
        "subscription_plans",
        "number_policies",
        "verification_records",
        "number_rentals",
        "number_inventory",
    ):
        op.drop_table(table)
