"""Native and mapped CSV rate decks: every field, bad rows with line numbers, the ASTPP deck."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.adapters.formats.tariff_csv import parse_column_pairs, read_tariff_csv
from telbill.adapters.formats.tariff_fields import ParsedRow, parse_hours, parse_weekdays
from telbill.domain.tariffs import Direction, Increment, NumberType, RowError, Service
from telbill.errors import InvalidInput

HEADER = (
    "prefix,destination,service,direction,number_type,rate,connect_fee,increment,"
    "min_seconds,free_seconds,effective_from,effective_to,weekdays,hours\n"
)
ASTPP_MAP = {
    "rate": "rate_per_minute",
    "increment": "increment_seconds",
    "free_seconds": "included_seconds",
}


def read(text: str, **kwargs: object) -> list[ParsedRow | RowError]:
    return list(read_tariff_csv(io.StringIO(text), **kwargs))  # type: ignore[arg-type]


def rows(items: list[ParsedRow | RowError]) -> list[ParsedRow]:
    return [i for i in items if isinstance(i, ParsedRow)]


def errors(items: list[ParsedRow | RowError]) -> list[RowError]:
    return [i for i in items if isinstance(i, RowError)]


def test_native_row_with_every_column_is_read_exactly() -> None:
    text = HEADER + (
        "4420,UK London,voice,outbound,local,0.012345678,0.05,30/6,60,10,"
        "2026-01-01T00:00:00Z,2026-07-01,1-5,08:00-19:00\n"
    )
    [item] = read(text, timezone="Europe/London")
    assert isinstance(item, ParsedRow) and item.line == 2
    row = item.row
    assert row.prefix == "4420" and row.destination == "UK London"
    assert row.service is Service.VOICE and row.direction is Direction.OUTBOUND
    assert row.number_type is NumberType.LOCAL
    assert row.rate == Decimal("0.012345678")
    assert row.connect_fee == Decimal("0.05")
    assert row.increment == Increment(30, 6)
    assert (row.min_seconds, row.free_seconds) == (60, 10)
    assert row.effective_from == datetime(2026, 1, 1, tzinfo=UTC)
    # a date without offset is midnight in the tariff's timezone (BST in July)
    assert row.effective_to == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)
    assert row.weekdays == frozenset({1, 2, 3, 4, 5})
    assert row.hours == (time(8), time(19))


def test_rate_with_more_than_nine_decimals_is_refused_not_rounded() -> None:
    items = read(HEADER + "44,UK,,,,0.0123456789,,,,,,,,\n")
    [error] = errors(items)
    assert error.line == 2 and "more than 9 decimals" in error.reason


def test_empty_cells_take_the_model_defaults_and_the_tariff_increment() -> None:
    [item] = rows(read("prefix,rate\n49,0.01\n"))
    row = item.row
    assert row.service is Service.VOICE and row.direction is Direction.OUTBOUND
    assert row.number_type is NumberType.ANY and row.connect_fee == 0
    assert row.increment is None  # the tariff's default increment applies
    assert row.weekdays is None and row.hours is None


def test_column_defaults_fill_absent_and_empty_cells() -> None:
    [first, second] = rows(
        read("prefix,rate,service\n49,0.01,\n33,0.02,voice\n", defaults={"service": "sms"})
    )
    assert first.row.service is Service.SMS
    assert second.row.service is Service.VOICE


def test_a_bad_default_fails_before_any_line_is_read() -> None:
    with pytest.raises(InvalidInput, match="--default increment"):
        read("prefix,rate\n49,0.01\n", defaults={"increment": "sixty"})


def test_every_bad_row_is_reported_with_its_line_and_reason() -> None:
    text = (
        "prefix,rate,increment,weekdays,hours,effective_from,effective_to\n"
        "49,0.01,60/60,,,,\n"  # line 2 good
        "4x9,0.01,,,,,\n"  # 3 bad prefix
        "33,1e-3,,,,,\n"  # 4 exponent refused
        "34,-0.5,,,,,\n"  # 5 negative
        "35,0.1,0/60,,,,\n"  # 6 zero increment
        "36,0.1,,8-9,,,\n"  # 7 weekday out of range
        "37,0.1,,,8-19,,\n"  # 8 hours malformed
        "38,0.1,,,,2026-02-01,2026-01-01\n"  # 9 ends before it starts
        "39,0.1,60\n"  # 10 missing fields
        "40,,,,,,\n"  # 11 no rate
    )
    items = read(text)
    assert [r.line for r in rows(items)] == [2]
    found = {e.line: e.reason for e in errors(items)}
    assert sorted(found) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "prefix" in found[3]
    assert "rate" in found[4] and "decimal" in found[4]
    assert "negative" in found[5]
    assert "increment" in found[6]
    assert "weekdays" in found[7]
    assert "hours" in found[8]
    assert "effective_to" in found[9]
    assert "expected 7 fields" in found[10]
    assert "rate is empty" in found[11]


def test_duplicate_key_is_an_error_naming_the_first_line() -> None:
    text = "prefix,rate,service\n49,0.01,voice\n49,0.02,sms\n49,0.03,voice\n"
    items = read(text)
    [error] = errors(items)
    assert error.line == 4 and "line 2" in error.reason


def test_same_prefix_in_different_bands_or_dates_is_not_a_duplicate() -> None:
    text = (
        "prefix,rate,weekdays,hours,effective_from\n"
        "49,0.02,1-5,08:00-19:00,\n"
        "49,0.01,,,\n"
        "49,0.015,,,2026-03-01\n"
    )
    assert not errors(read(text))


def test_header_without_rate_column_is_reported_on_line_one() -> None:
    [error] = read("prefix,price\n49,0.01\n")
    assert isinstance(error, RowError) and error.line == 1
    assert "rate" in error.reason and "--map" in error.reason


def test_mapped_header_that_is_absent_is_reported_on_line_one() -> None:
    [error] = read("Code,Price\n49,0.01\n", column_map={"prefix": "Code", "rate": "Cost"})
    assert isinstance(error, RowError) and error.line == 1 and "Cost" in error.reason


def test_carrier_layout_is_read_through_the_column_map() -> None:
    text = "Code,Country,Price,Billing\n4915,Germany Mobile,0.0450,60/1\n"
    mapping = {"prefix": "Code", "destination": "Country", "rate": "Price", "increment": "Billing"}
    [item] = rows(read(text, column_map=mapping))
    assert item.row.prefix == "4915" and item.row.rate == Decimal("0.0450")
    assert item.row.increment == Increment(60, 1)


def test_map_option_text_is_parsed_and_unknown_columns_are_refused() -> None:
    assert parse_column_pairs("rate=Price, prefix=Code") == {"rate": "Price", "prefix": "Code"}
    with pytest.raises(InvalidInput, match="unknown column"):
        parse_column_pairs("price=Price")
    with pytest.raises(InvalidInput, match="COLUMN=VALUE"):
        parse_column_pairs("rate")


def test_weekdays_accept_ranges_lists_and_mixes() -> None:
    assert parse_weekdays("1-5") == frozenset({1, 2, 3, 4, 5})
    assert parse_weekdays("1,3,5") == frozenset({1, 3, 5})
    assert parse_weekdays("1-3,6") == frozenset({1, 2, 3, 6})
    for bad in ("0-5", "5-1", "mon", ""):
        with pytest.raises(InvalidInput):
            parse_weekdays(bad)


def test_hours_may_wrap_midnight_and_24_00_means_midnight() -> None:
    assert parse_hours("22:00-06:00") == (time(22), time(6))
    assert parse_hours("19:00-24:00") == (time(19), time(0))
    for bad in ("08:00-08:00", "25:00-26:00", "8-19"):
        with pytest.raises(InvalidInput):
            parse_hours(bad)


@given(
    st.decimals(
        min_value=0, max_value=10**6, places=9, allow_nan=False, allow_infinity=False
    )
)
def test_any_rate_with_up_to_nine_decimals_is_read_exactly(rate: Decimal) -> None:
    text = f"prefix,rate\n1,{rate:f}\n"
    [item] = read(text)
    assert isinstance(item, ParsedRow) and item.row.rate == rate


def test_astpp_deck_imports_all_rows_through_the_column_map(astpp_deck: Path) -> None:
    with astpp_deck.open(newline="") as handle:
        expected = list(csv.DictReader(handle))
    with astpp_deck.open(newline="") as handle:
        items = list(read_tariff_csv(handle, column_map=ASTPP_MAP))
    assert not errors(items)
    parsed = rows(items)
    assert len(parsed) == len(expected) == 36_205
    for source, item in zip(expected, parsed, strict=True):
        row = item.row
        assert row.prefix == source["prefix"]
        assert row.rate == Decimal(source["rate_per_minute"])
        assert row.connect_fee == Decimal(source["connect_fee"])
        assert row.free_seconds == int(source["included_seconds"])
        step = int(source["increment_seconds"])
        assert row.increment == Increment(step, step)
    assert parsed[-1].line == 36_206  # header is line 1


def test_rate_text_must_be_a_plain_ascii_decimal() -> None:
    from telbill.adapters.formats.tariff_fields import parse_rate

    assert parse_rate(" 5. ", "rate") == Decimal(5)
    assert parse_rate("0.000000001", "rate") == Decimal("1E-9")
    for bad in (".", "", "1_000", "١٢", "1e3", "NaN", "0.0000000001", "1,5"):
        with pytest.raises(InvalidInput):
            parse_rate(bad, "rate")
