"""Money enters a wallet only from a trusted source, on the dashboard too (issue 15 finding 2):
a customer's "bank transfer" is a pending request that books nothing; its provider confirms
it (booked with a receipt) or rejects it (nothing booked)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from web_world import WebWorld, log_in

from telbill.services import top_up_requests, wallets

pytestmark = pytest.mark.xdist_group("web_payments")


def paid(world: WebWorld, who: str) -> Decimal:
    balances = wallets.get_balances(world.db, world.ids[who], clock=world.clock)
    return sum((b.balance for b in balances.unit("USD").buckets if b.kind == "paid"), Decimal(0))


def form_post(client, path: str, csrf: str, **fields: str):
    return client.post(path, data={"csrf_token": csrf, **fields}, follow_redirects=True)


def request_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r"/topup-requests/(\d+)/confirm", html)]


def request_id_of(world: WebWorld, reference: str) -> int:
    (found,) = [
        r.id for r in top_up_requests.list_requests(world.db, None, world.ids["alpha"])
        if r.reference == reference
    ]  # fmt: skip
    return found


def test_a_customers_bank_transfer_is_a_pending_request_that_books_nothing(web_world, client):
    csrf = log_in(client, web_world.keys["alpha"])
    alpha = web_world.ids["alpha"]
    balance_page = client.get(f"/accounts/{alpha}/balance").text
    assert "Record payment" not in balance_page and "Send request" in balance_page
    before = paid(web_world, "alpha")
    # A customer cannot book: the old manual-payment form answers 403 and changes nothing.
    forged = form_post(client, f"/accounts/{alpha}/topups", csrf, amount="250.00",
                       provider="bank_transfer", reference="fake")  # fmt: skip
    assert forged.status_code == 403 and paid(web_world, "alpha") == before
    asked = form_post(client, f"/accounts/{alpha}/topup-requests", csrf, amount="30.00",
                      reference="BT-WEB-1", idem="req-1")  # fmt: skip
    assert asked.status_code == 200 and "Top-up request sent" in asked.text
    assert "BT-WEB-1" in asked.text and "pending" in asked.text
    assert paid(web_world, "alpha") == before
    # The provider's decision page is outside the customer's scope: not found.
    assert client.get(f"/provider/{web_world.ids['acme']}/topup-requests").status_code == 404


def test_the_provider_confirms_a_request_once_and_the_payment_is_booked(web_world, client):
    alpha = web_world.ids["alpha"]
    csrf = log_in(client, web_world.keys["alpha"])
    form_post(client, f"/accounts/{alpha}/topup-requests", csrf, amount="12.50",
              reference="BT-WEB-2", idem="req-2")  # fmt: skip
    before = paid(web_world, "alpha")
    csrf = log_in(client, web_world.keys["acme"])
    page = client.get(f"/provider/{web_world.ids['acme']}/topup-requests")
    assert page.status_code == 200 and "BT-WEB-2" in page.text
    request_id = request_id_of(web_world, "BT-WEB-2")
    assert request_id in request_ids(page.text)
    path = f"/provider/{web_world.ids['acme']}/topup-requests/{request_id}/confirm"
    first = form_post(client, path, csrf)
    again = form_post(client, path, csrf)  # double click: booked once
    assert first.status_code == again.status_code == 200
    assert "Payment confirmed" in first.text
    assert paid(web_world, "alpha") == before + Decimal("12.50")
    receipts = client.get(f"/accounts/{alpha}/balance").text
    assert "bank-transfer:BT-WEB-2" in receipts


def test_the_provider_rejects_a_request_and_nothing_is_booked(web_world, client):
    alpha = web_world.ids["alpha"]
    csrf = log_in(client, web_world.keys["alpha"])
    form_post(client, f"/accounts/{alpha}/topup-requests", csrf, amount="99.00",
              reference="BT-WEB-3", idem="req-3")  # fmt: skip
    before = paid(web_world, "alpha")
    csrf = log_in(client, web_world.keys["acme"])
    acme = web_world.ids["acme"]
    request_id = request_id_of(web_world, "BT-WEB-3")
    assert request_id in request_ids(client.get(f"/provider/{acme}/topup-requests").text)
    rejected = form_post(client, f"/provider/{acme}/topup-requests/{request_id}/reject", csrf,
                         reason="no such transfer on the statement")  # fmt: skip
    assert rejected.status_code == 200 and "nothing was booked" in rejected.text
    confirm = form_post(client, f"/provider/{acme}/topup-requests/{request_id}/confirm", csrf)
    assert confirm.status_code == 409
    assert paid(web_world, "alpha") == before
    log_in(client, web_world.keys["alpha"])
    assert "no such transfer on the statement" in client.get(f"/accounts/{alpha}/balance").text


def test_another_provider_cannot_see_or_decide_the_requests(web_world, client):
    alpha = web_world.ids["alpha"]
    csrf = log_in(client, web_world.keys["alpha"])
    form_post(client, f"/accounts/{alpha}/topup-requests", csrf, amount="5.00",
              reference="BT-WEB-4", idem="req-4")  # fmt: skip
    log_in(client, web_world.keys["acme"])
    request_id = request_id_of(web_world, "BT-WEB-4")
    before = paid(web_world, "alpha")
    csrf = log_in(client, web_world.keys["zeta"])
    zeta = web_world.ids["zeta"]
    assert "BT-WEB-4" not in client.get(f"/provider/{zeta}/topup-requests").text
    for action in ("confirm", "reject"):
        response = form_post(client, f"/provider/{zeta}/topup-requests/{request_id}/{action}",
                             csrf, reason="x")  # fmt: skip
        assert response.status_code == 404, action
    assert paid(web_world, "alpha") == before
