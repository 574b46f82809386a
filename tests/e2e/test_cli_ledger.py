"""The `telbill` command line used as an operator would, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from telbill.api.app import create_app
from telbill.cli.main import app

runner = CliRunner()


def run(db_url: str, *args: str, ok: bool = True):
    result = runner.invoke(app, [*args, "--database", db_url])
    if ok:
        assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


def run_json(db_url: str, *args: str):
    return json.loads(run(db_url, *args, "--json").stdout)


@pytest.fixture
def tree(db_url):
    """An initialised database with a provider (VAT 20%) and an organisation."""
    run(db_url, "init")
    provider = run_json(
        db_url, "account", "create", "--kind", "provider", "--name", "Acme", "--currency", "USD",
        "--vat-rate", "0.2",
    )  # fmt: skip
    org = run_json(
        db_url, "account", "create", "--kind", "organisation", "--name", "Alpha",
        "--parent", str(provider["id"]),
    )  # fmt: skip
    return {"db": db_url, "provider": provider["id"], "org": org["id"]}


def usd_posted(tree) -> str:
    balances = run_json(tree["db"], "balance", str(tree["org"]))
    return next(u for u in balances["units"] if u["unit"] == "USD")["posted"]


def test_top_up_balance_history_and_reconcile_through_the_cli(tree):
    db, org = tree["db"], str(tree["org"])
    receipt = run_json(db, "topup", org, "12.00", "--payment-ref", "card-1")
    assert (receipt["amount"], receipt["vat"], receipt["number"]) == ("12.000000", "2.000000", 1)
    run(db, "adjust", org, "-2.00", "--reason", "goodwill reversal")
    run(db, "grant", org, "300", "--kind", "package", "--unit", "s:call")
    run(db, "refund", org, "1.00", "--reason", "customer asked")
    assert usd_posted(tree) == "9.000000"
    history = run_json(db, "history", org, "--limit", "2")
    assert [tx["kind"] for tx in history["items"]] == ["refund", "grant"]
    assert history["next_cursor"] is not None
    older = run_json(db, "history", org, "--cursor", history["next_cursor"])
    assert [tx["kind"] for tx in older["items"]] == ["adjustment", "top_up"]
    report = run_json(db, "reconcile")
    assert report["ok"] is True and report["problems"] == []
    # The human form prints tables, not JSON.
    assert "balances of account" in run(db, "balance", org).stdout
    assert "Alpha" in run(db, "account", "list", str(tree["provider"])).stdout
    assert run_json(db, "account", "show", org)["name"] == "Alpha"


def test_same_idempotency_key_twice_tops_up_once(tree):
    db, org = tree["db"], str(tree["org"])
    first = run_json(db, "topup", org, "5", "--idempotency-key", "bank-transfer-77")
    again = run_json(db, "topup", org, "5", "--idempotency-key", "bank-transfer-77")
    assert first == again
    assert usd_posted(tree) == "5.000000"


BAD_COMMANDS = [
    (["topup", "{org}", "-5"], "must be positive"),
    (["topup", "{org}", "5,00"], "not a decimal number"),
    (["topup", "{org}", "5", "--currency", "EUR"], "wrong currency"),
    (["topup", "999999", "5"], "account 999999 not found"),
    (["refund", "{org}", "1", "--reason", "x"], "insufficient balance"),
    (["grant", "{org}", "5", "--kind", "gift"], "credit kind must be one of"),
    (["account", "show", "999999"], "not found"),
]


def test_bad_input_exits_1_with_one_clear_line_and_writes_nothing(tree):
    db = tree["db"]
    before = run_json(db, "reconcile")
    for args, reason in BAD_COMMANDS:
        result = run(db, *[a.format(org=tree["org"]) for a in args], ok=False)
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.stderr)
        assert reason in lines[0], (args, lines)
        assert "Traceback" not in result.output + result.stderr
    assert run_json(db, "reconcile") == before


def test_uninitialised_database_says_to_run_init(empty_db_url):
    result = run(empty_db_url, "balance", "1", ok=False)
    assert result.exit_code == 1
    assert "telbill init" in result.stderr


def test_admin_key_created_on_the_cli_opens_the_api(tree):
    result = run(tree["db"], "admin", "create-key", "--account", str(tree["provider"]))
    secret = next(w for w in result.stdout.split() if w.startswith("tb_"))
    with TestClient(create_app(tree["db"])) as client:
        response = client.get(
            f"/v1/accounts/{tree['org']}", headers={"Authorization": f"Bearer {secret}"}
        )
    assert response.status_code == 200
    assert response.json()["name"] == "Alpha"


def test_revoked_key_no_longer_opens_the_api(tree):
    result = run(tree["db"], "admin", "create-key", "--account", str(tree["provider"]))
    secret = next(w for w in result.stdout.split() if w.startswith("tb_"))
    key_id = re.search(r"key id\s+(\d+)", result.stdout)
    assert key_id
    run(tree["db"], "admin", "revoke-key", key_id.group(1))
    with TestClient(create_app(tree["db"])) as client:
        response = client.get(
            f"/v1/accounts/{tree['org']}", headers={"Authorization": f"Bearer {secret}"}
        )
    assert response.status_code == 401
