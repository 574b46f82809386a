"""Rate decks as CSV: telbill's native layout, and any carrier layout through a column map.

Native headers: prefix, destination, service, direction, number_type, rate, connect_fee,
increment, min_seconds, free_seconds, effective_from, effective_to, weekdays, hours. Only
`prefix` and `rate` are required; an empty cell takes the column's default (`--default`), else
the model's default. A carrier deck is read through `column_map` (our column -> its header),
e.g. the ASTPP deck with ``rate=rate_per_minute,increment=increment_seconds,
free_seconds=included_seconds``. Rows stream: the reader yields `ParsedRow` or `RowError`
(1-based line numbers, the header is line 1) and never holds more than a block of
BLOCK_ROWS records in memory.

Fast path: each block is converted a column at a time (one parse per distinct cell text, a
whole column of plain decimal amounts at once) straight into the values storage writes
(`ParsedRow.values`); the RateRow of such a row is built only if someone asks for `.row`.
A block with any problem (a bad cell, a wrong width, a repeated key) is read row by row by
the same code as before, so errors, reasons and line numbers are exactly those of a
row-at-a-time reader.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice, repeat
from zoneinfo import ZoneInfo

from telbill.adapters.formats.tariff_fields import (
    DuplicateCheck,
    ParsedRow,
    RateValues,
    hours_text,
    parse_datetime,
    parse_enum,
    parse_hours,
    parse_increment,
    parse_prefix,
    parse_rate,
    parse_seconds,
    parse_weekdays,
    plain_nanos_column,
    rate_nanos,
    weekdays_text,
    zone,
)
from telbill.domain.tariffs import Direction, Increment, NumberType, RateRow, RowError, Service
from telbill.errors import InvalidInput

NATIVE_COLUMNS = (
    "prefix",
    "destination",
    "service",
    "direction",
    "number_type",
    "rate",
    "connect_fee",
    "increment",
    "min_seconds",
    "free_seconds",
    "effective_from",
    "effective_to",
    "weekdays",
    "hours",
)
REQUIRED_COLUMNS = ("prefix", "rate")


def parse_column_pairs(text: str | None, option: str = "--map") -> dict[str, str]:
    """``"rate=Price,prefix=Code"`` -> {"rate": "Price", "prefix": "Code"}; names checked."""
    pairs: dict[str, str] = {}
    if not text:
        return pairs
    for part in text.split(","):
        column, sep, value = part.partition("=")
        column = column.strip()
        if not sep or not column:
            raise InvalidInput(f"{option} takes COLUMN=VALUE pairs separated by commas: {part!r}")
        if column not in NATIVE_COLUMNS:
            raise InvalidInput(
                f"{option}: unknown column {column!r}; columns are {', '.join(NATIVE_COLUMNS)}"
            )
        pairs[column] = value.strip()
    return pairs


_CACHE_LIMIT = 65_536  # distinct texts remembered per column (rates, increments... repeat)


def _parsers(tz: ZoneInfo) -> dict[str, Callable[[str], object]]:
    """Column -> parser of a non-empty cell text into the RateRow field's value."""
    return {
        "prefix": parse_prefix,
        "destination": str.strip,
        "service": lambda t: parse_enum(t, Service, "service"),
        "direction": lambda t: parse_enum(t, Direction, "direction"),
        "number_type": lambda t: parse_enum(t, NumberType, "number_type"),
        "rate": lambda t: parse_rate(t, "rate"),
        "connect_fee": lambda t: parse_rate(t, "connect_fee"),
        "increment": parse_increment,
        "min_seconds": lambda t: parse_seconds(t, "min_seconds"),
        "free_seconds": lambda t: parse_seconds(t, "free_seconds"),
        "effective_from": lambda t: parse_datetime(t, "effective_from", tz),
        "effective_to": lambda t: parse_datetime(t, "effective_to", tz),
        "weekdays": parse_weekdays,
        "hours": parse_hours,
    }


_UNCACHED = frozenset({"prefix", "destination"})


