"""Issue 17, rule 12: a suspended number is renewed by the top-up that covers it (it works
again at once, not at the next scheduler tick); support may keep one account's unpaid
numbers longer than the provider's grace period (`telbill number grace ACCOUNT --months N`).

The number was bought 40 days ago (services, with a clock in the past, as the customer did
then); today's commands run through the CLI on the real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rules_support import run, run_json

from telbill.adapters.db.engine import Database
from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.services import accounts, numbers, wallets
from telbill.services.clock import ManualClock

NUMBER = "+16175550100"


def bought_40_days_ago(db_url: str) -> dict[str, str]:
    """Organisation "alpha" rents +16175550100 (1.00 a month, 0.50 setup), paid with all
    it had: its first month ended ten days ago."""
    run(db_url, "init")
    db = Database(db_url)
    clock = ManualClock(datetime.now(UTC) - timedelta(days=40))

    def create(kind: str, name: str, parent: int | None = None) -> int:
        account = accounts.create_account(
            db, kind=kind, name=name, parent_id=parent, currency="USD",
            idempotency_key=f"create-{name}", clock=clock,
        )  # fmt: skip
        return account.id

    provider = create("provider", "Acme")
    org = create("organisation", "alpha", provider)
    rows, _ = read_inventory_text(
        f"number,country,type,monthly_price,setup_price\n{NUMBER},US,local,1.00,0.50\n"
    )
    numbers.import_inventory(db, provider, rows, clock=clock)
    wallets.top_up(db, org, "1.50", idempotency_key="first", clock=clock)
    numbers.buy_number(db, org, NUMBER, idempotency_key="buy", clock=clock)
    db.dispose()
    return {"provider": str(provider), "org": str(org)}


def status_of(db_url: str, org: str) -> dict:
    (rental,) = run_json(db_url, "number", "list", org)
    return rental


def test_suspended_number_works_again_at_the_top_up_that_pays_its_renewal(db_url):
    ids = bought_40_days_ago(db_url)
    run(db_url, "tick")  # the renewal is due and unpaid: suspended
    assert status_of(db_url, ids["org"])["status"] == "suspended"
    run(db_url, "topup", ids["org"], "0.40")  # not enough for the 1.00 renewal
    assert status_of(db_url, ids["org"])["status"] == "suspended"
    run(db_url, "topup", ids["org"], "5.00")  # no tick in between
    assert status_of(db_url, ids["org"])["status"] == "active"
    balance = run_json(db_url, "balance", ids["org"])["units"][0]["available"]
    assert balance == "4.400000"  # 0.40 + 5.00 - the month's 1.00
    db = Database(db_url)
    assert numbers.route_number(db, NUMBER).inbound == "accept"  # calls reach it again
    db.dispose()


def test_support_keeps_one_accounts_unpaid_numbers_beyond_the_provider_grace(db_url):
    ids = bought_40_days_ago(db_url)
    run(db_url, "tick")
    default_end = datetime.fromisoformat(status_of(db_url, ids["org"])["grace_until"])
    (extended,) = run_json(db_url, "number", "grace", ids["org"], "--months", "6")
    new_end = datetime.fromisoformat(extended["grace_until"])
    assert (new_end.year * 12 + new_end.month) - (default_end.year * 12 + default_end.month) == 4
    assert status_of(db_url, ids["org"])["grace_until"] == extended["grace_until"]
    bad = run(db_url, "number", "grace", ids["org"], "--months", "-1", ok=False)
    assert bad.exit_code == 1 and "grace months" in bad.stderr
