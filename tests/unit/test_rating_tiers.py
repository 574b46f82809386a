"""Rate groups (CGRateS GroupIntervalStart), per-row rounding and the ``*any`` prefix in rating.

Expected costs are worked out by hand in each test from the rule in `domain/increments.py`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rating_helpers import NOON, call, index_of, row

from telbill.domain.increments import (
    TimedPrice,
    billed_groups,
    billed_seconds,
    max_affordable_seconds,
    timed_cost,
)
from telbill.domain.rating import explain_text, max_affordable_call_seconds, rate_event
from telbill.domain.tariffs import Increment, RateTier, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput
from telbill.services.quotes import charge_from_json, charge_to_json

PER_SECOND = Increment(1, 1)
MINUTE = Increment(60, 60)
# 0.09/min for the whole first minute, then 0.03/min by the second (CGRateS's classic retail
# pattern: RT,0,0.09,60s,60s,0s + RT,0,0.03,60s,1s,60s).
MOBILE_TIERS = (RateTier(60, Decimal("0.03"), PER_SECOND),)


def mobile_price(**kwargs: Any) -> TimedPrice:
    return TimedPrice(rate=Decimal("0.09"), increment=MINUTE, tiers=MOBILE_TIERS, **kwargs)


def test_cgrates_group_interval_start_prices_first_minute_then_per_second() -> None:
    price = mobile_price()
    # 95 s: 60 s x 0.09/60 = 0.09, then 35 s x 0.03/60 = 0.0175.
    assert timed_cost(95, price) == Decimal("0.1075")
    assert billed_seconds(95, price) == 95
    # 61 s: the first minute whole, then one second at 0.0005.
    assert timed_cost(61, price) == Decimal("0.0905")


def test_call_shorter_than_the_first_group_is_rounded_up_to_its_increment_only() -> None:
    price = mobile_price()
    assert billed_seconds(1, price) == 60
    assert timed_cost(1, price) == Decimal("0.09")
    assert timed_cost(60, price) == Decimal("0.09")  # ends exactly at the tier: nothing after


def test_each_group_is_rounded_up_to_its_own_increment() -> None:
    # 0.06/min by the second for 30 s, then 0.12/min by the started minute.
    price = TimedPrice(rate=Decimal("0.06"), increment=PER_SECOND,
                       tiers=(RateTier(30, Decimal("0.12"), MINUTE),))
    # 31 s: 30 s x 0.06/60 = 0.03, then 1 s rounded up to 60 s x 0.12/60 = 0.12.
    assert billed_seconds(31, price) == 90
    assert [(g.start_s, g.billed_s) for g in billed_groups(31, price)] == [(0, 30), (30, 60)]
    assert timed_cost(31, price) == Decimal("0.15")


def test_three_groups_each_priced_at_its_own_rate() -> None:
    price = TimedPrice(rate=Decimal("0.6"), increment=MINUTE, tiers=(
        RateTier(60, Decimal("0.3"), Increment(6, 6)),
        RateTier(120, Decimal("0.06"), PER_SECOND),
    ))
    # 200 s: 60 s x 0.6/60 = 0.6, 60 s x 0.3/60 = 0.3, 80 s x 0.06/60 = 0.08.
    assert timed_cost(200, price) == Decimal("0.98")
    # 100 s: 0.6 + 40 s (on 6 s blocks: 42 s) x 0.3/60 = 0.21.
    assert timed_cost(100, price) == Decimal("0.81")


def test_free_seconds_come_off_before_the_tiers_are_cut() -> None:
    price = mobile_price(free_seconds=10)
    # 70 s - 10 free = 60 chargeable seconds: all in the first group.
    assert timed_cost(70, price) == Decimal("0.09")
    # 80 s - 10 = 70: first minute + 10 s x 0.0005.
    assert timed_cost(80, price) == Decimal("0.095")


def test_maximum_call_length_caps_the_time_before_the_tiers() -> None:
    price = mobile_price(max_call_s=100)
    # capped at 100 s: 0.09 + 40 s x 0.0005 = 0.11, however long the call.
    assert timed_cost(5000, price) == timed_cost(100, price) == Decimal("0.11")


def test_minimum_seconds_extend_the_billed_time_into_the_next_group() -> None:
    price = mobile_price(min_seconds=90)
    # 10 s bills the first minute, then the minimum adds 30 s priced by the group they fall in.
    assert billed_seconds(10, price) == 90
    assert timed_cost(10, price) == Decimal("0.09") + Decimal("0.015")


def test_connect_fee_is_added_once_to_a_tiered_call() -> None:
    price = mobile_price(connect_fee=Decimal("0.05"))
    assert timed_cost(95, price) == Decimal("0.1575")


def test_tiered_cost_is_rounded_once_not_per_group() -> None:
    # 120 s: 60 s x 0.0125/60 + 60 s x 0.0125/60 = 0.025, rounded once half-up to cents: 0.03
    # (rounding each group first would give 0.01 + 0.01 = 0.02).
    price = TimedPrice(rate=Decimal("0.0125"), increment=PER_SECOND,
                       tiers=(RateTier(60, Decimal("0.0125"), MINUTE),), decimals=2)
    assert timed_cost(120, price) == Decimal("0.03")


def test_splitting_a_rate_into_groups_of_the_same_price_changes_nothing() -> None:
    plain = TimedPrice(rate=Decimal("0.013"), increment=Increment(30, 6))
    split = TimedPrice(rate=Decimal("0.013"), increment=Increment(30, 6),
                       tiers=(RateTier(36, Decimal("0.013"), Increment(6, 6)),))
    for seconds in (0, 1, 30, 31, 36, 37, 61, 3599, 3600, 4000):
        assert timed_cost(seconds, split) == timed_cost(seconds, plain)
        assert billed_seconds(seconds, split) == billed_seconds(seconds, plain)


def test_a_tier_that_does_not_start_on_a_whole_increment_is_refused() -> None:
    with pytest.raises(InvalidInput, match="whole number of its increment"):
        TimedPrice(rate=Decimal("0.09"), increment=MINUTE,
                   tiers=(RateTier(30, Decimal("0.03"), PER_SECOND),))
    with pytest.raises(InvalidInput, match="row 1"):
        index_of(row("49", "0.09", increment=MINUTE,
                     tiers=(RateTier(90, Decimal("0.03"), PER_SECOND),)))


def test_tiers_out_of_order_or_negative_are_refused() -> None:
    with pytest.raises(InvalidInput, match="increasing order"):
        TimedPrice(rate=Decimal("0.09"), increment=PER_SECOND, tiers=(
            RateTier(120, Decimal("0.03"), PER_SECOND), RateTier(60, Decimal("0.01"), PER_SECOND)
        ))
    with pytest.raises(InvalidInput, match="non-negative"):
        TimedPrice(rate=Decimal("0.09"), increment=PER_SECOND,
                   tiers=(RateTier(60, Decimal("-0.01"), PER_SECOND),))


def test_a_tier_uses_the_tariffs_default_increment_for_its_first_group() -> None:
    # The row has no increment: the tariff's 60/60 makes a tier at 60 s aligned...
    index = index_of(row("49", "0.09", tiers=MOBILE_TIERS))
    assert rate_event(call("+4915112345678", 95), index).total == Decimal("0.1075")
    # ...and one at 30 s not.
    with pytest.raises(InvalidInput, match="row 1"):
        index_of(row("49", "0.09", tiers=(RateTier(30, Decimal("0.03"), PER_SECOND),)))


def test_rate_event_prices_a_tiered_row_and_reports_its_billed_seconds() -> None:
    index = index_of(row("4915", "0.09", increment=MINUTE, tiers=MOBILE_TIERS),
                     row("49", "0.012", increment=MINUTE))
    (charge,) = rate_event(call("+4915112345678", 95), index).charges
    assert charge.amount == Decimal("0.1075")
    assert charge.billed_units == 95
    (landline,) = rate_event(call("+493012345678", 95), index).charges
    assert landline.amount == Decimal("0.024")  # untiered row: 120 s x 0.012/60


def test_explanation_shows_each_groups_seconds_and_rate() -> None:
    index = index_of(row("4915", "0.09", increment=MINUTE, tiers=MOBILE_TIERS))
    (charge,) = rate_event(call("+4915112345678", 95), index).charges
    groups = charge.explanation.groups
    assert [(g.start_s, g.billed_s, g.rate) for g in groups] == [
        (0, 60, Decimal("0.09")), (60, 35, Decimal("0.03"))
    ]
    text = explain_text(charge)
    assert "rate group from 0 s: 60 s at 0.09 per minute (increment 60/60)" in text
    assert "rate group from 60 s: 35 s at 0.03 per minute (increment 1/1)" in text
    assert "cost = (0.09 x 60 + 0.03 x 35) / 60 + 0 = 0.1075" in text


def test_stored_tiered_explanation_renders_like_the_live_one() -> None:
    index = index_of(row("4915", "0.09", increment=MINUTE, tiers=MOBILE_TIERS))
    (charge,) = rate_event(call("+4915112345678", 95), index).charges
    stored = charge_from_json(json.loads(json.dumps(charge_to_json(charge))))
    assert stored == charge
    assert explain_text(stored) == explain_text(charge)
    bad = charge_to_json(charge)
    bad["explanation"]["groups"] = [{"start_s": 0}]
    with pytest.raises(InvalidInput):
        charge_from_json(bad)


def test_untiered_explanation_has_no_groups() -> None:
    index = index_of(row("49", "0.012", increment=MINUTE))
    (charge,) = rate_event(call("+493012345678", 61), index).charges
    assert charge.explanation.groups == ()
    assert "cost = 0.012 x 120 / 60 + 0 = 0.024" in explain_text(charge)


def test_row_decimals_and_rounding_override_the_tariffs() -> None:
    index = index_of(
        row("44", "0.013", increment=PER_SECOND, decimals=2, rounding="ROUND_UP"),
        row("33", "0.013", increment=PER_SECOND),
        decimals=6, rounding="ROUND_HALF_UP",
    )
    # 61 s x 0.013/60 = 0.0132166...: the 44 row rounds up to 2 decimals, the 33 row keeps
    # the tariff's 6 decimals half-up.
    (uk,) = rate_event(call("+442071234567", 61), index).charges
    (fr,) = rate_event(call("+33123456789", 61), index).charges
    assert uk.amount == Decimal("0.02")
    assert (uk.explanation.decimals, uk.explanation.rounding) == (2, "ROUND_UP")
    assert fr.amount == Decimal("0.013217")
    assert "rounded once to 2 decimals (ROUND_UP): 0.02" in explain_text(uk)


def test_row_rounding_accepts_the_short_mode_names() -> None:
    index = index_of(row("44", "0.013", increment=PER_SECOND, decimals=4, rounding="down"))
    assert rate_event(call("+442071234567", 61), index).total == Decimal("0.0132")


def test_row_with_bad_decimals_or_rounding_is_refused() -> None:
    with pytest.raises(InvalidInput, match="row 1: decimals"):
        index_of(row("44", "0.013", decimals=7))
    with pytest.raises(InvalidInput, match="row 1: unknown rounding"):
        index_of(row("44", "0.013", rounding="*up"))


def test_row_rounding_applies_to_sms_too() -> None:
    index = index_of(
        row("44", "0.00755", service=Service.SMS, decimals=3, rounding="ROUND_UP"), decimals=6
    )
    event = UsageEvent(id="m1", account="acme", to_number="+447911123456", start=NOON,
                       service=Service.SMS, text="hello")
    assert rate_event(event, index).total == Decimal("0.008")


def test_authorisation_uses_the_rows_rounding_and_tiers() -> None:
    index = index_of(row("4915", "0.09", increment=MINUTE, tiers=MOBILE_TIERS, decimals=2,
                         rounding="ROUND_UP"))
    # 0.12 affords the first minute (0.09) and 0.03 more: at 0.0005/s rounded up to cents,
    # 60 + 40 s = 0.11, 60 + 41 s = 0.1105 -> 0.12, ... 60 + 60 s = 0.12, 121 s -> 0.13.
    event = call("+4915112345678", None)
    assert max_affordable_call_seconds(Decimal("0.12"), event, index) == 120


def test_any_destination_matches_every_number_at_lowest_priority() -> None:
    index = index_of(row("", "0.005", destination="*any"), row("44", "0.013"))
    assert index.lookup("447911123456", at=NOON).row.prefix == "44"
    assert index.lookup("33123456789", at=NOON).row.prefix == ""
    assert index.lookup("1", at=NOON).row.prefix == ""
    (charge,) = rate_event(call("+33123456789", 60), index).charges
    assert charge.amount == Decimal("0.005")
    assert "matched prefix (any) -> *any" in explain_text(charge)


prices_per_minute = st.decimals(min_value=0, max_value=2, places=4)
increments = st.sampled_from([PER_SECOND, Increment(6, 6), Increment(30, 6), MINUTE,
                              Increment(60, 1)])


@st.composite
def tiered_prices(draw: st.DrawFn) -> TimedPrice:
    increment = draw(increments)
    tiers: list[RateTier] = []
    start, group = 0, increment
    for _ in range(draw(st.integers(0, 3))):
        start += group.first_s + draw(st.integers(0, 5)) * group.next_s
        group = draw(increments)
        tiers.append(RateTier(start, draw(prices_per_minute), group))
    return TimedPrice(
        rate=draw(prices_per_minute),
        connect_fee=draw(st.sampled_from([Decimal(0), Decimal("0.05")])),
        increment=increment,
        free_seconds=draw(st.sampled_from([0, 0, 5])),
        min_seconds=draw(st.sampled_from([0, 0, 45, 200])),
        max_call_s=draw(st.sampled_from([600, 3600])),
        decimals=draw(st.integers(0, 6)),
        rounding=draw(st.sampled_from(["ROUND_HALF_UP", "ROUND_UP", "ROUND_DOWN"])),
        tiers=tuple(tiers),
    )


@settings(max_examples=150, deadline=None)
@given(price=tiered_prices(), seconds=st.integers(0, 4000), more=st.integers(1, 400))
def test_tiered_cost_and_billed_seconds_never_fall_as_the_call_gets_longer(
    price: TimedPrice, seconds: int, more: int
) -> None:
    assert billed_seconds(seconds + more, price) >= billed_seconds(seconds, price)
    assert timed_cost(seconds + more, price) >= timed_cost(seconds, price)


@settings(max_examples=150, deadline=None)
@given(price=tiered_prices(), seconds=st.integers(1, 4000))
def test_tiered_groups_add_up_to_the_billed_seconds(price: TimedPrice, seconds: int) -> None:
    groups = billed_groups(seconds, price)
    assert sum(g.billed_s for g in groups) == billed_seconds(seconds, price)
    assert all(g.billed_s > 0 for g in groups)


@settings(max_examples=100, deadline=None)
@given(price=tiered_prices(), available=st.decimals(min_value=0, max_value=20, places=3))
def test_affordable_seconds_with_tiers_is_the_longest_call_within_the_amount(
    price: TimedPrice, available: Decimal
) -> None:
    seconds = max_affordable_seconds(available, price)
    assert 0 <= seconds <= price.max_call_s
    if seconds > 0:
        assert timed_cost(seconds, price) <= available
    if seconds < price.max_call_s:
        assert timed_cost(seconds + 1, price) > available
