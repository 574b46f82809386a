"""The authorisation matrix: every endpoint, called by a key that may not touch the target,
answers 404 (foreign data: its existence is not revealed) or 403 (in scope, role too weak)
and changes nothing. A new endpoint without a case here fails `test_every_endpoint_has_a_case`.
"""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa

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
# Tariffs belong to a provider: their matrix is the "tariffs per provider" section below.
TARIFF_ROUTES = {
    ("GET", "/v1/tariffs"), ("POST", "/v1/tariffs"), ("GET", "/v1/tariffs/{name}/versions"),
}  # fmt: skip
# Number verification (provider admins): its matrix (the customer 403, another provider 404)
# is in test_rule_number_verification.py.
VERIFICATION_ROUTES = {("POST", "/v1/accounts/{account_id}/numbers/verification")}
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
        | TARIFF_ROUTES
        | VERIFICATION_ROUTES
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


# ------------------------------------------------------------------ tariffs per provider

ACME_RETAIL = "prefix,destination,rate,increment\n44,United Kingdom,0.06,60/60\n1,USA,0.02,60/60\n"
ACME_CARRIER = "prefix,destination,rate,increment\n44,UK via Carrier One,0.004,1/1\n"
ZETA_RETAIL = "prefix,destination,rate,increment\n44,United Kingdom,9.99,60/60\n1,USA,0,60/60\n"


def import_deck(world: Any, who: str, name: str, csv: str, **extra: Any) -> Any:
    return world.client.post(
        "/v1/tariffs", json={"name": name, "csv": csv, **extra}, headers=world.headers(who)
    )


def zeta_user(world: Any) -> str:
    """A user key of a customer of Zeta (the competitor provider)."""
    from telbill.services import accounts
    from telbill.services.auth import Role, create_api_key

    org = accounts.create_account(
        world.db, kind="organisation", name="zorg", parent_id=world.ids["zeta"],
        idempotency_key="zorg", clock=world.clock,
    )  # fmt: skip
    user = accounts.create_account(
        world.db, kind="user", name="zed", parent_id=org.id, idempotency_key="zed",
        clock=world.clock,
    )  # fmt: skip
    key = create_api_key(world.db, account_id=user.id, role=Role.USER, name="z", clock=world.clock)
    assert key.secret is not None
    world.keys["zeta_user"] = key.secret
    world.ids["zeta_user"] = user.id
    return "zeta_user"


def acme_catalogue(world: Any) -> None:
    """Acme's own "retail" (its customers' prices, USD) and "carrier" (its cost deck); Alpha
    uses Acme's plan "standard"."""
    from telbill.services import plans

    assert import_deck(world, "acme", "retail", ACME_RETAIL).status_code == 201
    made = import_deck(world, "acme", "carrier", ACME_CARRIER, purpose="cost")
    assert made.status_code == 201, made.text
    plans.create_plan(
        world.db, "standard", tariff="retail", cost_tariff="carrier", clock=world.clock,
        owner=world.ids["acme"],
    )  # fmt: skip
    plans.assign_plan(world.db, world.ids["alpha"], "standard", clock=world.clock)


def charged_micros(world: Any, cdr_id: str) -> int:
    from telbill.adapters.db.charging_tables import charges

    with world.db.engine.connect() as conn:
        return abs(
            conn.execute(sa.select(charges.c.amount_micros).where(charges.c.cdr_id == cdr_id))
            .scalar_one()
        )  # fmt: skip


def post_uk_call(world: Any, cdr_id: str, seconds: int = 60) -> None:
    record = {"id": cdr_id, "account": "alice", "to": "+447700900123",
              "start": "2026-03-01T09:00:00+00:00", "duration": str(seconds)}  # fmt: skip
    posted = world.client.post(
        "/v1/cdrs", json={"cdrs": [record]}, headers=world.headers("alpha_switch")
    )
    assert posted.status_code == 200 and posted.json()["posted"] == 1, posted.text


