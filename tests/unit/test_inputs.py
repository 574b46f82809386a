"""The rules for values from outside (domain/inputs.py): text, instants, months, zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from telbill.domain.inputs import (
    check_instant,
    check_month,
    check_text,
    check_timezone_name,
    printable,
    printable_value,
    text_problem,
)
from telbill.errors import InvalidInput


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfff", "\udc80"])
def test_text_with_a_nul_or_a_lone_surrogate_is_refused(text: str) -> None:
    assert text_problem(text) is not None
    with pytest.raises(InvalidInput, match="^name must not contain"):
        check_text(text, "name")


def test_text_over_its_limit_is_refused_and_any_other_text_is_taken() -> None:
    assert check_text("héllo \U0001f600", "name", max_length=7) == "héllo \U0001f600"
    with pytest.raises(InvalidInput, match="longer than 7"):
        check_text("x" * 8, "name", max_length=7)


def test_printable_escapes_what_cannot_be_stored_and_cuts_huge_text() -> None:
    assert printable("a\x00b\ud800") == "a\\x00b\\ud800"
    assert printable_value({"k\x00": ["x" * 12, 5]}, 10) == {
        "k\\x00": ["xxxxxxxxxx... (12 characters)", 5]
    }


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # no UTC time at all
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1899, 12, 31, 23, 59, tzinfo=UTC),
        datetime(9000, 1, 1, tzinfo=UTC),
    ],
)
def test_an_instant_outside_1900_to_8999_is_refused(moment: datetime) -> None:
    with pytest.raises(InvalidInput, match="^at must lie between 1900 and 8999"):
        check_instant(moment, "at")


def test_an_instant_in_range_is_taken_and_a_naive_one_counts_as_utc() -> None:
    moment = datetime(2026, 3, 1, 9, tzinfo=timezone(timedelta(hours=2)))
    assert check_instant(moment, "at") is moment
    assert check_instant(datetime(1900, 1, 1), "at") == datetime(1900, 1, 1)


@pytest.mark.parametrize(
    ("month", "why"),
    [("0000-01", "between"), ("9999-12", "between"), ("2026-13", "no month 13"),
     ("2026-00", "no month 00"), ("2026-3", "YYYY-MM"), ("2026-03\n", "YYYY-MM")],
)  # fmt: skip
def test_a_month_must_be_a_real_month_in_range(month: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_month(month)
    assert check_month("2026-03") == "2026-03"


@pytest.mark.parametrize(
    "name", ["A" * 300, "../../etc/passwd", "Europe/\x00", "/etc/passwd", "Nowhere/City", ""]
)
def test_an_unknown_or_malformed_timezone_is_refused_without_an_os_error(name: str) -> None:
    with pytest.raises(InvalidInput, match="unknown timezone"):
        check_timezone_name(name)


@pytest.mark.parametrize("name", ["Europe/London", "America/Port-au-Prince", "Etc/GMT+5", "UTC"])
def test_iana_timezone_names_are_taken(name: str) -> None:
    assert check_timezone_name(name) == name
