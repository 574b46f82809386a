"""The switch tests' world: a catalogue, customers with prepaid wallets, the running switch.

The catalogue: provider "Switchco" (USD) selling plan "prepaid" (hard cut-off) on tariff
"voice": +1 at 0.60 a minute billed per second (0.01 a second). Each test opens wallets of
its own (`Catalogue.new_customer`): an organisation with a prepaid wallet and a user who calls.

Kamailio and SIPp come from Debian (`make test` installs them). Without them the tests skip;
with CI=true they fail.
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from telbill.adapters.db.engine import Database
from telbill.domain.tariffs import Increment, RateRow, TariffSettings
from telbill.services import accounts, plans, wallets
from telbill.services.clock import SystemClock
from telbill.services.tariffs import import_tariff

sys.path.insert(0, str(Path(__file__).resolve().parent))
from switch_stack import PACKAGES, SwitchStack, missing_tools  # noqa: E402

PER_SECOND = Decimal("0.01")
_names = itertools.count(1)


def require_switch_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    message = f"{', '.join(missing)} not found: apt-get install {PACKAGES} (make test does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Customer:
    org_id: int
    user_id: int


@dataclass
class Catalogue:
    db: Database
    provider_id: int

    def new_customer(self, balance: str, *, plan: str = "prepaid") -> Customer:
        clock = SystemClock()
        n = next(_names)
        org = accounts.create_account(
            self.db, kind="organisation", name=f"org{n}", parent_id=self.provider_id,
            idempotency_key=uuid.uuid4().hex, clock=clock,
        )  # fmt: skip
        user = accounts.create_account(
            self.db, kind="user", name=f"user{n}", parent_id=org.id,
            idempotency_key=uuid.uuid4().hex, clock=clock,
        )  # fmt: skip
        plans.assign_plan(self.db, org.id, plan, clock=clock)
        if Decimal(balance) > 0:
            wallets.top_up(self.db, org.id, balance, idempotency_key=uuid.uuid4().hex, clock=clock)
        return Customer(org.id, user.id)

    def paid_balance(self, customer: Customer) -> Decimal:
        balances = wallets.get_balances(self.db, customer.org_id, clock=SystemClock())
        return sum(
            (b.balance for b in balances.unit("USD").buckets if b.kind == "paid"), Decimal(0)
        )

    def held(self, customer: Customer) -> Decimal:
        balances = wallets.get_balances(self.db, customer.org_id, clock=SystemClock())
        return sum((b.held for b in balances.unit("USD").buckets), Decimal(0))


def build_catalogue(url: str) -> Catalogue:
    db = Database(url)
    clock = SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="Switchco", currency="USD", vat_rate="0",
        idempotency_key=uuid.uuid4().hex, clock=clock,
    )  # fmt: skip
    rows = [RateRow("1", "United States", Decimal("0.60"), increment=Increment(1, 1))]
    import_tariff(db, "voice", rows, TariffSettings(currency="USD"),
                  now=clock.now() - timedelta(days=1))  # fmt: skip
    plans.create_plan(db, "prepaid", tariff="voice", clock=clock, cut_off="hard")
    # calls of at most 5 s: a wallet affording more is shared by concurrent calls
    plans.create_plan(db, "prepaid-5s", tariff="voice", clock=clock, cut_off="hard", max_call_s=5)
    return Catalogue(db, provider.id)


@dataclass
class Switch:
    stack: SwitchStack
    catalogue: Catalogue
