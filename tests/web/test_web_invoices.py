"""Invoices on the receipts page: listed with a PDF link for the account that pays, never
shown to another organisation. Runs where the invoices area is installed."""

from __future__ import annotations

import re

import pytest
from web_world import log_in

invoices_service = pytest.importorskip("telbill.services.invoices")
pytestmark = pytest.mark.xdist_group("web_invoices")


def test_an_issued_invoice_is_listed_with_its_pdf_and_hidden_from_others(web_world, client):
    alpha, bravo = web_world.ids["alpha"], web_world.ids["bravo"]
    invoice = invoices_service.issue_invoice(web_world.db, alpha, "2026-02", clock=web_world.clock)
    log_in(client, web_world.keys["alpha"])
    html = client.get(f"/accounts/{alpha}/receipts").text
    assert invoice.label in html
    link = re.search(rf'href="(/accounts/{alpha}/invoices/{invoice.id}\.pdf)"', html).group(1)
    pdf = client.get(link)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    log_in(client, web_world.keys["bravo"])
    assert client.get(link).status_code == 404
    assert client.get(f"/accounts/{bravo}/invoices/{invoice.id}.pdf").status_code == 404
    assert invoice.label not in client.get(f"/accounts/{bravo}/receipts").text
