"""Twilio pricing CSV: one rate row per destination prefix, SMS files, bad rows by line."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from telbill.adapters.formats.tariff_fields import ParsedRow
from telbill.adapters.formats.twilio import read_twilio_csv
from telbill.domain.tariffs import Direction, Increment, RowError, Service
from telbill.errors import InvalidInput

VOICE_HEADER = (
    "ISO,Country,Description,Price / min,Origination Prefixes,Destination Prefixes\n"
)


def read(text: str, **kwargs: object) -> list[ParsedRow | RowError]:
    return list(read_twilio_csv(io.StringIO(text), **kwargs))  # type: ignore[arg-type]


def test_each_destination_prefix_becomes_its_own_row_on_the_same_line() -> None:
    text = VOICE_HEADER + 'DE,Germany,Germany - Mobile,0.0850,,"4915, 4916,4917"\n'
    items = read(text)
    assert all(isinstance(i, ParsedRow) for i in items)
    parsed = [i for i in items if isinstance(i, ParsedRow)]
    assert [p.row.prefix for p in parsed] == ["4915", "4916", "4917"]
    assert {p.line for p in parsed} == {2}
    assert all(p.row.rate == Decimal("0.0850") for p in parsed)
    assert all(p.row.service is Service.VOICE for p in parsed)
    assert parsed[0].row.destination == "Germany - Mobile"


def test_country_is_prepended_when_the_description_lacks_it() -> None:
    [item] = read(VOICE_HEADER + "FR,France,Mobile,0.1,,336\n")
    assert isinstance(item, ParsedRow) and item.row.destination == "France - Mobile"


def test_sms_file_priced_per_message_gives_sms_rows() -> None:
    text = "ISO,Country,Description,Price / msg,Origination Prefixes,Destination Prefixes\n"
    text += 'US,United States,Outbound SMS,0.0079,,"1"\n'
    [item] = read(text)
    assert isinstance(item, ParsedRow) and item.row.service is Service.SMS


def test_defaults_set_direction_and_increment_for_every_row() -> None:
    text = VOICE_HEADER + "GB,United Kingdom,Local,0.0100,,44\n"
    [item] = read(text, defaults={"direction": "inbound", "increment": "1/1"})
    assert isinstance(item, ParsedRow)
    assert item.row.direction is Direction.INBOUND and item.row.increment == Increment(1, 1)
    with pytest.raises(InvalidInput, match="only"):
        read(text, defaults={"rate": "1"})


def test_origination_priced_rows_are_refused_with_a_reason() -> None:
    text = VOICE_HEADER + 'IN,India,India - Mobile,0.05,"91",91\n'
    [error] = read(text)
    assert isinstance(error, RowError) and error.line == 2
    assert "origination" in error.reason.lower()


def test_bad_price_and_bad_prefix_are_reported_by_line() -> None:
    text = VOICE_HEADER + (
        "DE,Germany,Germany,0.01,,49\n"
        "FR,France,France,abc,,33\n"
        'ES,Spain,Spain,0.02,,"34, x5"\n'
        "IT,Italy,Italy,0.03,,\n"
    )
    items = read(text)
    found = {i.line: i.reason for i in items if isinstance(i, RowError)}
    assert sorted(found) == [3, 4, 5]
    assert "Price / min" in found[3]
    assert "prefix" in found[4]
    assert "empty" in found[5]


def test_a_prefix_listed_twice_is_a_duplicate() -> None:
    text = VOICE_HEADER + 'DE,Germany,Germany,0.01,,"49"\nDE,Germany,Other,0.02,,"49"\n'
    errors = [i for i in read(text) if isinstance(i, RowError)]
    assert [e.line for e in errors] == [3] and "line 2" in errors[0].reason


def test_a_file_that_is_not_twilio_is_refused_on_line_one() -> None:
    [error] = read("prefix,rate\n49,0.1\n")
    assert isinstance(error, RowError) and error.line == 1
    assert "Twilio" in error.reason