class _RowBuilder:
    """Turns the cells of one record into a RateRow, memoising repeated cell texts."""

    def __init__(self, columns: list[tuple[str, int]], defaults: Mapping[str, str], tz: ZoneInfo):
        parsers = _parsers(tz)
        self._columns: list[
            tuple[str, int, Callable[[str], object], dict[str, object] | None]
        ] = [
            (column, index, parsers[column], None if column in _UNCACHED else {})
            for column, index in columns
        ]
        self._defaults: dict[str, object] = {}
        for column, text in defaults.items():
            if column not in parsers:
                raise InvalidInput(f"--default: unknown column {column!r}")
            try:
                self._defaults[column] = parsers[column](text)
            except InvalidInput as exc:
                raise InvalidInput(f"--default {column}={text}: {exc.message}") from exc

    def build(self, record: list[str]) -> RateRow:
        fields: dict[str, object] = {"destination": ""}
        fields.update(self._defaults)
        for column, index, parse, cache in self._columns:
            text = record[index]
            if not text or text.isspace():
                continue
            if cache is None:
                fields[column] = parse(text)
                continue
            value = cache.get(text, _MISSING)
            if value is _MISSING:
                value = parse(text)
                if len(cache) < _CACHE_LIMIT:
                    cache[text] = value
            fields[column] = value
        if "prefix" not in fields:
            raise InvalidInput("prefix is empty")
        if "rate" not in fields:
            raise InvalidInput("rate is empty")
        row = RateRow(**fields)  # type: ignore[arg-type]
        if row.effective_from and row.effective_to and row.effective_to <= row.effective_from:
            raise InvalidInput("effective_to must be after effective_from")
        return row


_MISSING = object()


# --- the fast path: a block of records, column at a time, straight to storage values -------

BLOCK_ROWS = 4096  # records converted together; a block with any problem is re-read row by row

# Value column (RATE_VALUE_COLUMNS order) -> the deck column it comes from.
_VALUE_SOURCES = (
    "prefix",
    "service",
    "direction",
    "number_type",
    "weekdays",
    "hours",
    "effective_from",
    "destination",
    "rate",
    "connect_fee",
    "increment_first",
    "increment_next",
    "min_seconds",
    "free_seconds",
    "effective_to",
)
_REQUIRED = object()  # the default of a required column nobody gave a default for
_AMOUNTS = frozenset({"rate", "connect_fee"})


def _increment_pair(increment: Increment) -> tuple[int, int]:
    return increment.first_s, increment.next_s


def _value_parsers(tz: ZoneInfo) -> dict[str, Callable[[str], object]]:
    """Column -> parser of a non-empty cell text into its storage value (same checks and
    errors as `_parsers`; increment gives its (first, next) pair)."""
    parsers = _parsers(tz)
    return {
        "prefix": parse_prefix,
        "destination": str.strip,
        "service": lambda t: parse_enum(t, Service, "service").value,
        "direction": lambda t: parse_enum(t, Direction, "direction").value,
        "number_type": lambda t: parse_enum(t, NumberType, "number_type").value,
        "rate": lambda t: rate_nanos(t, "rate"),
        "connect_fee": lambda t: rate_nanos(t, "connect_fee"),
        "increment": lambda t: _increment_pair(parse_increment(t)),
        "min_seconds": parsers["min_seconds"],
        "free_seconds": parsers["free_seconds"],
        "effective_from": parsers["effective_from"],
        "effective_to": parsers["effective_to"],
        "weekdays": lambda t: weekdays_text(parse_weekdays(t)),
        "hours": lambda t: hours_text(parse_hours(t)),
    }


_MODEL_DEFAULTS: dict[str, object] = {
    "prefix": _REQUIRED,
    "destination": "",
    "service": Service.VOICE.value,
    "direction": Direction.OUTBOUND.value,
    "number_type": NumberType.ANY.value,
    "rate": _REQUIRED,
    "connect_fee": 0,
    "increment": (None, None),
    "min_seconds": 0,
    "free_seconds": 0,
    "effective_from": None,
    "effective_to": None,
    "weekdays": None,
    "hours": None,
}


