"""The authorisation matrix: every endpoint, called by a key that may not touch the target,
answers 404 (foreign data: its existence is not revealed) or 403 (in scope, role too weak)
and changes nothing. A new endpoint without a case here fails `test_every_endpoint_has_a_case`.
"""

from __future__ import annotations

import itertools
from typing import Any

from telbill.api.app import API_PREFIX

ACCOUNT = "{account_id}"

# (method, path template) -> JSON body of a request that would succeed for an allowed caller.
CASES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/v1/accounts/{account_id}/children"): {"kind": "user", "name": "mallory"},
    ("GET", "/v1/accounts/{account_id}"): None,
    ("GET", "/v1/accounts/{account_id}/subtree"): None,
    ("POST", "/v1/accounts/{account_id}/topups"): {"amount": "5.00"},
    ("POST", "/v1/accounts/{account_id}/adjustments"): {"amount": "-5.00", "reason": "test"},
    ("POST", "/v1/accounts/{account_id}/refunds"): {"amount": "5.00", "reason": "test"},
    ("POST", "/v1/accounts/{account_id}/credit-grants"): {"kind": "free", "amount": "5.00"},
    ("GET", "/v1/accounts/{account_id}/balances"): None,
    ("GET", "/v1/accounts/{account_id}/history"): None,
    ("POST", "/v1/accounts/{account_id}/api-keys"): {"name": "stolen", "role": "org_admin"},
    ("GET", "/v1/accounts/{account_id}/api-keys"): None,
    ("GET", "/v1/reconcile"): None,
    ("GET", "/v1/accounts/{account_id}/numbers/available"): None,
    ("GET", "/v1/accounts/{account_id}/numbers"): None,
    ("POST", "/v1/accounts/{account_id}/numbers"): {"number": "+16175550100"},
    ("POST", "/v1/accounts/{account_id}/numbers/release"): {"number": "+16175550100"},
    ("POST", "/v1/accounts/{account_id}/subscription"): {"plan": "team"},
    ("POST", "/v1/accounts/{account_id}/subscription/change"): {"seats": 2},
    ("POST", "/v1/accounts/{account_id}/packages"): {"package": "sms100"},
    ("GET", "/v1/accounts/{account_id}/packages"): None,
    ("GET", "/v1/accounts/{account_id}/plans"): None,
    ("GET", "/v1/accounts/{account_id}/package-offers"): None,
    ("GET", "/v1/plans"): None,
    ("POST", "/v1/plans"): {"code": "gold", "monthly_fee": "20.00"},
    ("GET", "/v1/packages"): None,
    ("POST", "/v1/packages"): {"code": "min60", "unit": "s:call", "amount": "3600", "price": "3"},
    ("POST", "/v1/inventory/numbers"): {
        "csv": "number,country,type,monthly_price\n+16175550199,US,local,1.00\n"
    },
    ("GET", "/v1/accounts/{account_id}/thresholds"): None,
    ("PUT", "/v1/accounts/{account_id}/thresholds"): {"fixed_levels": ["1.00", "0"]},
    ("GET", "/v1/accounts/{account_id}/notifications"): None,
    ("POST", "/v1/accounts/{account_id}/notifications/read"): {"event_ids": None},
    ("POST", "/v1/accounts/{account_id}/webhooks"): {"url": "https://example.com/hooks"},
    ("GET", "/v1/accounts/{account_id}/webhooks"): None,
    ("GET", "/v1/accounts/{account_id}/reports/calls"): None,
    ("GET", "/v1/accounts/{account_id}/reports/calls.csv"): None,
    ("GET", "/v1/accounts/{account_id}/counters"): None,
    ("GET", "/v1/accounts/{account_id}/counters/campaigns"): None,
    ("GET", "/v1/accounts/{account_id}/counters/campaigns.csv"): None,
    ("GET", "/v1/accounts/{account_id}/invoices"): None,
    ("GET", "/v1/accounts/{account_id}/reports/margin"): None,
    ("GET", "/v1/accounts/{account_id}/reports/margin.csv"): None,
    ("POST", "/v1/accounts/{account_id}/topup-requests"): {"amount": "5.00", "reference": "TR-1"},
    ("GET", "/v1/accounts/{account_id}/topup-requests"): None,
}
# Reads of the provider's own business (carrier cost, margin): provider admins only.
PROVIDER_READS = {
    ("GET", "/v1/accounts/{account_id}/reports/margin"),
    ("GET", "/v1/accounts/{account_id}/reports/margin.csv"),
}
# Whoever may read notifications may mark them read (a user key on its own account too).
READER_WRITES = {("POST", "/v1/accounts/{account_id}/notifications/read")}
# Receipts and webhooks named by their own id: their matrix is in test_api_notifications.py.
RECEIPT_ROUTES = {
    ("GET", "/v1/receipts/{receipt_id}.pdf"),
    ("DELETE", "/v1/accounts/{account_id}/webhooks/{webhook_id}"),
}
# Invoices named by their own id: their matrix is `test_invoice_routes_*` below.
INVOICE_CASES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/v1/invoices/{invoice_id}"): None,
    ("GET", "/v1/invoices/{invoice_id}.pdf"): None,
    ("POST", "/v1/invoices/{invoice_id}/payments"): {"amount": "1.00", "method": "bank_transfer"},
    ("POST", "/v1/invoices/{invoice_id}/credit-notes"): {
        "lines": [{"description": "goodwill", "amount": "1.00"}],
        "reason": "test",
    },
}
# Charging endpoints name their account in the body, or a session / campaign / charge id:
# their role matrix is in test_api_charging.py.
CHARGING_ROUTES = {
    ("POST", "/v1/cdrs"), ("GET", "/v1/cdrs/quarantine"), ("POST", "/v1/sessions/authorize"),
    ("POST", "/v1/cdrs/quarantine/{quarantine_id}/repost"),
    ("POST", "/v1/sessions/{session_id}/update"), ("POST", "/v1/sessions/{session_id}/end"),
    ("POST", "/v1/campaigns"), ("POST", "/v1/campaigns/{campaign_id}/{action}"),
    ("GET", "/v1/charges/{charge_id}/explain"),
    # A campaign's counters: its matrix is in test_api_reports.py.
    ("GET", "/v1/campaigns/{campaign_id}/counters"),
}  # fmt: skip
# Top-up requests named by their own id, a provider's callback secret and the signed card
# callback (no API key): their matrix is in test_role_matrix.py and test_api_payments.py.
PAYMENT_ROUTES = {
    ("POST", "/v1/topup-requests/{request_id}/confirm"),
    ("POST", "/v1/topup-requests/{request_id}/reject"),
    ("POST", "/v1/accounts/{account_id}/payment-callback-secret"),
    ("POST", "/v1/payment-callbacks/{provider_id}"),
}
# Endpoints that read no account data (prices, SMS segmentation): any valid key, never anonymous.
ANY_KEY_CASES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/v1/quote"): None,
    ("POST", "/v1/quote"): {"tariff": "retail", "to": "+441632960123", "duration": 60},
    ("POST", "/v1/sms/segments"): {"text": "hello"},
}
ACCOUNT_CASES = [case for case in CASES if ACCOUNT in case[1]]
GLOBAL_CASES = [case for case in CASES if ACCOUNT not in case[1]]


