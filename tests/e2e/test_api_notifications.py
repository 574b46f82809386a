"""The notifications API as a customer uses it: thresholds, in-app notifications, webhooks,
receipt PDFs (and who may fetch which receipt)."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from telbill.adapters.db.tables import receipts
from telbill.services.events import emit


def receipt_id_of(world, who: str) -> int:
    with world.db.engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.max(receipts.c.id)).where(receipts.c.account_id == world.ids[who])
        ).scalar_one()


def test_thresholds_default_then_replaced_by_an_organisation_admin(world):
    url = f"/v1/accounts/{world.ids['alpha']}/thresholds"
    # A user sees the thresholds of the wallet that pays for it.
    got = world.client.get(
        f"/v1/accounts/{world.ids['alice']}/thresholds", headers=world.headers("alice")
    )
    assert got.status_code == 200
    assert got.json() == {
        "account_id": world.ids["alpha"],
        "fixed_levels": ["0.500000", "0.000000"],
        "fixed_modes": ["below", "at_or_below"],
        "spend_days": 2,
        "spend_window_days": 10,
        "is_default": True,
    }
    body = {"fixed_levels": ["5", "1.5"], "spend_days": 3, "spend_window_days": 7}
    put = world.client.put(url, json=body, headers=world.headers("alpha"))
    assert put.status_code == 200, put.text
    assert put.json()["fixed_levels"] == ["5.000000", "1.500000"]
    again = world.client.get(url, headers=world.headers("alpha")).json()
    assert (again["spend_days"], again["is_default"]) == (3, False)


def test_threshold_amounts_as_floats_are_refused(world):
    url = f"/v1/accounts/{world.ids['alpha']}/thresholds"
    put = world.client.put(url, json={"fixed_levels": [0.5]}, headers=world.headers("alpha"))
    assert put.status_code in (400, 422)
    assert world.client.get(url, headers=world.headers("alpha")).json()["is_default"] is True


def test_notifications_are_listed_and_marked_read(world):
    alpha = world.ids["alpha"]
    with world.db.transaction() as conn:
        for n in range(3):
            emit(conn, "number.released", account_id=alpha, payload={"n": n},
                 dedupe_key=f"api-{n}", now=world.clock.now())  # fmt: skip
    url = f"/v1/accounts/{alpha}/notifications"
    items = world.client.get(url, headers=world.headers("alpha")).json()["items"]
    assert [i["payload"]["n"] for i in items] == [0, 1, 2]
    assert not any(i["read"] for i in items)
    marked = world.client.post(
        f"{url}/read", json={"event_ids": [items[0]["event_id"]]}, headers=world.headers("alpha")
    )
    assert marked.json() == {"marked": 1}
    unread = world.client.get(url, params={"unread": True}, headers=world.headers("alpha"))
    assert [i["payload"]["n"] for i in unread.json()["items"]] == [1, 2]
    foreign = world.client.post(
        f"{url}/read", json={"event_ids": [items[1]["event_id"]]}, headers=world.headers("bravo")
    )
    assert foreign.status_code == 404


def test_webhook_secret_is_shown_once_and_creation_is_idempotent(world):
    url = f"/v1/accounts/{world.ids['alpha']}/webhooks"
    headers = world.headers("alpha", idempotency_key="hook-1")
    body = {"url": "https://alpha.example/hooks", "event_types": ["balance.low"]}
    created = world.client.post(url, json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    replay = world.client.post(url, json=body, headers=headers)
    assert replay.json()["id"] == created.json()["id"]
    listed = world.client.get(url, headers=world.headers("alpha")).json()["items"]
    assert [h["url"] for h in listed] == ["https://alpha.example/hooks"]
    assert "secret" not in listed[0]
    bad = world.client.post(
        url, json={"url": "https://x.example/h", "event_types": ["nope"]},
        headers=world.headers("alpha"),
    )  # fmt: skip
    assert bad.status_code == 422


def test_receipt_pdf_is_served_to_its_account_and_its_provider(world):
    pypdf = pytest.importorskip("pypdf")
    receipt_id = receipt_id_of(world, "alpha")
    for who in ("alpha", "acme"):
        response = world.client.get(f"/v1/receipts/{receipt_id}.pdf", headers=world.headers(who))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        text = pypdf.PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
        assert "alpha" in text and "acme" in text and "100.00 USD" in text


def test_receipt_of_another_organisation_looks_like_a_missing_one(world):
    receipt_id = receipt_id_of(world, "alpha")
    for who in ("bravo", "bob", "zeta", "alice"):
        response = world.client.get(f"/v1/receipts/{receipt_id}.pdf", headers=world.headers(who))
        assert response.status_code == 404, who
        assert str(world.ids["alpha"]) not in response.json()["detail"]
    missing = world.client.get("/v1/receipts/999999.pdf", headers=world.headers("bravo"))
    assert missing.status_code == 404
    switch = world.client.get(
        f"/v1/receipts/{receipt_id}.pdf", headers=world.headers("alpha_switch")
    )
    assert switch.status_code == 403
    anonymous = world.client.get(f"/v1/receipts/{receipt_id}.pdf")
    assert anonymous.status_code == 401


def test_webhook_is_stopped_only_by_those_who_manage_its_account(world):
    alpha = world.ids["alpha"]
    created = world.client.post(
        f"/v1/accounts/{alpha}/webhooks",
        json={"url": "https://alpha.example/hooks"},
        headers=world.headers("alpha"),
    ).json()
    path = f"/v1/accounts/{alpha}/webhooks/{created['id']}"
    for who, expected in [("bravo", 404), ("zeta", 404), ("alpha_switch", 403)]:
        assert world.client.delete(path, headers=world.headers(who)).status_code == expected, who
    # Someone else's webhook id under one's own account is not found either.
    bravo_path = f"/v1/accounts/{world.ids['bravo']}/webhooks/{created['id']}"
    assert world.client.delete(bravo_path, headers=world.headers("bravo")).status_code == 404
    stopped = world.client.delete(path, headers=world.headers("acme"))
    assert stopped.status_code == 200 and stopped.json()["active"] is False
    listed = world.client.get(f"/v1/accounts/{alpha}/webhooks", headers=world.headers("alpha"))
    assert [h["active"] for h in listed.json()["items"]] == [False]
