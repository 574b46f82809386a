"""Subscriptions, trial credit, monthly free credit, packages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_support import World, key, make_world, manual_clock, migrated_db

from telbill.errors import Conflict, InsufficientBalance
from telbill.services import subscriptions, wallets
from telbill.services.reconcile import reconcile
from telbill.services.scheduler import tick

__all__ = ["make_world", "manual_clock", "migrated_db"]

SIP = {"code": "sip", "name": "SIP connector", "monthly_fee": "5.00"}


def _day(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _plan(world: World, **kwargs: object) -> subscriptions.Plan:
    params: dict[str, object] = {
        "code": "team",
        "name": "Team",
        "monthly_fee": "10.00",
        "free_credit_percent": 20,
        "trial_credit": "1.00",
        "trial_number_days": 0,
    }
    params.update(kwargs)
    return subscriptions.create_plan(
        world.db,
        world.provider.id,
        clock=world.clock,
        **params,  # type: ignore[arg-type]
    )


def _credit(world: World, account_id: int, kind: str) -> Decimal:
    balances = wallets.get_balances(world.db, account_id, clock=world.clock)
    return sum(
        (b.balance for b in balances.unit("USD").buckets if b.kind == kind and not b.expired),
        Decimal(0),
    )


def _tick_to(world: World, moment: datetime) -> None:
    world.clock.set(moment)
    tick(world.db, clock=world.clock)


def test_subscription_charges_fee_times_seats_plus_add_ons_in_advance(world: World) -> None:
    _plan(world, trial_credit=0)
    customer = world.customer(top_up=100)
    sub = subscriptions.subscribe(
        world.db,
        customer.id,
        "team",
        seats=3,
        addons=[SIP],
        idempotency_key=key(),
        clock=world.clock,
    )
    assert sub.monthly_total == Decimal("35")
    assert world.paid(customer.id) == Decimal("65")
    assert sub.period_end == _day(2027, 2, 28)
    _tick_to(world, _day(2027, 2, 28))
    assert world.paid(customer.id) == Decimal("30")


def test_sign_up_grants_the_plan_trial_credit(world: World) -> None:
    _plan(world)
    customer = world.customer(top_up=50)
    subscriptions.subscribe(world.db, customer.id, "team", idempotency_key=key(), clock=world.clock)
    assert _credit(world, customer.id, "trial") == Decimal("1.00")


def test_monthly_free_credit_is_the_plan_share_of_fee_times_seats_and_rolls_over(
    world: World,
) -> None:
    _plan(world, free_credit_percent=40)
    customer = world.customer(top_up=100)
    subscriptions.subscribe(
        world.db, customer.id, "team", seats=2, idempotency_key=key(), clock=world.clock
    )
    assert _credit(world, customer.id, "free") == Decimal("8")
    _tick_to(world, _day(2027, 2, 28))
    assert _credit(world, customer.id, "free") == Decimal("16")


def test_free_credit_is_used_before_paid_money_for_calls(world: World) -> None:
    _plan(world, trial_credit=0)
    customer = world.customer(top_up=100)
    subscriptions.subscribe(world.db, customer.id, "team", idempotency_key=key(), clock=world.clock)
    wallets.debit(
        world.db, customer.id, "1.5", service="voice", idempotency_key=key(), clock=world.clock
    )
    assert _credit(world, customer.id, "free") == Decimal("0.5")
    assert world.paid(customer.id) == Decimal("90")


def test_adding_seats_mid_period_charges_the_prorated_difference(world: World) -> None:
    _plan(world, trial_credit=0, free_credit_percent=0)
    customer = world.customer(top_up=100)
    world.clock.set(_day(2027, 4, 1))
    sub = subscriptions.subscribe(
        world.db, customer.id, "team", idempotency_key=key(), clock=world.clock
    )
    world.clock.set(_day(2027, 4, 11) + timedelta(hours=5))
    subscriptions.change_subscription(
        world.db, sub.id, seats=2, idempotency_key=key(), clock=world.clock
    )
    # 10.00 x 20 days left / 30 days = 6.666667
    assert world.paid(customer.id) == Decimal("100") - Decimal("10") - Decimal("6.666667")


def test_adding_seats_mid_period_grants_the_prorated_free_credit_at_once(world: World) -> None:
    _plan(world, trial_credit=0, free_credit_percent=20)  # 2.00 free credit per seat
    customer = world.customer(top_up=100)
    world.clock.set(_day(2027, 4, 1))
    sub = subscriptions.subscribe(
        world.db, customer.id, "team", seats=2, idempotency_key=key(), clock=world.clock
    )
    assert _credit(world, customer.id, "free") == Decimal("4")
    world.clock.set(_day(2027, 4, 16) + timedelta(hours=5))
    change = key()
    subscriptions.change_subscription(
        world.db, sub.id, seats=5, idempotency_key=change, clock=world.clock
    )
    # 3 more seats x 2.00 x 15 days left / 30 days = 3.00, now, not from next period.
    assert _credit(world, customer.id, "free") == Decimal("7")
    subscriptions.change_subscription(
        world.db, sub.id, seats=5, idempotency_key=change, clock=world.clock
    )
    assert _credit(world, customer.id, "free") == Decimal("7")  # a retry grants nothing more
    _tick_to(world, _day(2027, 5, 1))
    assert _credit(world, customer.id, "free") == Decimal("17")  # then 5 seats' full credit
    assert reconcile(world.db).ok


def test_removing_seats_mid_period_takes_back_the_unused_free_credit_for_the_days_left(
    world: World,
) -> None:
    _plan(world, trial_credit=0, free_credit_percent=20)
    customer = world.customer(top_up=100)
    world.clock.set(_day(2027, 4, 1))
    sub = subscriptions.subscribe(
        world.db, customer.id, "team", seats=4, idempotency_key=key(), clock=world.clock
    )
    world.clock.set(_day(2027, 4, 21))
    subscriptions.change_subscription(
        world.db, sub.id, seats=1, idempotency_key=key(), clock=world.clock
    )
    # 3 seats fewer x 2.00 x 10 days left / 30 days = 2.00 taken back of the 8.00 granted.
    assert _credit(world, customer.id, "free") == Decimal("6")
    assert reconcile(world.db).ok


def test_removing_seats_takes_back_no_more_free_credit_than_is_left(world: World) -> None:
    _plan(world, trial_credit=0, free_credit_percent=20)
    customer = world.customer(top_up=100)
    world.clock.set(_day(2027, 4, 1))
    sub = subscriptions.subscribe(
        world.db, customer.id, "team", seats=3, idempotency_key=key(), clock=world.clock
    )
    wallets.debit(
        world.db, customer.id, "5.50", service="voice", idempotency_key=key(), clock=world.clock
    )
    paid = world.paid(customer.id)
    world.clock.set(_day(2027, 4, 2))
    subscriptions.change_subscription(
        world.db, sub.id, seats=1, idempotency_key=key(), clock=world.clock
    )
    # 2 seats x 2.00 x 29/30 = 3.87 due back, only 0.50 unused: 0.50 taken, paid money untouched
    # (beyond the prorated fee credited back).
    assert _credit(world, customer.id, "free") == Decimal("0")
    assert world.paid(customer.id) == paid + Decimal("19.333333")
    assert reconcile(world.db).ok


def test_removing_an_add_on_mid_period_credits_the_prorated_difference(world: World) -> None:
    _plan(world, trial_credit=0, free_credit_percent=0)
    customer = world.customer(top_up=100)
    world.clock.set(_day(2027, 4, 1))
    sub = subscriptions.subscribe(
        world.db, customer.id, "team", addons=[SIP], idempotency_key=key(), clock=world.clock
    )
    world.clock.set(_day(2027, 4, 16))
    changed = subscriptions.change_subscription(
        world.db, sub.id, addons=[], idempotency_key=key(), clock=world.clock
    )
    assert changed.monthly_total == Decimal("10")
    assert world.paid(customer.id) == Decimal("85") + Decimal("2.5")
    assert reconcile(world.db).ok


def test_signing_up_without_balance_writes_nothing_and_twice_is_refused(world: World) -> None:
    _plan(world)
    poor = world.customer(top_up=5)
    with pytest.raises(InsufficientBalance):
        subscriptions.subscribe(world.db, poor.id, "team", idempotency_key=key(), clock=world.clock)
    assert world.paid(poor.id) == Decimal("5") and _credit(world, poor.id, "trial") == 0
    rich = world.customer(top_up=50)
    subscriptions.subscribe(world.db, rich.id, "team", idempotency_key=key(), clock=world.clock)
    with pytest.raises(Conflict):
        subscriptions.subscribe(world.db, rich.id, "team", idempotency_key=key(), clock=world.clock)


def test_unpaid_subscription_is_past_due_without_credit_then_charged_when_covered(
    world: World,
) -> None:
    _plan(world, trial_credit=0)
    customer = world.customer(top_up=15)
    sub = subscriptions.subscribe(
        world.db, customer.id, "team", idempotency_key=key(), clock=world.clock
    )
    _tick_to(world, _day(2027, 2, 28))
    with world.db.transaction() as conn:
        assert subscriptions.load_subscription(conn, sub.id).status == "past_due"
    assert _credit(world, customer.id, "free") == Decimal("2")
    world.clock.set(_day(2027, 3, 5))
    world.top_up(customer.id, 10)
    _tick_to(world, _day(2027, 3, 6))
    _tick_to(world, _day(2027, 3, 7))
    with world.db.transaction() as conn:
        current = subscriptions.load_subscription(conn, sub.id)
    assert (current.status, current.period_end) == ("active", _day(2027, 3, 31))
    assert world.paid(customer.id) == Decimal("5")
    assert _credit(world, customer.id, "free") == Decimal("4")


def test_packages_bought_while_some_remain_accumulate_per_counter(world: World) -> None:
    for code, unit, amount in (("min100", "s:call", 6000), ("sms50", "msg:sms", 50)):
        subscriptions.create_package(
            world.db,
            world.provider.id,
            code=code,
            name=code,
            unit=unit,
            amount=amount,
            price="3.00",
            clock=world.clock,
        )
    customer = world.customer(top_up=20)
    for code in ("min100", "min100", "sms50"):
        subscriptions.buy_package(
            world.db, customer.id, code, idempotency_key=key(), clock=world.clock
        )
    counters = subscriptions.package_counters(world.db, customer.id, clock=world.clock)
    assert counters == {"call": Decimal(12000), "speech": Decimal(0), "sms": Decimal(50)}
    assert world.paid(customer.id) == Decimal("11")


def test_package_with_validity_expires_and_its_remainder_is_written_off(world: World) -> None:
    subscriptions.create_package(
        world.db,
        world.provider.id,
        code="week",
        name="Week",
        unit="s:call",
        amount=600,
        price="1.00",
        validity_days=7,
        clock=world.clock,
    )
    customer = world.customer(top_up=5)
    purchase = subscriptions.buy_package(
        world.db, customer.id, "week", idempotency_key=key(), clock=world.clock
    )
    wallets.debit(
        world.db,
        customer.id,
        100,
        unit="s:call",
        service="voice",
        idempotency_key=key(),
        clock=world.clock,
    )
    assert purchase.expires_at is not None
    _tick_to(world, purchase.expires_at)
    counters = subscriptions.package_counters(world.db, customer.id, clock=world.clock)
    assert counters["call"] == 0
    balances = wallets.get_balances(world.db, customer.id, clock=world.clock)
    assert balances.unit("s:call").buckets[0].balance == 0
    assert reconcile(world.db).ok


def test_cancelled_subscription_is_not_renewed(world: World) -> None:
    _plan(world, trial_credit=0)
    customer = world.customer(top_up=100)
    sub = subscriptions.subscribe(
        world.db, customer.id, "team", idempotency_key=key(), clock=world.clock
    )
    subscriptions.cancel_subscription(world.db, sub.id, clock=world.clock)
    _tick_to(world, _day(2027, 3, 31))
    assert world.paid(customer.id) == Decimal("90")
    assert _credit(world, customer.id, "free") == Decimal("2")
