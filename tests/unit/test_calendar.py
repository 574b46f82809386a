"""Billing calendar: anniversaries from the original day, periods, proration, grace, trial."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telbill.domain.calendar import (
    add_months,
    days_in_month,
    grace_end,
    local_midnight,
    next_anniversary,
    period_containing,
    period_from,
    prorate,
    trial_end,
)
from telbill.errors import InvalidInput


def _renewals(bought: date, count: int) -> list[date]:
    dates, current = [], bought
    for _ in range(count):
        current = next_anniversary(bought.day, current)
        dates.append(current)
    return dates


def test_number_bought_on_31st_renews_on_last_day_of_february_then_back_to_31st() -> None:
    assert _renewals(date(2027, 1, 31), 4) == [
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
        date(2027, 5, 31),
    ]


def test_number_bought_on_31st_january_of_a_leap_year_renews_on_29th_february() -> None:
    assert _renewals(date(2028, 1, 31), 2) == [date(2028, 2, 29), date(2028, 3, 31)]


def test_number_bought_on_30th_december_crosses_the_year() -> None:
    assert _renewals(date(2026, 12, 30), 3) == [
        date(2027, 1, 30),
        date(2027, 2, 28),
        date(2027, 3, 30),
    ]


# No deadline: a loaded CI machine must not turn a slow example into a failure.
@settings(deadline=None)
@given(
    bought=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
    count=st.integers(min_value=1, max_value=40),
)
def test_renewal_day_is_always_the_original_day_clamped_to_month_length(
    bought: date, count: int
) -> None:
    renewals = _renewals(bought, count)
    year, month = bought.year, bought.month
    for renewal in renewals:
        month += 1
        if month == 13:
            year, month = year + 1, 1
        assert (renewal.year, renewal.month) == (year, month)
        assert renewal.day == min(bought.day, days_in_month(year, month))


# No deadline: a loaded CI machine must not turn a slow example into a failure.
@settings(deadline=None)
@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
    months=st.integers(min_value=-50, max_value=50),
)
def test_add_months_keeps_the_day_or_clamps_to_month_end(start: date, months: int) -> None:
    moved = add_months(start, months)
    assert moved.day == min(start.day, days_in_month(moved.year, moved.month))
    assert (moved.year * 12 + moved.month) - (start.year * 12 + start.month) == months


def test_billing_period_starts_at_local_midnight_of_the_account_timezone() -> None:
    period = period_from(date(2026, 3, 15), 15, "America/New_York")
    assert period.start == datetime(2026, 3, 15, 4, 0, tzinfo=UTC)  # EDT, UTC-4
    assert period.end == datetime(2026, 4, 15, 4, 0, tzinfo=UTC)
    assert period.days == 31


def test_period_containing_a_moment_uses_the_local_date() -> None:
    # 02:00 UTC on the 15th is still the 14th in New York: the previous period.
    period = period_containing(15, datetime(2026, 3, 15, 2, 0, tzinfo=UTC), "America/New_York")
    assert (period.first_day, period.end_day) == (date(2026, 2, 15), date(2026, 3, 15))


def test_proration_charges_remaining_days_over_period_days_rounded_half_up_to_micros() -> None:
    period = period_from(date(2026, 4, 1), 1, "UTC")  # 30 days
    assert prorate(Decimal("10"), period, date(2026, 4, 11)) == Decimal("6.666667")
    assert prorate(Decimal("10"), period, date(2026, 4, 1)) == Decimal("10.000000")
    assert prorate(Decimal("10"), period, date(2026, 5, 1)) == Decimal("0.000000")


# No deadline: a loaded CI machine must not turn a slow example into a failure.
@settings(deadline=None)
@given(
    fee=st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False),
    offset=st.integers(min_value=0, max_value=31),
)
def test_proration_never_exceeds_the_fee_and_is_exact_to_a_micro(fee: Decimal, offset: int) -> None:
    period = period_from(date(2026, 1, 31), 31, "UTC")
    day = min(period.end_day, date.fromordinal(period.first_day.toordinal() + offset))
    share = prorate(fee, period, day)
    assert Decimal(0) <= share <= fee
    assert share == share.quantize(Decimal("0.000001"))
    exact = fee * (period.end_day - day).days / period.days
    assert abs(share - exact) <= Decimal("0.0000005")


def test_proration_refuses_a_day_outside_the_period() -> None:
    period = period_from(date(2026, 4, 1), 1, "UTC")
    with pytest.raises(InvalidInput):
        prorate(Decimal("10"), period, date(2026, 5, 2))


def test_grace_period_is_two_months_by_default_clamped_to_month_end() -> None:
    assert grace_end(date(2026, 12, 31), "UTC") == datetime(2027, 2, 28, tzinfo=UTC)
    assert grace_end(date(2026, 3, 10), "UTC", months=1) == datetime(2026, 4, 10, tzinfo=UTC)


def test_trial_is_seven_days_by_default_ending_at_local_midnight() -> None:
    assert trial_end(date(2026, 3, 1), "Europe/Paris") == local_midnight(
        date(2026, 3, 8), "Europe/Paris"
    )
    assert trial_end(date(2026, 3, 1), "UTC", days=14) == datetime(2026, 3, 15, tzinfo=UTC)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(InvalidInput):
        local_midnight(date(2026, 1, 1), "Mars/Olympus")
