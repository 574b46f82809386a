"""The CSV reader's fast path (a block of rows, a column at a time, straight to storage values)
must say exactly what the row-at-a-time reader says: same rows, same errors, same lines."""

from __future__ import annotations

import io
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from telbill.adapters.formats.tariff_csv import BLOCK_ROWS, read_tariff_csv
from telbill.adapters.formats.tariff_fields import (
    ParsedRow,
    plain_nanos_column,
    rate_nanos,
)
from telbill.domain.tariffs import RowError
from telbill.errors import InvalidInput
from telbill.services.tariffs import _row_values

HEADER = (
    "prefix,destination,service,direction,number_type,rate,connect_fee,increment,"
    "min_seconds,free_seconds,effective_from,effective_to,weekdays,hours\n"
)


def read(text: str, **kwargs: object) -> list[ParsedRow | RowError]:
    return list(read_tariff_csv(io.StringIO(text), **kwargs))  # type: ignore[arg-type]


def stored(item: ParsedRow) -> tuple[object, ...]:
    """What storage would write for the item's RateRow (without the version id)."""
    return _row_values(0, item.row)[1:16]


def plain_deck(count: int, start: int = 0) -> str:
    return "".join(
        f"{10_000 + i},Dest {i},0.{i % 997:04d},0,{(1, 6, 60)[i % 3]}\n"
        for i in range(start, start + count)
    )


def test_fast_path_values_are_what_storage_writes_for_the_row() -> None:
    text = HEADER + (
        "4420,UK London,voice,outbound,local,0.012345678,0.05,30/6,60,10,"
        "2026-01-01T00:00:00Z,2026-07-01,1-5,08:00-19:00\n"
        "4421, UK ,SMS,inbound,mobile,1,,,,,,,6-7,22:00-24:00\n"
        "+4422,,,,,.5,0.,6,,,,,,\n"
    )
    items = read(text, timezone="Europe/London")
    assert all(isinstance(i, ParsedRow) and i.values is not None for i in items)
    for item in items:
        assert isinstance(item, ParsedRow) and item.values == stored(item)


def test_rows_of_a_deck_larger_than_a_block_keep_their_lines() -> None:
    count = BLOCK_ROWS * 2 + 5
    items = read("prefix,destination,rate,connect_fee,increment\n" + plain_deck(count))
    assert [i.line for i in items] == list(range(2, count + 2))
    assert all(isinstance(i, ParsedRow) and i.values == stored(i) for i in items)


def test_one_bad_row_in_a_block_is_reported_with_its_line_and_the_others_still_read() -> None:
    head = "prefix,destination,rate,connect_fee,increment\n"
    bad_at = BLOCK_ROWS + 10  # 0-based record index: in the second block
    lines = plain_deck(BLOCK_ROWS * 2).splitlines(keepends=True)
    lines[bad_at] = "12345,Bad,0.1.2,0,60\n"
    items = read(head + "".join(lines))
    [error] = [i for i in items if isinstance(i, RowError)]
    assert error.line == bad_at + 2
    assert error.reason.startswith("rate")
    assert len(items) == BLOCK_ROWS * 2


def test_a_duplicate_across_blocks_names_the_first_line() -> None:
    head = "prefix,destination,rate\n"
    body = "".join(f"{10_000 + i},D,0.1\n" for i in range(BLOCK_ROWS + 3))
    items = read(head + body + "10001,D,0.2\n")
    [error] = [i for i in items if isinstance(i, RowError)]
    assert error.line == BLOCK_ROWS + 5
    assert error.reason == "duplicate rate for prefix 10001 (voice, outbound, any): first on line 3"


