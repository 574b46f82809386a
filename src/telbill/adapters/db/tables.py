"""SQLAlchemy Core tables of telbill, on one `metadata`.

One schema serves SQLite and PostgreSQL. Every amount is a signed integer in the unit's
smallest step (micro-units for money, seconds, messages). Timestamps are timezone-aware
UTC on both databases (`UTCDateTime`). Other business areas add their tables to the same
`metadata` from their own modules (for example tariffs).

Ledger rows are append-only: the only columns ever updated are the denormalised
``ledger_accounts.balance`` and ``ledger_accounts.held``; corrections are new transactions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# BIGINT keys on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-increment rowid.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: telbill stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _created_at() -> Column[datetime]:
    return Column("created_at", UTCDateTime(), nullable=False)


accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("parent_id", Id, ForeignKey("accounts.id"), nullable=True, index=True),
    # The provider at the root of the tree (itself for a provider): scope of receipt numbers.
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=True, index=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("billing_mode", String(16), nullable=False),
    Column("credit_limit_micros", BigInteger, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("vat_country", String(2), nullable=True),
    # VAT rate in parts per million (0.2 -> 200000): exact for up to 6 decimals.
    Column("vat_rate_ppm", Integer, nullable=False, default=0),
    Column("has_wallet", Boolean, nullable=False),
    _created_at(),
    CheckConstraint("kind IN ('provider', 'organisation', 'user')", name="kind"),
    CheckConstraint("billing_mode IN ('prepaid', 'postpaid')", name="billing_mode"),
    CheckConstraint("status IN ('active', 'suspended', 'closed')", name="status"),
    CheckConstraint("credit_limit_micros >= 0", name="credit_limit"),
    CheckConstraint("vat_rate_ppm >= 0 AND vat_rate_ppm < 1000000", name="vat_rate"),
)

# Wallet buckets (account_id set) and system accounts (account_id NULL, code set).
ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=True, index=True),
    # System accounts: "cash:USD", "revenue:voice:USD", "promotions:USD", "vat_payable:USD"...
    Column("code", String(100), nullable=True, unique=True),
    Column("kind", String(16), nullable=False),
    Column("unit", String(40), nullable=False),
    # Counter of a unit package ("call", "speech", "sms"); NULL for money buckets.
    Column("counter", String(32), nullable=True),
    # Which usage a bucket pays for; NULL means any service / any direction.
    Column("service", String(16), nullable=True),
    Column("direction", String(16), nullable=True),
    Column("priority", Integer, nullable=False, default=100),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("label", String(200), nullable=True),
    Column("balance", BigInteger, nullable=False, default=0),
    Column("held", BigInteger, nullable=False, default=0),
    _created_at(),
    CheckConstraint(
        "kind IN ('paid', 'trial', 'free', 'incoming', 'outgoing', 'package', 'system')",
        name="kind",
    ),
    CheckConstraint("held >= 0", name="held"),
    CheckConstraint("(account_id IS NULL) = (kind = 'system')", name="owner"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    # The wallet owner whose buckets the transaction moves (NULL: system accounts only).
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=True),
    # The account that asked for it or made the usage (a user under the wallet owner).
    Column("subject_account_id", Id, ForeignKey("accounts.id"), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("memo", Text, nullable=True),
    Column("details", JSON, nullable=True),
    _created_at(),
)

postings = Table(
    "postings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transaction_id", Id, ForeignKey("transactions.id"), nullable=False, index=True),
    Column("ledger_account_id", Id, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("unit", String(40), nullable=False),
)

holds = Table(
    "holds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("unit", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("service", String(16), nullable=True),
    Column("direction", String(16), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("details", JSON, nullable=True),
    _created_at(),
    CheckConstraint("amount > 0", name="amount"),
)

hold_lines = Table(
    "hold_lines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("hold_id", Id, ForeignKey("holds.id"), nullable=False, index=True),
    Column("ledger_account_id", Id, ForeignKey("ledger_accounts.id"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("position", Integer, nullable=False),
    CheckConstraint("amount > 0", name="amount"),
)

# A hold is open until it has exactly one resolution (settled, voided or expired).
hold_resolutions = Table(
    "hold_resolutions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("hold_id", Id, ForeignKey("holds.id"), nullable=False, unique=True),
    Column("outcome", String(16), nullable=False),
    Column("settled_amount", BigInteger, nullable=False, default=0),
    Column("transaction_id", Id, ForeignKey("transactions.id"), nullable=True),
    _created_at(),
    CheckConstraint("outcome IN ('settled', 'voided', 'expired')", name="outcome"),
    CheckConstraint("settled_amount >= 0", name="settled_amount"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("transaction_id", Id, ForeignKey("transactions.id"), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("gross_micros", BigInteger, nullable=False),
    Column("vat_micros", BigInteger, nullable=False),
    Column("net_micros", BigInteger, nullable=False),
    Column("vat_rate_ppm", Integer, nullable=False),
    Column("vat_country", String(2), nullable=True),
    Column("new_balance_micros", BigInteger, nullable=False),
    Column("payment_ref", String(200), nullable=True),
    _created_at(),
    UniqueConstraint("provider_id", "number", name="uq_receipts_provider_number"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("scope", String(100), nullable=False),
    Column("key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response", JSON, nullable=False),
    _created_at(),
    UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_prefix", String(12), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    _created_at(),
    Column("revoked_at", UTCDateTime(), nullable=True),
    CheckConstraint("role IN ('provider_admin', 'org_admin', 'user', 'switch')", name="role"),
    # Optional end of the key's life (refused after it), and when it was last seen (to the
    # minute: `services.auth.LAST_USED_STEP_S`). Revision 0018.
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
)

Index("ix_transactions_account_id_id", transactions.c.account_id, transactions.c.id)
Index(
    "ix_transactions_subject_account_id_id",
    transactions.c.subject_account_id,
    transactions.c.id,
)
Index("ix_postings_ledger_account_id_id", postings.c.ledger_account_id, postings.c.id)

__all__ = [
    "UTCDateTime",
    "accounts",
    "api_keys",
    "hold_lines",
    "hold_resolutions",
    "holds",
    "idempotency_keys",
    "ledger_accounts",
    "metadata",
    "postings",
    "receipts",
    "transactions",
]
