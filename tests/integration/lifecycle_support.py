"""Helpers for the lifecycle integration tests: a provider with an inventory, customers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.db.lifecycle_tables import number_inventory
from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.services import accounts, numbers, wallets
from telbill.services.clock import ManualClock

START = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)
_keys = itertools.count()

INVENTORY = """\
number,country,type,region,locality,area_code,monthly_price,setup_price,verification_required
+16175550100,US,local,MA,Boston,617,1.00,0.50,no
+16175550101,US,local,MA,Boston,617,1.00,0.50,no
+12125550100,US,local,NY,New York,212,1.50,0.50,no
+18005550100,US,toll_free,,,800,2.00,1.00,no
+4930901820,DE,local,Berlin,Berlin,30,2.00,0,yes
+16175550102,US,local,MA,Boston,617,1.00,0.50,no
+16175550103,US,local,MA,Boston,617,1.00,0.50,no
"""


def key(prefix: str = "k") -> str:
    return f"{prefix}-{next(_keys)}"


@pytest.fixture(name="db")
def migrated_db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture(name="clock")
def manual_clock() -> ManualClock:
    return ManualClock(START)


@dataclass
class World:
    db: Database
    clock: ManualClock
    provider: accounts.Account

    def customer(self, top_up: str | int = 0, **kwargs: object) -> accounts.Account:
        account = accounts.create_account(
            self.db,
            kind="organisation",
            name="Customer",
            parent_id=self.provider.id,
            idempotency_key=key("o"),
            clock=self.clock,
            **kwargs,  # type: ignore[arg-type]
        )
        if Decimal(top_up) > 0:
            self.top_up(account.id, top_up)
        return account

    def top_up(self, account_id: int, amount: str | int) -> None:
        wallets.top_up(self.db, account_id, amount, idempotency_key=key("top"), clock=self.clock)

    def paid(self, account_id: int) -> Decimal:
        balances = wallets.get_balances(self.db, account_id, clock=self.clock)
        return next(b.balance for b in balances.unit(balances.currency).buckets if b.kind == "paid")

    def buy(self, account_id: int, number: str) -> numbers.Rental:
        return numbers.buy_number(
            self.db, account_id, number, idempotency_key=key("buy"), clock=self.clock
        )

    def inventory_status(self, number: str) -> str:
        with self.db.transaction() as conn:
            return str(
                conn.execute(
                    select(number_inventory.c.status).where(number_inventory.c.number == number)
                ).scalar_one()
            )

    def set_policy(self, **values: int | None) -> None:
        numbers.set_number_policy(self.db, self.provider.id, **values)  # type: ignore[arg-type]


@pytest.fixture(name="world")
def make_world(db: Database, clock: ManualClock) -> World:
    provider = accounts.create_account(
        db,
        kind="provider",
        name="Provider",
        currency="USD",
        timezone="UTC",
        idempotency_key=key("p"),
        clock=clock,
    )
    rows, errors = read_inventory_text(INVENTORY)
    assert errors == []
    numbers.import_inventory(db, provider.id, rows, clock=clock)
    return World(db, clock, provider)
