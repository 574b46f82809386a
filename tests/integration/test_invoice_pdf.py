"""Invoice and credit-note PDFs (text a customer reads, one rendered page) and documents
emailed as attachments through the outbox, once."""

from __future__ import annotations

import io
import socket
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from invoice_support import APRIL, World, call, key, sms, world_fixture  # noqa: F401
from pdf_pages import render_first_page

from telbill.adapters.notify.email import SmtpEmailSender, SmtpSettings
from telbill.services import invoice_documents, invoice_payments, notifications, payments
from telbill.services import invoices as invoice_service


def pdf_text(data: bytes) -> str:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def march_invoice(world: World, org: str = "alpha", user: str = "alice") -> int:
    world.post_calls(
        [
            call("c1", "+447700900001", 1200, org=org, user=user),  # 20:00, 12.00
            call("c2", "+16175551234", 61, org=org, user=user),  # 1:01, 0.122
            sms("s1", "+447700900003", 2, org=org, user=user),
        ]
    )
    world.clock.set(APRIL + timedelta(hours=2))
    account = world.alpha if org == "alpha" else world.bravo
    return invoice_service.issue_invoice(world.db, account.id, "2026-03", clock=world.clock).id


def test_prepaid_invoice_pdf_shows_lines_minutes_vat_total_and_that_nothing_is_owed(
    world: World,
):
    invoice_id = march_invoice(world)
    text = pdf_text(invoice_documents.invoice_pdf(world.db, invoice_id, clock=world.clock))
    for expected in [
        "Acme Telecom",
        "Invoice INV-1",
        "Period: 2026-03 (UTC)",
        "Billed to",
        "Alpha Ltd",
        "Calls",
        "United Kingdom (44) outbound 1 20:00 12.00",
        "United States (1) outbound 1 1:01 0.122",
        "SMS outbound 1 2 0.10",
        "Total (VAT included) 12.222 USD",
        "of which VAT 20% (GB) 2.037 USD",
        "Net (subtotal before VAT) 10.185 USD",
        "Paid from prepaid balance 12.222 USD",
        "Amount due 0.00 USD",
        "Payments received (top-ups) 100.00 USD",
    ]:
        assert expected in text, (expected, text)


def test_postpaid_invoice_pdf_shows_amount_due_due_date_and_state(world: World):
    invoice_id = march_invoice(world, org="bravo", user="bob")
    invoice_payments.record_payment(
        world.db, invoice_id, "2.222", method="bank_transfer", idempotency_key=key(),
        clock=world.clock,
    )  # fmt: skip
    text = pdf_text(invoice_documents.invoice_pdf(world.db, invoice_id, clock=world.clock))
    for expected in [
        "Bravo Corp",
        "Billing: postpaid",
        "Amount owed 12.222 USD",
        "Payments received 2.222 USD",
        "Amount due 10.00 USD",
        "Due date 2026-04-15",
        "Status partially paid",
    ]:
        assert expected in text, (expected, text)


def test_credit_note_pdf_names_the_invoice_it_corrects(world: World):
    invoice_id = march_invoice(world)
    note = invoice_payments.issue_credit_note(
        world.db, invoice_id, [("Call c1 dropped", "6.00")], reason="network fault",
        idempotency_key=key(), clock=world.clock,
    )  # fmt: skip
    text = pdf_text(invoice_documents.credit_note_pdf(world.db, note.id))
    for expected in [
        "Credit note CN-1",
        "Corrects invoice: INV-1",
        "Reason: network fault",
        "Call c1 dropped 1 6.00",
        "of which VAT 20% (GB) 1.00 USD",
        "Credited to your balance 6.00 USD",
    ]:
        assert expected in text, (expected, text)


def test_invoice_page_renders_to_png(world: World, tmp_path: Path):
    invoice_id = march_invoice(world)
    png, ink = render_first_page(
        invoice_documents.invoice_pdf(world.db, invoice_id, clock=world.clock)
    )
    (tmp_path / "invoice.png").write_bytes(png)
    assert png.startswith(b"\x89PNG")
    # Text, rules and totals are drawn: some ink, but not a page painted black.
    assert 0.005 < ink < 0.5, ink


def test_invoice_and_receipt_are_emailed_once_with_their_pdf_when_the_account_wants_it(
    world: World,
):
    controller_module = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.handlers import Sink

    received: list[tuple[list[str], bytes]] = []

    class Collect(Sink):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            received.append((envelope.rcpt_tos, envelope.content))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = controller_module.Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = SmtpSettings.from_env(
            {"TELBILL_SMTP_HOST": "127.0.0.1", "TELBILL_SMTP_PORT": str(port)}
        )
        # Bravo wants no documents; Alpha does.
        invoice_documents.set_invoice_settings(
            world.db, world.alpha.id, email_documents=True,
            document_email="accounts@alpha.example", clock=world.clock,
        )  # fmt: skip
        payments.record_top_up(world.db, world.alpha.id, "24.00", idempotency_key=key(),
                               clock=world.clock)  # fmt: skip
        march_invoice(world)
        march_invoice_bravo = invoice_service.issue_invoice(
            world.db, world.bravo.id, "2026-03", clock=world.clock
        )
        assert march_invoice_bravo.total == 0
        email = SmtpEmailSender(
            settings, attachments=invoice_documents.email_attachments(world.db, world.clock)
        )
        sender = notifications.ChannelSender(webhook=object(), email=email)
        first = notifications.deliver_due(world.db, world.clock, sender)
        second = notifications.deliver_due(world.db, world.clock, sender)
    finally:
        controller.stop()
    assert first.delivered == 2, first.errors
    assert second.delivered == 0 and len(received) == 2
    attachments = {}
    for rcpt, content in received:
        assert rcpt == ["accounts@alpha.example"]
        message = message_from_bytes(content, policy=default_policy)
        [part] = list(message.iter_attachments())
        assert part.get_content_type() == "application/pdf"
        attachments[message["Subject"]] = (part.get_filename(), pdf_text(part.get_content()))
    name, text = attachments["Invoice INV-1 for 2026-03: 12.22 USD"]
    assert name == "invoice-INV-1.pdf" and "Invoice INV-1" in text
    name, text = attachments["Receipt for your top-up"]
    assert name.startswith("receipt-") and "Amount paid 24.00 USD" in text
