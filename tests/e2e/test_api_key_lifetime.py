"""API keys may expire (issue 15 finding 7): a key created with `expires_at` works until
then and answers 401 from then on (even from the per-process key cache); key lists show
each key's expiry and the last time it was accepted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from telbill.errors import Unauthenticated
from telbill.services.auth import Role, create_api_key, load_web_session, start_web_session


def create_key(world, **body):
    response = world.client.post(
        f"/v1/accounts/{world.ids['alpha']}/api-keys",
        json={"name": "temp", "role": "org_admin", **body},
        headers=world.headers("alpha"),
    )
    return response


def test_a_key_with_an_expiry_is_refused_with_401_from_that_time_on(world):
    expires_at = world.clock.now() + timedelta(hours=1)
    created = create_key(world, expires_at=expires_at.isoformat())
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"].startswith(expires_at.strftime("%Y-%m-%dT%H:%M"))
    secret = created.json()["secret"]
    path = f"/v1/accounts/{world.ids['alpha']}"
    headers = {"Authorization": f"Bearer {secret}"}
    assert world.client.get(path, headers=headers).status_code == 200  # now cached
    world.clock.advance(minutes=59, seconds=59)
    assert world.client.get(path, headers=headers).status_code == 200
    world.clock.advance(seconds=1)
    refused = world.client.get(path, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"


def test_an_expiry_in_the_past_or_without_offset_is_refused_and_creates_nothing(world):
    before = world.snapshot()
    past = (world.clock.now() - timedelta(seconds=1)).isoformat()
    for expires_at in (past, "2030-01-01T00:00:00"):
        response = create_key(world, expires_at=expires_at)
        assert response.status_code == 422, response.text
        assert "expires_at" in response.json()["detail"]
    after = world.snapshot()
    after["counts"]["idempotency_keys"] = before["counts"]["idempotency_keys"]
    assert after == before


def test_key_lists_show_the_expiry_and_the_last_time_a_key_was_used(world):
    db, clock = world.db, world.clock
    quiet = create_api_key(
        db, account_id=world.ids["alpha"], role=Role.ORG_ADMIN, name="quiet", clock=clock
    )
    used_at = clock.now()
    assert quiet.secret is not None
    headers = {"Authorization": f"Bearer {quiet.secret}"}
    assert world.client.get(f"/v1/accounts/{world.ids['alpha']}", headers=headers).is_success
    clock.advance(minutes=5)
    listed = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/api-keys", headers=world.headers("alpha")
    ).json()["items"]
    by_name = {item["name"]: item for item in listed}
    assert by_name["quiet"]["last_used_at"].startswith(used_at.strftime("%Y-%m-%dT%H:%M"))
    assert by_name["quiet"]["expires_at"] is None
    # The key listing the keys was used just now (this request).
    assert by_name["alpha"]["last_used_at"] is not None


def test_an_expired_key_ends_its_dashboard_sessions(world):
    expires_at = world.clock.now() + timedelta(minutes=10)
    created = create_api_key(world.db, account_id=world.ids["alpha"], role="org_admin",
                             name="web", clock=world.clock, expires_at=expires_at)  # fmt: skip
    assert created.secret is not None
    token, _ = start_web_session(world.db, created.secret, clock=world.clock)
    assert load_web_session(world.db, token, clock=world.clock).principal.name == "web"
    world.clock.advance(minutes=10)
    with pytest.raises(Unauthenticated, match="expired"):
        load_web_session(world.db, token, clock=world.clock)
