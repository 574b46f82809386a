"""The REST API used as a customer would: accounts, money in and out, balances, history,
idempotent retries, reconcile."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import sqlalchemy as sa


def url(world, who: str, suffix: str = "") -> str:
    return f"/v1/accounts/{world.ids[who]}{suffix}"


def usd(balances: dict) -> dict:
    return next(u for u in balances["units"] if u["unit"] == "USD")


def test_top_up_returns_a_receipt_with_the_vat_it_contains(world):
    response = world.client.post(
        url(world, "alpha", "/topups"),
        json={"amount": "12.00", "payment_ref": "card-4242"},
        headers=world.headers("acme"),
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    # 20% VAT included in 12.00 gross is 2.00.
    assert (receipt["amount"], receipt["vat"], receipt["net"]) == (
        "12.000000",
        "2.000000",
        "10.000000",
    )
    assert receipt["new_balance"] == "112.000000"
    assert receipt["payment_ref"] == "card-4242"


def test_amounts_in_responses_are_decimal_strings_never_numbers(world):
    balances = world.client.get(url(world, "alpha", "/balances"), headers=world.headers("alpha"))
    unit = usd(balances.json())
    for field in ("posted", "held", "available", "spendable"):
        assert isinstance(unit[field], str)
        Decimal(unit[field])
    assert unit["available"] == "100.000000"


def test_replayed_top_up_returns_the_first_receipt_and_charges_once(world):
    headers = world.headers("acme", idempotency_key="payment-0001")
    first = world.client.post(
        url(world, "alpha", "/topups"), json={"amount": "7.5"}, headers=headers
    )
    again = world.client.post(
        url(world, "alpha", "/topups"), json={"amount": "7.5"}, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    balances = world.client.get(url(world, "alpha", "/balances"), headers=world.headers("alpha"))
    assert usd(balances.json())["posted"] == "107.500000"


def test_same_idempotency_key_with_a_different_amount_is_a_conflict(world):
    headers = world.headers("acme", idempotency_key="payment-0002")
    world.client.post(url(world, "alpha", "/topups"), json={"amount": "1"}, headers=headers)
    response = world.client.post(
        url(world, "alpha", "/topups"), json={"amount": "2"}, headers=headers
    )
    assert response.status_code == 409
    assert response.json()["type"] == "https://telbill.dev/problems/idempotency_key_reused"


def test_idempotency_keys_of_two_customers_never_collide(world):
    alpha = world.client.post(
        url(world, "alpha", "/topup-requests"),
        json={"amount": "1", "reference": "A-1"},
        headers=world.headers("alpha", idempotency_key="same"),
    )
    bravo = world.client.post(
        url(world, "bravo", "/topup-requests"),
        json={"amount": "2", "reference": "B-1"},
        headers=world.headers("bravo", idempotency_key="same"),
    )
    assert alpha.status_code == bravo.status_code == 201
    assert alpha.json()["id"] != bravo.json()["id"]


def test_organisation_admin_creates_a_user_and_its_key_which_then_reads_its_balance(world):
    created = world.client.post(
        url(world, "alpha", "/children"),
        json={"kind": "user", "name": "carol"},
        headers=world.headers("alpha"),
    )
    assert created.status_code == 201, created.text
    carol = created.json()
    assert (carol["parent_id"], carol["currency"], carol["has_wallet"]) == (
        world.ids["alpha"],
        "USD",
        False,
    )
    key = world.client.post(
        f"/v1/accounts/{carol['id']}/api-keys",
        json={"name": "carol's phone", "role": "user"},
        headers=world.headers("alpha"),
    )
    assert key.status_code == 201, key.text
    secret = key.json()["secret"]
    assert secret.startswith("tb_")
    balances = world.client.get(
        f"/v1/accounts/{carol['id']}/balances", headers={"Authorization": f"Bearer {secret}"}
    )
    assert balances.status_code == 200
    # A user without a wallet is charged to its organisation: it sees that wallet.
    assert balances.json()["billing_account_id"] == world.ids["alpha"]


def test_replayed_key_creation_returns_the_same_key_without_its_secret(world):
    headers = world.headers("alpha", idempotency_key="key-1")
    body = {"name": "pbx", "role": "user"}
    first = world.client.post(url(world, "alice", "/api-keys"), json=body, headers=headers)
    again = world.client.post(url(world, "alice", "/api-keys"), json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["secret"] and again.json()["secret"] is None
    listed = world.client.get(url(world, "alice", "/api-keys"), headers=world.headers("alpha"))
    assert [k["id"] for k in listed.json()["items"]].count(first.json()["id"]) == 1
    assert "secret" not in listed.text and "key_hash" not in listed.text


def test_organisation_admin_may_not_choose_credit_terms(world):
    response = world.client.post(
        url(world, "alpha", "/children"),
        json={"kind": "user", "name": "dave", "billing_mode": "postpaid", "credit_limit": "1000"},
        headers=world.headers("alpha"),
    )
    assert response.status_code == 403


def test_provider_adjusts_refunds_and_grants_credit(world):
    headers = world.headers
    adjust = world.client.post(
        url(world, "alpha", "/adjustments"),
        json={"amount": "-10.25", "reason": "duplicate top-up"},
        headers=headers("acme"),
    )
    assert adjust.status_code == 201, adjust.text
    assert adjust.json()["changes"] == {"USD": "-10.250000"}
    refund = world.client.post(
        url(world, "alpha", "/refunds"),
        json={"amount": "9.75", "reason": "customer left"},
        headers=headers("acme"),
    )
    assert refund.status_code == 201, refund.text
    grant = world.client.post(
        url(world, "alpha", "/credit-grants"),
        json={"kind": "package", "amount": "600", "unit": "s:call", "label": "10 free minutes"},
        headers=headers("acme"),
    )
    assert grant.status_code == 201, grant.text
    balances = world.client.get(url(world, "alice", "/balances"), headers=headers("alice")).json()
    assert usd(balances)["posted"] == "80.000000"
    call_time = next(u for u in balances["units"] if u["unit"] == "s:call")
    assert call_time["available"] == "600"


def test_history_pages_newest_first_with_a_cursor(world):
    for n in range(5):
        world.client.post(
            url(world, "alpha", "/topups"),
            json={"amount": str(n + 1)},
            headers=world.headers("acme"),
        )
    seen = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = world.client.get(
            url(world, "alpha", "/history"), params=params, headers=world.headers("alpha")
        ).json()
        seen += [tx["id"] for tx in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6  # the fixture's top-up and five more
    assert seen == sorted(seen, reverse=True)


def test_subtree_lists_the_organisation_and_its_users_only(world):
    response = world.client.get(url(world, "alpha", "/subtree"), headers=world.headers("alpha"))
    names = [a["name"] for a in response.json()["items"]]
    assert names == ["alpha", "alice"]


def test_reconcile_reports_a_consistent_ledger(world):
    response = world.client.get("/v1/reconcile", headers=world.headers("acme"))
    assert response.status_code == 200
    report = response.json()
    assert report["problems"] == []
    assert report["transactions"] >= 2


def test_openapi_document_lists_the_v1_endpoints(world):
    spec = world.client.get("/openapi.json").json()
    assert "/v1/accounts/{account_id}/topups" in spec["paths"]
    amount = spec["components"]["schemas"]["TopUpIn"]["properties"]["amount"]
    assert amount["type"] == "string"


def test_api_keys_are_stored_only_as_sha256_hashes(world):
    secret = world.keys["alpha"]
    with world.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT key_prefix, key_hash FROM api_keys")).all()
    assert all(secret not in row.key_prefix + row.key_hash for row in rows)
    assert hashlib.sha256(secret.encode()).hexdigest() in {row.key_hash for row in rows}
    assert secret[:12] in {row.key_prefix for row in rows}