def quote(world: Any, who: str, tariff: str) -> Any:
    return world.client.get(
        "/v1/quote", params={"tariff": tariff, "to": "+447700900123", "duration": 60},
        headers=world.headers(who, idempotency_key=None),
    )  # fmt: skip


def tariff_names(world: Any, who: str) -> set[str]:
    listed = world.client.get("/v1/tariffs", headers=world.headers(who, idempotency_key=None))
    assert listed.status_code == 200, listed.text
    return {t["name"] for t in listed.json()["tariffs"]}


def test_another_provider_importing_a_tariff_of_the_same_name_does_not_change_our_prices(world):
    acme_catalogue(world)
    post_uk_call(world, "before")
    imported = import_deck(world, "zeta", "retail", ZETA_RETAIL, currency="EUR")
    assert imported.status_code == 201, imported.text
    assert imported.json()["version"] == 1  # a tariff of its own, not version 2 of Acme's
    post_uk_call(world, "after")
    assert charged_micros(world, "before") == charged_micros(world, "after") == 60_000
    # And Acme's "retail" is still the one Acme sees, at version 1.
    listed = world.client.get("/v1/tariffs/retail/versions", headers=world.headers("acme"))
    assert [v["version"] for v in listed.json()["versions"]] == [1]


def test_keys_of_another_provider_never_read_or_quote_its_tariffs(world):
    acme_catalogue(world)
    import_deck(world, "zeta", "retail", ZETA_RETAIL, currency="EUR")
    users = ("zeta", zeta_user(world))
    before = world.snapshot()
    for who in users:
        own = quote(world, who, "retail")
        assert own.status_code == 200, own.text
        assert (own.json()["cost"], own.json()["currency"]) == ("9.990000", "EUR")  # Zeta's
        hidden = quote(world, who, "carrier")
        assert hidden.status_code == 404, hidden.text
        assert hidden.json()["type"] == "https://telbill.dev/problems/not_found"
        assert "Carrier One" not in hidden.text
        assert tariff_names(world, who) == {"retail"}
        for name in ("carrier", "nothing-like-it"):
            versions = world.client.get(
                f"/v1/tariffs/{name}/versions", headers=world.headers(who, idempotency_key=None)
            )
            assert versions.status_code == 404, (who, name, versions.text)
    assert world.snapshot() == before


def test_only_provider_admins_see_cost_decks(world):
    acme_catalogue(world)
    for who in ("alpha", "alice", "bob"):
        assert quote(world, who, "carrier").status_code == 404, who
        assert tariff_names(world, who) == {"retail"}, who
        assert quote(world, who, "retail").json()["cost"] == "0.060000"
    assert quote(world, "acme", "carrier").status_code == 200
    assert tariff_names(world, "acme") == {"retail", "carrier"}


def test_only_a_provider_admin_imports_and_only_into_its_own_catalogue(world):
    acme_catalogue(world)
    before = world.snapshot()
    for who in ("alpha", "alice", "alpha_switch"):
        refused = import_deck(world, who, "retail", ZETA_RETAIL)
        assert refused.status_code == 403, (who, refused.text)
    assert world.snapshot() == before
    # A provider admin's import never lands in another catalogue: Zeta's "carrier" is its own.
    made = import_deck(world, "zeta", "carrier", ZETA_RETAIL, currency="EUR")
    assert made.status_code == 201 and made.json()["version"] == 1
    assert quote(world, "acme", "carrier").json()["cost"] == "0.004000"


def test_the_operators_retail_tariffs_are_shared_and_a_providers_own_name_wins(world):
    import io

    from telbill.adapters.formats.tariff_csv import read_tariff_csv
    from telbill.domain.tariffs import TariffSettings
    from telbill.services.tariffs import import_tariff

    rows = (item.row for item in read_tariff_csv(io.StringIO(ACME_CARRIER)))
    now = world.clock.now()
    import_tariff(world.db, "wholesale", rows, TariffSettings(currency="USD"), now=now)
    rows = (item.row for item in read_tariff_csv(io.StringIO(ACME_CARRIER)))
    import_tariff(world.db, "opcost", rows, TariffSettings(currency="USD"), now=now, purpose="cost")
    for who in ("zeta", "acme", "alice"):
        assert quote(world, who, "wholesale").status_code == 200, who
        assert quote(world, who, "opcost").status_code == 404, who  # the operator's own cost
    import_deck(world, "zeta", "wholesale", ZETA_RETAIL, currency="EUR")
    assert quote(world, "zeta", "wholesale").json()["currency"] == "EUR"
    assert quote(world, "acme", "wholesale").json()["currency"] == "USD"


