"""Top-up receipts as PDF: the text a customer reads, and one rendered page."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from ledger_support import (  # noqa: F401 (fixtures)
    key,
    manual_clock,
    migrated_db,
    organisation,
    provider,
)
from pdf_pages import render_first_page

from telbill.adapters.db.engine import Database
from telbill.errors import NotFound
from telbill.services import receipts, wallets
from telbill.services.clock import ManualClock


def pdf_text(data: bytes) -> str:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_receipt_pdf_shows_amount_vat_net_new_balance_number_and_both_names(
    db: Database, clock: ManualClock
):
    p = provider(db, clock, vat_rate="0.2", vat_country="GB")
    org = organisation(db, clock, p)
    wallets.top_up(db, org.id, "12.00", idempotency_key=key(), clock=clock)
    receipt = wallets.top_up(
        db, org.id, "60.00", idempotency_key=key(), clock=clock, payment_ref="card-4242"
    )
    text = pdf_text(receipts.receipt_pdf(db, receipt.id))
    for expected in [
        "Provider",  # provider name
        "Received from",
        "Org",  # customer name
        f"Receipt no. {receipt.number}",
        "Net amount 50.00 USD",
        "VAT 20% (GB) 10.00 USD",
        "Amount paid 60.00 USD",
        "New balance 72.00 USD",
        "card-4242",
        "2026-03-01 09:00 UTC",
    ]:
        assert expected in text, (expected, text)


def test_receipt_number_in_pdf_follows_the_providers_sequence(db: Database, clock: ManualClock):
    p = provider(db, clock)
    org = organisation(db, clock, p)
    numbers = []
    for amount in ("1.00", "2.00"):
        receipt = wallets.top_up(db, org.id, amount, idempotency_key=key(), clock=clock)
        numbers.append(receipt.number)
        assert f"Receipt no. {receipt.number}" in pdf_text(receipts.receipt_pdf(db, receipt.id))
    assert numbers[1] == numbers[0] + 1


def test_pdf_of_a_missing_receipt_is_not_found(db: Database):
    with pytest.raises(NotFound):
        receipts.receipt_pdf(db, 424242)


def test_receipt_page_renders_to_png(db: Database, clock: ManualClock, tmp_path: Path):
    p = provider(db, clock, vat_rate="0.2", vat_country="GB")
    org = organisation(db, clock, p)
    receipt = wallets.top_up(
        db, org.id, "60.00", idempotency_key=key(), clock=clock, payment_ref="card-4242"
    )
    png, ink = render_first_page(receipts.receipt_pdf(db, receipt.id))
    (tmp_path / "receipt.png").write_bytes(png)
    assert png.startswith(b"\x89PNG")
    # Text, rules and totals are drawn: some ink, but not a page painted black.
    assert 0.005 < ink < 0.5, ink
