"""Fuzzing every input parser: no input crashes a reader, bad rows are reported by line.

For each reader (tariff CSV, Twilio, CGRateS, native/FreeSWITCH/Asterisk CDRs, FreeSWITCH
JSON, inventory), arbitrary CSV-ish text must either raise a TelbillError (a file-level
problem) or yield RowErrors with a line >= 1; one bad row among good rows gives exactly the
good rows plus one RowError on that row's line. Importing through the services writes
nothing for a bad tariff file and only quarantines the bad CDR.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telbill.adapters.db.tables import metadata
from telbill.adapters.formats.cdr_asterisk import read_asterisk_csv
from telbill.adapters.formats.cdr_freeswitch import read_freeswitch_csv, read_freeswitch_json
from telbill.adapters.formats.cdr_native import read_native_cdrs
from telbill.adapters.formats.cgrates import read_cgrates_folder
from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.adapters.formats.tariff_csv import read_tariff_csv
from telbill.adapters.formats.tariff_fields import ParsedRow
from telbill.adapters.formats.twilio import read_twilio_csv
from telbill.domain.tariffs import RowError, TariffSettings
from telbill.errors import TelbillError
from telbill.services.charging import list_quarantine, post_cdrs
from telbill.services.tariffs import import_tariff

pytestmark = pytest.mark.fuzz  # `make fuzz`: fresh seeds, larger budgets (tests/conftest.py)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from charging_support import START, build_world, cdr_line  # noqa: E402

FUZZ = settings(
    max_examples=int(os.environ.get("TELBILL_FUZZ_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

NASTY_CELLS = [
    "",
    " ",
    "0",
    "-1",
    "-0.01",
    "1e999",
    "1E-999",
    "1e5",
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    "9" * 60,
    "0." + "9" * 40,
    "0x1F",
    "1_000",
    "١٢٣",
    "½",
    "€",
    "🙂",
    "\t",
    "\x0b",
    "\x1f",
    '"',
    '""',
    "'",
    ",",
    "\n",
    "\r\n",
    "2026-13-45",
    "2026-01-05T25:61:00Z",
    "1767607200",
    "99999999999999999999",
    "-99999999999999",
    "voice",
    "sms",
    "outbound",
    "inbound",
    "mobile",
    "60/60",
    "0/0",
    "1/0",
    "-1/-1",
    "ANSWERED",
    "+4420",
    "44",
    "Mon-Fri",
    "22:00-06:00",
    "yes",
    "no",
    "{}",
    "[]",
    "null",
]
TARIFF_COLUMNS = [
    "prefix", "destination", "service", "direction", "number_type", "rate", "connect_fee",
    "increment", "min_seconds", "free_seconds", "effective_from", "effective_to",
    "weekdays", "hours", "band",
]  # fmt: skip
CDR_COLUMNS = [
    "id", "account", "user", "direction", "from", "to", "start", "answer", "end",
    "duration", "service", "text", "segments", "speech_seconds",
]  # fmt: skip
INVENTORY_COLUMNS = [
    "number", "country", "type", "locality", "area_code", "monthly_price", "setup_price",
    "verification_required",
]  # fmt: skip
TWILIO_COLUMNS = [
    "ISO", "Country", "Description", "Price / min", "Price / msg", "Origination Prefixes",
    "Destination Prefixes",
]  # fmt: skip

# Any text without NUL (csv refuses NUL bytes with a plain csv.Error) or lone surrogates.
free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
cell = st.one_of(st.sampled_from(NASTY_CELLS), free_text)


def quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value


@st.composite
def csv_text(draw: st.DrawFn, known: list[str]) -> str:
    """A header of known and random names, then rows of nasty cells, some of the wrong width."""
    header = draw(st.lists(st.one_of(st.sampled_from(known), free_text), min_size=1, max_size=8))
    lines = [",".join(quote(name) for name in header)]
    for _ in range(draw(st.integers(0, 5))):
        width = draw(st.sampled_from([len(header), len(header), 0, 1, len(header) + 2]))
        lines.append(",".join(quote(draw(cell)) for _ in range(width)))
    if draw(st.booleans()):
        raw = draw(
            st.text(
                alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                max_size=40,
            )
        )
        lines.insert(draw(st.integers(0, len(lines))), raw)
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"


def consume(read: Callable[[], Iterable[Any]]) -> list[Any]:
    """Run a reader to the end: only a TelbillError may escape; row errors carry a line >= 1."""
    try:
        items = list(read())
    except TelbillError:
        return []
    for item in items:
        if isinstance(item, RowError):
            assert item.line >= 1, item
    return items


def lines_of(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")


# ------------------------------------------------------------------- arbitrary input


@FUZZ
@given(csv_text(TARIFF_COLUMNS))
def test_any_tariff_csv_gives_rows_or_line_numbered_errors(text: str) -> None:
    consume(lambda: read_tariff_csv(lines_of(text)))


@FUZZ
@given(csv_text(TWILIO_COLUMNS))
def test_any_twilio_csv_gives_rows_or_line_numbered_errors(text: str) -> None:
    consume(lambda: read_twilio_csv(lines_of(text)))


@FUZZ
@given(csv_text(CDR_COLUMNS))
def test_any_native_cdr_csv_gives_events_or_line_numbered_errors(text: str) -> None:
    consume(lambda: read_native_cdrs(lines_of(text)))


@FUZZ
@given(csv_text(CDR_COLUMNS))
def test_any_freeswitch_csv_gives_events_or_line_numbered_errors(text: str) -> None:
    consume(lambda: read_freeswitch_csv(lines_of(text)))


@FUZZ
@given(csv_text(CDR_COLUMNS))
def test_any_asterisk_csv_gives_events_or_line_numbered_errors(text: str) -> None:
    consume(lambda: read_asterisk_csv(lines_of(text)))


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), free_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "variables",
                    "callflow",
                    "caller_profile",
                    "start_epoch",
                    "billsec",
                    "accountcode",
                    "destination_number",
                    "uuid",
                ]
            )
            | free_text,
            inner,
            max_size=4,
        ),
    ),
    max_leaves=10,
)


@FUZZ
@given(st.lists(st.one_of(json_value.map(lambda v: json.dumps(v)), free_text), max_size=5))
def test_any_freeswitch_json_lines_give_events_or_line_numbered_errors(
    lines: list[str],
) -> None:
    consume(lambda: read_freeswitch_json([line + "\n" for line in lines]))


@FUZZ
@given(csv_text(INVENTORY_COLUMNS))
def test_any_inventory_csv_gives_rows_or_line_numbered_errors(text: str) -> None:
    def read() -> list[RowError]:
        _, errors = read_inventory_text(text)
        return errors

    consume(read)


CGRATES_FILES = {
    "Destinations.csv": ["#Id", "Prefix"],
    "Rates.csv": ["#Id", "ConnectFee", "Rate", "RateUnit", "RateIncrement", "GroupIntervalStart"],
    "DestinationRates.csv": ["#Id", "DestinationId", "RatesTag", "RoundingMethod",
                             "RoundingDecimals", "MaxCost", "MaxCostStrategy"],
    "Timings.csv": ["#Tag", "Years", "Months", "MonthDays", "WeekDays", "Time"],
    "RatingPlans.csv": ["#Id", "DestinationRatesId", "TimingTag", "Weight"],
    "RatingProfiles.csv": ["#Tenant", "Category", "Subject", "ActivationTime", "RatingPlanId",
                           "RatesFallbackSubject"],
}  # fmt: skip


@FUZZ
@given(st.sampled_from(sorted(CGRATES_FILES)), st.data())
def test_any_cgrates_file_gives_a_plan_or_a_clear_error(name: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for other, header in CGRATES_FILES.items():
            text = data.draw(csv_text(header)) if other == name else ",".join(header) + "\n"
            (Path(folder) / other).write_text(text, encoding="utf-8")
        try:
            plan = read_cgrates_folder(Path(folder))
        except TelbillError:
            return
        for error in plan.errors:
            assert error.line >= 1, error


# ------------------------------------------------------ one bad row among good rows


def split(items: list[Any]) -> tuple[list[Any], list[RowError]]:
    errors = [item for item in items if isinstance(item, RowError)]
    return [item for item in items if not isinstance(item, RowError)], errors


def with_bad_row(
    header: str, good: Callable[[int], str], bad: str, count: int, at: int
) -> tuple[str, int]:
    """`count` good rows with `bad` inserted before row `at`; returns text and the bad line."""
    rows = [good(i) for i in range(count)]
    rows.insert(at, bad)
    first = 2 if header else 1
    return header + "".join(rows), first + at


bad_cells = st.sampled_from(["NaN", "1e999", "-1", "abc", "", "🙂", "9" * 60, '"x,y"'])
shape = st.tuples(st.integers(1, 4), st.integers(0, 4))


def position(count: int, at: int) -> int:
    return min(at, count)


@FUZZ
@given(shape, st.sampled_from(["NaN", "1e999", "-1", "abc", "🙂", "0x10", "inf"]))
def test_one_bad_tariff_row_is_reported_on_its_line(shape: tuple[int, int], rate: str) -> None:
    count, at = shape[0], position(*shape)
    text, line = with_bad_row(
        "prefix,rate\n", lambda i: f"{441 + i},0.0{i + 1}\n", f"999,{rate}\n", count, at
    )
    rows, errors = split(list(read_tariff_csv(lines_of(text))))
    assert [row.row.prefix for row in rows] == [str(441 + i) for i in range(count)]
    assert [error.line for error in errors] == [line]


@FUZZ
@given(shape, st.sampled_from(["NaN", "-1", "abc", "1e999", "🙂"]))
def test_one_bad_twilio_row_is_reported_on_its_line(shape: tuple[int, int], price: str) -> None:
    count, at = shape[0], position(*shape)
    header = "ISO,Country,Description,Price / min,Origination Prefixes,Destination Prefixes\n"
    text, line = with_bad_row(
        header, lambda i: f"DE,Germany,Zone {i},0.01,,{491 + i}\n",
        f"XX,Nowhere,Bad,{price},,999\n", count, at,
    )  # fmt: skip
    rows, errors = split(list(read_twilio_csv(lines_of(text))))
    assert len(rows) == count
    assert [error.line for error in errors] == [line]


NATIVE_HEADER = "id,account,user,direction,from,to,start,answer,end,service,text\n"


def native_row(i: int, start: str = "2026-01-05T10:00:00Z") -> str:
    return f"c{i},acme,,outbound,+3314,+4420,{start},,2026-01-05T10:01:00Z,,\n"


@FUZZ
@given(shape, st.sampled_from(["2026-13-45", "yesterday", "1e999", "NaN", "🙂", ""]))
def test_one_bad_native_cdr_is_reported_on_its_line(shape: tuple[int, int], start: str) -> None:
    count, at = shape[0], position(*shape)
    text, line = with_bad_row(NATIVE_HEADER, native_row, native_row(99, start), count, at)
    events, errors = split(list(read_native_cdrs(lines_of(text))))
    assert [event.id for event in events] == [f"c{i}" for i in range(count)]
    assert [error.line for error in errors] == [line]


def asterisk_row(i: int, billsec: str = "61") -> str:
    return (
        f'"acme","1001","0044207123","ctx","","SIP/1","SIP/2","Dial","x",'
        f'"2026-01-05 10:00:00","2026-01-05 10:00:05","2026-01-05 10:01:06","66","{billsec}",'
        f'"ANSWERED","DOCUMENTATION","u{i}",""\n'
    )


@FUZZ
@given(shape, st.sampled_from(["-5", "abc", "1e999", "NaN", "🙂", "9" * 40]))
def test_one_bad_asterisk_cdr_is_reported_on_its_line(shape: tuple[int, int], sec: str) -> None:
    count, at = shape[0], position(*shape)
    text, line = with_bad_row("", asterisk_row, asterisk_row(99, sec), count, at)
    events, errors = split(list(read_asterisk_csv(lines_of(text))))
    assert [event.id for event in events] == [f"u{i}" for i in range(count)]
    assert [error.line for error in errors] == [line]


def freeswitch_row(i: int, billsec: str = "61") -> str:
    return (
        f'"Alice","1001","+442071234567","default","2026-01-05 11:00:00","2026-01-05 11:00:04",'
        f'"2026-01-05 11:01:05","65","{billsec}","NORMAL_CLEARING","f{i}","","acme","PCMU","PCMU"\n'
    )


@FUZZ
@given(shape, st.sampled_from(["-5", "abc", "1e999", "NaN", "🙂", "9" * 40]))
def test_one_bad_freeswitch_cdr_is_reported_on_its_line(shape: tuple[int, int], sec: str) -> None:
    count, at = shape[0], position(*shape)
    text, line = with_bad_row("", freeswitch_row, freeswitch_row(99, sec), count, at)
    events, errors = split(list(read_freeswitch_csv(lines_of(text))))
    assert [event.id for event in events] == [f"f{i}" for i in range(count)]
    assert [error.line for error in errors] == [line]


INVENTORY_HEADER = "number,country,type,locality,area_code,monthly_price,setup_price\n"


@FUZZ
@given(shape, st.sampled_from(["-1", "abc", "NaN", "1e999", "🙂", "inf"]))
def test_one_bad_inventory_row_is_reported_on_its_line(shape: tuple[int, int], price: str) -> None:
    count, at = shape[0], position(*shape)
    text, line = with_bad_row(
        INVENTORY_HEADER, lambda i: f"+1617555010{i},US,local,Boston,617,1.00,0.50\n",
        f"+16175550199,US,local,Boston,617,{price},0.50\n", count, at,
    )  # fmt: skip
    rows, errors = read_inventory_text(text)
    assert [row.number for row in rows] == [f"+1617555010{i}" for i in range(count)]
    assert [error.line for error in errors] == [line]


# ------------------------------------------------------------ nothing written on bad input

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }


def storable(items: Iterable[ParsedRow | RowError]) -> Iterator[Any]:
    """What the CLI hands to import_tariff: plain values when the reader has them."""
    for item in items:
        if isinstance(item, ParsedRow):
            yield item.row if item.values is None else item.values
        else:
            yield item


@SQLITE_ONLY
def test_tariff_import_with_one_bad_row_writes_nothing(db_url: str) -> None:
    world = build_world(db_url)

    @settings(FUZZ, max_examples=min(FUZZ.max_examples, 25))
    @given(shape, st.sampled_from(["NaN", "1e999", "-1", "abc", "🙂", "", "0." + "1" * 12]))
    def import_with_a_bad_row(shape: tuple[int, int], rate: str) -> None:
        count, at = shape[0], position(*shape)
        text, _ = with_bad_row(
            "prefix,rate\n", lambda i: f"{441 + i},0.0{i + 1}\n", f"999,{rate}\n", count, at
        )
        before = table_counts(world.db.engine)
        with pytest.raises(TelbillError):
            import_tariff(
                world.db,
                "retail",  # an existing tariff: a bad file must not add a version either
                storable(read_tariff_csv(lines_of(text))),
                TariffSettings("USD"),
                now=START,
            )
        assert table_counts(world.db.engine) == before

    try:
        import_with_a_bad_row()
    finally:
        world.db.dispose()


@SQLITE_ONLY
def test_posting_cdrs_with_one_bad_row_charges_the_good_ones_and_quarantines_only_it(
    db_url: str,
) -> None:
    world = build_world(db_url)
    try:
        header = "id,account,user,direction,from,to,start,answer,end,service,segments\n"
        bad = cdr_line("bad", "+4420", 30).replace(START.isoformat(), "2026-13-45", 1)
        text = header + bad
        before = table_counts(world.db.engine)
        summary = post_cdrs(
            world.db, read_native_cdrs(lines_of(text)), clock=world.clock, source="fuzz"
        )
        after = table_counts(world.db.engine)
        assert (summary.posted, summary.quarantined) == (0, 1)
        changed = {name for name in after if after[name] != before[name]}
        assert changed == {"cdr_quarantine"}, changed
    finally:
        world.db.dispose()


# ------------------------------------------------------------ regressions found by fuzzing


def test_freeswitch_json_epoch_beyond_the_platform_clock_is_a_row_error_not_a_crash() -> None:
    document = {
        "variables": {
            "uuid": "x1", "destination_number": "+4420", "accountcode": "acme",
            "start_epoch": "9" * 40, "end_epoch": "1767607300",
        }
    }  # fmt: skip
    [item] = read_freeswitch_json([json.dumps(document) + "\n"])
    assert isinstance(item, RowError) and item.line == 1
    assert "start_epoch" in item.reason


def test_cdr_billsec_too_large_to_store_is_a_row_error() -> None:
    [item] = read_asterisk_csv(lines_of(asterisk_row(1, "9" * 40)))
    assert isinstance(item, RowError) and item.line == 1
    assert "billsec" in item.reason


def test_cdr_seconds_in_non_ascii_digits_are_a_row_error() -> None:
    [item] = read_asterisk_csv(lines_of(asterisk_row(1, "١٢٣")))
    assert isinstance(item, RowError) and "billsec" in item.reason


@SQLITE_ONLY
def test_posting_good_cdrs_around_a_bad_one_charges_the_good_and_quarantines_its_line(
    db_url: str,
) -> None:
    world = build_world(db_url)
    try:
        header = "id,account,user,direction,from,to,start,answer,end,service,segments\n"
        bad = cdr_line("bad", "+4420", 30).replace(START.isoformat(), "2026-13-45", 1)
        text = header + cdr_line("g1", "+4420", 30) + bad + cdr_line("g2", "+1555", 10)
        summary = post_cdrs(
            world.db, read_native_cdrs(lines_of(text)), clock=world.clock, source="fuzz"
        )
        assert (summary.posted, summary.quarantined) == (2, 1)
        [held] = list_quarantine(world.db)
        assert held.line == 3 and held.source == "fuzz"
    finally:
        world.db.dispose()
