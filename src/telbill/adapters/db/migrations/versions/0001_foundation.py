"""Foundation: accounts, ledger accounts (buckets), journal, holds, receipts, idempotency, API keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str = "created_at", nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("parent_id", Id, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("provider_id", Id, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("billing_mode", sa.String(16), nullable=False),
        sa.Column("credit_limit_micros", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("vat_country", sa.String(2), nullable=True),
        sa.Column("vat_rate_ppm", sa.Integer, nullable=False),
        sa.Column("has_wallet", sa.Boolean, nullable=False),
        _ts(),
        sa.CheckConstraint("kind IN ('provider', 'organisation', 'user')", name="kind"),
        sa.CheckConstraint("billing_mode IN ('prepaid', 'postpaid')", name="billing_mode"),
        sa.CheckConstraint("status IN ('active', 'suspended', 'closed')", name="status"),
        sa.CheckConstraint("credit_limit_micros >= 0", name="credit_limit"),
        sa.CheckConstraint("vat_rate_ppm >= 0 AND vat_rate_ppm < 1000000", name="vat_rate"),
    )
    op.create_index("ix_accounts_parent_id", "accounts", ["parent_id"])
    op.create_index("ix_accounts_provider_id", "accounts", ["provider_id"])

    op.create_table(
        "ledger_accounts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("code", sa.String(100), nullable=True, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(40), nullable=False),
        sa.Column("counter", sa.String(32), nullable=True),
        sa.Column("service", sa.String(16), nullable=True),
        sa.Column("direction", sa.String(16), nullable=True),
        sa.Column("priority", sa.Integer, nullable=False),
        _ts("expires_at", nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("held", sa.BigInteger, nullable=False),
        _ts(),
        sa.CheckConstraint(
            "kind IN ('paid', 'trial', 'free', 'incoming', 'outgoing', 'package', 'system')",
            name="kind",
        ),
        sa.CheckConstraint("held >= 0", name="held"),
        sa.CheckConstraint("(account_id IS NULL) = (kind = 'system')", name="owner"),
    )
    op.create_index("ix_ledger_accounts_account_id", "ledger_accounts", ["account_id"])

    op.create_table(
        "transactions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("subject_account_id", Id, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("memo", sa.Text, nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        _ts(),
    )
    op.create_index("ix_transactions_account_id_id", "transactions", ["account_id", "id"])
    op.create_index(
        "ix_transactions_subject_account_id_id", "transactions", ["subject_account_id", "id"]
    )

    op.create_table(
        "postings",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("transaction_id", Id, sa.ForeignKey("transactions.id"), nullable=False),
        sa.Column("ledger_account_id", Id, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("unit", sa.String(40), nullable=False),
    )
    op.create_index("ix_postings_transaction_id", "postings", ["transaction_id"])
    op.create_index("ix_postings_ledger_account_id_id", "postings", ["ledger_account_id", "id"])

    op.create_table(
        "holds",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("unit", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("service", sa.String(16), nullable=True),
        sa.Column("direction", sa.String(16), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        _ts("expires_at"),
        sa.Column("details", sa.JSON, nullable=True),
        _ts(),
        sa.CheckConstraint("amount > 0", name="amount"),
    )
    op.create_index("ix_holds_account_id", "holds", ["account_id"])

    op.create_table(
        "hold_lines",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("hold_id", Id, sa.ForeignKey("holds.id"), nullable=False),
        sa.Column("ledger_account_id", Id, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.CheckConstraint("amount > 0", name="amount"),
    )
    op.create_index("ix_hold_lines_hold_id", "hold_lines", ["hold_id"])
    op.create_index("ix_hold_lines_ledger_account_id", "hold_lines", ["ledger_account_id"])

    op.create_table(
        "hold_resolutions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("hold_id", Id, sa.ForeignKey("holds.id"), nullable=False, unique=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("settled_amount", sa.BigInteger, nullable=False),
        sa.Column("transaction_id", Id, sa.ForeignKey("transactions.id"), nullable=True),
        _ts(),
        sa.CheckConstraint("outcome IN ('settled', 'voided', 'expired')", name="outcome"),
        sa.CheckConstraint("settled_amount >= 0", name="settled_amount"),
    )

    op.create_table(
        "receipts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("provider_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column(
            "transaction_id", Id, sa.ForeignKey("transactions.id"), nullable=False, unique=True
        ),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("gross_micros", sa.BigInteger, nullable=False),
        sa.Column("vat_micros", sa.BigInteger, nullable=False),
        sa.Column("net_micros", sa.BigInteger, nullable=False),
        sa.Column("vat_rate_ppm", sa.Integer, nullable=False),
        sa.Column("vat_country", sa.String(2), nullable=True),
        sa.Column("new_balance_micros", sa.BigInteger, nullable=False),
        sa.Column("payment_ref", sa.String(200), nullable=True),
        _ts(),
        sa.UniqueConstraint("provider_id", "number", name="uq_receipts_provider_number"),
    )
    op.create_index("ix_receipts_account_id", "receipts", ["account_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(100), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        _ts(),
        sa.UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key_prefix", sa.String(12), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        _ts(),
        _ts("revoked_at", nullable=True),
        sa.CheckConstraint(
            "role IN ('provider_admin', 'org_admin', 'user', 'switch')", name="role"
        ),
    )
    op.create_index("ix_api_keys_key_prefix", "api_keys", ["key_prefix"])
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])


def downgrade() -> None:
    for table in (
        "api_keys",
        "idempotency_keys",
        "receipts",
        "hold_resolutions",
        "hold_lines",
        "holds",
        "postings",
        "transactions",
        "ledger_accounts",
        "accounts",
    ):
        op.drop_table(table)
