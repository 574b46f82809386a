"""Money enters a wallet only from a trusted source (issue 15 finding 2), over the API.

* A customer key booking its own "payment" gets a 403 problem and nothing changes.
* A customer's bank transfer is a pending top-up request; its provider confirms it (booked
  as a top-up: receipt with VAT) or rejects it (nothing booked); each decision once.
* A card payment is booked only from the payment provider's callback signed with the
  provider's secret over a fresh timestamp: a bad or stale signature is a 401 and books
  nothing; the same event twice is booked once.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from telbill.adapters.notify.webhooks import sign
from telbill.services.card_payments import REPLAY_WINDOW_S


def paid(world, who: str = "alpha") -> Decimal:
    response = world.client.get(
        f"/v1/accounts/{world.ids[who]}/balances", headers=world.headers("acme")
    )
    usd = next(u for u in response.json()["units"] if u["unit"] == "USD")
    return Decimal(usd["posted"])


def ask(world, who: str = "alpha", amount: str = "30.00", reference: str = "BT-1") -> dict:
    response = world.client.post(
        f"/v1/accounts/{world.ids[who]}/topup-requests",
        json={"amount": amount, "reference": reference},
        headers=world.headers(who),
    )
    assert response.status_code == 201, response.text
    return response.json()


def decide(world, who: str, request_id: int, action: str, **body: str):
    return world.client.post(
        f"/v1/topup-requests/{request_id}/{action}", json=body or None, headers=world.headers(who)
    )


@pytest.mark.parametrize("who", ["alpha", "alice", "alpha_switch"])
def test_a_customer_key_cannot_book_money_into_a_wallet(world, who):
    before = world.snapshot()
    target = "alice" if who == "alice" else "alpha"
    response = world.client.post(
        f"/v1/accounts/{world.ids[target]}/topups",
        json={"amount": "250.00", "payment_ref": "fake"},
        headers=world.headers(who),
    )
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert world.snapshot() == before


def test_a_provider_admin_cannot_book_money_into_its_own_wallet(world):
    before = world.snapshot()
    response = world.client.post(
        f"/v1/accounts/{world.ids['acme']}/topups",
        json={"amount": "250.00"},
        headers=world.headers("acme"),
    )
    assert response.status_code == 403, response.text
    assert "own wallet" in response.json()["detail"]
    assert world.snapshot() == before


def test_a_bank_transfer_request_is_pending_and_books_nothing(world):
    before = paid(world)
    created = ask(world)
    assert created["status"] == "pending" and created["amount"] == "30.000000"
    assert created["currency"] == "USD" and created["receipt_id"] is None
    assert paid(world) == before
    listed = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/topup-requests", headers=world.headers("alpha")
    ).json()["items"]
    assert [r["id"] for r in listed] == [created["id"]]
    pending = world.client.get(
        f"/v1/accounts/{world.ids['acme']}/topup-requests",
        params={"status": "pending"},
        headers=world.headers("acme"),
    ).json()["items"]
    assert [r["id"] for r in pending] == [created["id"]]


def test_the_provider_confirms_a_request_once_with_a_receipt_and_its_vat(world):
    created = ask(world, amount="12.00", reference="BT-12")
    before = paid(world)
    first = decide(world, "acme", created["id"], "confirm")
    again = decide(world, "acme", created["id"], "confirm")
    assert first.status_code == again.status_code == 200, first.text
    assert again.json() == first.json()
    receipt = first.json()["receipt"]
    # 20 % VAT included in 12.00 gross is 2.00.
    assert (receipt["amount"], receipt["vat"], receipt["net"]) == (
        "12.000000", "2.000000", "10.000000",
    )  # fmt: skip
    assert receipt["payment_ref"] == "bank-transfer:BT-12"
    decided = first.json()["request"]
    assert decided["status"] == "confirmed" and decided["receipt_id"] == receipt["id"]
    assert decided["decided_by"] == "acme"
    assert paid(world) == before + Decimal("12.00")
    rejected_late = decide(world, "acme", created["id"], "reject", reason="too late")
    assert rejected_late.status_code == 409
    assert paid(world) == before + Decimal("12.00")


def test_the_provider_rejects_a_request_and_nothing_is_booked(world):
    created = ask(world, amount="99.00", reference="BT-99")
    before = world.snapshot()
    rejected = decide(world, "acme", created["id"], "reject", reason="not on the statement")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "not on the statement"
    assert decide(world, "acme", created["id"], "confirm").status_code == 409
    after = world.snapshot()
    assert after["balances"] == before["balances"]
    assert after["counts"]["receipts"] == before["counts"]["receipts"]


@pytest.mark.parametrize(
    ("who", "status"),
    [("alpha", 403), ("alice", 404), ("alpha_switch", 403), ("bravo", 404), ("bob", 404),
     ("zeta", 404)],
)  # fmt: skip
def test_only_the_provider_decides_a_request(world, who, status):
    created = ask(world)
    before = world.snapshot()
    for action in ("confirm", "reject"):
        response = decide(world, who, created["id"], action, reason="mine")
        assert response.status_code == status, (action, response.text)
    assert world.snapshot() == before


def test_a_request_in_another_currency_or_without_a_reference_is_refused(world):
    before = world.snapshot()
    for body in ({"amount": "5", "reference": "x", "currency": "EUR"},
                 {"amount": "5", "reference": ""}, {"amount": "-5", "reference": "x"},
                 {"amount": "5"}):  # fmt: skip
        response = world.client.post(
            f"/v1/accounts/{world.ids['alpha']}/topup-requests",
            json=body,
            headers=world.headers("alpha"),
        )
        assert response.status_code == 422, (body, response.text)
    after = world.snapshot()
    after["counts"]["idempotency_keys"] = before["counts"]["idempotency_keys"]
    assert after == before


# --------------------------------------------------------------------- card callbacks


def callback_secret(world, provider: str = "acme") -> str:
    response = world.client.post(
        f"/v1/accounts/{world.ids[provider]}/payment-callback-secret",
        headers=world.headers(provider),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


def card_event(world, event_id: str = "evt_1", amount: str = "25.00", **extra) -> bytes:
    event = {"id": event_id, "type": "payment.succeeded", "account_id": world.ids["alpha"],
             "amount": amount, "currency": "USD", **extra}  # fmt: skip
    return json.dumps(event).encode()


def deliver(world, body: bytes, signature: str | None, provider: str = "acme"):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Telbill-Signature"] = signature
    return world.client.post(
        f"/v1/payment-callbacks/{world.ids[provider]}", content=body, headers=headers
    )


def now_s(world) -> int:
    return int(world.clock.now().timestamp())


def test_a_signed_card_callback_is_booked_once_per_event(world):
    secret = callback_secret(world)
    before = paid(world)
    body = card_event(world, "evt_card_1", "25.00")
    first = deliver(world, body, sign(secret, now_s(world), body))
    world.clock.advance(seconds=30)  # the PSP delivers the same event again, newly signed
    again = deliver(world, body, sign(secret, now_s(world), body))
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["status"] == "booked"
    assert again.json()["receipt"] == first.json()["receipt"]
    assert first.json()["receipt"]["payment_ref"] == "card:evt_card_1"
    assert paid(world) == before + Decimal("25.00")


@pytest.mark.parametrize(
    "forge",
    ["no header", "wrong secret", "tampered body", "stale", "future", "malformed",
     "other provider's secret"],
)  # fmt: skip
def test_a_bad_card_callback_signature_is_401_and_books_nothing(world, forge):
    secret = callback_secret(world)
    zeta_secret = callback_secret(world, "zeta")
    body = card_event(world, "evt_forged", "500.00")
    t = now_s(world)
    signature = {
        "no header": None,
        "wrong secret": sign("pcs_guessed", t, body),
        "tampered body": sign(secret, t, card_event(world, "evt_forged", "5.00")),
        "stale": sign(secret, t - REPLAY_WINDOW_S - 1, body),
        "future": sign(secret, t + REPLAY_WINDOW_S + 1, body),
        "malformed": "v1=deadbeef",
        "other provider's secret": sign(zeta_secret, t, body),
    }[forge]
    before = world.snapshot()
    response = deliver(world, body, signature)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert world.snapshot() == before


def test_a_provider_without_a_secret_accepts_no_callback(world):
    body = card_event(world, "evt_nosecret")
    before = world.snapshot()
    response = deliver(world, body, sign("pcs_anything", now_s(world), body))
    assert response.status_code == 401
    assert world.snapshot() == before


def test_a_rotated_secret_stops_the_old_one_at_once(world):
    old = callback_secret(world)
    new = callback_secret(world)
    body = card_event(world, "evt_rotate", "3.00")
    assert deliver(world, body, sign(old, now_s(world), body)).status_code == 401
    assert deliver(world, body, sign(new, now_s(world), body)).status_code == 200


def test_the_same_event_id_with_another_amount_is_a_conflict(world):
    secret = callback_secret(world)
    first = card_event(world, "evt_twice", "10.00")
    assert deliver(world, first, sign(secret, now_s(world), first)).status_code == 200
    before = world.snapshot()
    changed = card_event(world, "evt_twice", "1000.00")
    response = deliver(world, changed, sign(secret, now_s(world), changed))
    assert response.status_code == 409, response.text
    assert world.snapshot() == before


def test_a_callback_cannot_pay_into_another_providers_customer_or_its_own_wallet(world):
    secret = callback_secret(world, "zeta")
    before = world.snapshot()
    for account in ("alpha", "zeta"):
        body = card_event(world, f"evt_{account}", account_id=world.ids[account])
        response = deliver(world, body, sign(secret, now_s(world), body), provider="zeta")
        assert response.status_code in (403, 404), response.text
    after = world.snapshot()
    assert after["balances"] == before["balances"]


def test_other_event_types_are_acknowledged_and_book_nothing(world):
    secret = callback_secret(world)
    body = card_event(world, "evt_refund", type="charge.refunded")
    before = world.snapshot()
    response = deliver(world, body, sign(secret, now_s(world), body))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert world.snapshot()["balances"] == before["balances"]


@pytest.mark.parametrize("who", ["alpha", "alice", "alpha_switch", "zeta"])
def test_only_the_provider_sets_its_callback_secret(world, who):
    before = world.snapshot()
    response = world.client.post(
        f"/v1/accounts/{world.ids['acme']}/payment-callback-secret", headers=world.headers(who)
    )
    assert response.status_code in (403, 404), response.text
    assert world.snapshot() == before


def test_a_replayed_secret_rotation_changes_nothing_and_shows_no_secret(world):
    headers = world.headers("acme", idempotency_key="rotate-1")
    path = f"/v1/accounts/{world.ids['acme']}/payment-callback-secret"
    first = world.client.post(path, headers=headers)
    again = world.client.post(path, headers=headers)
    assert first.status_code == again.status_code == 201
    secret = first.json()["secret"]
    assert secret.startswith(first.json()["key_prefix"])
    assert again.json() == {**first.json(), "secret": None}
    body = card_event(world, "evt_after_replay", "2.00")
    assert deliver(world, body, sign(secret, now_s(world), body)).status_code == 200


def test_the_provider_hears_of_a_request_and_the_customer_of_its_rejection(world):
    from telbill.services.events import list_events

    created = ask(world, amount="7.00", reference="BT-EVT")
    (requested,) = list_events(world.db, types=["topup.requested"])
    assert requested.account_id == world.ids["acme"]
    assert requested.payload["request_id"] == created["id"]
    assert (requested.payload["amount"], requested.payload["reference"]) == ("7.000000", "BT-EVT")
    decide(world, "acme", created["id"], "reject", reason="unknown transfer")
    decide(world, "acme", created["id"], "reject", reason="unknown transfer")  # once
    (rejected,) = list_events(world.db, types=["topup.rejected"])
    assert rejected.account_id == world.ids["alpha"]
    assert rejected.payload["reason"] == "unknown transfer"
