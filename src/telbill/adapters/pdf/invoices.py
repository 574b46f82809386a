"""Invoices and credit notes as PDF, rendered with fpdf2 like receipts (adapters/pdf/receipts.py).

Amounts are printed exactly (at least two decimals, up to six: a call can cost 0.036740),
so the printed lines add up to the printed total. Call minutes are M:SS of billed time.
Long invoices flow onto further pages (fpdf2's automatic page break).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # fpdf is imported when a document is rendered
    from fpdf import FPDF


SECTION_TITLES = {
    "calls": "Calls",
    "sms": "SMS",
    "usage": "Other usage",
    "numbers": "Phone numbers",
    "subscriptions": "Subscriptions and seats",
    "packages": "Packages bought",
    "adjustments": "Adjustments, rerating and credits",
}
ACTIVITY_TITLES = {
    "top_up": "Payments received (top-ups)",
    "invoice_payment": "Invoice payments received",
    "refund": "Refunds paid out",
    "grant": "Credits granted",
    "credit_note": "Credit notes credited",
    "expiry": "Credit expired",
}


@dataclass(frozen=True, slots=True)
class DocumentLine:
    section: str
    description: str
    direction: str | None
    quantity: str
    measure: str  # minutes (M:SS), segments, or ""
    amount: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    title: str  # "Invoice" or "Credit note"
    label: str  # INV-7, CN-2
    provider_name: str
    customer_name: str
    issued_at: datetime
    currency: str
    vat_rate: Decimal
    vat_country: str | None
    net: Decimal
    vat: Decimal
    total: Decimal
    lines: Sequence[DocumentLine]
    # (label, value) rows under the totals: period, what is owed, due date, state...
    facts: Sequence[tuple[str, str]] = ()
    summary: Sequence[tuple[str, str]] = ()
    activity: Sequence[tuple[str, Decimal]] = field(default_factory=tuple)
    note: str = ""


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def exact(amount: Decimal) -> str:
    """An amount with at least 2 and at most 6 decimals, never rounded away."""
    text = f"{amount.normalize():f}"
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def money(amount: Decimal, currency: str) -> str:
    return f"{exact(amount)} {currency}"


WIDTHS = (86, 24, 18, 22, 30)  # description, direction, quantity, minutes/units, amount


def _header(pdf: FPDF, doc: InvoiceDocument) -> None:
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 11, _latin1(doc.provider_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, f"{doc.title} {doc.label}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, f"Date: {doc.issued_at.strftime('%Y-%m-%d %H:%M UTC')}",
             new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    for label, value in doc.facts:
        pdf.cell(0, 6, _latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "Billed to", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, _latin1(doc.customer_name), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _row(pdf: FPDF, cells: Sequence[str], *, bold: bool = False, fill: bool = False) -> None:
    pdf.set_font("Helvetica", "B" if bold else "", 9)
    aligns = ("L", "L", "R", "R", "R")
    for index, (width, text, align) in enumerate(zip(WIDTHS, cells, aligns, strict=True)):
        last = index == len(WIDTHS) - 1
        pdf.cell(width, 6, _latin1(text), border="B", align=align, fill=fill,
                 new_x="LMARGIN" if last else "RIGHT", new_y="NEXT" if last else "TOP")  # fmt: skip


def _lines(pdf: FPDF, doc: InvoiceDocument) -> None:
    pdf.set_fill_color(235, 235, 235)
    _row(pdf, ("Description", "Direction", "Qty", "Min / units", f"Amount {doc.currency}"),
         bold=True, fill=True)  # fmt: skip
    current = None
    for line in doc.lines:
        if line.section != current:
            current = line.section
            pdf.set_font("Helvetica", "B", 9)
            pdf.cell(0, 7, SECTION_TITLES.get(line.section, line.section),
                     new_x="LMARGIN", new_y="NEXT")  # fmt: skip
        description = line.description if len(line.description) <= 52 else (
            line.description[:51] + "~"
        )  # fmt: skip
        _row(pdf, (description, line.direction or "", line.quantity, line.measure,
                   exact(line.amount)))  # fmt: skip
    if not doc.lines:
        pdf.set_font("Helvetica", "I", 9)
        pdf.cell(0, 7, "No charges in this period.", new_x="LMARGIN", new_y="NEXT")


def _totals(pdf: FPDF, doc: InvoiceDocument) -> None:
    pdf.ln(3)
    rate = f"{(doc.vat_rate * 100).normalize():f}%"
    vat_label = f"of which VAT {rate}" + (f" ({doc.vat_country})" if doc.vat_country else "")
    rows = [
        ("Total (VAT included)", money(doc.total, doc.currency), True),
        (vat_label, money(doc.vat, doc.currency), False),
        ("Net (subtotal before VAT)", money(doc.net, doc.currency), False),
    ] + [(label, value, label.startswith("Amount due")) for label, value in doc.summary]
    for label, value, bold in rows:
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.cell(120, 7, _latin1(label), border="B")
        pdf.cell(60, 7, _latin1(value), border="B", align="R", new_x="LMARGIN", new_y="NEXT")


def _activity(pdf: FPDF, doc: InvoiceDocument) -> None:
    shown = [(label, amount) for label, amount in doc.activity if amount]
    if not shown:
        return
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 7, "Account activity this period (for the record, not charges)",
             new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.set_font("Helvetica", "", 10)
    for label, amount in shown:
        pdf.cell(120, 6, _latin1(label))
        pdf.cell(60, 6, money(amount, doc.currency), align="R", new_x="LMARGIN", new_y="NEXT")


def render_invoice(doc: InvoiceDocument) -> bytes:
    """The PDF bytes of an invoice or a credit note."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(f"{doc.title} {doc.label}")
    pdf.set_creator("telbill")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    _header(pdf, doc)
    _lines(pdf, doc)
    _totals(pdf, doc)
    _activity(pdf, doc)
    if doc.note:
        pdf.ln(6)
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4, _latin1(doc.note))
    return bytes(pdf.output())


__all__ = [
    "ACTIVITY_TITLES",
    "DocumentLine",
    "InvoiceDocument",
    "exact",
    "money",
    "render_invoice",
]
