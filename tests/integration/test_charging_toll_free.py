"""Toll-free inbound calls are paid by the number's owner: CDR posting and sessions.

World (charging_support): Acme -> alpha (10.00 USD, plan "retail") -> alice, plus a second
organisation "bravo" of Acme with 20.00 USD that rents the toll-free +18005550100 and the
local +16175550100. Alice (alpha) answers the calls. Inbound rate: 0.01/min in 1/1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from charging_support import (
    START,
    World,
    add_tariff,
    build_world,
    cdr_line,
    key,
    paid,
    retail_rows,
    write_cdrs,
)
from sqlalchemy import select

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.tables import accounts as accounts_table
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.domain.tariffs import Direction, Increment, RateRow
from telbill.services import accounts, charging, numbers, rerating, sessions, wallets
from telbill.services.plans import TariffCache
from telbill.services.reconcile import reconcile

TOLL_FREE = "+18005550100"
LOCAL = "+16175550100"
NOT_OURS = "+18005550199"  # toll-free too, but not in the inventory
INVENTORY = """\
number,country,type,locality,area_code,monthly_price,setup_price
+18005550100,US,toll_free,,800,2.00,1.00
+16175550100,US,local,Boston,617,1.00,0.50
"""


@dataclass
class TwoOrgs:
    world: World
    bravo: accounts.Account

    def paid_by(self, account_id: int) -> Decimal:
        balances = wallets.get_balances(self.world.db, account_id, clock=self.world.clock)
        return next(b.balance for b in balances.unit("USD").buckets if b.kind == "paid")

    def available(self, account_id: int) -> Decimal:
        balances = wallets.get_balances(self.world.db, account_id, clock=self.world.clock)
        return next(b.available for b in balances.unit("USD").buckets if b.kind == "paid")


@pytest.fixture(name="orgs")
def orgs_fixture(db_url: str) -> Iterator[TwoOrgs]:
    world = build_world(db_url)
    db, clock = world.db, world.clock
    bravo = accounts.create_account(
        db, kind="organisation", name="bravo", parent_id=world.provider.id,
        idempotency_key=key(), clock=clock,
    )  # fmt: skip
    wallets.top_up(db, bravo.id, "20", idempotency_key=key(), clock=clock)
    rows, errors = read_inventory_text(INVENTORY)
    assert not errors
    numbers.import_inventory(db, world.provider.id, rows, clock=clock)
    for number in (TOLL_FREE, LOCAL):
        numbers.buy_number(db, bravo.id, number, idempotency_key=key(), clock=clock)
    yield TwoOrgs(world, bravo)
    db.dispose()


def post_inbound(
    orgs: TwoOrgs, tmp_path: Path, to: str, seconds: int, *, within: int | None = None
) -> charging.PostSummary:
    cdr_id = key("in")
    path = write_cdrs(tmp_path / f"{cdr_id}.csv", [cdr_line(cdr_id, to, seconds,
                                                            direction="inbound")])  # fmt: skip
    records = read_cdr_file(path, "native")
    world = orgs.world
    return charging.post_cdrs(world.db, records, clock=world.clock, source="t", within=within)


def charge_rows(orgs: TwoOrgs) -> list[tuple[int, int, int]]:
    """(leaf account, payer, amount micros) of every charge."""
    with orgs.world.db.engine.connect() as conn:
        rows = conn.execute(
            select(charges.c.account_id, charges.c.payer_id, charges.c.amount_micros).order_by(
                charges.c.id
            )
        ).all()
    return [(int(a), int(p), int(m)) for a, p, m in rows]


def test_inbound_toll_free_call_is_charged_to_the_organisation_renting_the_number(
    orgs: TwoOrgs, tmp_path: Path
) -> None:
    world = orgs.world
    bravo_before, alpha_before = orgs.paid_by(orgs.bravo.id), paid(world)
    summary = post_inbound(orgs, tmp_path, TOLL_FREE, 120)  # 2 min at 0.01
    assert summary.posted == 1
    assert charge_rows(orgs) == [(world.user.id, orgs.bravo.id, 20_000)]
    assert orgs.paid_by(orgs.bravo.id) == bravo_before - Decimal("0.02")
    assert paid(world) == alpha_before
    assert reconcile(world.db).ok


def test_inbound_call_to_a_number_that_is_not_toll_free_is_charged_to_the_receiver(
    orgs: TwoOrgs, tmp_path: Path
) -> None:
    world = orgs.world
    bravo_before, alpha_before = orgs.paid_by(orgs.bravo.id), paid(world)
    post_inbound(orgs, tmp_path, LOCAL, 120)
    assert charge_rows(orgs) == [(world.user.id, world.org.id, 20_000)]
    assert paid(world) == alpha_before - Decimal("0.02")
    assert orgs.paid_by(orgs.bravo.id) == bravo_before


def test_toll_free_number_not_in_our_inventory_is_charged_to_the_receiver(
    orgs: TwoOrgs, tmp_path: Path
) -> None:
    world = orgs.world
    post_inbound(orgs, tmp_path, NOT_OURS, 60)
    assert charge_rows(orgs) == [(world.user.id, world.org.id, 10_000)]


def test_cdr_poster_limited_to_a_subtree_never_charges_a_number_owner_outside_it(
    orgs: TwoOrgs, tmp_path: Path
) -> None:
    world = orgs.world
    post_inbound(orgs, tmp_path, TOLL_FREE, 60, within=world.org.id)
    assert charge_rows(orgs) == [(world.user.id, world.org.id, 10_000)]


def test_rerating_a_toll_free_call_charges_the_difference_to_the_number_owner(
    orgs: TwoOrgs, tmp_path: Path
) -> None:
    world = orgs.world
    post_inbound(orgs, tmp_path, TOLL_FREE, 120)  # 0.02 at 0.01/min
    dear = [r for r in retail_rows() if r.direction is not Direction.INBOUND]
    dear.append(RateRow("", "Inbound", Decimal("0.05"), direction=Direction.INBOUND,
                        increment=Increment(1, 1)))  # fmt: skip
    add_tariff(world.db, "dear", dear, START - timedelta(days=1))
    bravo_before, alpha_before = orgs.paid_by(orgs.bravo.id), paid(world)
    rerating.rerate(
        world.db, orgs.bravo.id, start=START - timedelta(hours=1),
        end=START + timedelta(hours=1), clock=world.clock, tariff="dear",
    )  # fmt: skip
    assert orgs.paid_by(orgs.bravo.id) == bravo_before - Decimal("0.08")  # 0.10 - 0.02
    assert paid(world) == alpha_before
    assert reconcile(world.db).ok


def authorize_inbound(orgs: TwoOrgs, to: str = TOLL_FREE) -> sessions.Authorization:
    world = orgs.world
    return sessions.authorize(
        world.db, TariffCache(world.db), account_id=world.user.id, to_number=to,
        direction="inbound", idempotency_key=key("auth"), clock=world.clock,
    )  # fmt: skip


def test_session_on_a_toll_free_call_holds_and_settles_the_owners_money(orgs: TwoOrgs) -> None:
    world = orgs.world
    alpha_available = orgs.available(world.org.id)
    bravo_available = orgs.available(orgs.bravo.id)
    decision = authorize_inbound(orgs)
    assert decision.allowed and decision.session_id is not None
    assert decision.held > 0
    assert orgs.available(orgs.bravo.id) == bravo_available - decision.held
    assert orgs.available(world.org.id) == alpha_available
    bravo_paid = orgs.paid_by(orgs.bravo.id)
    ended = sessions.end_session(
        world.db, TariffCache(world.db), decision.session_id, idempotency_key=key("end"),
        clock=world.clock, duration_s=180,
    )  # fmt: skip
    assert ended.payer_id == orgs.bravo.id and ended.account_id == world.user.id
    assert ended.charged == Decimal("0.03")
    assert orgs.paid_by(orgs.bravo.id) == bravo_paid - Decimal("0.03")
    assert orgs.available(orgs.bravo.id) == bravo_paid - Decimal("0.03")
    assert orgs.available(world.org.id) == alpha_available
    assert charge_rows(orgs)[-1] == (world.user.id, orgs.bravo.id, 30_000)
    assert reconcile(world.db).ok


def test_session_on_an_inbound_local_call_holds_the_receivers_money(orgs: TwoOrgs) -> None:
    world = orgs.world
    bravo_available = orgs.available(orgs.bravo.id)
    decision = authorize_inbound(orgs, LOCAL)
    assert decision.allowed and decision.held > 0
    assert orgs.available(orgs.bravo.id) == bravo_available
    assert sessions.get_session(world.db, decision.session_id or 0).payer_id == world.org.id


def test_toll_free_call_is_refused_when_the_owner_is_suspended(orgs: TwoOrgs) -> None:
    with orgs.world.db.transaction() as conn:
        conn.execute(
            accounts_table.update()
            .where(accounts_table.c.id == orgs.bravo.id)
            .values(status="closed")
        )
    decision = authorize_inbound(orgs)
    assert not decision.allowed and decision.reason == "suspended"
    assert str(orgs.bravo.id) not in decision.message
    assert authorize_inbound(orgs, LOCAL).allowed  # the receiver's own calls still work


def test_toll_free_call_is_refused_when_the_owner_cannot_pay(orgs: TwoOrgs) -> None:
    world = orgs.world
    wallets.adjust(
        world.db, orgs.bravo.id, -orgs.available(orgs.bravo.id), reason="empty it",
        idempotency_key=key(), clock=world.clock,
    )  # fmt: skip
    decision = authorize_inbound(orgs)
    assert not decision.allowed and decision.reason == "insufficient_balance"
    assert authorize_inbound(orgs, LOCAL).allowed  # alpha still has money