def api_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the app serves under /v1, from its OpenAPI document."""
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(API_PREFIX)
        for method in operations
    }


def call(world: Any, case: tuple[str, str], who: str | None, target: str) -> Any:
    method, template = case
    path = template.replace(ACCOUNT, str(world.ids[target]))
    headers = world.headers(who) if who else {"Idempotency-Key": "anonymous"}
    return world.client.request(method, path, json=CASES[case], headers=headers)


def test_every_endpoint_has_a_case(world):
    assert api_routes(world.client.app) == (
        set(CASES)
        | set(ANY_KEY_CASES)
        | CHARGING_ROUTES
        | RECEIPT_ROUTES
        | set(INVOICE_CASES)
        | PAYMENT_ROUTES
    )


def test_key_of_another_organisation_gets_404_and_changes_nothing(world):
    before = world.snapshot()
    for attacker, case, target in itertools.product(
        ("bravo", "bob", "zeta"), ACCOUNT_CASES, ("alpha", "alice")
    ):
        if True:
            response = call(world, case, attacker, target)
            assert response.status_code == 404, (attacker, case, target, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            # The answer is the same as for an account that does not exist.
            assert response.json()["type"] == "https://telbill.dev/problems/not_found"
            assert "Alpha" not in response.text and "alice" not in response.text
    assert world.snapshot() == before


def test_unknown_account_looks_exactly_like_a_foreign_one(world):
    case = ("GET", "/v1/accounts/{account_id}")
    foreign = call(world, case, "bravo", "alpha").json()
    world.ids["ghost"] = 999_999
    missing = call(world, case, "bravo", "ghost").json()
    assert {k: v for k, v in foreign.items() if k not in ("detail", "instance")} == {
        k: v for k, v in missing.items() if k not in ("detail", "instance")
    }


def test_organisation_keys_cannot_reconcile_the_whole_database(world):
    for attacker, case in itertools.product(("bravo", "bob"), GLOBAL_CASES):
        response = call(world, case, attacker, "alpha")
        assert response.status_code == 403, (attacker, case, response.text)


def test_switch_key_reaches_no_account_endpoint(world):
    before = world.snapshot()
    for case in CASES:
        response = call(world, case, "alpha_switch", "alpha")
        assert response.status_code == 403, (case, response.text)
    assert world.snapshot() == before


def test_user_key_is_read_only_on_its_own_account(world):
    before = world.snapshot()
    for case in ACCOUNT_CASES:
        response = call(world, case, "alice", "alice")
        writes = case[0] in ("POST", "PUT") and case not in READER_WRITES
        if writes or case[1].endswith(("/api-keys", "/webhooks")) or case in PROVIDER_READS:
            assert response.status_code == 403, (case, response.text)
        else:
            assert response.status_code == 200, (case, response.text)
    after = world.snapshot()
    # Marking notifications read (a reader's write) remembers its Idempotency-Key, no more.
    after["counts"]["idempotency_keys"] = before["counts"]["idempotency_keys"]
    assert after == before


def test_user_key_cannot_see_its_organisation(world):
    response = call(world, ("GET", "/v1/accounts/{account_id}"), "alice", "alpha")
    assert response.status_code == 404


def test_organisation_admin_cannot_move_money_only_ask_for_a_top_up(world):
    before = world.snapshot()
    for case in [
        ("POST", "/v1/accounts/{account_id}/topups"),
        ("POST", "/v1/accounts/{account_id}/adjustments"),
        ("POST", "/v1/accounts/{account_id}/refunds"),
        ("POST", "/v1/accounts/{account_id}/credit-grants"),
    ]:
        response = call(world, case, "alpha", "alpha")
        assert response.status_code == 403, (case, response.text)
    assert world.snapshot() == before


def test_request_without_a_valid_key_is_401(world):
    before = world.snapshot()
    tokens = [None, "tb_not-a-real-key-at-all-000000", "garbage"]
    for token, case in itertools.product(tokens, CASES):
        method, template = case
        path = template.replace(ACCOUNT, str(world.ids["alpha"]))
        headers = {"Idempotency-Key": "k"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = world.client.request(method, path, json=CASES[case], headers=headers)
        assert response.status_code == 401, (case, response.text)
        assert response.json()["type"] == "https://telbill.dev/problems/unauthenticated"
    assert world.snapshot() == before


def test_endpoints_without_account_data_still_need_a_valid_key(world):
    for token, case in itertools.product([None, "tb_not-a-real-key-at-all-000000"], ANY_KEY_CASES):
        method, path = case
        headers = {"Idempotency-Key": "k"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = world.client.request(method, path, json=ANY_KEY_CASES[case], headers=headers)
        assert response.status_code == 401, (case, response.text)


def test_provider_admin_reaches_every_endpoint_of_its_subtree(world):
    for case in CASES:
        response = call(world, case, "acme", "alpha")
        assert response.status_code in (200, 201), (case, response.text)


def test_organisation_admin_cannot_read_the_carrier_cost_of_its_own_usage(world):
    for case in sorted(PROVIDER_READS):
        response = call(world, case, "alpha", "alpha")
        assert response.status_code == 403, (case, response.text)


def test_organisation_admin_cannot_hand_out_a_provider_admin_key(world):
    response = world.client.post(
        f"/v1/accounts/{world.ids['alpha']}/api-keys",
        json={"name": "escalate", "role": "provider_admin"},
        headers=world.headers("alpha"),
    )
    assert response.status_code == 403


def february_invoice_of_alpha(world: Any) -> int:
    """Alpha's invoice of February 2026 (the world starts on 1 March): issued once."""
    from telbill.services import invoices

    return invoices.issue_invoice(world.db, world.ids["alpha"], "2026-02", clock=world.clock).id


