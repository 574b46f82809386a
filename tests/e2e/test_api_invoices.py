"""The invoice endpoints used as a client would: list, read, PDF, pay, credit."""

from __future__ import annotations

from datetime import UTC, datetime

from telbill.services import accounts, invoices, wallets


def march_invoice(world, account: str) -> int:
    wallets.debit(world.db, world.ids[account], "12.00", service="voice",
                  idempotency_key=f"use-{account}", clock=world.clock)  # fmt: skip
    world.clock.set(datetime(2026, 4, 2, 9, 0, tzinfo=UTC))
    return invoices.issue_invoice(world.db, world.ids[account], "2026-03", clock=world.clock).id


def test_account_reads_its_invoice_as_json_and_pdf_and_the_provider_credits_it(world):
    invoice_id = march_invoice(world, "alpha")
    listed = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/invoices", headers=world.headers("alpha")
    )
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert (item["id"], item["label"], item["total"], item["vat"]) == (
        invoice_id,
        "INV-1",
        "12.000000",
        "2.000000",
    )
    assert (item["status"], item["amount_due"]) == ("paid", "0.000000")
    one = world.client.get(f"/v1/invoices/{invoice_id}", headers=world.headers("alpha")).json()
    assert [(x["section"], x["amount"]) for x in one["lines"]] == [("adjustments", "12.000000")]
    pdf = world.client.get(f"/v1/invoices/{invoice_id}.pdf", headers=world.headers("alpha"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"

    body = {"lines": [{"description": "goodwill", "amount": "2.40"}], "reason": "outage"}
    headers = world.headers("acme", idempotency_key="cn-1")
    first = world.client.post(f"/v1/invoices/{invoice_id}/credit-notes", json=body,
                              headers=headers)  # fmt: skip
    assert first.status_code == 201, first.text
    assert (first.json()["label"], first.json()["total"]) == ("CN-1", "2.400000")
    again = world.client.post(f"/v1/invoices/{invoice_id}/credit-notes", json=body,
                              headers=headers)  # fmt: skip
    assert again.json()["id"] == first.json()["id"]
    number = world.client.post(
        f"/v1/invoices/{invoice_id}/credit-notes",
        json={"lines": [{"description": "x", "amount": 1}], "reason": "r"},
        headers=world.headers("acme"),
    )
    assert number.status_code == 422
    assert number.headers["content-type"].startswith("application/problem+json")


def test_provider_records_payments_of_a_postpaid_invoice_until_it_is_paid(world):
    charlie = accounts.create_account(
        world.db, kind="organisation", name="Charlie", parent_id=world.ids["acme"],
        billing_mode="postpaid", credit_limit="100", idempotency_key="charlie",
        clock=world.clock,
    )  # fmt: skip
    world.ids["charlie"] = charlie.id
    invoice_id = march_invoice(world, "charlie")
    url = f"/v1/invoices/{invoice_id}/payments"
    too_much = world.client.post(url, json={"amount": "12.01", "method": "bank_transfer"},
                                 headers=world.headers("acme"))  # fmt: skip
    assert too_much.status_code == 422, too_much.text
    assert "exceeds the amount due" in too_much.json()["detail"]
    bad_method = world.client.post(url, json={"amount": "1", "method": "cash"},
                                   headers=world.headers("acme"))  # fmt: skip
    assert bad_method.status_code == 422
    payment = {"amount": "5.00", "method": "bank_transfer", "reference": "SEPA-1"}
    part = world.client.post(url, json=payment, headers=world.headers("acme"))
    assert part.status_code == 201, part.text
    state = world.client.get(f"/v1/invoices/{invoice_id}", headers=world.headers("acme")).json()
    assert (state["status"], state["amount_due"], state["paid"]) == (
        "partially_paid",
        "7.000000",
        "5.000000",
    )
    rest = world.client.post(url, json={"amount": "7.00", "method": "direct_debit"},
                             headers=world.headers("acme"))  # fmt: skip
    assert rest.status_code == 201
    paid = world.client.get(f"/v1/accounts/{charlie.id}/invoices?status=paid",
                               headers=world.headers("acme")).json()  # fmt: skip
    assert [i["id"] for i in paid["items"]] == [invoice_id]
