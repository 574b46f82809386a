"""Invoice endpoints: an account's invoices, one invoice (JSON or PDF), payments received for
a postpaid invoice and credit notes.

Reading follows the account (anyone who may read the invoiced account); recording a payment
or issuing a credit note moves money on the provider's word: provider admins only (the
`adjust` action). An invoice of another tenant answers 404, like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from telbill.adapters.db.engine import Database
from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.schemas import AmountIn, AmountOut
from telbill.api.types import Code
from telbill.errors import NotFound
from telbill.services import invoice_documents, invoice_payments
from telbill.services import invoices as invoice_service
from telbill.services.auth import Action, Principal, authorize
from telbill.services.clock import Clock

router = APIRouter(tags=["invoices"])


class InvoiceLineOut(BaseModel):
    section: str
    description: str
    direction: str | None
    destination: str | None
    prefix: str | None
    quantity: int
    billed_units: int | None = Field(description="Billed seconds (calls), segments (SMS)")
    minutes: str | None = Field(description="Billed call time as M:SS (exact)")
    amount: AmountOut


class InvoiceOut(BaseModel):
    id: int
    number: int
    label: str
    account_id: int
    period: str
    timezone: str
    currency: str
    billing_mode: str
    status: str = Field(description="issued, partially_paid, paid or overdue")
    vat_rate: AmountOut
    vat_country: str | None
    net: AmountOut
    vat: AmountOut
    total: AmountOut = Field(description="Gross: prices include VAT")
    amount_owed: AmountOut
    paid: AmountOut
    credited: AmountOut
    amount_due: AmountOut
    issued_at: datetime
    due_at: datetime | None
    activity: dict[str, AmountOut]
    lines: list[InvoiceLineOut]


class InvoiceListOut(BaseModel):
    items: list[InvoiceOut]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: AmountIn
    method: Code = Field(description="bank_transfer or direct_debit")
    reference: str | None = Field(default=None, max_length=200)


class PaymentOut(BaseModel):
    id: int
    invoice_id: int
    method: str
    amount: AmountOut
    reference: str | None
    transaction_id: int
    received_at: datetime


class CreditNoteLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, max_length=300)
    amount: AmountIn = Field(description="Gross, VAT included")


class CreditNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[CreditNoteLineIn] = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)
    credit_wallet: bool = True


class CreditNoteLineOut(BaseModel):
    description: str
    amount: AmountOut


class CreditNoteOut(BaseModel):
    id: int
    number: int
    label: str
    invoice_id: int
    account_id: int
    currency: str
    reason: str
    net: AmountOut
    vat: AmountOut
    total: AmountOut
    transaction_id: int | None
    issued_at: datetime
    lines: list[CreditNoteLineOut]


def invoice_out(invoice: invoice_service.Invoice) -> InvoiceOut:
    return InvoiceOut(
        id=invoice.id, number=invoice.number, label=invoice.label,
        account_id=invoice.account_id, period=invoice.period, timezone=invoice.timezone,
        currency=invoice.currency, billing_mode=invoice.billing_mode, status=invoice.status,
        vat_rate=invoice.vat_rate, vat_country=invoice.vat_country, net=invoice.net,
        vat=invoice.vat, total=invoice.total, amount_owed=invoice.amount_owed,
        paid=invoice.paid, credited=invoice.credited, amount_due=invoice.amount_due,
        issued_at=invoice.issued_at, due_at=invoice.due_at, activity=invoice.activity,
        lines=[
            InvoiceLineOut(
                section=line.section, description=line.description, direction=line.direction,
                destination=line.destination, prefix=line.prefix, quantity=line.quantity,
                billed_units=line.billed_units, minutes=line.minutes, amount=line.amount,
            )
            for line in invoice.lines
        ],
    )  # fmt: skip


def _readable_invoice(
    db: Database, clock: Clock, principal: Principal, invoice_id: int, action: Action
) -> invoice_service.Invoice:
    """The invoice if the caller may act on its account; a foreign one looks missing."""
    invoice = invoice_service.get_invoice(db, invoice_id, clock=clock)
    try:
        authorize(db, principal, invoice.account_id, Action.READ)
    except NotFound:
        raise NotFound(f"invoice {invoice_id} not found") from None
    if action is not Action.READ:
        authorize(db, principal, invoice.account_id, action)
    return invoice


@router.get(
    "/accounts/{account_id}/invoices",
    response_model=InvoiceListOut,
    summary="Invoices of a billing account, newest month first (without their lines)",
)
def list_account_invoices(
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    status_filter: Annotated[
        str | None,
        Query(alias="status", pattern="^(issued|partially_paid|paid|overdue)$"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=invoice_service.MAX_PAGE)] = 100,
) -> InvoiceListOut:
    authorize(db, principal, account_id, Action.READ)
    found = invoice_service.list_invoices(
        db, account_id, clock=clock, status=status_filter, limit=limit
    )
    return InvoiceListOut(items=[invoice_out(invoice) for invoice in found])


# Declared before GET /invoices/{invoice_id}: "7.pdf" must not reach the JSON route.
@router.get(
    "/invoices/{invoice_id}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
    summary="An invoice as PDF",
)
def get_invoice_pdf(
    invoice_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep
) -> Response:
    invoice = _readable_invoice(db, clock, principal, invoice_id, Action.READ)
    return Response(
        content=invoice_documents.invoice_pdf(db, invoice_id, clock=clock),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="invoice-{invoice.label}.pdf"'},
    )


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut, summary="One invoice")
def get_invoice(invoice_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep) -> InvoiceOut:
    return invoice_out(_readable_invoice(db, clock, principal, invoice_id, Action.READ))


@router.post(
    "/invoices/{invoice_id}/payments",
    response_model=PaymentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a payment received for a postpaid invoice (credits the wallet)",
)
def post_payment(
    invoice_id: int,
    body: PaymentIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> PaymentOut:
    _readable_invoice(db, clock, principal, invoice_id, Action.ADJUST)
    payment = invoice_payments.record_payment(
        db, invoice_id, body.amount, method=body.method, reference=body.reference,
        idempotency_key=idempotency_key, clock=clock,
    )  # fmt: skip
    return PaymentOut(
        id=payment.id, invoice_id=payment.invoice_id, method=payment.method,
        amount=payment.amount, reference=payment.reference,
        transaction_id=payment.transaction_id, received_at=payment.received_at,
    )  # fmt: skip


@router.post(
    "/invoices/{invoice_id}/credit-notes",
    response_model=CreditNoteOut,
    status_code=status.HTTP_201_CREATED,
    summary="Issue a credit note correcting an invoice",
)
def post_credit_note(
    invoice_id: int,
    body: CreditNoteIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> CreditNoteOut:
    _readable_invoice(db, clock, principal, invoice_id, Action.ADJUST)
    note = invoice_payments.issue_credit_note(
        db, invoice_id, [(line.description, line.amount) for line in body.lines],
        reason=body.reason, credit_wallet=body.credit_wallet,
        idempotency_key=idempotency_key, clock=clock,
    )  # fmt: skip
    return CreditNoteOut(
        id=note.id, number=note.number, label=note.label, invoice_id=note.invoice_id,
        account_id=note.account_id, currency=note.currency, reason=note.reason, net=note.net,
        vat=note.vat, total=note.total, transaction_id=note.transaction_id,
        issued_at=note.issued_at,
        lines=[CreditNoteLineOut(description=x.description, amount=x.amount)
               for x in note.lines],
    )  # fmt: skip