def call_invoice(world: Any, case: tuple[str, str], who: str | None, invoice_id: int) -> Any:
    method, template = case
    path = template.replace("{invoice_id}", str(invoice_id))
    headers = world.headers(who) if who else {"Idempotency-Key": "anonymous"}
    return world.client.request(method, path, json=INVOICE_CASES[case], headers=headers)


def test_invoice_routes_of_another_tenant_answer_404_like_a_missing_invoice(world):
    invoice_id = february_invoice_of_alpha(world)
    before = world.snapshot()
    for attacker, case in itertools.product(("bravo", "bob", "zeta"), INVOICE_CASES):
        response = call_invoice(world, case, attacker, invoice_id)
        assert response.status_code == 404, (attacker, case, response.text)
        assert response.json()["type"] == "https://telbill.dev/problems/not_found"
        missing = call_invoice(world, case, attacker, 999_999)
        assert missing.status_code == 404 and "Alpha" not in response.text
    assert world.snapshot() == before


def test_invoice_routes_let_the_account_read_and_only_provider_admins_move_money(world):
    invoice_id = february_invoice_of_alpha(world)
    before = world.snapshot()
    for who, case in itertools.product(("alpha", "alice", "alpha_switch"), INVOICE_CASES):
        response = call_invoice(world, case, who, invoice_id)
        if case[0] == "GET" and who == "alpha":
            assert response.status_code == 200, (who, case, response.text)
        else:
            assert response.status_code in (403, 404), (who, case, response.text)
            if who == "alpha":
                assert response.status_code == 403, (who, case, response.text)
    for case in INVOICE_CASES:
        assert call_invoice(world, case, None, invoice_id).status_code == 401
    assert world.snapshot() == before
    for case in INVOICE_CASES:  # the provider admin gets past authorisation
        response = call_invoice(world, case, "acme", invoice_id)
        assert response.status_code not in (401, 403, 404), (case, response.text)