def test_same_prefix_for_another_service_or_band_is_not_a_duplicate() -> None:
    text = HEADER + (
        "44,UK,voice,outbound,any,0.1,,,,,,,,\n"
        "44,UK,sms,outbound,any,0.1,,,,,,,,\n"
        "44,UK,voice,outbound,any,0.1,,,,,,,1-5,\n"
        "44,UK,voice,outbound,any,0.2,,,,,,,1-5,\n"
    )
    items = read(text)
    assert [type(i).__name__ for i in items] == ["ParsedRow"] * 3 + ["RowError"]
    assert items[3].line == 5  # type: ignore[union-attr]


def test_a_quoted_cell_spanning_lines_keeps_later_line_numbers() -> None:
    text = 'prefix,destination,rate\n44,"United\nKingdom",0.1\n45,X,bad\n'
    items = read(text)
    assert isinstance(items[0], ParsedRow) and items[0].row.destination == "United\nKingdom"
    assert isinstance(items[1], RowError) and items[1].line == 4


def test_blank_lines_are_skipped_inside_a_block() -> None:
    items = read("prefix,rate\n44,0.1\n\n45,0.2\n")
    assert [i.line for i in items] == [2, 4]
    assert all(isinstance(i, ParsedRow) and i.values is not None for i in items)


def test_rate_column_of_mostly_distinct_amounts_is_exact() -> None:
    body = "".join(f"{10_000 + i},0.{i:09d}\n" for i in range(1, 3000))
    items = read("prefix,rate\n" + body)
    for i, item in enumerate(items, start=1):
        assert isinstance(item, ParsedRow) and item.row.rate == Decimal(f"0.{i:09d}")
        assert item.values is not None and item.values[8] == i


_cells = st.one_of(
    st.from_regex(r"\A[0-9]{1,12}(\.[0-9]{0,11})?\Z"),
    st.from_regex(r"\A\.[0-9]{1,11}\Z"),
    st.text(alphabet="0123456789.+-eE \n٣", max_size=8),
)


def _nanos_or_none(text: str) -> int | None:
    try:
        return rate_nanos(text, "rate")
    except InvalidInput:
        return None


@settings(max_examples=300)
@given(st.lists(_cells, min_size=1, max_size=20))
def test_a_whole_amount_column_converts_exactly_as_cell_by_cell(texts: list[str]) -> None:
    column = plain_nanos_column(texts)
    if column is not None:
        assert column == [rate_nanos(t, "rate") for t in texts]
        assert all(Decimal(n).scaleb(-9) == Decimal(t) for n, t in zip(column, texts, strict=True))


@given(st.lists(st.from_regex(r"\A[0-9]{1,6}\.[0-9]{4}\Z"), min_size=1, max_size=20))
def test_amounts_with_the_same_decimals_take_the_whole_column_path(texts: list[str]) -> None:
    assert plain_nanos_column(texts) == [_nanos_or_none(t) for t in texts]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["44", "45", "+46", " 47", "", "x"]),
            st.sampled_from(["0.1", "1", ".5", "0.1234567891", "-1", "", " 2 "]),
            st.sampled_from(["", "60", "30/6", "0", "a"]),
            st.sampled_from(["", "voice", "SMS", "fax", "bogus"]),
            st.sampled_from(["", "1-5", "6-7", "5-1"]),
        ),
        max_size=12,
    )
)
def test_any_deck_reads_the_same_as_row_by_row(
    records: list[tuple[str, str, str, str, str]],
) -> None:
    """Every error of a deck is the error of its row read alone, every good row is the row
    read alone, and its fast-path values are what storage writes for its RateRow."""
    head = "prefix,rate,increment,service,weekdays\n"
    body = "".join(",".join(r) + "\n" for r in records)
    items = read(head + body, check_duplicates=False)
    for item in items:
        alone = read(head + "\n" * (item.line - 2) + ",".join(records[item.line - 2]) + "\n")
        assert len(alone) == 1
        if isinstance(item, RowError):
            assert isinstance(alone[0], RowError) and alone[0].reason == item.reason
        else:
            assert isinstance(alone[0], ParsedRow) and alone[0].row == item.row
            if item.values is not None:
                assert item.values == stored(item)
