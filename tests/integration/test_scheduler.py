"""The scheduler: every due job once, whether ticked twice, concurrently, or after a crash."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_support import World, make_world, manual_clock, migrated_db
from sqlalchemy import func, select

from telbill.adapters.db.engine import Database
from telbill.adapters.db.lifecycle_tables import job_runs
from telbill.adapters.db.tables import transactions
from telbill.errors import InvalidInput
from telbill.services import accounts, numbers, renewal_batches, scheduler
from telbill.services.clock import FixedClock
from telbill.services.reconcile import reconcile

__all__ = ["make_world", "manual_clock", "migrated_db"]

NUMBERS = ("+16175550100", "+16175550101", "+16175550102", "+16175550103")


def _day(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _count(db: Database, table: object) -> int:
    with db.transaction() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _customers_with_numbers(world: World) -> list[int]:
    ids = []
    for number in NUMBERS:
        customer = world.customer(top_up=10)
        world.buy(customer.id, number)
        ids.append(customer.id)
    return ids


def test_tick_run_twice_has_the_effect_of_once(world: World) -> None:
    ids = _customers_with_numbers(world)
    world.clock.set(_day(2027, 2, 28))
    first = scheduler.tick(world.db, clock=world.clock)
    before = _count(world.db, transactions)
    second = scheduler.tick(world.db, clock=world.clock)
    assert first.count("number.renewal", "renewed") == len(ids)
    assert sum(second.outcomes.values()) == 0
    assert _count(world.db, transactions) == before
    assert all(world.paid(i) == Decimal("7.5") for i in ids)


def test_one_late_tick_catches_up_every_missed_renewal_on_its_own_date(world: World) -> None:
    customer = world.customer(top_up=10)
    world.buy(customer.id, NUMBERS[0])
    world.clock.set(_day(2027, 5, 15))
    report = scheduler.tick(world.db, clock=world.clock)
    assert report.count("number.renewal", "renewed") == 3  # 28 Feb, 31 Mar, 30 Apr
    rental = numbers.list_numbers(world.db, customer.id)[0]
    assert rental.paid_until == _day(2027, 5, 31)
    with world.db.transaction() as conn:
        times = conn.execute(
            select(transactions.c.created_at)
            .where(transactions.c.kind == "debit")
            .order_by(transactions.c.id)
        ).scalars()
        assert list(times)[-3:] == [_day(2027, 2, 28), _day(2027, 3, 31), _day(2027, 4, 30)]


def test_tick_from_two_workers_at_once_has_the_effect_of_once(world: World, db_url: str) -> None:
    ids = _customers_with_numbers(world)
    until = _day(2027, 4, 1)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        db = Database(db_url)
        try:
            barrier.wait()
            scheduler.tick(db, clock=FixedClock(until))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Feb 28 and Mar 31 renewals, once each per number.
    assert all(world.paid(i) == Decimal("6.5") for i in ids)
    with world.db.transaction() as conn:
        renewals = conn.execute(
            select(func.count()).select_from(job_runs).where(job_runs.c.job == "number.renewal")
        ).scalar_one()
    assert renewals == 2 * len(ids)
    assert reconcile(world.db).ok


def test_a_job_that_crashes_leaves_nothing_and_runs_once_on_the_next_tick(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _customers_with_numbers(world)
    original = scheduler.renew_many  # on-time renewals run set-based, per batch of accounts
    calls = {"n": 0}

    def crash_after_effect(*args: object) -> list[renewal_batches.Renewed]:
        outcomes = original(*args)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed mid-job")
        return outcomes

    monkeypatch.setattr(scheduler, "renew_many", crash_after_effect)
    world.clock.set(_day(2027, 2, 28))
    with pytest.raises(RuntimeError):
        scheduler.tick(world.db, clock=world.clock, accounts_per_transaction=1)
    renewed = sum(world.paid(i) == Decimal("7.5") for i in ids)
    assert renewed == 1  # the first account's group committed, the crashed one did not
    monkeypatch.undo()
    scheduler.tick(world.db, clock=world.clock)
    scheduler.tick(world.db, clock=world.clock)
    assert all(world.paid(i) == Decimal("7.5") for i in ids)
    assert reconcile(world.db).ok


def test_tick_refuses_a_time_later_than_now(world: World) -> None:
    with pytest.raises(InvalidInput):
        scheduler.tick(world.db, world.clock.now() + timedelta(seconds=1), clock=world.clock)


def test_tasks_of_other_areas_run_at_every_tick_with_its_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[datetime] = []

    def invoice_run(db: Database, until: datetime) -> int:
        seen.append(until)
        return 1

    monkeypatch.setattr(scheduler, "TASKS", {})
    scheduler.register_task("invoices", invoice_run)
    report = scheduler.tick(world.db, clock=world.clock)
    assert seen == [world.clock.now()] and report.count("invoices", "done") == 1


def test_a_users_number_renews_from_its_organisations_wallet_in_the_users_name(
    world: World,
) -> None:
    organisation = world.customer(top_up=10)
    user = accounts.create_account(
        world.db,
        kind="user",
        name="alice",
        parent_id=organisation.id,
        idempotency_key="user-alice",
        clock=world.clock,
    )
    rental = world.buy(user.id, NUMBERS[0])
    world.clock.set(_day(2027, 2, 28))
    report = scheduler.tick(world.db, clock=world.clock)
    assert report.count("number.renewal", "renewed") == 1
    assert world.paid(organisation.id) == Decimal("7.5")
    with world.db.transaction() as conn:
        renewal = conn.execute(
            select(transactions).where(
                transactions.c.idempotency_key.like(f"number:{rental.id}:renewal:%")
            )
        ).one()
    assert (renewal.account_id, renewal.subject_account_id) == (organisation.id, user.id)
