"""Money against an invoice: payments received for a postpaid invoice, and credit notes.

* A payment (bank transfer or direct debit) is a ledger transaction ``invoice_payment``
  crediting the wallet's paid balance from ``cash:<CUR>``, recorded against the invoice in
  the same database transaction, idempotent by key. Like a top-up it moves the VAT it
  contains from ``vat_in_payments:<CUR>`` to ``vat_payable:<CUR>`` (VAT is accounted when
  money is received, for prepaid and postpaid alike). More than the amount due is refused;
  a prepaid invoice owes nothing and takes no payment.
* A credit note corrects an issued invoice: its own lines and totals, numbered in the
  provider's credit-note sequence (``CN-n``), never more than what the invoice still has
  uncredited. It credits the wallet (``credit_note`` transaction from
  ``credit_notes:<CUR>``) unless told not to (money returned outside telbill); a postpaid
  credit note always credits the wallet, since the wallet's debt is what the customer owes.
  It is a document of its own: the next month's invoice does not repeat it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from telbill.adapters.db import ledger_store
from telbill.adapters.db.engine import Database
from telbill.adapters.db.invoice_tables import (
    credit_note_lines,
    credit_notes,
    invoice_payments,
    invoices,
)
from telbill.domain.money import from_micros, parse_amount, to_micros
from telbill.errors import Conflict, InvalidInput, NotFound
from telbill.ledger import JournalEntry, Posting, transfer
from telbill.services import idempotency, suspension, thresholds
from telbill.services.accounts import PPM, BillingMode
from telbill.services.clock import Clock
from telbill.services.events import emit
from telbill.services.inputs import paid_bucket
from telbill.services.invoices import invoice_status, next_number
from telbill.services.lifecycle_common import lock_account
from telbill.services.wallets import vat_included

PAYMENT_METHODS = ("bank_transfer", "direct_debit")


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    id: int
    invoice_id: int
    method: str
    amount: Decimal
    reference: str | None
    transaction_id: int
    received_at: datetime


@dataclass(frozen=True, slots=True)
class CreditNoteLine:
    description: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class CreditNote:
    id: int
    number: int
    provider_id: int
    invoice_id: int
    invoice_number: int
    account_id: int
    currency: str
    reason: str
    vat_rate: Decimal
    net: Decimal
    vat: Decimal
    total: Decimal
    transaction_id: int | None
    issued_at: datetime
    lines: tuple[CreditNoteLine, ...]

    @property
    def label(self) -> str:
        return f"CN-{self.number}"


def _invoice_row(conn: Connection, invoice_id: int) -> Any:
    row = conn.execute(select(invoices).where(invoices.c.id == invoice_id)).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found")
    return row


def settled_micros(conn: Connection, invoice_id: int) -> tuple[int, int]:
    paid = conn.execute(
        select(func.coalesce(func.sum(invoice_payments.c.amount_micros), 0)).where(
            invoice_payments.c.invoice_id == invoice_id
        )
    ).scalar_one()
    credited = conn.execute(
        select(func.coalesce(func.sum(credit_notes.c.total_micros), 0)).where(
            credit_notes.c.invoice_id == invoice_id
        )
    ).scalar_one()
    return int(paid), int(credited)


def _positive_micros(amount: Decimal | str | int, field: str) -> int:
    micros = to_micros(parse_amount(amount, field=field))
    if micros <= 0:
        raise InvalidInput(f"{field} must be positive, got {amount}")
    return micros


# ---------------------------------------------------------------------------- payments


def _payment(row: Any) -> InvoicePayment:
    return InvoicePayment(
        id=row.id, invoice_id=row.invoice_id, method=row.method,
        amount=from_micros(row.amount_micros), reference=row.reference,
        transaction_id=row.transaction_id, received_at=row.received_at,
    )  # fmt: skip


def record_payment(
    db: Database,
    invoice_id: int,
    amount: Decimal | str | int,
    *,
    method: str,
    idempotency_key: str,
    clock: Clock,
    reference: str | None = None,
) -> InvoicePayment:
    """Record money received for a postpaid invoice and credit the wallet with it."""
    if method not in PAYMENT_METHODS:
        raise InvalidInput(f"payment method must be one of {', '.join(PAYMENT_METHODS)}")
    minor = _positive_micros(amount, "amount")
    request = {"amount": parse_amount(amount), "method": method, "reference": reference}

    def work(conn: Connection) -> InvoicePayment:
        now = clock.now()
        invoice = _invoice_row(conn, invoice_id)
        lock_account(conn, invoice.account_id)

        def perform() -> dict[str, Any]:
            if invoice.billing_mode != BillingMode.POSTPAID.value:
                raise Conflict(
                    f"invoice INV-{invoice.number} was paid from the prepaid balance: "
                    "nothing is owed (top up the wallet instead)"
                )
            paid, credited = settled_micros(conn, invoice_id)
            _, due = invoice_status(
                invoice.billing_mode, invoice.amount_owed_micros, paid, credited,
                invoice.due_at, now,
            )  # fmt: skip
            if minor > due:
                raise InvalidInput(
                    f"payment of {from_micros(minor)} {invoice.currency} exceeds the amount "
                    f"due on INV-{invoice.number}: {from_micros(due)} {invoice.currency}"
                )
            tx_id = _post_payment(conn, invoice, minor, method, reference, idempotency_key, now)
            payment_id = conn.execute(
                invoice_payments.insert()
                .values(
                    invoice_id=invoice_id,
                    method=method,
                    amount_micros=minor,
                    reference=reference,
                    transaction_id=tx_id,
                    received_at=now,
                )  # fmt: skip
                .returning(invoice_payments.c.id)
            ).scalar_one()
            thresholds.after_balance_change(conn, invoice.account_id, now)
            return {"payment_id": int(payment_id)}

        return idempotency.once(
            conn,
            scope=f"invoice.payment:{invoice_id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=perform,
            load=lambda response: _payment(
                conn.execute(
                    select(invoice_payments).where(
                        invoice_payments.c.id == int(response["payment_id"])
                    )
                ).one()
            ),
        )

    payment = db.run(work)
    # A suspended postpaid account whose payment lifted it resumes (idempotent, after commit).
    suspension.after_top_up(db, _account_of(db, invoice_id), clock=clock)
    return payment


def _account_of(db: Database, invoice_id: int) -> int:
    with db.transaction() as conn:
        return int(_invoice_row(conn, invoice_id).account_id)


def _post_payment(
    conn: Connection, invoice: Any, minor: int, method: str, reference: str | None,
    key: str, now: datetime,
) -> int:  # fmt: skip
    unit = invoice.currency
    paid = paid_bucket(ledger_store.load_buckets(conn, [invoice.account_id], unit=unit), unit)
    cash = ledger_store.system_account(conn, f"cash:{unit}", unit, now)
    post = [Posting(cash, -minor, unit), Posting(paid.id, minor, unit)]
    vat = vat_included(minor, invoice.vat_rate_ppm)
    if vat:
        vat_in = ledger_store.system_account(conn, f"vat_in_payments:{unit}", unit, now)
        vat_payable = ledger_store.system_account(conn, f"vat_payable:{unit}", unit, now)
        post += [Posting(vat_in, -vat, unit), Posting(vat_payable, vat, unit)]
    return ledger_store.apply_entry(
        conn,
        JournalEntry(
            kind="invoice_payment",
            account_id=invoice.account_id,
            subject_account_id=invoice.account_id,
            postings=tuple(post),
            memo=f"{method.replace('_', ' ')} for INV-{invoice.number}",
            details={
                "invoice_id": invoice.id,
                "method": method,
                "reference": reference,
                "vat_micros": vat,
            },  # fmt: skip
            idempotency_key=key,
        ),
        now,
    )


def list_payments(db: Database, invoice_id: int) -> list[InvoicePayment]:
    with db.transaction() as conn:
        _invoice_row(conn, invoice_id)
        rows = conn.execute(
            select(invoice_payments)
            .where(invoice_payments.c.invoice_id == invoice_id)
            .order_by(invoice_payments.c.id)
        ).all()
    return [_payment(row) for row in rows]


# ---------------------------------------------------------------------------- credit notes


def _clean_lines(lines: Sequence[tuple[str, Decimal | str | int]]) -> list[tuple[str, int]]:
    if not lines:
        raise InvalidInput("a credit note needs at least one line")
    cleaned = []
    for position, (description, amount) in enumerate(lines, start=1):
        text = (description or "").strip() if isinstance(description, str) else ""
        if not text:
            raise InvalidInput(f"credit note line {position}: a description is required")
        if len(text) > 300:
            raise InvalidInput(f"credit note line {position}: description over 300 characters")
        cleaned.append((text, _positive_micros(amount, f"line {position} amount")))
    return cleaned


def issue_credit_note(
    db: Database,
    invoice_id: int,
    lines: Sequence[tuple[str, Decimal | str | int]],
    *,
    reason: str,
    idempotency_key: str,
    clock: Clock,
    credit_wallet: bool = True,
) -> CreditNote:
    """Issue a credit note against invoice `invoice_id` with `lines` (description, gross)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a credit note needs a reason")
    cleaned = _clean_lines(lines)
    request = {
        "lines": [[text, str(micros)] for text, micros in cleaned],
        "reason": reason,
        "credit_wallet": credit_wallet,
    }

    def work(conn: Connection) -> CreditNote:
        now = clock.now()
        invoice = _invoice_row(conn, invoice_id)
        lock_account(conn, invoice.account_id)

        def perform() -> dict[str, Any]:
            if invoice.billing_mode == BillingMode.POSTPAID.value and not credit_wallet:
                raise InvalidInput(
                    "a postpaid credit note always credits the wallet: its debt is what the "
                    "customer owes"
                )
            total = sum(micros for _, micros in cleaned)
            _, credited = settled_micros(conn, invoice_id)
            room = invoice.total_micros - credited
            if total > room:
                raise InvalidInput(
                    f"credit note of {from_micros(total)} {invoice.currency} exceeds what "
                    f"INV-{invoice.number} has left to credit: {from_micros(max(room, 0))} "
                    f"{invoice.currency}"
                )
            number = next_number(conn, invoice.provider_id, "credit_note")
            tx_id = None
            if credit_wallet:
                tx_id = _credit_wallet(conn, invoice, total, number, idempotency_key, now)
            vat = vat_included(total, invoice.vat_rate_ppm)
            note_id = conn.execute(
                credit_notes.insert()
                .values(
                    provider_id=invoice.provider_id,
                    number=number,
                    invoice_id=invoice_id,
                    account_id=invoice.account_id,
                    currency=invoice.currency,
                    reason=reason.strip(),
                    vat_rate_ppm=invoice.vat_rate_ppm,
                    net_micros=total - vat,
                    vat_micros=vat,
                    total_micros=total,
                    transaction_id=tx_id,
                    issued_at=now,
                )  # fmt: skip
                .returning(credit_notes.c.id)
            ).scalar_one()
            conn.execute(
                credit_note_lines.insert(),
                [
                    {
                        "credit_note_id": note_id,
                        "position": position,
                        "description": text,
                        "amount_micros": micros,
                    }  # fmt: skip
                    for position, (text, micros) in enumerate(cleaned, start=1)
                ],
            )
            if tx_id is not None:
                thresholds.after_balance_change(conn, invoice.account_id, now)
            emit(
                conn,
                "credit_note.issued",
                account_id=invoice.account_id,
                payload={
                    "credit_note_id": int(note_id),
                    "number": number,
                    "label": f"CN-{number}",
                    "invoice_id": invoice_id,
                    "invoice_label": f"INV-{invoice.number}",
                    "currency": invoice.currency,
                    "total": str(from_micros(total)),
                    "credited_wallet": credit_wallet,
                },  # fmt: skip
                dedupe_key=f"credit_note.issued:{note_id}",
                now=now,
            )
            return {"credit_note_id": int(note_id)}

        return idempotency.once(
            conn,
            scope=f"invoice.credit_note:{invoice_id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=perform,
            load=lambda response: load_credit_note(conn, int(response["credit_note_id"])),
        )

    return db.run(work)


