"""Invoices: invoices, credit notes, their lines, payments, document counters, settings.

Issued documents never change: triggers refuse UPDATE and DELETE on invoices, invoice_lines,
credit_notes and credit_note_lines, on SQLite and on PostgreSQL.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
IMMUTABLE_TABLES = ("invoices", "invoice_lines", "credit_notes", "credit_note_lines")


def upgrade() -> None:
    op.create_table(
        "document_counters",
        sa.Column("provider_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("series", sa.String(16), primary_key=True),
        sa.Column("last_number", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "series IN ('invoice', 'credit_note')", name="ck_document_counters_series"
        ),
        sa.CheckConstraint("last_number >= 0", name="ck_document_counters_last_number"),
    )
    op.create_table(
        "invoices",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("provider_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("period_start", When, nullable=False),
        sa.Column("period_end", When, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("billing_mode", sa.String(16), nullable=False),
        sa.Column("provider_name", sa.String(200), nullable=False),
        sa.Column("customer_name", sa.String(200), nullable=False),
        sa.Column("vat_rate_ppm", sa.Integer, nullable=False),
        sa.Column("vat_country", sa.String(2), nullable=True),
        sa.Column("net_micros", sa.BigInteger, nullable=False),
        sa.Column("vat_micros", sa.BigInteger, nullable=False),
        sa.Column("total_micros", sa.BigInteger, nullable=False),
        sa.Column("amount_owed_micros", sa.BigInteger, nullable=False),
        sa.Column("activity", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("issued_at", When, nullable=False),
        sa.Column("due_at", When, nullable=True),
        sa.UniqueConstraint("provider_id", "number", name="uq_invoices_provider_number"),
        sa.UniqueConstraint("account_id", "period", name="uq_invoices_account_period"),
        sa.CheckConstraint(
            "billing_mode IN ('prepaid', 'postpaid')", name="ck_invoices_billing_mode"
        ),
        sa.CheckConstraint("net_micros + vat_micros = total_micros", name="ck_invoices_totals"),
    )
    op.create_index("ix_invoices_account_id", "invoices", ["account_id"])
    op.create_table(
        "invoice_lines",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", Id, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("section", sa.String(16), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("direction", sa.String(16), nullable=True),
        sa.Column("destination", sa.String(200), nullable=True),
        sa.Column("prefix", sa.String(40), nullable=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("billed_units", sa.BigInteger, nullable=True),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_invoice_position"),
        sa.CheckConstraint(
            "section IN ('calls', 'sms', 'usage', 'numbers', 'subscriptions', 'packages', "
            "'adjustments')",
            name="ck_invoice_lines_section",
        ),
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("provider_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("invoice_id", Id, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("vat_rate_ppm", sa.Integer, nullable=False),
        sa.Column("net_micros", sa.BigInteger, nullable=False),
        sa.Column("vat_micros", sa.BigInteger, nullable=False),
        sa.Column("total_micros", sa.BigInteger, nullable=False),
        sa.Column("transaction_id", Id, sa.ForeignKey("transactions.id"), nullable=True),
        sa.Column("issued_at", When, nullable=False),
        sa.UniqueConstraint("provider_id", "number", name="uq_credit_notes_provider_number"),
        sa.CheckConstraint("total_micros > 0", name="ck_credit_notes_total"),
        sa.CheckConstraint("net_micros + vat_micros = total_micros", name="ck_credit_notes_totals"),
    )
    op.create_index("ix_credit_notes_invoice_id", "credit_notes", ["invoice_id"])
    op.create_table(
        "credit_note_lines",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("credit_note_id", Id, sa.ForeignKey("credit_notes.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.UniqueConstraint(
            "credit_note_id", "position", name="uq_credit_note_lines_credit_note_position"
        ),
        sa.CheckConstraint("amount_micros > 0", name="ck_credit_note_lines_amount"),
    )
    op.create_table(
        "invoice_payments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", Id, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column(
            "transaction_id", Id, sa.ForeignKey("transactions.id"), nullable=False, unique=True
        ),
        sa.Column("received_at", When, nullable=False),
        sa.CheckConstraint(
            "method IN ('bank_transfer', 'direct_debit')", name="ck_invoice_payments_method"
        ),
        sa.CheckConstraint("amount_micros > 0", name="ck_invoice_payments_amount"),
    )
    op.create_index("ix_invoice_payments_invoice_id", "invoice_payments", ["invoice_id"])
    op.create_table(
        "invoice_settings",
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("payment_terms_days", sa.Integer, nullable=False),
        sa.Column("email_documents", sa.Boolean, nullable=False),
        sa.Column("document_email", sa.String(320), nullable=True),
        sa.Column("endpoint_id", Id, sa.ForeignKey("notification_endpoints.id"), nullable=True),
        sa.Column("updated_at", When, nullable=False),
        sa.CheckConstraint(
            "payment_terms_days >= 0 AND payment_terms_days <= 365",
            name="ck_invoice_settings_terms",
        ),
    )
    # 0004 creates `charges` from the live table object, which carries this index when the
    # invoice tables module was imported first: hence IF NOT EXISTS.
    op.create_index(
        "ix_charges_payer_id_created_at", "charges", ["payer_id", "created_at"], if_not_exists=True
    )
    op.create_index(
        "ix_transactions_account_id_created_at",
        "transactions",
        ["account_id", "created_at"],
        if_not_exists=True,
    )
    _create_immutability_triggers()


def _create_immutability_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION telbill_refuse_change() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'issued documents never change (%)', TG_TABLE_NAME; END; "
            "$$ LANGUAGE plpgsql"
        )
        for table in IMMUTABLE_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION telbill_refuse_change()"
            )
        return
    for table in IMMUTABLE_TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'issued documents never change ({table})'); END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in IMMUTABLE_TABLES:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS telbill_refuse_change()")
    op.drop_index("ix_transactions_account_id_created_at", table_name="transactions")
    op.drop_index("ix_charges_payer_id_created_at", table_name="charges")
    op.drop_table("invoice_settings")
    op.drop_table("invoice_payments")
    op.drop_table("credit_note_lines")
    op.drop_table("credit_notes")
    op.drop_table("invoice_lines")
    op.drop_table("invoices")
    op.drop_table("document_counters")
