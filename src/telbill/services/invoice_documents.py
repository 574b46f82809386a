"""Invoice and credit-note documents (PDF), the account's invoice settings, and the PDFs that
go with document emails.

Emailing documents: `set_invoice_settings(..., email_documents=True, document_email=...)`
registers an email endpoint (`services/notifications.py`) for ``invoice.issued``,
``invoice.overdue``, ``credit_note.issued`` and ``topup.receipt``; the outbox then delivers
each event once (retries, leases, no resend after acknowledgement). `email_attachments(db)`
gives the SMTP sender the PDF of the document an event names, only for messages to the
account's document address while the setting is on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from telbill.adapters.db.engine import Database
from telbill.adapters.db.invoice_tables import invoice_settings
from telbill.adapters.pdf.invoices import (
    ACTIVITY_TITLES,
    DocumentLine,
    InvoiceDocument,
    money,
    render_invoice,
)
from telbill.errors import InvalidInput
from telbill.services import notifications, receipts
from telbill.services.accounts import load_account
from telbill.services.clock import Clock
from telbill.services.invoice_payments import CreditNote, get_credit_note
from telbill.services.invoice_runs import EMPTY_MONTH_CHOICES
from telbill.services.invoices import DEFAULT_PAYMENT_TERMS_DAYS, Invoice, get_invoice

DOCUMENT_EVENTS = ("credit_note.issued", "invoice.issued", "invoice.overdue", "topup.receipt")
STATUS_TEXT = {
    "paid": "paid",
    "issued": "issued, awaiting payment",
    "partially_paid": "partially paid",
    "overdue": "OVERDUE",
}

Attachment = tuple[str, bytes]


# ---------------------------------------------------------------------------- PDFs


def invoice_document(invoice: Invoice) -> InvoiceDocument:
    lines = [
        DocumentLine(
            section=line.section,
            description=line.description,
            direction=line.direction,
            quantity=str(line.quantity),
            measure=line.minutes
            or (str(line.billed_units) if line.billed_units is not None else ""),
            amount=line.amount,
        )
        for line in invoice.lines
    ]
    cur = invoice.currency
    facts = [
        ("Period", f"{invoice.period} ({invoice.timezone})"),
        ("Billing", "prepaid" if invoice.billing_mode == "prepaid" else "postpaid"),
    ]
    if invoice.billing_mode == "prepaid":
        summary = [
            ("Paid from prepaid balance", money(invoice.total, cur)),
            ("Amount due", money(invoice.amount_due, cur)),
        ]
        note = (
            "Prices include VAT. This month was paid from your prepaid balance as you used "
            "it; VAT was accounted on your top-up receipts. Nothing is owed: this invoice is "
            "for your records."
        )
    else:
        summary = [
            ("Amount owed", money(invoice.amount_owed, cur)),
            ("Payments received", money(invoice.paid, cur)),
            ("Credit notes", money(invoice.credited, cur)),
            ("Amount due", money(invoice.amount_due, cur)),
            ("Due date", invoice.due_at.strftime("%Y-%m-%d") if invoice.due_at else "-"),
            ("Status", STATUS_TEXT.get(invoice.status, invoice.status)),
        ]
        note = (
            "Prices include VAT. Please pay the amount due by the due date by bank transfer "
            f"quoting {invoice.label}, or it will be collected by direct debit if agreed."
        )
    return InvoiceDocument(
        title="Invoice", label=invoice.label, provider_name=invoice.provider_name,
        customer_name=invoice.customer_name, issued_at=invoice.issued_at, currency=cur,
        vat_rate=invoice.vat_rate, vat_country=invoice.vat_country, net=invoice.net,
        vat=invoice.vat, total=invoice.total, lines=lines, facts=facts, summary=summary,
        activity=[(ACTIVITY_TITLES.get(kind, kind), amount)
                  for kind, amount in sorted(invoice.activity.items())],
        note=note,
    )  # fmt: skip


def invoice_pdf(db: Database, invoice_id: int, *, clock: Clock) -> bytes:
    """The PDF of invoice `invoice_id` (its state as of now; NotFound when there is none)."""
    return render_invoice(invoice_document(get_invoice(db, invoice_id, clock=clock)))


def credit_note_document(db: Database, note: CreditNote) -> InvoiceDocument:
    with db.transaction() as conn:
        provider = load_account(conn, note.provider_id)
        customer = load_account(conn, note.account_id)
    lines = [
        DocumentLine("adjustments", line.description, None, "1", "", line.amount)
        for line in note.lines
    ]
    return InvoiceDocument(
        title="Credit note", label=note.label, provider_name=provider.name,
        customer_name=customer.name, issued_at=note.issued_at, currency=note.currency,
        vat_rate=note.vat_rate, vat_country=customer.vat_country, net=note.net, vat=note.vat,
        total=note.total, lines=lines,
        facts=[("Corrects invoice", f"INV-{note.invoice_number}"), ("Reason", note.reason)],
        summary=[("Credited to your balance" if note.transaction_id else "Refunded to you",
                  money(note.total, note.currency))],
        note="Amounts include VAT. This credit note reduces the invoice it names.",
    )  # fmt: skip


def credit_note_pdf(db: Database, credit_note_id: int) -> bytes:
    return render_invoice(credit_note_document(db, get_credit_note(db, credit_note_id)))


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class InvoiceSettings:
    account_id: int
    payment_terms_days: int
    email_documents: bool
    document_email: str | None
    endpoint_id: int | None
    # What a month without a charge gives: "invoice" (zero invoice) or "statement"; None:
    # the provider's choice (see `invoice_runs.empty_month_choices`).
    empty_month: str | None = None


def _settings(conn: Connection, account_id: int) -> InvoiceSettings:
    row = conn.execute(
        select(invoice_settings).where(invoice_settings.c.account_id == account_id)
    ).first()
    if row is None:
        return InvoiceSettings(account_id, DEFAULT_PAYMENT_TERMS_DAYS, False, None, None)
    return InvoiceSettings(
        account_id, row.payment_terms_days, row.email_documents, row.document_email,
        row.endpoint_id, row.empty_month,
    )  # fmt: skip


def get_invoice_settings(db: Database, account_id: int) -> InvoiceSettings:
    with db.transaction() as conn:
        load_account(conn, account_id)
        return _settings(conn, account_id)


def set_invoice_settings(
    db: Database,
    account_id: int,
    *,
    clock: Clock,
    payment_terms_days: int | None = None,
    email_documents: bool | None = None,
    document_email: str | None = None,
    empty_month: str | None = None,
) -> InvoiceSettings:
    """Change what is given; emailing documents needs an address (given now or before).

    `empty_month`: what a month without a charge gives this account, and the accounts of
    this provider that do not choose themselves: "invoice" (a zero invoice) or
    "statement"."""
    if payment_terms_days is not None and not 0 <= payment_terms_days <= 365:
        raise InvalidInput("payment terms must be between 0 and 365 days")
    if empty_month is not None and empty_month not in EMPTY_MONTH_CHOICES:
        raise InvalidInput(f"empty month must be one of: {', '.join(EMPTY_MONTH_CHOICES)}")
    current = get_invoice_settings(db, account_id)
    terms = current.payment_terms_days if payment_terms_days is None else payment_terms_days
    wanted = current.email_documents if email_documents is None else email_documents
    address = current.document_email if document_email is None else document_email.strip()
    if wanted and not address:
        raise InvalidInput("emailing documents needs an address (--email)")
    endpoint_id = current.endpoint_id
    endpoint = notifications.get_endpoint(db, endpoint_id) if endpoint_id else None
    if endpoint is not None and (not wanted or endpoint.target != address) and endpoint.active:
        notifications.set_endpoint_active(db, endpoint.id, False)
        endpoint = None
    if wanted and address and (endpoint is None or not endpoint.active):
        endpoint = notifications.add_endpoint(
            db, account_id, kind="email", target=address, event_types=DOCUMENT_EVENTS,
            now=clock.now(),
        )  # fmt: skip
    values = {
        "payment_terms_days": terms,
        "email_documents": wanted,
        "document_email": address,
        "endpoint_id": endpoint.id if endpoint is not None else None,
        "updated_at": clock.now(),
        "empty_month": current.empty_month if empty_month is None else empty_month,
    }

    def work(conn: Connection) -> InvoiceSettings:
        load_account(conn, account_id)
        exists = conn.execute(
            select(invoice_settings.c.account_id).where(invoice_settings.c.account_id == account_id)
        ).first()
        if exists:
            conn.execute(
                update(invoice_settings)
                .where(invoice_settings.c.account_id == account_id)
                .values(**values)
            )
        else:
            conn.execute(invoice_settings.insert().values(account_id=account_id, **values))
        return _settings(conn, account_id)

    return db.run(work)


# ---------------------------------------------------------------------------- email


def email_attachments(
    db: Database, clock: Clock
) -> Callable[[str, Mapping[str, Any]], list[Attachment]]:
    """For the SMTP sender: the PDF an outgoing event's email should carry, if any."""

    def attachments(to: str, event: Mapping[str, Any]) -> list[Attachment]:
        account_id = event.get("account_id")
        payload = event.get("payload") or {}
        if account_id is None or event.get("type") not in DOCUMENT_EVENTS:
            return []
        settings = get_invoice_settings(db, int(account_id))
        if not settings.email_documents or settings.document_email != to:
            return []
        kind = event["type"]
        if kind in ("invoice.issued", "invoice.overdue"):
            data = invoice_pdf(db, int(payload["invoice_id"]), clock=clock)
            return [(f"invoice-{payload['label']}.pdf", data)]
        if kind == "credit_note.issued":
            data = credit_note_pdf(db, int(payload["credit_note_id"]))
            return [(f"credit-note-{payload['label']}.pdf", data)]
        data = receipts.receipt_pdf(db, int(payload["receipt_id"]))
        return [(f"receipt-{payload['number']}.pdf", data)]

    return attachments


__all__ = [
    "DOCUMENT_EVENTS",
    "InvoiceSettings",
    "credit_note_document",
    "credit_note_pdf",
    "email_attachments",
    "get_invoice_settings",
    "invoice_document",
    "invoice_pdf",
    "set_invoice_settings",
]
