"""Whose balance a key may read: never the wallet of the provider that pays for it."""

from __future__ import annotations

from telbill.services import accounts
from telbill.services.auth import Role, create_api_key


def test_organisation_paid_by_its_provider_cannot_read_the_provider_balance(world):
    org = accounts.create_account(
        world.db,
        kind="organisation",
        name="reseller-paid",
        parent_id=world.ids["acme"],
        has_wallet=False,
        idempotency_key="visibility-org",
        clock=world.clock,
    )
    key = create_api_key(
        world.db, account_id=org.id, role=Role.ORG_ADMIN, name="rp", clock=world.clock
    )
    response = world.client.get(
        f"/v1/accounts/{org.id}/balances", headers={"Authorization": f"Bearer {key.secret}"}
    )
    assert response.status_code == 403, response.text
    assert "balance" not in response.json().get("units", "")


def test_user_reads_the_balance_of_the_organisation_wallet_it_spends_from(world):
    response = world.client.get(
        f"/v1/accounts/{world.ids['alice']}/balances", headers=world.headers("alice")
    )
    assert response.status_code == 200, response.text
    assert response.json()["billing_account_id"] == world.ids["alpha"]
