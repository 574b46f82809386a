"""Asterisk Master.csv reader (cdr_csv): positions, dispositions, local time, bad rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.adapters.formats.cdr_asterisk import read_asterisk_csv
from telbill.adapters.formats.cdr_common import CdrRowError
from telbill.domain.tariffs import RowError
from telbill.domain.usage import UsageEvent


def row(disposition: str = "ANSWERED", answer: str = "2026-01-05 10:00:05", **fields: str) -> str:
    values = {
        "accountcode": "acme", "src": "1001", "dst": "0044207123", "dcontext": "from-internal",
        "clid": '"Alice, A" <1001>', "channel": "SIP/1001-0001", "dstchannel": "SIP/trunk-0002",
        "lastapp": "Dial", "lastdata": "SIP/trunk/0044207123,60", "start": "2026-01-05 10:00:00",
        "answer": answer, "end": "2026-01-05 10:01:06", "duration": "66", "billsec": "61",
        "disposition": disposition, "amaflags": "DOCUMENTATION", "uniqueid": "1767607200.1",
        "userfield": "",
    }  # fmt: skip
    values.update(fields)
    return ",".join('"' + v.replace('"', '""') + '"' for v in values.values()) + "\n"


def read(text: str, **options: object) -> list[UsageEvent | RowError]:
    return list(read_asterisk_csv(io.StringIO(text, newline=""), **options))  # type: ignore[arg-type]


def test_answered_call_is_billed_for_billsec() -> None:
    (event,) = read(row())
    assert isinstance(event, UsageEvent)
    assert event.id == "1767607200.1" and event.account == "acme"
    assert event.to_number == "0044207123" and event.from_number == "1001"
    assert event.duration_s == 61
    assert event.answer == datetime(2026, 1, 5, 10, 0, 5, tzinfo=UTC)
    assert event.raw["clid"] == '"Alice, A" <1001>'


@pytest.mark.parametrize("disposition", ["NO ANSWER", "BUSY", "FAILED", "CONGESTION"])
def test_disposition_other_than_answered_is_unanswered(disposition: str) -> None:
    (event,) = read(row(disposition, answer="", billsec="0"))
    assert isinstance(event, UsageEvent) and event.answer is None


def test_pbx_local_time_is_converted_to_utc() -> None:
    (event,) = read(row(), timezone="America/New_York")
    assert isinstance(event, UsageEvent)
    assert event.start == datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def test_record_without_uniqueid_gets_a_stable_id() -> None:
    short = row().rsplit(',"1767607200.1",""', 1)[0] + "\n"
    (first,) = read(short)
    (again,) = read(short)
    assert isinstance(first, UsageEvent) and isinstance(again, UsageEvent)
    assert first.id == again.id and first.id.startswith("ast-")


def test_bad_rows_are_reported_by_line_and_the_file_goes_on() -> None:
    text = row() + '"acme","1001"\n' + row(billsec="sixty") + row(answer="") + row()
    records = read(text)
    assert [type(r) for r in records] == [
        UsageEvent, CdrRowError, CdrRowError, CdrRowError, UsageEvent,
    ]  # fmt: skip
    errors = [r for r in records if isinstance(r, RowError)]
    assert [e.line for e in errors] == [2, 3, 4]
    assert "columns" in errors[0].reason
    assert "billsec" in errors[1].reason
    assert "answer" in errors[2].reason


@given(st.lists(st.booleans(), min_size=1, max_size=30))
def test_every_row_gives_one_record_and_errors_name_their_line(good_rows: list[bool]) -> None:
    text = "".join(row() if good else row(start="not a time") for good in good_rows)
    records = read(text)
    assert len(records) == len(good_rows)
    bad_lines = [n for n, good in enumerate(good_rows, start=1) if not good]
    assert [r.line for r in records if isinstance(r, RowError)] == bad_lines
