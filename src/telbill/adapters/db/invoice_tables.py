"""Invoice tables, on the shared `metadata`: invoices and their lines, credit notes and their
lines, payments recorded against invoices, per-provider document counters and the invoice
settings of an account.

* `document_counters`: the last number given per (provider, series); the row is locked
  ``FOR UPDATE`` and bumped in the transaction that inserts the document, so numbers are
  sequential without gaps (series ``invoice`` and ``credit_note``).
* `invoices` / `invoice_lines` and `credit_notes` / `credit_note_lines` are written once
  and never updated or deleted (the migration adds triggers that refuse it on both
  databases); corrections are credit notes.
* `invoice_payments`: a bank transfer or direct debit received for an invoice, with the
  ledger transaction that credited the wallet.
* `invoice_settings`: payment terms, and whether (and where) invoice/receipt PDFs are
  emailed.

Indexes on `charges` (payer, booking time) and `transactions` (account, booking time) serve
the month aggregates an invoice is built from.
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
    Text,
    UniqueConstraint,
)

from telbill.adapters.db import notify_tables  # noqa: F401 (the endpoint foreign key)
from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.tables import Id, UTCDateTime, metadata, transactions

document_counters = Table(
    "document_counters",
    metadata,
    Column("provider_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("series", String(16), primary_key=True),
    Column("last_number", BigInteger, nullable=False),
    CheckConstraint("series IN ('invoice', 'credit_note')", name="series"),
    CheckConstraint("last_number >= 0", name="last_number"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    # "YYYY-MM" in the account's timezone, and its [start, end) in UTC.
    Column("period", String(7), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("billing_mode", String(16), nullable=False),
    # Names as they were at issue: a later rename does not change an issued document.
    Column("provider_name", String(200), nullable=False),
    Column("customer_name", String(200), nullable=False),
    Column("vat_rate_ppm", Integer, nullable=False),
    Column("vat_country", String(2), nullable=True),
    # Prices are gross (VAT included, as the ledger and receipts are): net + vat = total.
    Column("net_micros", BigInteger, nullable=False),
    Column("vat_micros", BigInteger, nullable=False),
    Column("total_micros", BigInteger, nullable=False),
    # What the customer owes at issue: the total when postpaid, 0 when prepaid.
    Column("amount_owed_micros", BigInteger, nullable=False),
    # Money in and out of the wallet that is not a charge (payments, refunds, credits).
    Column("activity", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("due_at", UTCDateTime(), nullable=True),
    UniqueConstraint("provider_id", "number", name="uq_invoices_provider_number"),
    UniqueConstraint("account_id", "period", name="uq_invoices_account_period"),
    CheckConstraint("billing_mode IN ('prepaid', 'postpaid')", name="billing_mode"),
    CheckConstraint("net_micros + vat_micros = total_micros", name="totals"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("invoice_id", Id, ForeignKey("invoices.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("section", String(16), nullable=False),
    Column("description", String(300), nullable=False),
    Column("direction", String(16), nullable=True),
    Column("destination", String(200), nullable=True),
    Column("prefix", String(40), nullable=True),
    Column("quantity", BigInteger, nullable=False),
    # Billed seconds of calls, segments of SMS, units of other usage; NULL for fees.
    Column("billed_units", BigInteger, nullable=True),
    Column("amount_micros", BigInteger, nullable=False),
    UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_invoice_position"),
    CheckConstraint(
        "section IN ('calls', 'sms', 'usage', 'numbers', 'subscriptions', 'packages', "
        "'adjustments')",
        name="section",
    ),
)

credit_notes = Table(
    "credit_notes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("invoice_id", Id, ForeignKey("invoices.id"), nullable=False, index=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("vat_rate_ppm", Integer, nullable=False),
    Column("net_micros", BigInteger, nullable=False),
    Column("vat_micros", BigInteger, nullable=False),
    Column("total_micros", BigInteger, nullable=False),
    # The ledger transaction that credited the wallet, when the credit note did.
    Column("transaction_id", Id, ForeignKey("transactions.id"), nullable=True),
    Column("issued_at", UTCDateTime(), nullable=False),
    UniqueConstraint("provider_id", "number", name="uq_credit_notes_provider_number"),
    CheckConstraint("total_micros > 0", name="total"),
    CheckConstraint("net_micros + vat_micros = total_micros", name="totals"),
)

credit_note_lines = Table(
    "credit_note_lines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("credit_note_id", Id, ForeignKey("credit_notes.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("description", String(300), nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    UniqueConstraint(
        "credit_note_id", "position", name="uq_credit_note_lines_credit_note_position"
    ),
    CheckConstraint("amount_micros > 0", name="amount"),
)

invoice_payments = Table(
    "invoice_payments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("invoice_id", Id, ForeignKey("invoices.id"), nullable=False, index=True),
    Column("method", String(16), nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("reference", String(200), nullable=True),
    Column("transaction_id", Id, ForeignKey("transactions.id"), nullable=False, unique=True),
    Column("received_at", UTCDateTime(), nullable=False),
    CheckConstraint("method IN ('bank_transfer', 'direct_debit')", name="method"),
    CheckConstraint("amount_micros > 0", name="amount"),
)

invoice_settings = Table(
    "invoice_settings",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("payment_terms_days", Integer, nullable=False),
    Column("email_documents", Boolean, nullable=False),
    Column("document_email", String(320), nullable=True),
    # The email endpoint (notification_endpoints) that carries the documents.
    Column("endpoint_id", Id, ForeignKey("notification_endpoints.id"), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    # A month without a charge gives "invoice" (a zero invoice) or "statement"; NULL: the
    # provider's choice, else "invoice" (`invoice_runs.empty_month_choices`).
    Column("empty_month", String(16), nullable=True),
    CheckConstraint("payment_terms_days >= 0 AND payment_terms_days <= 365", name="terms"),
)

Index("ix_charges_payer_id_created_at", charges.c.payer_id, charges.c.created_at)
Index("ix_transactions_account_id_created_at", transactions.c.account_id, transactions.c.created_at)

# Tables whose rows never change once written (guarded by triggers in migration 0008).
IMMUTABLE_TABLES = ("invoices", "invoice_lines", "credit_notes", "credit_note_lines")

__all__ = [
    "IMMUTABLE_TABLES",
    "credit_note_lines",
    "credit_notes",
    "document_counters",
    "invoice_lines",
    "invoice_payments",
    "invoice_settings",
    "invoices",
]
