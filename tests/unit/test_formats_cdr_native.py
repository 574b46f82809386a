"""Native CDR CSV reader: one event or one error per row, line numbers, UTC times."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.adapters.formats.cdr_common import CdrRowError
from telbill.adapters.formats.cdr_native import read_native_cdrs
from telbill.domain.tariffs import Direction, RowError, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput

HEADER = "id,account,user,direction,from,to,start,answer,end,service,text\n"


def read(text: str, **options: object) -> list[UsageEvent | RowError]:
    return list(read_native_cdrs(io.StringIO(text, newline=""), **options))  # type: ignore[arg-type]


def test_answered_call_keeps_its_times_in_utc() -> None:
    (event,) = read(
        HEADER + "c1,acme,alice,outbound,+3314,+4420,2026-01-05T10:00:00Z,"
        "2026-01-05T10:00:05Z,2026-01-05T10:01:06Z,voice,\n"
    )
    assert isinstance(event, UsageEvent)
    assert event.id == "c1" and event.account == "acme" and event.user == "alice"
    assert event.to_number == "+4420" and event.from_number == "+3314"
    assert event.answer == datetime(2026, 1, 5, 10, 0, 5, tzinfo=UTC)
    assert event.end == datetime(2026, 1, 5, 10, 1, 6, tzinfo=UTC)
    assert event.line == 2
    assert event.raw["to"] == "+4420"


def test_offset_times_are_converted_to_utc_and_naive_times_are_utc() -> None:
    (event,) = read(
        HEADER + "c1,acme,,,,+4420,2026-01-05T12:00:00+02:00,2026-01-05 10:00:10,"
        "2026-01-05T10:00:20,,\n"
    )
    assert isinstance(event, UsageEvent)
    assert event.start == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert event.answer == datetime(2026, 1, 5, 10, 0, 10, tzinfo=UTC)


def test_naive_times_use_the_given_timezone() -> None:
    (event,) = read(
        HEADER + "c1,acme,,,,+4420,2026-07-05T12:00:00,,2026-07-05T12:00:20,,\n",
        timezone="Europe/Paris",
    )
    assert isinstance(event, UsageEvent)
    assert event.start == datetime(2026, 7, 5, 10, 0, tzinfo=UTC)


def test_blank_answer_is_an_unanswered_call() -> None:
    (event,) = read(HEADER + "c1,acme,,,,+4420,2026-01-05T10:00:00Z,,2026-01-05T10:00:30Z,,\n")
    assert isinstance(event, UsageEvent)
    assert event.answer is None


def test_duration_column_bills_seconds_from_answer() -> None:
    text = "id,account,to,start,answer,duration\nc1,acme,+4420,2026-01-05T10:00:00Z,,61\n"
    (event,) = read(text)
    assert isinstance(event, UsageEvent)
    assert event.duration_s == 61
    assert event.answer == event.start
    assert event.end is not None and (event.end - event.start).total_seconds() == 61


def test_zero_duration_without_answer_is_unanswered() -> None:
    (event,) = read("id,to,start,duration\nc1,+4420,2026-01-05T10:00:00Z,0\n")
    assert isinstance(event, UsageEvent)
    assert event.answer is None


def test_inbound_sms_with_text_keeps_the_text_verbatim() -> None:
    (event,) = read(HEADER + 'm1,acme,,inbound,+4420,+3314,2026-01-05T10:00:00Z,,,sms," hi "\n')
    assert isinstance(event, UsageEvent)
    assert event.service is Service.SMS and event.direction is Direction.INBOUND
    assert event.text == " hi "


def test_sms_with_segment_count() -> None:
    (event,) = read("id,to,start,service,segments\nm1,+4420,2026-01-05T10:00:00Z,sms,3\n")
    assert isinstance(event, UsageEvent)
    assert event.segments == 3 and event.text is None


def test_account_defaults_when_blank() -> None:
    (event,) = read("id,to,start,duration\nc1,+4420,2026-01-05T10:00:00Z,5\n", default_account="x")
    assert isinstance(event, UsageEvent)
    assert event.account == "x"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("c1,acme,,,,+4420,yesterday,,2026-01-05T10:00:30Z,,", "start"),
        ("c1,acme,,sideways,,+4420,2026-01-05T10:00:00Z,,2026-01-05T10:00:30Z,,", "direction"),
        ("c1,acme,,,,+4420,2026-01-05T10:00:00Z,,,,", "end or duration"),
        ("c1,acme,,,,,2026-01-05T10:00:00Z,,2026-01-05T10:00:30Z,,", "to is blank"),
        ("c1,acme,,,,+4420,2026-01-05T10:00:00Z,,2026-01-05T09:00:00Z,,", "end is before start"),
        ("c1,acme,,,,+4420,2026-01-05T10:00:00Z,,2026-01-05T10:00:30Z,telepathy,", "service"),
        ("m1,acme,,,,+4420,2026-01-05T10:00:00Z,,,sms,", "text or segments"),
        ("c1,acme,,,,+4420,2026-01-05T10:00:00Z", "columns"),
    ],
)
def test_bad_row_is_reported_with_line_and_reason_and_the_file_goes_on(
    row: str, reason: str
) -> None:
    good = "ok,acme,,,,+4420,2026-01-05T10:00:00Z,,2026-01-05T10:00:30Z,,"
    records = read(HEADER + good + "\n" + row + "\n" + good.replace("ok", "ok2") + "\n")
    assert [type(r) for r in records] == [UsageEvent, CdrRowError, UsageEvent]
    error = records[1]
    assert isinstance(error, CdrRowError)
    assert error.line == 3
    assert reason in error.reason
    assert error.raw  # columns kept for the rated output


def test_duration_disagreeing_with_answer_and_end_is_an_error() -> None:
    text = (
        "id,to,start,answer,end,duration\n"
        "c1,+4420,2026-01-05T10:00:00Z,2026-01-05T10:00:00Z,2026-01-05T10:00:30Z,31\n"
    )
    (error,) = read(text)
    assert isinstance(error, RowError) and "disagrees" in error.reason


def test_line_numbers_count_physical_lines_of_multiline_text() -> None:
    text = (
        "id,to,start,service,text\n"
        'm1,+4420,2026-01-05T10:00:00Z,sms,"two\nlines"\n'
        "m2,+4420,not-a-time,sms,x\n"
    )
    first, second = read(text)
    assert isinstance(first, UsageEvent) and first.text == "two\nlines"
    assert isinstance(second, RowError) and second.line == 4


def test_header_without_required_column_is_refused() -> None:
    with pytest.raises(InvalidInput, match="to"):
        read("id,start\nc1,2026-01-05T10:00:00Z\n")


def test_reader_is_lazy_so_memory_does_not_grow_with_the_file() -> None:
    def endless() -> object:
        yield "id,to,start,duration\n"
        number = 0
        while True:
            number += 1
            yield f"c{number},+4420,2026-01-05T10:00:00Z,{number % 90}\n"

    stream = read_native_cdrs(endless())  # type: ignore[arg-type]
    first = [next(stream) for _ in range(1000)]
    assert all(isinstance(record, UsageEvent) for record in first)


@given(st.integers(min_value=1, max_value=10**6))
def test_duration_is_carried_exactly(seconds: int) -> None:
    (event,) = read(f"id,to,start,duration\nc,+1,2026-01-05T10:00:00Z,{seconds}\n")
    assert isinstance(event, UsageEvent) and event.duration_s == seconds
