"""Charging plans: fixed or relative prices, allowed call classes, affordable seconds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rating_helpers import call, index_of, row

from telbill.domain.increments import timed_cost
from telbill.domain.plans import CallClass, ChargingPlan, Pricing
from telbill.domain.rating import classify_call, max_affordable_call_seconds, rate_event
from telbill.domain.tariffs import Direction, Increment
from telbill.errors import CallClassNotAllowed, InvalidInput

CARRIER = index_of(row("44", "0.01", increment=Increment(1, 1)),
                   row("1", "0.0085", direction=Direction.INBOUND, increment=Increment(1, 1)))


def test_fixed_price_plan_charges_the_retail_tariff_as_is() -> None:
    plan = ChargingPlan("retail", tariff="retail")
    assert rate_event(call("+442079460000", 60), CARRIER, plan).total == Decimal("0.01")


def test_relative_plan_adds_its_markup_to_the_cost() -> None:
    plan = ChargingPlan("resale", "carrier", Pricing.RELATIVE, markup_percent=Decimal("25"))
    charge = rate_event(call("+442079460000", 60), CARRIER, plan).charges[0]
    assert charge.amount == Decimal("0.0125")
    assert charge.explanation.cost == Decimal("0.01")
    assert charge.explanation.markup_percent == Decimal("25")


def test_relative_plan_keeps_at_least_its_minimum_margin() -> None:
    plan = ChargingPlan("resale", "carrier", Pricing.RELATIVE, markup_percent=Decimal("10"),
                        min_margin=Decimal("0.005"))
    assert rate_event(call("+442079460000", 60), CARRIER, plan).total == Decimal("0.015")
    assert rate_event(call("+442079460000", 6000), CARRIER, plan).total == Decimal("0.66")


def test_markup_is_applied_before_the_single_rounding() -> None:
    index = index_of(row("44", "0.000001", increment=Increment(1, 1)), decimals=6)
    plan = ChargingPlan("resale", "carrier", Pricing.RELATIVE, markup_percent=Decimal("50"))
    # 30 s cost 0.0000005 exactly; x1.5 = 0.00000075 -> 0.000001 (rounding twice gives 0.000002)
    assert rate_event(call("+442079460000", 30), index, plan).total == Decimal("0.000001")


def test_free_call_stays_free_under_a_minimum_margin() -> None:
    plan = ChargingPlan("resale", "carrier", Pricing.RELATIVE, min_margin=Decimal("0.01"))
    assert rate_event(call("+442079460000", None), CARRIER, plan).total == 0


def test_refused_call_class_is_a_clear_error() -> None:
    plan = ChargingPlan("inbound only", "t", allowed_call_classes=frozenset({CallClass.INCOMING}))
    with pytest.raises(CallClassNotAllowed, match="public network"):
        rate_event(call("+442079460000", 60), CARRIER, plan)
    inbound = call("+14155552671", 60, direction=Direction.INBOUND)
    assert rate_event(inbound, CARRIER, plan).total == Decimal("0.0085")


def test_call_classes_are_derived_unless_the_switch_gives_one() -> None:
    assert classify_call(call("+442079460000", 1)) is CallClass.PUBLIC_NETWORK
    assert classify_call(call("2001", 1)) is CallClass.LOCAL_EXTENSION
    assert classify_call(call("+1415", 1, direction=Direction.INBOUND)) is CallClass.INCOMING
    given = call("+442079460000", 1, call_class="extended_local")
    assert classify_call(given) is CallClass.EXTENDED_LOCAL
    plan = ChargingPlan("no extended", "t",
                        allowed_call_classes=frozenset(set(CallClass) - {CallClass.EXTENDED_LOCAL}))
    with pytest.raises(CallClassNotAllowed):
        rate_event(given, CARRIER, plan)


def test_fixed_plan_refuses_a_markup() -> None:
    with pytest.raises(InvalidInput):
        ChargingPlan("p", "t", Pricing.FIXED, markup_percent=Decimal("5"))


def test_max_affordable_call_seconds_respects_the_plan_markup() -> None:
    plan = ChargingPlan("resale", "carrier", Pricing.RELATIVE, markup_percent=Decimal("100"))
    event = call("+442079460000", 0)
    # 0.01/min doubled = 0.02/min: 0.10 buys 300 s
    assert max_affordable_call_seconds(Decimal("0.10"), event, CARRIER, plan) == 300
    assert max_affordable_call_seconds(Decimal("0.10"), event, CARRIER) == 600
    price = CARRIER.price_of(CARRIER.lookup("44", at=event.start))
    assert timed_cost(600, price) <= Decimal("0.10") < timed_cost(601, price)