def test_a_provider_lists_only_its_own_catalogue_of_plans_and_packages(world):
    users = ("alpha", "alice", zeta_user(world))
    for path, field_ in (("/v1/plans", "plans"), ("/v1/packages", "packages")):
        acme = world.client.get(path, headers=world.headers("acme", idempotency_key=None))
        zeta = world.client.get(path, headers=world.headers("zeta", idempotency_key=None))
        assert acme.status_code == zeta.status_code == 200
        assert acme.json()[field_] and zeta.json()[field_] == [], (path, zeta.text)
        for who in users:
            listed = world.client.get(path, headers=world.headers(who, idempotency_key=None))
            assert listed.status_code == 403, (who, path, listed.text)
    # What a customer of Zeta may buy comes from Zeta's catalogue only, never from Acme's.
    for path in ("plans", "package-offers", "numbers/available"):
        own = world.client.get(
            f"/v1/accounts/{world.ids['zeta_user']}/{path}",
            headers=world.headers("zeta_user", idempotency_key=None),
        )
        assert own.status_code == 200, (path, own.text)
        assert not any(s in own.text for s in ("team", "sms100", "+1617555")), (path, own.text)
        alice = world.client.get(
            f"/v1/accounts/{world.ids['alice']}/{path}",
            headers=world.headers("alice", idempotency_key=None),
        )
        assert alice.status_code == 200 and any(
            s in alice.text for s in ("team", "sms100", "+1617555")
        ), (path, alice.text)


def test_a_provider_cannot_use_another_providers_charging_plan_or_tariff(world):
    from telbill.errors import NotFound
    from telbill.services import plans

    acme_catalogue(world)
    zeta = world.ids["zeta"]
    for attempt in (
        lambda: plans.create_plan(world.db, "z", tariff="retail", clock=world.clock, owner=zeta),
        lambda: plans.assign_plan(world.db, world.ids["alpha"], "standard", clock=world.clock,
                                  provider=zeta),
        lambda: plans.set_cost_tariff(world.db, "standard", None, provider=zeta),
    ):  # fmt: skip
        before = world.snapshot()
        try:
            attempt()
        except NotFound:
            pass
        else:
            raise AssertionError("a provider reached another provider's catalogue")
        assert world.snapshot() == before
    assert [p.name for p in plans.list_plans(world.db, provider=zeta)] == []
    assert [p.name for p in plans.list_plans(world.db, provider=world.ids["acme"])] == [
        "standard"
    ]


def test_a_tariff_import_retried_with_its_key_imports_nothing_more(world):
    body = {"name": "retail", "csv": ACME_RETAIL}
    headers = world.headers("acme", idempotency_key="deck-1")
    first = world.client.post("/v1/tariffs", json=body, headers=headers)
    again = world.client.post("/v1/tariffs", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json() == again.json() and again.json()["version"] == 1
    other = world.client.post(
        "/v1/tariffs", json={**body, "csv": ZETA_RETAIL}, headers=headers
    )  # the same key for another deck
    assert other.status_code == 409, other.text
    versions = world.client.get("/v1/tariffs/retail/versions", headers=world.headers("acme"))
    assert [v["version"] for v in versions.json()["versions"]] == [1]
    # The same key of another provider is another request.
    zeta = world.client.post(
        "/v1/tariffs", json=body, headers=world.headers("zeta", idempotency_key="deck-1")
    )
    assert zeta.status_code == 201 and zeta.json()["version"] == 1
