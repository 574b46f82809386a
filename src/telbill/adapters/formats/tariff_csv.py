"""Rate decks as CSV: telbill's native layout, and any carrier layout through a column map.

Native headers: prefix, destination, service, direction, number_type, rate, connect_fee,
increment, min_seconds, free_seconds, effective_from, effective_to, weekdays, hours. Only
`prefix` and `rate` are required; an empty cell takes the column's default (`--default`), else
the model's default. A carrier deck is read through `column_map` (our column -> its header),
e.g. the ASTPP deck with ``rate=rate_per_minute,increment=increment_seconds,
free_seconds=included_seconds``. Rows stream: the reader yields `ParsedRow` or `RowError`
(1-based line numbers, the header is line 1) and never holds the deck in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo

from telbill.adapters.formats.tariff_fields import (
    ParsedRow,
    parse_datetime,
    parse_enum,
    parse_hours,
    parse_increment,
    parse_prefix,
    parse_rate,
    parse_seconds,
    parse_weekdays,
    reject_duplicates,
    zone,
)
from telbill.domain.tariffs import Direction, NumberType, RateRow, RowError, Service
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
    items = _read(lines, dict(column_map or {}), defaults, tz, source)
    return reject_duplicates(items) if check_duplicates else items


def _read(
    lines: Iterable[str],
    column_map: dict[str, str],
    defaults: dict[str, str],
    tz: ZoneInfo,
    source: str,
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
    for record in reader:
        line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != width:
            yield RowError(line, f"expected {width} fields, got {len(record)}", source)
            continue
        try:
            yield ParsedRow(line, builder.build(record), source)
        except InvalidInput as exc:
            yield RowError(line, exc.message, source)
