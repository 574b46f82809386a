"""Issue 17, rule 11: a number that needs a verification is charged and works only once
support approves it (`telbill number verify NUMBER --approve|--reject`, or the API); an
inbound call to it while it waits is refused."""

from __future__ import annotations

import json
from decimal import Decimal

from rules_support import retail_world, run, run_json

from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.services import numbers

INVENTORY = (
    "number,country,type,monthly_price,setup_price,verification_required\n"
    "+442071234567,GB,local,3.00,1.00,yes\n"
    "+442071234568,GB,local,3.00,1.00,yes\n"
)


def paid(db_url: str, account: str) -> Decimal:
    return Decimal(run_json(db_url, "balance", account)["units"][0]["available"])


def inbound(db_url: str, account: str, number: str) -> dict:
    args = ["session", "authorize", "--account", account, "--to", number, "--from",
            "+15551230000", "--direction", "inbound"]  # fmt: skip
    return json.loads(run(db_url, *args).stdout)


def test_number_needing_verification_is_charged_and_works_only_when_approved(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path)
    deck = tmp_path / "numbers.csv"
    deck.write_text(INVENTORY, encoding="utf-8")
    run(db_url, "number", "import", str(deck), "--provider", ids["provider"])
    bought = run_json(db_url, "number", "buy", ids["org"], "+442071234567")
    assert bought["status"] == "pending"
    assert paid(db_url, ids["org"]) == Decimal("10")  # nothing charged while it waits
    refused = inbound(db_url, ids["user"], "+442071234567")
    assert (refused["allowed"], refused["reason"]) == (False, "number_pending")
    approved = run_json(db_url, "number", "verify", "+442071234567", "--approve")
    assert approved["status"] == "active"
    assert paid(db_url, ids["org"]) == Decimal("6")  # setup 1.00 + first month 3.00
    assert inbound(db_url, ids["user"], "+442071234567")["allowed"]


def test_rejected_number_is_not_charged_and_goes_back_to_the_inventory(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path)
    deck = tmp_path / "numbers.csv"
    deck.write_text(INVENTORY, encoding="utf-8")
    run(db_url, "number", "import", str(deck), "--provider", ids["provider"])
    run_json(db_url, "number", "buy", ids["org"], "+442071234568")
    rejected = run_json(db_url, "number", "verify", "+442071234568", "--reject")
    assert rejected["status"] != "active"
    assert paid(db_url, ids["org"]) == Decimal("10")
    again = run(db_url, "number", "verify", "+442071234568", "--approve", ok=False)
    assert again.exit_code == 1 and "not waiting" in again.stderr
    neither = run(db_url, "number", "verify", "+442071234568", ok=False)
    assert neither.exit_code == 1 and "--approve" in neither.stderr


def test_provider_admin_approves_a_pending_number_through_the_api(world):
    rows, _ = read_inventory_text(INVENTORY)
    numbers.import_inventory(world.db, world.ids["acme"], rows, clock=world.clock)
    alpha = world.ids["alpha"]
    bought = world.client.post(
        f"/v1/accounts/{alpha}/numbers", json={"number": "+442071234567"},
        headers=world.headers("alpha"),
    )  # fmt: skip
    assert bought.status_code == 201 and bought.json()["status"] == "pending"
    url = f"/v1/accounts/{alpha}/numbers/verification"
    body = {"number": "+442071234567", "approved": True, "reference": "passport 123"}
    own = world.client.post(url, json=body, headers=world.headers("alpha"))
    assert own.status_code == 403  # the customer cannot approve its own documents
    other = world.client.post(url, json=body, headers=world.headers("zeta"))
    assert other.status_code in (403, 404)  # another provider's tenant
    approved = world.client.post(url, json=body, headers=world.headers("acme"))
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"
