"""The roles matrix of docs/security.md ("Who may do what with money and the catalogue"),
one test per cell: operator (the CLI on the database), provider_admin, org_admin and user,
each against the money and catalogue actions, over the API (the CLI for the operator).

A cell is `ALLOW` (the action succeeds), `DENY` (403 problem, nothing changes) or `HIDE`
(404 problem as for a missing account, nothing changes). Every caller acts on its own
side of the tree: the provider admin of Acme on its customer Alpha, Alpha's admin on Alpha,
the user Alice on Alice; top-up requests to decide are Alpha's, the callback secret Acme's.
The dashboard's cells are in tests/web/test_web_role_matrix.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from telbill.cli.main import app as cli_app
from telbill.services import top_up_requests
from telbill.services.auth import Principal, Role

ALLOW, DENY, HIDE = "allow", "deny", "hide"
ROLES = ("operator", "provider_admin", "org_admin", "user")
KEY_OF = {"provider_admin": "acme", "org_admin": "alpha", "user": "alice"}
# Where each role acts: its own account, or (provider admin) its customer.
TARGET_OF = {"provider_admin": "alpha", "org_admin": "alpha", "user": "alice"}

# action -> expected outcome per role, in the order of ROLES. docs/security.md shows this
# table; change both together.
MATRIX: dict[str, tuple[str, str, str, str]] = {
    "book a payment (top-up)": (ALLOW, ALLOW, DENY, DENY),
    "ask for a top-up (bank transfer)": (ALLOW, ALLOW, ALLOW, DENY),
    "confirm a top-up request": (ALLOW, ALLOW, DENY, HIDE),
    "reject a top-up request": (ALLOW, ALLOW, DENY, HIDE),
    "set the card callback secret": (ALLOW, ALLOW, HIDE, HIDE),
    "adjust a balance": (ALLOW, ALLOW, DENY, DENY),
    "refund": (ALLOW, ALLOW, DENY, DENY),
    "grant credit": (ALLOW, ALLOW, DENY, DENY),
    "read balances and history": (ALLOW, ALLOW, ALLOW, ALLOW),
    "spend: buy a package": (ALLOW, ALLOW, ALLOW, DENY),
    "catalogue: create a package": (ALLOW, ALLOW, DENY, DENY),
    "catalogue: import a tariff": (ALLOW, ALLOW, DENY, DENY),
    "catalogue: import number inventory": (ALLOW, ALLOW, DENY, DENY),
    "catalogue: read it": (ALLOW, ALLOW, DENY, DENY),
}
CELLS = [(action, role, MATRIX[action][i]) for action in MATRIX for i, role in enumerate(ROLES)]

runner = CliRunner()
DECK = "prefix,destination,rate,increment\n44,United Kingdom,0.07,60/60\n"


def pending_request(world: Any) -> int:
    alpha = Principal(key_id=0, role=Role.ORG_ADMIN, account_id=world.ids["alpha"], name="alpha")
    created = top_up_requests.request_top_up(
        world.db, alpha, world.ids["alpha"], "5.00", reference="MATRIX-1",
        idempotency_key="matrix-request", clock=world.clock,
    )  # fmt: skip
    return created.id


# ------------------------------------------------------------------------- API cells


def api_call(world: Any, action: str, role: str) -> Any:
    key = KEY_OF[role]
    target = world.ids[TARGET_OF[role]]
    post = world.client.post
    headers = world.headers(key)
    account = f"/v1/accounts/{target}"
    calls: dict[str, Callable[[], Any]] = {
        "book a payment (top-up)": lambda: post(
            f"{account}/topups", json={"amount": "5.00"}, headers=headers
        ),
        "ask for a top-up (bank transfer)": lambda: post(
            f"{account}/topup-requests",
            json={"amount": "5.00", "reference": "R"},
            headers=headers,
        ),
        "confirm a top-up request": lambda: post(
            f"/v1/topup-requests/{pending_request(world)}/confirm", headers=headers
        ),
        "reject a top-up request": lambda: post(
            f"/v1/topup-requests/{pending_request(world)}/reject",
            json={"reason": "no"},
            headers=headers,
        ),
        "set the card callback secret": lambda: post(
            f"/v1/accounts/{world.ids['acme']}/payment-callback-secret", headers=headers
        ),
        "adjust a balance": lambda: post(
            f"{account}/adjustments", json={"amount": "1.00", "reason": "r"}, headers=headers
        ),
        "refund": lambda: post(
            f"{account}/refunds", json={"amount": "1.00", "reason": "r"}, headers=headers
        ),
        "grant credit": lambda: post(
            f"{account}/credit-grants", json={"kind": "free", "amount": "1.00"}, headers=headers
        ),
        "read balances and history": lambda: (
            world.client.get(f"{account}/balances", headers=headers),
            world.client.get(f"{account}/history", headers=headers),
        ),
        "spend: buy a package": lambda: post(
            f"{account}/packages", json={"package": "sms100"}, headers=headers
        ),
        "catalogue: create a package": lambda: post(
            "/v1/packages",
            json={"code": "m60", "unit": "s:call", "amount": "3600", "price": "3"},
            headers=headers,
        ),
        "catalogue: import a tariff": lambda: post(
            "/v1/tariffs", json={"name": "matrix", "csv": DECK}, headers=headers
        ),
        "catalogue: import number inventory": lambda: post(
            "/v1/inventory/numbers",
            json={"csv": "number,country,type,monthly_price\n+16175550199,US,local,1.00\n"},
            headers=headers,
        ),
        "catalogue: read it": lambda: world.client.get("/v1/plans", headers=headers),
    }
    return calls[action]()


STATUS_OF = {DENY: 403, HIDE: 404}


@pytest.mark.parametrize(
    ("action", "role", "expected"),
    [cell for cell in CELLS if cell[1] != "operator"],
    ids=[f"{a}-{r}" for a, r, _ in CELLS if r != "operator"],
)
def test_api_role_matrix_cell(world, action: str, role: str, expected: str):
    if action in ("confirm a top-up request", "reject a top-up request"):
        pending_request(world)  # the request exists before the snapshot
    before = world.snapshot()
    result = api_call(world, action, role)
    responses = result if isinstance(result, tuple) else (result,)
    for response in responses:
        if expected == ALLOW:
            assert response.status_code in (200, 201), (action, role, response.text)
        else:
            assert response.status_code == STATUS_OF[expected], (action, role, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    if expected != ALLOW:
        after = world.snapshot()
        # A refused keyed request may remember nothing but its key's row count.
        after["counts"]["idempotency_keys"] = before["counts"]["idempotency_keys"]
        assert after == before


# --------------------------------------------------------------------- operator cells


def operator_args(world: Any, action: str) -> list[str]:
    alpha, acme = str(world.ids["alpha"]), str(world.ids["acme"])
    args: dict[str, list[str]] = {
        "book a payment (top-up)": ["topup", alpha, "5.00"],
        "ask for a top-up (bank transfer)": ["topup", alpha, "5.00"],  # it books directly
        "confirm a top-up request": ["payment", "confirm", str(pending_request(world))],
        "reject a top-up request": f"payment reject {pending_request(world)} --reason no".split(),
        "set the card callback secret": ["payment", "callback-secret", acme],
        "adjust a balance": ["adjust", alpha, "1.00", "--reason", "r"],
        "refund": ["refund", alpha, "1.00", "--reason", "r"],
        "grant credit": ["grant", alpha, "1.00", "--kind", "free"],
        "read balances and history": ["balance", alpha],
        "spend: buy a package": ["package", "buy", alpha, "sms100"],
        "catalogue: create a package": (
            f"package create {acme} --code m60 --unit s:call --amount 3600 --price 3".split()
        ),
        "catalogue: import a tariff": ["tariff", "import", "--provider", acme, "--name", "m"],
        "catalogue: import number inventory": ["number", "import", "--provider", acme],
        "catalogue: read it": ["tariff", "list"],
    }
    return args[action]


@pytest.mark.parametrize(
    ("action", "expected"),
    [(a, e) for a, r, e in CELLS if r == "operator"],
    ids=[a for a, r, _ in CELLS if r == "operator"],
)
def test_operator_role_matrix_cell(world, tmp_path, action: str, expected: str):
    args = operator_args(world, action)
    if args[:2] == ["number", "import"]:
        inventory = tmp_path / "numbers.csv"
        inventory.write_text("number,country,type,monthly_price\n+16175550199,US,local,1.00\n")
        args.append(str(inventory))
    if args[:2] == ["tariff", "import"]:
        deck = tmp_path / "deck.csv"
        deck.write_text(DECK)
        args.append(str(deck))
    result = runner.invoke(cli_app, args, env={"TELBILL_DATABASE_URL": world.url})
    assert expected == ALLOW
    assert result.exit_code == 0, (action, result.output)
