"""Report months: consecutive months of a timezone tile time without gaps or overlaps."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.errors import InvalidInput
from telbill.services.reports import month_bounds

ZONES = ["UTC", "Asia/Tokyo", "America/New_York", "Europe/London", "Pacific/Chatham"]


@given(
    moment=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30),
                        timezones=st.just(UTC)),
    zone=st.sampled_from(ZONES),
)  # fmt: skip
def test_every_instant_falls_in_the_month_of_its_local_date(moment: datetime, zone: str) -> None:
    local = moment.astimezone(ZoneInfo(zone))
    start, end = month_bounds(f"{local.year:04d}-{local.month:02d}", zone)
    assert start <= moment < end
    next_local = end.astimezone(ZoneInfo(zone))
    following = f"{next_local.year:04d}-{next_local.month:02d}"
    assert month_bounds(following, zone)[0] == end


@pytest.mark.parametrize("month", ["2026-3", "2026-13", "2026-00", "March", ""])
def test_a_month_not_written_yyyy_mm_is_refused(month: str) -> None:
    with pytest.raises(InvalidInput):
        month_bounds(month, "UTC")
