"""Top-up receipts as documents: the stored receipt plus provider and customer names, as PDF."""

from __future__ import annotations

from telbill.adapters.db.engine import Database
from telbill.adapters.pdf.receipts import ReceiptDocument, render_receipt
from telbill.services.accounts import load_account
from telbill.services.ledger_views import Receipt, load_receipt


def get_receipt(db: Database, receipt_id: int) -> Receipt:
    with db.transaction() as conn:
        return load_receipt(conn, receipt_id)


def receipt_document(db: Database, receipt_id: int) -> ReceiptDocument:
    with db.transaction() as conn:
        receipt = load_receipt(conn, receipt_id)
        provider = load_account(conn, receipt.provider_id)
        customer = load_account(conn, receipt.account_id)
    return ReceiptDocument(
        number=receipt.number,
        issued_at=receipt.created_at,
        provider_name=provider.name,
        customer_name=customer.name,
        currency=receipt.currency,
        amount=receipt.amount,
        vat=receipt.vat,
        vat_rate=receipt.vat_rate,
        net=receipt.net,
        new_balance=receipt.new_balance,
        payment_ref=receipt.payment_ref,
        vat_country=receipt.vat_country,
    )


def receipt_pdf(db: Database, receipt_id: int) -> bytes:
    """The PDF of receipt `receipt_id` (NotFound when there is none)."""
    return render_receipt(receipt_document(db, receipt_id))


__all__ = ["get_receipt", "receipt_document", "receipt_pdf"]
