"""The roles matrix of docs/security.md on the dashboard: provider_admin, org_admin and user
against the money and catalogue actions the dashboard offers, one test per cell.

`ALLOW`: the page or form succeeds; `DENY`: a 403 page; `HIDE`: a 404 page (an account
outside the caller's subtree looks missing). A refused form changes nothing: no money, no
request, no receipt. The operator has no dashboard role (it is the CLI on the database,
tests/e2e/test_role_matrix.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from web_world import WebWorld, log_in

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.payment_tables import top_up_requests as requests_table
from telbill.adapters.db.tables import ledger_accounts, receipts
from telbill.services import top_up_requests
from telbill.services.auth import Principal, Role

pytestmark = pytest.mark.xdist_group("web_role_matrix")

ALLOW, DENY, HIDE = "allow", "deny", "hide"
ROLES = ("provider_admin", "org_admin", "user")
KEY_OF = {"provider_admin": "acme", "org_admin": "alpha", "user": "alice"}
TARGET_OF = {"provider_admin": "alpha", "org_admin": "alpha", "user": "alice"}
STATUS_OF = {ALLOW: 200, DENY: 403, HIDE: 404}

MATRIX: dict[str, tuple[str, str, str]] = {
    "book a payment (record payment form)": (ALLOW, DENY, DENY),
    "ask for a top-up (bank transfer form)": (ALLOW, ALLOW, DENY),
    "see the top-up requests to decide": (ALLOW, HIDE, HIDE),
    "confirm a top-up request": (ALLOW, DENY, HIDE),
    "reject a top-up request": (ALLOW, DENY, HIDE),
    "read the balance page": (ALLOW, ALLOW, ALLOW),
    "spend: buy a number": (ALLOW, ALLOW, DENY),
    "catalogue: plans and tariffs pages": (ALLOW, HIDE, HIDE),
    "catalogue: import a tariff": (ALLOW, HIDE, HIDE),
}
CELLS = [(action, role, MATRIX[action][i]) for action in MATRIX for i, role in enumerate(ROLES)]


def pending_request(world: WebWorld) -> int:
    alpha = Principal(key_id=0, role=Role.ORG_ADMIN, account_id=world.ids["alpha"], name="alpha")
    return top_up_requests.request_top_up(
        world.db, alpha, world.ids["alpha"], "5.00", reference="WEB-MATRIX",
        idempotency_key=f"web-matrix-{id(object())}", clock=world.clock,
    ).id  # fmt: skip


def money_state(world: WebWorld) -> tuple[Any, ...]:
    with world.db.engine.connect() as conn:
        ledger = ledger_accounts.c
        balances = conn.execute(sa.select(ledger.id, ledger.balance).order_by(ledger.id)).all()
        counted = [
            conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (receipts, charges)
        ]
        statuses = conn.execute(
            sa.select(requests_table.c.id, requests_table.c.status).order_by(requests_table.c.id)
        ).all()
    return tuple(map(tuple, balances)), tuple(counted), tuple(map(tuple, statuses))


def act(client: Any, world: WebWorld, action: str, role: str, csrf: str) -> Any:
    target = world.ids[TARGET_OF[role]]
    acme = world.ids["acme"]

    def post(path: str, **fields: str) -> Any:
        return client.post(path, data={"csrf_token": csrf, **fields}, follow_redirects=True)

    if action == "book a payment (record payment form)":
        return post(f"/accounts/{target}/topups", amount="5.00", provider="bank_transfer",
                    reference="BT-M")  # fmt: skip
    if action == "ask for a top-up (bank transfer form)":
        return post(f"/accounts/{target}/topup-requests", amount="5.00", reference="BT-M")
    if action == "see the top-up requests to decide":
        return client.get(f"/provider/{acme}/topup-requests")
    if action in ("confirm a top-up request", "reject a top-up request"):
        verb = action.split()[0]
        return post(f"/provider/{acme}/topup-requests/{world.pending}/{verb}", reason="no")
    if action == "read the balance page":
        return client.get(f"/accounts/{target}/balance")
    if action == "spend: buy a number":
        # The world's inventory has two numbers: one for each role that may buy.
        number = "+16175550100" if role == "provider_admin" else "+16175550101"
        return post(f"/accounts/{target}/numbers/buy", number=number)
    if action == "catalogue: plans and tariffs pages":
        plans = client.get(f"/provider/{acme}/plans")
        tariffs = client.get(f"/provider/{acme}/tariffs")
        assert plans.status_code == tariffs.status_code
        return plans
    if action == "catalogue: import a tariff":
        deck = b"prefix,destination,rate,increment\n44,United Kingdom,0.07,60/60\n"
        return client.post(
            f"/provider/{acme}/tariffs/import",
            data={"csrf_token": csrf, "name": f"matrix-{role}", "format": "native"},
            files={"file": ("deck.csv", deck, "text/csv")},
            follow_redirects=True,
        )
    raise AssertionError(action)


@pytest.mark.parametrize(("action", "role", "expected"), CELLS,
                         ids=[f"{a}-{r}" for a, r, _ in CELLS])  # fmt: skip
def test_dashboard_role_matrix_cell(web_world, client, action: str, role: str, expected: str):
    web_world.pending = pending_request(web_world)  # type: ignore[attr-defined]
    csrf = log_in(client, web_world.keys[KEY_OF[role]])
    before = money_state(web_world)
    response = act(client, web_world, action, role, csrf)
    assert response.status_code == STATUS_OF[expected], (action, role, response.text[:500])
    if expected != ALLOW:
        assert money_state(web_world) == before
