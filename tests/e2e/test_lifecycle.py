"""Numbers, subscriptions, packages and `telbill tick` as a user drives them (CLI, API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from telbill.adapters.db.engine import Database, migrate
from telbill.cli.main import app
from telbill.services import accounts, wallets
from telbill.services.clock import SystemClock

INVENTORY = (
    "number,country,type,region,locality,area_code,monthly_price,setup_price\n"
    "+16175550100,US,local,MA,Boston,617,1.00,0.50\n"
    "+16175550101,US,local,MA,Boston,617,1.00,0.50\n"
)


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, int, int]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TELBILL_DATABASE_URL", url)
    migrate(url)
    db = Database(url)
    clock = SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="P", currency="USD", idempotency_key="p", clock=clock
    )
    org = accounts.create_account(
        db, kind="organisation", name="O", parent_id=provider.id, idempotency_key="o", clock=clock
    )
    wallets.top_up(db, org.id, "10", idempotency_key="t", clock=clock)
    db.dispose()
    return CliRunner(), provider.id, org.id


def test_cli_imports_searches_buys_lists_and_ticks(
    cli_db: tuple[CliRunner, int, int], tmp_path: Path
) -> None:
    cli, provider_id, org_id = cli_db
    deck = tmp_path / "numbers.csv"
    deck.write_text(INVENTORY + "+1617555,US,local,MA,Boston,617,x,0\n")
    refused = cli.invoke(app, ["number", "import", str(deck), "--provider", str(provider_id)])
    assert refused.exit_code == 1 and "line 4" in refused.stderr
    deck.write_text(INVENTORY)
    imported = cli.invoke(app, ["number", "import", str(deck), "--provider", str(provider_id)])
    assert imported.exit_code == 0, imported.stderr
    found = cli.invoke(
        app, ["number", "search", "--country", "US", "--locality", "Boston", "--json"]
    )
    assert [o["number"] for o in json.loads(found.stdout)] == ["+16175550100", "+16175550101"]
    bought = cli.invoke(app, ["number", "buy", str(org_id), "+16175550100", "--json"])
    assert json.loads(bought.stdout)["status"] == "active", bought.stderr
    listed = cli.invoke(app, ["number", "list", str(org_id), "--json"])
    assert [r["number"] for r in json.loads(listed.stdout)] == ["+16175550100"]
    ticked = cli.invoke(app, ["tick", "--json"])
    assert ticked.exit_code == 0, ticked.stderr
    outcomes = json.loads(ticked.stdout)["outcomes"]
    # Nothing of the lifecycle is due yet (threshold checks, also run by tick, are theirs).
    assert {k: v for k, v in outcomes.items() if not k.startswith("thresholds.")} == {}
    future = cli.invoke(app, ["tick", "--until", "2999-01-01T00:00:00+00:00"])
    assert future.exit_code == 1 and "later than now" in future.stderr


def test_api_buys_a_number_subscribes_and_buys_a_package(world: Any) -> None:
    alpha = world.ids["alpha"]
    found = world.client.get(
        f"/v1/accounts/{alpha}/numbers/available",
        params={"country": "US", "area_code": "617"},
        headers=world.headers("alpha", idempotency_key=None),
    )
    assert found.status_code == 200 and len(found.json()["numbers"]) == 2
    bought = world.client.post(
        f"/v1/accounts/{alpha}/numbers",
        json={"number": "+16175550100"},
        headers=world.headers("alpha"),
    )
    assert bought.status_code == 201 and bought.json()["status"] == "active"
    taken = world.client.post(
        f"/v1/accounts/{world.ids['bravo']}/numbers",
        json={"number": "+16175550100"},
        headers=world.headers("bravo"),
    )
    assert taken.status_code == 409
    sub = world.client.post(
        f"/v1/accounts/{alpha}/subscription",
        json={"plan": "team", "seats": 2, "addons": [{"code": "sip", "monthly_fee": "5.00"}]},
        headers=world.headers("alpha"),
    )
    assert sub.status_code == 201 and sub.json()["monthly_total"] == "25.000000"
    package = world.client.post(
        f"/v1/accounts/{alpha}/packages",
        json={"package": "sms100"},
        headers=world.headers("alpha"),
    )
    assert package.status_code == 201
    counters = world.client.get(
        f"/v1/accounts/{alpha}/packages", headers=world.headers("alpha", idempotency_key=None)
    )
    assert counters.json()["counters"]["sms"] == "100"
    nosy = world.client.get(
        f"/v1/accounts/{alpha}/numbers", headers=world.headers("bob", idempotency_key=None)
    )
    assert nosy.status_code == 404