def _credit_wallet(
    conn: Connection, invoice: Any, total: int, number: int, key: str, now: datetime
) -> int:
    unit = invoice.currency
    paid = paid_bucket(ledger_store.load_buckets(conn, [invoice.account_id], unit=unit), unit)
    source = ledger_store.system_account(conn, f"credit_notes:{unit}", unit, now)
    entry = transfer(
        "credit_note",
        account_id=invoice.account_id,
        source_id=source,
        destination_id=paid.id,
        amount=total,
        unit=unit,
        memo=f"credit note CN-{number} for INV-{invoice.number}",
        details={"invoice_id": invoice.id, "credit_note_number": number},
        idempotency_key=key,
    )
    return ledger_store.apply_entry(conn, entry, now)


def load_credit_note(conn: Connection, credit_note_id: int) -> CreditNote:
    row = conn.execute(select(credit_notes).where(credit_notes.c.id == credit_note_id)).first()
    if row is None:
        raise NotFound(f"credit note {credit_note_id} not found")
    invoice_number = conn.execute(
        select(invoices.c.number).where(invoices.c.id == row.invoice_id)
    ).scalar_one()
    lines = tuple(
        CreditNoteLine(r.description, from_micros(r.amount_micros))
        for r in conn.execute(
            select(credit_note_lines)
            .where(credit_note_lines.c.credit_note_id == credit_note_id)
            .order_by(credit_note_lines.c.position)
        )
    )
    return CreditNote(
        id=row.id, number=row.number, provider_id=row.provider_id, invoice_id=row.invoice_id,
        invoice_number=int(invoice_number), account_id=row.account_id, currency=row.currency,
        reason=row.reason, vat_rate=(Decimal(row.vat_rate_ppm) / PPM).normalize(),
        net=from_micros(row.net_micros), vat=from_micros(row.vat_micros),
        total=from_micros(row.total_micros), transaction_id=row.transaction_id,
        issued_at=row.issued_at, lines=lines,
    )  # fmt: skip


def get_credit_note(db: Database, credit_note_id: int) -> CreditNote:
    with db.transaction() as conn:
        return load_credit_note(conn, credit_note_id)


def list_credit_notes(db: Database, invoice_id: int) -> list[CreditNote]:
    with db.transaction() as conn:
        _invoice_row(conn, invoice_id)
        ids = conn.scalars(
            select(credit_notes.c.id)
            .where(credit_notes.c.invoice_id == invoice_id)
            .order_by(credit_notes.c.id)
        ).all()
        return [load_credit_note(conn, int(i)) for i in ids]


__all__ = [
    "PAYMENT_METHODS",
    "settled_micros",
    "CreditNote",
    "CreditNoteLine",
    "InvoicePayment",
    "get_credit_note",
    "issue_credit_note",
    "list_credit_notes",
    "list_payments",
    "record_payment",
]
