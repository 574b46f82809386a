"""Billing calendar: anniversary dates, billing periods, proration, grace and trial ends.

Pure: dates and aware datetimes in, dates and aware datetimes out; no clock read.

Rules:

* **Anniversary.** Something bought on day D of a month renews on day D of every later
  month; where that month is shorter, on its last day, and back to D the month after
  (bought 31 Jan -> 28/29 Feb -> 31 Mar -> 30 Apr). The renewal date is always computed
  from the ORIGINAL day (the `anchor_day`), never from the previous renewal date.
* **Billing period.** A period runs from local midnight of one anniversary date to local
  midnight of the next, in the account's timezone, stored as UTC instants.
* **Proration.** A monthly fee for part of a period is ``fee * days_left / days_in_period``
  (whole local days, the change day counted as used from its start), rounded ONCE, half-up,
  to micro-units (0.000001), the storage precision of money.
* **Grace end.** Two calendar months (by default) after the date a renewal failed, same
  clamping as anniversaries, at local midnight. **Trial end**: 7 days (by default) after the
  local start date, at local midnight.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from zoneinfo import ZoneInfo

from telbill.domain.money import DECIMAL_CONTEXT
from telbill.errors import InvalidInput

MICRO = Decimal("0.000001")
DEFAULT_GRACE_MONTHS = 2
DEFAULT_TRIAL_DAYS = 7


def days_in_month(year: int, month: int) -> int:
    return _calendar.monthrange(year, month)[1]


def _check_anchor(anchor_day: int) -> None:
    if not 1 <= anchor_day <= 31:
        raise InvalidInput(f"anchor day must be between 1 and 31, got {anchor_day}")


def _shift_month(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def anniversary_in(anchor_day: int, year: int, month: int) -> date:
    """The anniversary of `anchor_day` in that month: the day, or the month's last day."""
    _check_anchor(anchor_day)
    return date(year, month, min(anchor_day, days_in_month(year, month)))


def add_months(start: date, months: int, *, anchor_day: int | None = None) -> date:
    """`start` moved by `months` calendar months, on `anchor_day` (default: start's day)."""
    year, month = _shift_month(start.year, start.month, months)
    return anniversary_in(anchor_day or start.day, year, month)


def next_anniversary(anchor_day: int, after: date) -> date:
    """The first anniversary of `anchor_day` strictly after `after`."""
    candidate = anniversary_in(anchor_day, after.year, after.month)
    if candidate > after:
        return candidate
    return add_months(after, 1, anchor_day=anchor_day)


def zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"unknown timezone {timezone!r}") from exc


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar date of an aware instant in `timezone`."""
    if moment.tzinfo is None:
        raise InvalidInput(f"naive datetime {moment!r}: expected an aware instant")
    return moment.astimezone(zone(timezone)).date()


def local_midnight(day: date, timezone: str) -> datetime:
    """The UTC instant at which `day` starts in `timezone`."""
    return datetime.combine(day, time(0), tzinfo=zone(timezone)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """[start, end) as UTC instants; `first_day`/`end_day` are the local dates."""

    first_day: date
    end_day: date
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.end_day - self.first_day).days


def period_from(first_day: date, anchor_day: int, timezone: str) -> BillingPeriod:
    """The period starting on local date `first_day` and ending at the next anniversary."""
    end_day = next_anniversary(anchor_day, first_day)
    return BillingPeriod(
        first_day=first_day,
        end_day=end_day,
        start=local_midnight(first_day, timezone),
        end=local_midnight(end_day, timezone),
    )


def period_containing(anchor_day: int, moment: datetime, timezone: str) -> BillingPeriod:
    """The anniversary period of `anchor_day` that contains `moment` (local dates)."""
    today = local_date(moment, timezone)
    this_month = anniversary_in(anchor_day, today.year, today.month)
    first = this_month if this_month <= today else add_months(today, -1, anchor_day=anchor_day)
    return period_from(first, anchor_day, timezone)


def prorate(fee: Decimal, period: BillingPeriod, from_day: date) -> Decimal:
    """The share of a monthly `fee` for local days `from_day`..end of `period`.

    ``fee * days_left / period.days``, half-up to micro-units. A day outside the period
    is refused; from the first day the whole fee is due, from the end day nothing.
    """
    if not period.first_day <= from_day <= period.end_day:
        raise InvalidInput(f"{from_day} is outside the period {period.first_day}..{period.end_day}")
    days_left = (period.end_day - from_day).days
    with localcontext(DECIMAL_CONTEXT):
        share = fee * days_left / period.days
        return share.quantize(MICRO, rounding=ROUND_HALF_UP)


def grace_end(failed_on: date, timezone: str, *, months: int = DEFAULT_GRACE_MONTHS) -> datetime:
    """When the grace period of a renewal that failed on local date `failed_on` ends."""
    if months < 0:
        raise InvalidInput(f"grace months must not be negative, got {months}")
    return local_midnight(add_months(failed_on, months), timezone)


def trial_end(started_on: date, timezone: str, *, days: int = DEFAULT_TRIAL_DAYS) -> datetime:
    """When a trial that started on local date `started_on` ends (local midnight)."""
    if days < 0:
        raise InvalidInput(f"trial days must not be negative, got {days}")
    return local_midnight(started_on + timedelta(days=days), timezone)


__all__ = [
    "DEFAULT_GRACE_MONTHS",
    "DEFAULT_TRIAL_DAYS",
    "BillingPeriod",
    "add_months",
    "anniversary_in",
    "days_in_month",
    "grace_end",
    "local_date",
    "local_midnight",
    "next_anniversary",
    "period_containing",
    "period_from",
    "prorate",
    "trial_end",
    "zone",
]
