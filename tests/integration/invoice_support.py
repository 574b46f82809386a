"""A small invoicing world for the invoice tests (imported by them, not a conftest).

provider "Acme Telecom" (USD, VAT 20 % GB, UTC)
  -> organisation "Alpha Ltd" (prepaid, plan "retail", 100.00 topped up) -> user "alice"
  -> organisation "Bravo Corp" (postpaid, credit limit 500.00, plan "retail") -> user "bob"
Tariff "retail": United Kingdom (+44) 0.60/min 60/60, United States (+1) 0.12/min 1/1,
inbound 0.01/min 1/1, UK SMS 0.05 per segment. Acme sells two numbers (setup 0.50, 1.00 a
month), a "team" plan (10.00 a month per seat) and an "sms100" package (2.00).
Activity happens in March 2026; the March invoice can be issued from 1 April.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.db.tables import ledger_accounts, postings, transactions
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.domain.money import from_micros
from telbill.domain.tariffs import Direction, Increment, RateRow, Service, TariffSettings
from telbill.services import accounts, charging, numbers, plans, subscriptions, wallets
from telbill.services.clock import ManualClock
from telbill.services.tariffs import import_tariff

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
NATIVE_HEADER = "id,account,user,direction,from,to,start,answer,end,service,segments\n"
_keys = itertools.count()


def key(prefix: str = "k") -> str:
    return f"{prefix}-{next(_keys)}"


@dataclass
class World:
    db: Database
    clock: ManualClock
    provider: accounts.Account
    alpha: accounts.Account
    alice: accounts.Account
    bravo: accounts.Account
    bob: accounts.Account
    tmp: Path

    def post_calls(self, lines: list[str]) -> charging.PostSummary:
        ids = {"alpha": self.alpha.id, "alice": self.alice.id, "bravo": self.bravo.id,
               "bob": self.bob.id}  # fmt: skip
        rows = []
        for line in lines:  # the CDRs name accounts by id (names here are not unique keys)
            fields = line.split(",")
            fields[1], fields[2] = str(ids[fields[1]]), str(ids[fields[2]])
            rows.append(",".join(fields))
        path = self.tmp / f"cdrs-{key()}.csv"
        path.write_text(NATIVE_HEADER + "".join(rows), encoding="utf-8")
        return charging.post_cdrs(
            self.db, read_cdr_file(path, "native"), clock=self.clock, source=str(path)
        )


def call(
    cdr_id: str,
    to: str,
    seconds: int,
    *,
    org: str = "alpha",
    user: str = "alice",
    direction: str = "outbound",
    at: datetime = START,
) -> str:
    answer = (at + timedelta(seconds=1)).isoformat()
    end = (at + timedelta(seconds=1 + seconds)).isoformat()
    return (
        f"{cdr_id},{org},{user},{direction},+15550001,{to},{at.isoformat()},{answer},{end},voice,\n"
    )


def sms(cdr_id: str, to: str, segments: int, *, org: str = "alpha", user: str = "alice") -> str:
    return f"{cdr_id},{org},{user},outbound,+15550001,{to},{START.isoformat()},,,sms,{segments}\n"


def build_world(url: str, tmp: Path) -> World:
    migrate(url)
    db = Database(url)
    clock = ManualClock(START)

    def create(**kw: object) -> accounts.Account:
        return accounts.create_account(db, idempotency_key=key(), clock=clock, **kw)  # type: ignore[arg-type]

    provider = create(
        kind="provider", name="Acme Telecom", currency="USD", vat_rate="0.2", vat_country="GB"
    )
    alpha = create(kind="organisation", name="Alpha Ltd", parent_id=provider.id)
    alice = create(kind="user", name="alice", parent_id=alpha.id)
    bravo = create(
        kind="organisation", name="Bravo Corp", parent_id=provider.id,
        billing_mode="postpaid", credit_limit="500",
    )  # fmt: skip
    bob = create(kind="user", name="bob", parent_id=bravo.id)
    rows = [
        RateRow("44", "United Kingdom", Decimal("0.60"), increment=Increment(60, 60)),
        RateRow("1", "United States", Decimal("0.12"), increment=Increment(1, 1)),
        RateRow("", "Inbound", Decimal("0.01"), direction=Direction.INBOUND,
                increment=Increment(1, 1)),
        RateRow("44", "UK SMS", Decimal("0.05"), service=Service.SMS),
    ]  # fmt: skip
    import_tariff(db, "retail", rows, TariffSettings(currency="USD"), now=START - timedelta(1))
    plans.create_plan(db, "retail", tariff="retail", clock=clock, cut_off="soft")
    for org in (alpha, bravo):
        plans.assign_plan(db, org.id, "retail", clock=clock)
    wallets.top_up(db, alpha.id, "100.00", idempotency_key=key(), clock=clock)
    inventory, _ = read_inventory_text(
        "number,country,type,locality,area_code,monthly_price,setup_price\n"
        "+16175550100,US,local,Boston,617,1.00,0.50\n"
        "+16175550101,US,local,Boston,617,1.00,0.50\n"
    )
    numbers.import_inventory(db, provider.id, inventory, clock=clock)
    subscriptions.create_plan(
        db, provider.id, code="team", name="Team", monthly_fee="10", trial_number_days=0,
        clock=clock,
    )  # fmt: skip
    subscriptions.create_package(
        db, provider.id, code="sms100", name="SMS 100", unit="msg:sms", amount=100, price="2",
        clock=clock,
    )  # fmt: skip
    return World(db, clock, provider, alpha, alice, bravo, bob, tmp)


@pytest.fixture(name="world")
def world_fixture(db_url: str, tmp_path: Path) -> Iterator[World]:
    built = build_world(db_url, tmp_path)
    yield built
    built.db.dispose()


def wallet_postings_by_kind(
    db: Database, account_id: int, start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Straight from the journal: the change of the account's money buckets per kind."""
    with db.transaction() as conn:
        rows = conn.execute(
            select(transactions.c.kind, func.sum(postings.c.amount))
            .join(transactions, transactions.c.id == postings.c.transaction_id)
            .join(ledger_accounts, ledger_accounts.c.id == postings.c.ledger_account_id)
            .where(
                ledger_accounts.c.account_id == account_id,
                ledger_accounts.c.unit == "USD",
                transactions.c.created_at >= start,
                transactions.c.created_at < end,
            )
            .group_by(transactions.c.kind)
        ).all()
    return {kind: from_micros(int(total)) for kind, total in rows}


# Written out here rather than imported, so the test does not share the service's list.
CHARGE_KINDS = {
    "debit",
    "usage_batch",
    "hold_settle",
    "adjustment",
    "rerate_credit",
    "proration_credit",
}
MONEY_IN_OR_OUT = {"top_up", "invoice_payment", "refund", "grant", "expiry", "credit_note"}


def ledger_debits(db: Database, account_id: int, start: datetime, end: datetime) -> Decimal:
    """What the ledger took from the wallet in charges (usage, fees, adjustments)."""
    changes = wallet_postings_by_kind(db, account_id, start, end)
    unknown = set(changes) - CHARGE_KINDS - MONEY_IN_OR_OUT
    assert not unknown, f"kinds this test does not know: {unknown}"
    return -sum((v for k, v in changes.items() if k in CHARGE_KINDS), Decimal(0))