class _BlockConverter:
    """Converts a block of same-width records into `RateValues`, one column at a time.

    Every column has a parser and a cache of cell text -> value (seeded with the empty cell ->
    the column's default), so a repeated rate or increment costs one dict lookup done by
    `map`. Any problem in the block (a bad cell, an empty required cell, a bad date range)
    returns None: the caller then reads the block row by row, which reports the errors.
    """

    def __init__(self, columns: list[tuple[str, int]], defaults: Mapping[str, str], tz: ZoneInfo):
        parsers = _value_parsers(tz)
        self._defaults = dict(_MODEL_DEFAULTS)
        for column, text in defaults.items():
            self._defaults[column] = parsers[column](text)
        self._columns = [
            (column, index, parsers[column], {"": self._defaults[column]})
            for column, index in columns
        ]
        present = {column for column, _ in columns}
        self._check_dates = ("effective_from" in present or self._defaults["effective_from"]) and (
            "effective_to" in present or self._defaults["effective_to"]
        )

    def convert(self, records: list[list[str]]) -> list[RateValues] | None:
        cells = list(zip(*records, strict=True))
        got: dict[str, Sequence[object]] = {}
        for column, index, parse, cache in self._columns:
            texts = cells[index]
            default = self._defaults[column]
            if column == "prefix" and "" not in texts:
                joined = "".join(texts)
                if joined.isascii() and joined.isdigit():
                    got[column] = texts
                    continue
            if column == "destination" and default == "":
                got[column] = list(map(str.strip, texts))
                continue
            new = set(texts).difference(cache)
            if column in _AMOUNTS and len(new) > len(texts) // 8:
                # Mostly distinct amounts, which no cache helps: convert the column at once
                # when every cell is a plain decimal.
                plain = plain_nanos_column(texts)
                if plain is not None:
                    got[column] = plain
                    continue
            if not new:
                values: list[object] = list(map(cache.__getitem__, texts))
            else:
                parsed: dict[str, object] = {}
                for text in new:  # each distinct new text once
                    if text.isspace():
                        parsed[text] = default
                        continue
                    try:
                        parsed[text] = parse(text)
                    except InvalidInput:
                        return None
                if column not in _UNCACHED and len(cache) + len(parsed) <= _CACHE_LIMIT:
                    cache.update(parsed)
                    values = list(map(cache.__getitem__, texts))
                else:
                    values = list(map(parsed.get, texts, map(cache.get, texts)))
            if _REQUIRED in values:
                return None
            got[column] = values
        increments = got.pop("increment", None)
        if increments is not None:
            got["increment_first"] = [pair[0] for pair in increments]  # type: ignore[index]
            got["increment_next"] = [pair[1] for pair in increments]  # type: ignore[index]
        if self._check_dates and not self._dates_ok(got):
            return None
        pair = self._defaults["increment"]
        constants = {
            **self._defaults,
            "increment_first": pair[0],  # type: ignore[index]
            "increment_next": pair[1],  # type: ignore[index]
        }
        if constants["prefix"] is _REQUIRED and "prefix" not in got:
            return None
        if constants["rate"] is _REQUIRED and "rate" not in got:
            return None
        return list(
            zip(
                *(
                    got[name] if name in got else repeat(constants[name], len(records))
                    for name in _VALUE_SOURCES
                ),
                strict=True,
            )
        )

    def _dates_ok(self, got: dict[str, Sequence[object]]) -> bool:
        starts = got.get("effective_from") or repeat(self._defaults["effective_from"])
        ends = got.get("effective_to") or repeat(self._defaults["effective_to"])
        return all(
            start is None or end is None or end > start  # type: ignore[operator]
            for start, end in zip(starts, ends, strict=False)
        )


def read_tariff_csv(
    lines: Iterable[str],
    *,
    column_map: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
    timezone: str = "UTC",
    source: str = "",
    check_duplicates: bool = True,
) -> Iterator[ParsedRow | RowError]:
    """Stream a CSV deck into rows and errors.

    Args:
        lines: an open text file (newline="") or any iterable of CSV lines.
        column_map: our column -> the file's header, for columns whose header differs.
        defaults: our column -> text used when the cell is empty or the column is absent.
        timezone: the tariff's timezone, for effective dates given without an offset.
        source: a name copied onto errors (file name), for folder imports.
        check_duplicates: report rows repeating a key (prefix, service, direction,
            number_type, band, effective_from) as errors.
    """
    tz = zone(timezone)
    defaults = dict(defaults or {})
    _RowBuilder([], defaults, tz)  # a bad default fails the command before any line is read
    duplicates = DuplicateCheck() if check_duplicates else None
    return _read(lines, dict(column_map or {}), defaults, tz, source, duplicates)


