"""Rate lookup: longest prefix, number types, effective dating, time bands."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rating_helpers import NOON, call, index_of, row

from telbill.domain.lookup import TariffIndex, compile_tariff, in_band, in_force, is_banded
from telbill.domain.rating import rate_event
from telbill.domain.tariffs import (
    Direction,
    NumberType,
    RateRow,
    Service,
    Tariff,
    TariffSettings,
)
from telbill.errors import InvalidInput, NoRate


def test_longest_prefix_wins() -> None:
    index = index_of(row("4", "9"), row("44", "1", "UK"), row("447", "2", "UK mobile"))
    assert index.lookup("447911123456", at=NOON).row.destination == "UK mobile"
    assert index.lookup("442079460000", at=NOON).row.destination == "UK"
    assert index.lookup("4900", at=NOON).row.prefix == "4"


def test_empty_prefix_matches_every_number() -> None:
    index = index_of(row("", "0.5", "rest of world"), row("44", "1"))
    assert index.lookup("33123", at=NOON).row.destination == "rest of world"


def test_rows_are_separate_per_service_and_direction() -> None:
    index = index_of(row("44", "1"), row("44", "2", service=Service.SMS),
                     row("44", "3", direction=Direction.INBOUND))
    assert index.lookup("44", service=Service.SMS, at=NOON).row.rate == 2
    assert index.lookup("44", direction=Direction.INBOUND, at=NOON).row.rate == 3
    with pytest.raises(NoRate):
        index.lookup("44", service=Service.MMS, at=NOON)


def test_requested_number_type_falls_back_to_any() -> None:
    index = index_of(row("44", "1"), row("447", "2", number_type=NumberType.MOBILE),
                     row("4420", "3", number_type=NumberType.LOCAL))
    assert index.lookup("4479", at=NOON, number_type=NumberType.MOBILE).row.rate == 2
    assert index.lookup("4420", at=NOON, number_type=NumberType.MOBILE).row.rate == 1
    assert index.lookup("4420", at=NOON).row.rate == 3  # no type asked: longest prefix


def test_event_is_priced_by_the_row_in_force_at_its_start() -> None:
    change = datetime(2026, 3, 1, tzinfo=UTC)
    index = index_of(row("44", "1", effective_to=change), row("44", "2", effective_from=change))
    assert index.lookup("44", at=change.replace(day=1, month=2)).row.rate == 1
    assert index.lookup("44", at=change).row.rate == 2  # half-open: the new rate from `change`


def test_longer_prefix_not_yet_in_force_falls_back_to_a_shorter_one() -> None:
    index = index_of(row("44", "1"), row("4420", "2", effective_from=datetime(2027, 1, 1,
                                                                           tzinfo=UTC)))
    assert index.lookup("442079", at=NOON).row.rate == 1


def test_peak_band_beats_the_unbanded_row_only_inside_its_hours() -> None:
    index = index_of(
        row("44", "1", "UK off-peak"),
        row("44", "2", "UK peak", weekdays=frozenset(range(1, 6)), hours=(time(8), time(19))),
    )
    assert index.lookup("44", at=NOON).row.destination == "UK peak"  # Wednesday noon
    assert index.lookup("44", at=NOON.replace(hour=19)).row.destination == "UK off-peak"
    saturday = datetime(2026, 3, 7, 12, tzinfo=UTC)
    assert index.lookup("44", at=saturday).row.destination == "UK off-peak"


def test_band_hours_may_wrap_midnight() -> None:
    index = index_of(row("44", "1", "day"), row("44", "2", "night", hours=(time(22), time(6))))
    assert index.lookup("44", at=NOON.replace(hour=23)).row.destination == "night"
    assert index.lookup("44", at=NOON.replace(hour=5, minute=59)).row.destination == "night"
    assert index.lookup("44", at=NOON.replace(hour=6)).row.destination == "day"


def test_bands_are_read_in_the_tariffs_timezone() -> None:
    index = index_of(row("1", "1", "off-peak"), row("1", "2", "peak", hours=(time(8), time(19))),
                     timezone="America/New_York")
    # 12:00 UTC is 08:00 in New York in summer (EDT), 07:00 in winter (EST)
    assert index.lookup("1", at=datetime(2026, 7, 1, 12, tzinfo=UTC)).row.destination == "peak"
    assert index.lookup("1", at=datetime(2026, 1, 7, 12, tzinfo=UTC)).row.destination == (
        "off-peak")


def test_banded_rate_applies_to_a_rated_call() -> None:
    index = index_of(row("44", "0.6"), row("44", "1.2", hours=(time(8), time(19))))
    assert rate_event(call("+442079460000", 60), index).total == Decimal("1.2")


def test_bad_tariffs_are_refused_when_compiled() -> None:
    with pytest.raises(InvalidInput, match="prefix"):
        index_of(row("44a", "1"))
    with pytest.raises(InvalidInput, match="timezone"):
        index_of(row("44", "1"), timezone="Mars/Olympus")
    with pytest.raises(InvalidInput, match="rounding"):
        compile_tariff(Tariff("t", TariffSettings("USD", rounding="nearest"), ()))
    with pytest.raises(InvalidInput, match="decimals"):
        index_of(row("44", "1"), decimals=8)
    with pytest.raises(InvalidInput, match="currency"):
        compile_tariff(Tariff("t", TariffSettings("XXX"), ()))
    with pytest.raises(InvalidInput, match="timezone-aware"):
        index_of(row("44", "1", effective_from=datetime(2026, 1, 1)))


def scan_oracle(index: TariffIndex, digits: str, at: datetime) -> RateRow | None:
    """The slow, obvious rule: of all voice/outbound rows in force and in band whose prefix
    starts the number, the longest prefix; then ANY type first, banded first, latest start,
    earliest in the file."""
    local = at.astimezone(index.zone)
    candidates = [
        (len(r.prefix), r.number_type is NumberType.ANY, is_banded(r),
         r.effective_from or datetime.min.replace(tzinfo=UTC), -position, r)
        for position, r in enumerate(index.tariff.rows)
        if r.service is Service.VOICE and r.direction is Direction.OUTBOUND
        and digits.startswith(r.prefix) and in_force(r, at) and in_band(r, local)
    ]
    return max(candidates, key=lambda c: c[:5])[5] if candidates else None


lookup_rows = st.builds(
    lambda prefix, rate, band, dated, kind: RateRow(
        prefix=prefix, destination=prefix, rate=Decimal(rate),
        hours=(time(8), time(19)) if band == "day" else (time(22), time(6)) if band else None,
        effective_from=datetime(2026, 3, 4, 12, tzinfo=UTC) if dated == "new" else None,
        effective_to=datetime(2026, 3, 4, 12, tzinfo=UTC) if dated == "old" else None,
        number_type=kind,
    ),
    st.sampled_from(["", "4", "44", "441", "4412", "45", "5"]),
    st.integers(0, 9).map(str),
    st.sampled_from([None, None, "day", "night"]),
    st.sampled_from([None, None, "new", "old"]),
    st.sampled_from([NumberType.ANY, NumberType.ANY, NumberType.MOBILE, NumberType.LOCAL]),
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(lookup_rows, max_size=10), number=st.sampled_from(
    ["4412345", "441", "4", "4599", "5", "6", "44"]),
    hour=st.integers(0, 23), minute=st.sampled_from([0, 59]))
def test_index_lookup_agrees_with_a_scan_of_every_row(
    rows: list[RateRow], number: str, hour: int, minute: int
) -> None:
    index = index_of(*rows, timezone="Europe/Paris")
    at = datetime(2026, 3, 4, hour, minute, tzinfo=UTC)
    found = index.find(number, at=at)
    expected = scan_oracle(index, number, at)
    assert (found.row if found else None) is expected
