"""Issue 17, rule 10: every billing account gets its monthly bill, also without usage.

A month with a top-up only, or nothing at all, gives a zero invoice or a statement, as the
provider chooses (`telbill invoice settings PROVIDER --empty-month statement`, and an account
may choose for itself); a late `telbill tick` that crosses several month-ends issues each
month's bill, oldest first; no bill for a month that ended before the account existed.

The accounts are set up months ago (through the services, with a clock in the past, as the
provider did then); today's commands run through the CLI on the real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rules_support import run, run_json

from telbill.adapters.db.engine import Database
from telbill.services import accounts, invoice_runs, wallets
from telbill.services.clock import ManualClock
from telbill.services.invoices import previous_month


def months_back(count: int) -> list[str]:
    """The `count` whole months before today (UTC), oldest first."""
    months = []
    moment = datetime.now(UTC)
    for _ in range(count):
        month = previous_month(moment, "UTC")
        months.append(month)
        moment = datetime(int(month[:4]), int(month[5:]), 1, tzinfo=UTC)
    return months[::-1]


def set_up_months_ago(db_url: str) -> dict[str, int]:
    """Provider "Acme"; organisation "Quiet" (nothing ever happens) and "Topup" (a top-up
    in its first month only), both made in the 15th of the month three months back, and
    "Newcomer", made last month."""
    run(db_url, "init")
    db = Database(db_url)
    first = months_back(3)[0]
    clock = ManualClock(datetime(int(first[:4]), int(first[5:]), 15, tzinfo=UTC))
    made: dict[str, int] = {}

    def create(kind: str, name: str, parent: int | None = None) -> int:
        account = accounts.create_account(
            db, kind=kind, name=name, parent_id=parent, currency="USD",
            idempotency_key=f"create-{name}", clock=clock,
        )  # fmt: skip
        return account.id

    made["acme"] = create("provider", "Acme")
    made["quiet"] = create("organisation", "Quiet", made["acme"])
    made["topup"] = create("organisation", "Topup", made["acme"])
    wallets.top_up(db, made["topup"], "20.00", idempotency_key="topup-1", clock=clock)
    clock.set(datetime.now(UTC) - timedelta(days=40))
    made["newcomer"] = create("organisation", "Newcomer", made["acme"])
    db.dispose()
    return made


def test_every_account_gets_a_monthly_bill_without_usage_each_missed_month_in_order(db_url):
    ids = set_up_months_ago(db_url)
    months = months_back(3)
    run(db_url, "tick")  # late: three month-ends crossed since the accounts were made
    for name in ("quiet", "topup"):
        listed = run_json(db_url, "invoice", "list", str(ids[name]))
        assert [i["period"] for i in listed] == months[::-1]  # newest first
        assert [i["total"] for i in listed] == ["0.000000"] * 3
        assert sorted(i["number"] for i in listed) == [i["number"] for i in listed[::-1]]
    newcomer = run_json(db_url, "invoice", "list", str(ids["newcomer"]))
    made_in = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m")
    assert [i["period"] for i in newcomer][::-1] == [m for m in months if m >= made_in]
    assert len(newcomer) < 3  # nothing for the month that ended before it existed
    topup = run_json(db_url, "invoice", "list", str(ids["topup"]))[-1]
    shown = run_json(db_url, "invoice", "show", str(topup["id"]))
    assert shown["lines"] == [] and shown["activity"]  # the top-up, on a zero invoice
    assert run_json(db_url, "tick")["outcomes"].get(f"{invoice_runs.ISSUE_JOB}:done") is None


def test_provider_may_choose_a_statement_for_months_without_charges(db_url):
    ids = set_up_months_ago(db_url)
    run(db_url, "invoice", "settings", str(ids["acme"]), "--empty-month", "statement")
    run(db_url, "invoice", "settings", str(ids["topup"]), "--empty-month", "invoice")
    run(db_url, "tick")
    assert run_json(db_url, "invoice", "list", str(ids["quiet"])) == []
    statements = [
        n for n in run_json(db_url, "notify", "list", str(ids["quiet"]))
        if n["type"] == "statement.issued"
    ]  # fmt: skip
    assert [n["payload"]["period"] for n in statements] == months_back(3)
    assert len(run_json(db_url, "invoice", "list", str(ids["topup"]))) == 3  # its own choice
    bad = run(db_url, "invoice", "settings", str(ids["acme"]), "--empty-month", "none", ok=False)
    assert bad.exit_code == 1 and "statement" in bad.stderr
