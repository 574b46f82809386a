"""Phone numbers: buy, renew on the anniversary, suspend, grace, release, quarantine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from lifecycle_support import START, World, key, make_world, manual_clock, migrated_db

from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.domain.tariffs import Direction, RateRow, TariffSettings
from telbill.errors import Conflict, InsufficientBalance, InvalidInput
from telbill.services import numbers, plans, sessions, subscriptions
from telbill.services.events import list_events
from telbill.services.plans import TariffCache
from telbill.services.reconcile import reconcile
from telbill.services.scheduler import tick
from telbill.services.tariffs import import_tariff

__all__ = ["make_world", "manual_clock", "migrated_db"]

BOSTON = "+16175550100"


def _day(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _tick_to(world: World, moment: datetime) -> None:
    world.clock.set(moment)
    tick(world.db, clock=world.clock)


def test_import_reports_numbers_already_rented_as_taken(world: World) -> None:
    customer = world.customer(top_up=10)
    world.buy(customer.id, BOSTON)
    rows, _ = read_inventory_text(
        "number,country,type,monthly_price\n+16175550100,US,local,9\n+16175550199,US,local,1\n"
    )
    result = numbers.import_inventory(world.db, world.provider.id, rows, clock=world.clock)
    assert (result.added, result.taken) == (1, (BOSTON,))


def test_search_by_country_type_area_code_and_us_locality_shows_number_and_price(
    world: World,
) -> None:
    boston = numbers.search_numbers(world.db, country="US", locality="boston")
    assert [o.number for o in boston] == [
        "+16175550100",
        "+16175550101",
        "+16175550102",
        "+16175550103",
    ]
    assert boston[0].monthly_price == Decimal("1.00")
    toll_free = numbers.search_numbers(world.db, country="US", number_type="toll_free")
    assert [o.number for o in toll_free] == ["+18005550100"]
    ny = numbers.search_numbers(world.db, country="US", area_code="212")
    assert [o.locality for o in ny] == ["New York"]


def test_search_by_locality_is_refused_outside_the_us_and_canada(world: World) -> None:
    with pytest.raises(InvalidInput):
        numbers.search_numbers(world.db, country="DE", locality="Berlin")


def test_buying_charges_setup_fee_and_first_month_at_once_and_number_works(world: World) -> None:
    customer = world.customer(top_up=10)
    rental = world.buy(customer.id, BOSTON)
    assert rental.status == "active"
    assert rental.paid_until == _day(2027, 2, 28)
    assert world.paid(customer.id) == Decimal("8.5")
    assert numbers.route_number(world.db, BOSTON).inbound == "accept"
    assert world.inventory_status(BOSTON) == "rented"
    assert numbers.search_numbers(world.db, country="US", area_code="617")[0].number != BOSTON


def test_buying_without_enough_balance_writes_nothing(world: World) -> None:
    customer = world.customer(top_up="1.40")
    with pytest.raises(InsufficientBalance):
        world.buy(customer.id, BOSTON)
    assert world.inventory_status(BOSTON) == "available"
    assert numbers.list_numbers(world.db, customer.id) == []
    assert world.paid(customer.id) == Decimal("1.40")


def test_same_purchase_key_twice_charges_once_and_a_taken_number_is_refused(world: World) -> None:
    customer = world.customer(top_up=10)
    first = numbers.buy_number(
        world.db, customer.id, BOSTON, idempotency_key="same", clock=world.clock
    )
    again = numbers.buy_number(
        world.db, customer.id, BOSTON, idempotency_key="same", clock=world.clock
    )
    assert first == again
    assert world.paid(customer.id) == Decimal("8.5")
    other = world.customer(top_up=10)
    with pytest.raises(Conflict):
        world.buy(other.id, BOSTON)


def test_number_needing_verification_waits_for_an_approved_record(world: World) -> None:
    customer = world.customer(top_up=10)
    rental = world.buy(customer.id, "+4930901820")
    assert rental.status == "pending"
    assert world.paid(customer.id) == Decimal("10")
    record = numbers.submit_verification(
        world.db, customer.id, "DE", reference="passport", clock=world.clock
    )
    numbers.decide_verification(world.db, record.id, approved=True, clock=world.clock)
    active = numbers.list_numbers(world.db, customer.id)[0]
    assert active.status == "active"
    assert world.paid(customer.id) == Decimal("8")


def test_rejected_verification_returns_the_number_to_inventory(world: World) -> None:
    customer = world.customer(top_up=10)
    world.buy(customer.id, "+4930901820")
    record = numbers.submit_verification(
        world.db, customer.id, "DE", reference=None, clock=world.clock
    )
    numbers.decide_verification(world.db, record.id, approved=False, clock=world.clock)
    assert world.inventory_status("+4930901820") == "available"
    assert world.paid(customer.id) == Decimal("10")


def test_first_number_is_free_for_the_plan_trial_then_renews_at_its_price(world: World) -> None:
    subscriptions.create_plan(
        world.db,
        world.provider.id,
        code="basic",
        name="Basic",
        monthly_fee=0,
        trial_number_days=7,
        clock=world.clock,
    )
    customer = world.customer(top_up=10)
    subscriptions.subscribe(
        world.db, customer.id, "basic", idempotency_key=key(), clock=world.clock
    )
    trial = world.buy(customer.id, BOSTON)
    assert trial.trial and trial.paid_until == _day(2027, 2, 7)
    assert world.paid(customer.id) == Decimal("10")
    second = world.buy(customer.id, "+16175550101")
    assert not second.trial
    assert world.paid(customer.id) == Decimal("8.5")
    _tick_to(world, _day(2027, 2, 7))
    renewed = numbers.list_numbers(world.db, customer.id)[0]
    assert (renewed.trial, renewed.paid_until) == (False, _day(2027, 3, 7))
    assert world.paid(customer.id) == Decimal("7.5")


def test_number_bought_on_31st_renews_on_28th_february_31st_march_30th_april(
    world: World,
) -> None:
    customer = world.customer(top_up=100)
    world.buy(customer.id, BOSTON)
    ends = []
    for moment in (_day(2027, 2, 28), _day(2027, 3, 31), _day(2027, 4, 30)):
        _tick_to(world, moment - timedelta(seconds=1))
        assert numbers.list_numbers(world.db, customer.id)[0].paid_until == moment
        _tick_to(world, moment)
        ends.append(numbers.list_numbers(world.db, customer.id)[0].paid_until)
    assert ends == [_day(2027, 3, 31), _day(2027, 4, 30), _day(2027, 5, 31)]
    assert world.paid(customer.id) == Decimal("100") - Decimal("1.5") - 3 * Decimal("1")
    assert reconcile(world.db).ok


def test_unpaid_renewal_suspends_number_inbound_busy_outbound_falls_back_to_main_number(
    world: World,
) -> None:
    customer = world.customer(top_up="3.50")
    world.buy(customer.id, BOSTON)  # the main number: 0.50 + 1.00
    world.buy(customer.id, "+12125550100")  # 0.50 + 1.50: balance now 0
    world.top_up(customer.id, "1.00")  # pays Boston's renewal only
    _tick_to(world, _day(2027, 2, 28))
    main, new_york = numbers.list_numbers(world.db, customer.id)
    assert (main.status, new_york.status) == ("active", "suspended")
    route = numbers.route_number(world.db, new_york.number)
    assert (route.inbound, route.outbound_caller_id) == ("busy", BOSTON)
    types = [e.type for e in list_events(world.db, account_ids=[customer.id])]
    assert {"number.renewal_failed", "number.suspended", "number.renewed"} <= set(types)
    assert new_york.grace_until == _day(2027, 4, 28)
    assert world.inventory_status(new_york.number) == "suspended"


def _suspended_boston(world: World) -> int:
    customer = world.customer(top_up="1.50")
    world.buy(customer.id, BOSTON)
    _tick_to(world, _day(2027, 2, 28))
    assert numbers.list_numbers(world.db, customer.id)[0].status == "suspended"
    return customer.id


def test_suspended_number_renews_as_soon_as_a_top_up_covers_it_from_the_payment_date(
    world: World,
) -> None:
    customer_id = _suspended_boston(world)
    world.clock.set(_day(2027, 3, 10) + timedelta(hours=15))
    world.top_up(customer_id, 5)
    _tick_to(world, _day(2027, 3, 11))
    rental = numbers.list_numbers(world.db, customer_id)[0]
    assert (rental.status, rental.anchor_day) == ("active", 10)
    assert rental.paid_until == _day(2027, 4, 10)
    assert numbers.route_number(world.db, BOSTON).inbound == "accept"
    assert world.paid(customer_id) == Decimal("4")
    _tick_to(world, _day(2027, 3, 12))  # ticking again charges nothing more
    assert world.paid(customer_id) == Decimal("4")


def test_plan_setting_keeps_the_original_anniversary_after_a_late_payment(world: World) -> None:
    subscriptions.create_plan(
        world.db,
        world.provider.id,
        code="keep",
        name="Keep",
        monthly_fee=0,
        trial_number_days=0,
        keep_anniversary=True,
        clock=world.clock,
    )
    customer = world.customer(top_up="1.50")
    subscriptions.subscribe(world.db, customer.id, "keep", idempotency_key=key(), clock=world.clock)
    world.buy(customer.id, BOSTON)
    _tick_to(world, _day(2027, 2, 28))
    world.clock.set(_day(2027, 3, 10))
    world.top_up(customer.id, 5)
    _tick_to(world, _day(2027, 3, 11))
    rental = numbers.list_numbers(world.db, customer.id)[0]
    assert (rental.anchor_day, rental.paid_until) == (31, _day(2027, 3, 31))


def test_unpaid_number_is_released_when_grace_ends_then_returns_after_quarantine(
    world: World,
) -> None:
    customer_id = _suspended_boston(world)
    _tick_to(world, _day(2027, 4, 27))
    assert numbers.list_numbers(world.db, customer_id)[0].status == "suspended"
    _tick_to(world, _day(2027, 4, 28))
    assert numbers.list_numbers(world.db, customer_id) == []
    released = numbers.list_numbers(world.db, customer_id, include_released=True)[0]
    assert (released.release_reason, released.released_at) == ("unpaid", _day(2027, 4, 28))
    assert world.inventory_status(BOSTON) == "quarantined"
    _tick_to(world, _day(2027, 5, 28) - timedelta(seconds=1))
    assert world.inventory_status(BOSTON) == "quarantined"
    _tick_to(world, _day(2027, 5, 28))
    assert world.inventory_status(BOSTON) == "available"
    assert reconcile(world.db).ok


def test_number_released_on_request_is_quarantined_and_refused_inbound(world: World) -> None:
    customer = world.customer(top_up=10)
    world.buy(customer.id, BOSTON)
    numbers.release_number(world.db, customer.id, BOSTON, idempotency_key=key(), clock=world.clock)
    assert world.inventory_status(BOSTON) == "quarantined"
    assert numbers.route_number(world.db, BOSTON).inbound == "busy"
    assert world.paid(customer.id) == Decimal("8.5")


def test_number_without_traffic_for_the_provider_idle_days_is_released(world: World) -> None:
    world.set_policy(idle_release_days=20, quarantine_days=0)
    customer = world.customer(top_up=10)
    world.buy(customer.id, BOSTON)
    world.clock.advance(days=10)
    numbers.record_traffic(world.db, BOSTON, clock=world.clock)
    _tick_to(world, START + timedelta(days=29))
    assert numbers.list_numbers(world.db, customer.id)[0].status == "active"
    _tick_to(world, START + timedelta(days=30))
    assert numbers.list_numbers(world.db, customer.id) == []
    assert world.inventory_status(BOSTON) == "available"


def test_provider_grace_period_setting_changes_when_an_unpaid_number_is_released(
    world: World,
) -> None:
    world.set_policy(grace_months=1, quarantine_days=0)
    world.set_policy(grace_months=1, quarantine_days=5)  # a second call updates the first
    customer_id = _suspended_boston(world)
    rental = numbers.list_numbers(world.db, customer_id)[0]
    assert rental.grace_until == _day(2027, 3, 28)
    _tick_to(world, _day(2027, 3, 28))
    assert numbers.list_numbers(world.db, customer_id) == []
    assert world.inventory_status(BOSTON) == "quarantined"


def test_inbound_call_to_a_suspended_number_is_refused_as_number_suspended(world: World) -> None:
    customer_id = _suspended_boston(world)
    rows = [RateRow("1", "NANP inbound", Decimal("0.01"), direction=Direction.INBOUND)]
    import_tariff(
        world.db,
        "inbound",
        rows,
        TariffSettings(currency="USD"),
        now=world.clock.now() - timedelta(days=1),
    )
    plans.create_plan(world.db, "inbound", tariff="inbound", clock=world.clock)
    plans.assign_plan(world.db, customer_id, "inbound", clock=world.clock)

    def inbound_to(number: str) -> sessions.Authorization:
        return sessions.authorize(
            world.db, TariffCache(world.db), account_id=customer_id, to_number=number,
            direction="inbound", idempotency_key=key(), clock=world.clock,
        )  # fmt: skip

    refused = inbound_to(BOSTON)
    assert (refused.allowed, refused.reason) == (False, "number_suspended")
    other = inbound_to("+12125550199")  # not a number of ours: rated, not refused as suspended
    assert other.reason != "number_suspended"


def test_posted_calls_on_a_rented_number_count_as_traffic_for_idle_release(
    world: World, tmp_path: Path
) -> None:
    from telbill.adapters.formats.cdrs import read_cdr_file
    from telbill.services import charging

    world.set_policy(idle_release_days=20, quarantine_days=0)
    customer = world.customer(top_up=10)
    world.buy(customer.id, BOSTON)
    rows = [RateRow("1", "NANP", Decimal("0.01"))]
    import_tariff(world.db, "calls", rows, TariffSettings(currency="USD"),
                  now=world.clock.now() - timedelta(days=1))  # fmt: skip
    plans.create_plan(world.db, "calls", tariff="calls", clock=world.clock)
    plans.assign_plan(world.db, customer.id, "calls", clock=world.clock)
    world.clock.advance(days=10)
    at = world.clock.now()
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "id,account,direction,from,to,start,answer,end\n"
        f"c1,{customer.id},outbound,{BOSTON},+12125550199,{at.isoformat()},"
        f"{at.isoformat()},{(at + timedelta(seconds=30)).isoformat()}\n",
        encoding="utf-8",
    )
    summary = charging.post_cdrs(world.db, read_cdr_file(cdrs), clock=world.clock, source="t")
    assert summary.posted == 1
    _tick_to(world, START + timedelta(days=29))
    assert numbers.list_numbers(world.db, customer.id)[0].status == "active"
    _tick_to(world, START + timedelta(days=30))
    assert numbers.list_numbers(world.db, customer.id) == []
