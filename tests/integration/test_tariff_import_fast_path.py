"""Importing a CSV deck through the reader's fast path (storage values, no RateRow per row)
stores exactly the rows the reader parses, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.formats.tariff_csv import BLOCK_ROWS, read_tariff_csv
from telbill.adapters.formats.tariff_fields import ParsedRow, RateValues
from telbill.domain.tariffs import RateRow, RowError, TariffSettings
from telbill.services.tariffs import BadTariffRows, import_tariff, list_tariffs, load_tariff

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HEADER = (
    "prefix,destination,service,direction,number_type,rate,connect_fee,increment,"
    "min_seconds,free_seconds,effective_from,effective_to,weekdays,hours\n"
)
DECK = HEADER + (
    "4420,UK London,voice,outbound,local,0.012345678,0.05,30/6,60,10,"
    "2026-01-01T00:00:00Z,2026-07-01,1-5,08:00-19:00\n"
    "4421,UK Mobile,sms,inbound,mobile,1,,,,,,,6-7,22:00-24:00\n"
    "4422,UK,,,,.5,0.,6,,,,,,\n"
    "4423,UK,,,,12.000000001,,1/1,,,2026-03-01,,,\n"
)


@pytest.fixture
def db(db_url: str) -> Database:
    migrate(db_url)
    return Database(db_url)


def parsed(text: str) -> list[ParsedRow | RowError]:
    return list(read_tariff_csv(io.StringIO(text), timezone="Europe/London"))


def storable(items: list[ParsedRow | RowError]) -> list[RateRow | RateValues | RowError]:
    return [
        (i.values if i.values is not None else i.row) if isinstance(i, ParsedRow) else i
        for i in items
    ]


def test_rows_imported_as_values_load_back_as_the_parsed_rows(db: Database) -> None:
    items = parsed(DECK)
    assert all(isinstance(i, ParsedRow) and i.values is not None for i in items)
    import_tariff(db, "uk", storable(items), TariffSettings("GBP"), now=NOW)
    loaded = load_tariff(db, "uk").rows
    assert list(loaded) == [i.row for i in items if isinstance(i, ParsedRow)]


def test_values_and_rate_rows_in_one_import_keep_the_file_order(db: Database) -> None:
    items = parsed(DECK)
    mixed = [
        i.row if n % 2 else i.values
        for n, i in enumerate(items)
        if isinstance(i, ParsedRow)
    ]
    import_tariff(db, "uk", mixed, TariffSettings("GBP"), now=NOW)
    assert [r.prefix for r in load_tariff(db, "uk").rows] == ["4420", "4421", "4422", "4423"]


def test_a_bad_row_after_many_good_blocks_writes_nothing(db: Database) -> None:
    text = HEADER + "".join(
        f"{10_000 + i},D,,,,0.01,0,60,,,,,,\n" for i in range(BLOCK_ROWS * 2)
    ) + "99,D,,,,-1,0,60,,,,,,\n"
    with pytest.raises(BadTariffRows) as caught:
        import_tariff(db, "big", storable(parsed(text)), TariffSettings("USD"), now=NOW)
    [error] = caught.value.errors
    assert error.line == BLOCK_ROWS * 2 + 2 and "rate" in error.reason
    assert list_tariffs(db) == []


def test_rows_made_for_loading_are_real_frozen_rate_rows() -> None:
    from dataclasses import FrozenInstanceError, astuple

    from telbill.services.tariffs import _make_rate_row

    full = RateRow(
        prefix="44",
        destination="UK",
        rate=parsed(DECK)[0].row.rate,  # type: ignore[union-attr]
        weekdays=frozenset({1}),
    )
    made = _make_rate_row(*astuple(full))
    assert type(made) is RateRow and made == full and hash(made) == hash(full)
    assert repr(made) == repr(full)
    with pytest.raises(FrozenInstanceError):
        made.prefix = "45"  # type: ignore[misc]
