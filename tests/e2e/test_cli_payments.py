"""The operator's commands for trusted money: top-up requests (list, confirm, reject), a
provider's card-callback secret, API keys with an expiry and their last use."""

from __future__ import annotations

import json
from decimal import Decimal

from typer.testing import CliRunner

from telbill.cli.main import app
from telbill.services import top_up_requests, wallets
from telbill.services.auth import Principal, Role

runner = CliRunner()


def telbill(world, *args: str):
    return runner.invoke(app, [*args, "--database", world.url])


def ask(world, reference: str, amount: str = "8.00") -> int:
    alpha = Principal(key_id=0, role=Role.ORG_ADMIN, account_id=world.ids["alpha"], name="alpha")
    return top_up_requests.request_top_up(
        world.db, alpha, world.ids["alpha"], amount, reference=reference,
        idempotency_key=reference, clock=world.clock,
    ).id  # fmt: skip


def paid(world) -> Decimal:
    balances = wallets.get_balances(world.db, world.ids["alpha"], clock=world.clock)
    return sum((b.balance for b in balances.unit("USD").buckets if b.kind == "paid"), Decimal(0))


def test_the_operator_lists_pending_requests_and_confirms_one(world):
    request_id = ask(world, "CLI-1")
    listed = telbill(world, "payment", "requests", "--account", str(world.ids["acme"]),
                     "--status", "pending", "--json")  # fmt: skip
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert (row["id"], row["reference"], row["status"]) == (request_id, "CLI-1", "pending")
    before = paid(world)
    confirmed = telbill(world, "payment", "confirm", str(request_id))
    assert confirmed.exit_code == 0, confirmed.output
    assert "receipt #" in confirmed.output and "8.000000 USD" in confirmed.output
    assert paid(world) == before + Decimal("8.00")


def test_rejecting_a_confirmed_request_is_one_error_line_and_changes_nothing(world):
    request_id = ask(world, "CLI-2")
    assert telbill(world, "payment", "confirm", str(request_id)).exit_code == 0
    before = world.snapshot()
    rejected = telbill(world, "payment", "reject", str(request_id), "--reason", "late")
    assert rejected.exit_code == 1
    assert "confirmed, not pending" in rejected.output and "Traceback" not in rejected.output
    missing = telbill(world, "payment", "confirm", "999999")
    assert missing.exit_code == 1 and "not found" in missing.output
    assert world.snapshot() == before


def test_a_callback_secret_is_printed_once_and_only_for_a_provider(world):
    shown = telbill(world, "payment", "callback-secret", str(world.ids["acme"]))
    assert shown.exit_code == 0 and "pcs_" in shown.output
    not_a_provider = telbill(world, "payment", "callback-secret", str(world.ids["alpha"]))
    assert not_a_provider.exit_code == 1 and "not a provider" in not_a_provider.output


def test_keys_are_created_with_an_expiry_and_listed_with_their_last_use(world):
    alpha = str(world.ids["alpha"])
    created = telbill(world, "admin", "create-key", "--account", alpha, "--role", "org_admin",
                      "--name", "ci", "--expires-at", "2099-01-01T00:00:00+00:00")  # fmt: skip
    assert created.exit_code == 0, created.output
    naive = telbill(world, "admin", "create-key", "--account", alpha, "--role", "org_admin",
                    "--expires-at", "2099-01-01T00:00:00")  # fmt: skip
    assert naive.exit_code == 1 and "UTC offset" in naive.output
    # The world's "alpha" key is used once over the API, then listed.
    world.client.get(f"/v1/accounts/{alpha}", headers=world.headers("alpha"))
    listed = telbill(world, "admin", "list-keys", "--account", alpha, "--json")
    assert listed.exit_code == 0, listed.output
    keys = {k["name"]: k for k in json.loads(listed.output)}
    assert keys["ci"]["expires_at"].startswith("2099-01-01T00:00:00")
    assert keys["ci"]["last_used_at"] is None
    assert keys["alpha"]["last_used_at"] is not None