def _read(
    lines: Iterable[str],
    column_map: dict[str, str],
    defaults: dict[str, str],
    tz: ZoneInfo,
    source: str,
    duplicates: DuplicateCheck | None,
) -> Iterator[ParsedRow | RowError]:
    reader = csv.reader(iter(lines))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        yield RowError(1, "the file is empty: expected a header line", source)
        return
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    positions = {name: index for index, name in enumerate(header)}
    columns: list[tuple[str, int]] = []
    for column in NATIVE_COLUMNS:
        wanted = column_map.get(column, column)
        if wanted in positions:
            columns.append((column, positions[wanted]))
        elif column in column_map:
            yield RowError(1, f"header has no column {wanted!r} (mapped to {column})", source)
            return
    missing = [c for c in REQUIRED_COLUMNS if c not in dict(columns) and c not in defaults]
    if missing:
        yield RowError(
            1,
            f"header lacks required column(s) {', '.join(missing)}; "
            f"found {', '.join(header)} (map them with --map COLUMN=HEADER)",
            source,
        )
        return
    width = len(header)
    builder = _RowBuilder(columns, defaults, tz)
    converter = _BlockConverter(columns, defaults, tz)
    while True:
        records: list[list[str]] = []
        keep = records.append
        # The line number of each record as it is read (a quoted cell may span lines); `keep`
        # returns None, so every record is kept.
        lines = [reader.line_num for record in islice(reader, BLOCK_ROWS) if not keep(record)]
        if not records:
            return
        if width == 1 or set(map(len, records)) != {width}:
            # Blank lines to skip, or rows of the wrong width: row by row.
            kept = [
                (line, record)
                for line, record in zip(lines, records, strict=True)
                if record and (len(record) != 1 or record[0].strip())
            ]
            lines = [line for line, _ in kept]
            records = [record for _, record in kept]
            even = all(len(record) == width for record in records)
        else:
            even = True
        if records:
            yield from _block(
                lines, records, converter if even else None, builder, width, source, duplicates
            )


def _block(
    lines: list[int],
    records: list[list[str]],
    converter: _BlockConverter | None,
    builder: _RowBuilder,
    width: int,
    source: str,
    duplicates: DuplicateCheck | None,
) -> Iterable[ParsedRow | RowError]:
    """A block's rows: as storage values with a lazily built RateRow when the block converts
    cleanly (a plain `map`, not one more generator level per row), else row by row (which
    reports each bad row with its reason)."""
    build = builder.build
    values = converter.convert(records) if converter is not None else None
    if values is None:
        return _rows_one_by_one(lines, records, build, width, source, duplicates)
    items = map(ParsedRow, lines, repeat(None), repeat(source), values, repeat(build), records)
    if duplicates is None or duplicates.block(lines, values):
        return items
    return _without_duplicates(items, duplicates)


def _rows_one_by_one(
    lines: list[int],
    records: list[list[str]],
    build: Callable[[list[str]], RateRow],
    width: int,
    source: str,
    duplicates: DuplicateCheck | None,
) -> Iterator[ParsedRow | RowError]:
    for line, record in zip(lines, records, strict=True):
        if len(record) != width:
            yield RowError(line, f"expected {width} fields, got {len(record)}", source)
            continue
        try:
            item = ParsedRow(line, build(record), source)
        except InvalidInput as exc:
            yield RowError(line, exc.message, source)
            continue
        error = duplicates.check(item) if duplicates is not None else None
        yield item if error is None else error


def _without_duplicates(
    items: Iterable[ParsedRow], duplicates: DuplicateCheck
) -> Iterator[ParsedRow | RowError]:
    for item in items:
        error = duplicates.check(item)
        yield item if error is None else error
