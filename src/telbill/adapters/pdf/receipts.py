"""A top-up receipt as a one-page PDF, rendered with fpdf2 (pure Python, no system fonts).

The core PDF fonts cover Latin-1 only; names outside it are transliterated to '?' rather
than failing the render.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from telbill.domain.money import format_amount, round_money


@dataclass(frozen=True, slots=True)
class ReceiptDocument:
    number: int
    issued_at: datetime
    provider_name: str
    customer_name: str
    currency: str
    amount: Decimal
    vat: Decimal
    vat_rate: Decimal
    net: Decimal
    new_balance: Decimal
    payment_ref: str | None
    vat_country: str | None


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _money(amount: Decimal, currency: str) -> str:
    return f"{format_amount(round_money(amount, 2), 2)} {currency}"


def render_receipt(doc: ReceiptDocument) -> bytes:
    """The PDF bytes of a receipt."""
    from fpdf import FPDF  # imported when a receipt is rendered (fast CLI commands)

    pdf = FPDF(format="A4")
    pdf.set_title(f"Receipt {doc.number}")
    pdf.set_creator("telbill")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, _latin1(doc.provider_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 7, f"Receipt no. {doc.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(
        0, 7, f"Date: {doc.issued_at.strftime('%Y-%m-%d %H:%M UTC')}", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Received from", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 7, _latin1(doc.customer_name), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    rate = f"{(doc.vat_rate * 100).normalize():f}%"
    vat_label = f"VAT {rate}" + (f" ({doc.vat_country})" if doc.vat_country else "")
    rows = [
        ("Net amount", _money(doc.net, doc.currency)),
        (vat_label, _money(doc.vat, doc.currency)),
        ("Amount paid", _money(doc.amount, doc.currency)),
        ("New balance", _money(doc.new_balance, doc.currency)),
    ]
    if doc.payment_ref:
        rows.append(("Payment reference", _latin1(doc.payment_ref)))
    for index, (label, value) in enumerate(rows):
        bold = label == "Amount paid"
        pdf.set_font("Helvetica", "B" if bold else "", 11)
        pdf.set_fill_color(240, 240, 240)
        fill = index % 2 == 0
        pdf.cell(110, 9, label, border="B", fill=fill)
        pdf.cell(60, 9, value, border="B", align="R", fill=fill, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(10)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(
        0,
        5,
        "The amount paid includes VAT and has been credited to your prepaid balance. "
        "Keep this receipt for your records.",
    )
    return bytes(pdf.output())


__all__ = ["ReceiptDocument", "render_receipt"]
