"""Billing increments, cost arithmetic and the maximum affordable call length."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.domain.increments import (
    TimedPrice,
    billed_seconds,
    max_affordable_seconds,
    timed_cost,
    validate_rounding,
)
from telbill.domain.tariffs import Increment
from telbill.errors import InvalidInput


def price(rate: str, increment: str = "60/60", **kwargs: object) -> TimedPrice:
    return TimedPrice(rate=Decimal(rate), increment=Increment.parse(increment), **kwargs)  # type: ignore[arg-type]


def test_call_of_61_seconds_at_0_013_on_60_60_costs_0_026() -> None:
    assert billed_seconds(61, price("0.013")) == 120
    assert timed_cost(61, price("0.013")) == Decimal("0.026")


def test_call_of_83_seconds_at_0_06_per_second_costs_0_083() -> None:
    assert timed_cost(83, price("0.06", "1/1")) == Decimal("0.083")


def test_call_of_31_seconds_on_15_15_bills_45_seconds() -> None:
    assert billed_seconds(31, price("1", "15/15")) == 45


def test_30_6_increment_bills_first_30_then_every_started_6() -> None:
    p = price("1", "30/6")
    assert [billed_seconds(s, p) for s in (1, 30, 31, 36, 37)] == [30, 30, 36, 36, 42]


def test_zero_second_call_bills_nothing_not_even_the_connect_fee() -> None:
    p = price("0.10", connect_fee=Decimal("0.05"))
    assert billed_seconds(0, p) == 0
    assert timed_cost(0, p) == Decimal("0")


def test_connect_fee_is_charged_once() -> None:
    p = price("0.60", "1/1", connect_fee=Decimal("0.05"))
    assert timed_cost(10, p) == Decimal("0.15")


def test_duration_is_capped_at_the_maximum_call_length() -> None:
    p = price("1", "1/1", max_call_s=3600)
    assert billed_seconds(7200, p) == 3600


def test_free_seconds_come_off_before_increments() -> None:
    p = price("1", "60/60", free_seconds=10)
    assert billed_seconds(70, p) == 60
    assert billed_seconds(71, p) == 120


def test_call_inside_free_seconds_is_free_but_pays_the_connect_fee() -> None:
    p = price("1", "60/60", free_seconds=30, connect_fee=Decimal("0.02"), min_seconds=60)
    assert billed_seconds(30, p) == 0
    assert timed_cost(30, p) == Decimal("0.02")


def test_min_seconds_apply_after_increments() -> None:
    p = price("0.60", "1/1", min_seconds=30)
    assert billed_seconds(5, p) == 30
    assert billed_seconds(45, p) == 45
    assert billed_seconds(5, price("1", "1/1", free_seconds=3, min_seconds=30)) == 30


def test_cost_is_rounded_once_with_the_tariffs_mode() -> None:
    # 1 s at 0.00003/min = 0.0000005 exactly: a tie at 6 decimals.
    assert timed_cost(1, price("0.00003", "1/1")) == Decimal("0.000001")
    assert timed_cost(1, price("0.00003", "1/1", rounding="ROUND_HALF_EVEN")) == Decimal("0")
    assert timed_cost(61, price("0.013", decimals=2, rounding="ROUND_UP")) == Decimal("0.03")


def test_rounding_mode_names_are_validated() -> None:
    assert validate_rounding("half_even") == "ROUND_HALF_EVEN"
    with pytest.raises(InvalidInput):
        validate_rounding("bankers")


rates = st.decimals(min_value=Decimal("0"), max_value=Decimal("5"), places=5)
increments = st.sampled_from(["60/60", "1/1", "6/6", "15/15", "30/6", "60/1"])


@given(
    rate=rates,
    increment=increments,
    duration=st.integers(0, 4000),
    free=st.integers(0, 90),
    minimum=st.integers(0, 120),
)
def test_cost_is_monotonic_in_duration(
    rate: Decimal, increment: str, duration: int, free: int, minimum: int
) -> None:
    p = price(str(rate), increment, free_seconds=free, min_seconds=minimum)
    assert billed_seconds(duration, p) <= billed_seconds(duration + 1, p)
    assert timed_cost(duration, p) <= timed_cost(duration + 1, p)


@given(
    available=st.decimals(min_value=Decimal("0"), max_value=Decimal("20"), places=6),
    rate=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("2"), places=4),
    increment=increments,
    connect=st.decimals(min_value=Decimal("0"), max_value=Decimal("0.5"), places=3),
    cap=st.integers(1, 7200),
    free=st.sampled_from([0, 0, 10, 60]),
    minimum=st.sampled_from([0, 0, 30, 120]),
)
def test_max_affordable_seconds_is_the_longest_call_the_money_covers(
    available: Decimal, rate: Decimal, increment: str, connect: Decimal, cap: int, free: int,
    minimum: int,
) -> None:
    p = price(str(rate), increment, connect_fee=connect, max_call_s=cap, free_seconds=free,
              min_seconds=minimum)
    longest = max_affordable_seconds(available, p)
    assert 0 <= longest <= cap
    assert timed_cost(longest, p) <= available
    if longest < cap:
        assert timed_cost(longest + 1, p) > available


def test_max_affordable_seconds_on_60_60_stops_at_whole_minutes_paid() -> None:
    # 0.10 buys 5 started minutes at 0.02/min on 60/60: 300 s.
    assert max_affordable_seconds(Decimal("0.10"), price("0.02")) == 300
    assert max_affordable_seconds(Decimal("0.01"), price("0.02")) == 0


def test_a_rows_price_takes_the_tariffs_default_increment_and_settings() -> None:
    from telbill.domain.tariffs import RateRow, TariffSettings

    settings = TariffSettings("USD", default_increment=Increment(30, 6), max_call_s=600,
                              decimals=4, rounding="half_even")
    p = TimedPrice.for_row(RateRow("44", "UK", Decimal("0.6"), free_seconds=3), settings)
    assert (str(p.increment), p.max_call_s, p.decimals, p.rounding) == (
        "30/6", 600, 4, "ROUND_HALF_EVEN")
    assert billed_seconds(40, p) == 42