# ------------------------------------------------------------------ quarantine per tenant


def quarantine_ids(world: Any, who: str) -> list[int]:
    listed = world.client.get(
        "/v1/cdrs/quarantine", headers=world.headers(who, idempotency_key=None)
    )
    assert listed.status_code == 200, listed.text
    return [item["id"] for item in listed.json()["items"]]


def post_bad_cdr(world: Any, who: str, cdr_id: str) -> None:
    """A CDR naming an account nobody has: quarantined, owned by the poster's tenant."""
    record = {"id": cdr_id, "account": "nobody", "to": "+447700900123",
              "start": "2026-03-01T09:00:00+00:00", "duration": "60"}  # fmt: skip
    posted = world.client.post("/v1/cdrs", json={"cdrs": [record]}, headers=world.headers(who))
    assert posted.status_code == 200 and posted.json()["quarantined"] == 1, posted.text


def test_a_provider_never_sees_or_reposts_another_providers_quarantined_rows(world):
    post_bad_cdr(world, "alpha_switch", "acme-1")
    post_bad_cdr(world, "zeta", "zeta-1")
    acme_rows, zeta_rows = quarantine_ids(world, "acme"), quarantine_ids(world, "zeta")
    assert len(acme_rows) == 1 and len(zeta_rows) == 1 and acme_rows != zeta_rows
    assert quarantine_ids(world, "alpha") == acme_rows  # the organisation that posted it
    assert quarantine_ids(world, "bravo") == []  # a sibling organisation
    before = world.snapshot()
    for attacker, row in (("zeta", acme_rows[0]), ("acme", zeta_rows[0])):
        repost = world.client.post(
            f"/v1/cdrs/quarantine/{row}/repost", json={"fixes": {"account": "alpha"}},
            headers=world.headers(attacker),
        )  # fmt: skip
        assert repost.status_code == 404, repost.text
    assert world.snapshot() == before


def test_quarantine_is_read_by_readers_and_reposted_by_posters_of_the_tenant(world):
    post_bad_cdr(world, "alpha_switch", "acme-2")
    (row,) = quarantine_ids(world, "alpha")
    switch_reads = world.client.get(
        "/v1/cdrs/quarantine", headers=world.headers("alpha_switch", idempotency_key=None)
    )
    assert switch_reads.status_code == 403
    org_admin_reposts = world.client.post(
        f"/v1/cdrs/quarantine/{row}/repost", json={}, headers=world.headers("alpha")
    )
    assert org_admin_reposts.status_code == 403
