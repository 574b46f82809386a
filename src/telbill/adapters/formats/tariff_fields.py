"""Field parsers and checks shared by the tariff file readers (native CSV, Twilio, CGRateS).

Each parser takes the raw cell text and returns a domain value or raises `InvalidInput` with a
reason that names the column; the readers turn that into a `RowError` with the line number.
Readers yield `ParsedRow | RowError` so that a whole deck streams through without being held
in memory; `reject_duplicates` wraps such a stream and adds an error for every repeated key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telbill.domain.money import parse_amount
from telbill.domain.tariffs import (
    Direction,
    Increment,
    NumberType,
    RateRow,
    RowError,
    Service,
)
from telbill.errors import InvalidInput

_E = TypeVar("_E", Service, Direction, NumberType)

# Rates are stored as integer nano-units (10^-9): a deck with more decimals is refused.
RATE_DECIMALS = 9

_PREFIX_RE = re.compile(r"^\+?(\d+)$")
_WEEKDAY_PART_RE = re.compile(r"^\s*([1-7])\s*(?:-\s*([1-7])\s*)?$")
_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


# A plain rate row as the values tariff storage writes, in the order of
# `telbill.adapters.db.tariff_tables.RATE_VALUE_COLUMNS`: prefix, service, direction,
# number_type (texts), weekdays ("1,2,3") and hours ("08:00-19:00") texts or None,
# effective_from, destination, rate and connect fee in integer nano-units, increment first and
# next seconds (None: the tariff's default), min_seconds, free_seconds, effective_to. The key
# of a row (see `row_key`) is its first seven values. Readers produce these on the fast path,
# so that a million-row deck is stored without building a million RateRow objects.
RateValues = tuple[Any, ...]

NANOS_PER_UNIT = 10**RATE_DECIMALS


class ParsedRow:
    """A good row and where it came from (1-based line; header is line 1).

    `values` holds the row as storage values when the reader produced them (the fast path);
    `row`, the RateRow, is then built only when asked for, by the reader's own row builder from
    the row's cells, so it is exactly what the row-at-a-time reader returns.
    """

    __slots__ = ("line", "source", "values", "_row", "_build", "_cells")

    def __init__(
        self,
        line: int,
        row: RateRow | None = None,
        source: str = "",
        values: RateValues | None = None,
        build: Callable[[list[str]], RateRow] | None = None,
        cells: list[str] | None = None,
    ) -> None:
        if row is None and (build is None or cells is None):
            raise ValueError("a ParsedRow needs a row, or a builder and the row's cells")
        self.line = line
        self.source = source
        self.values = values
        self._row = row
        self._build = build
        self._cells = cells

    @property
    def row(self) -> RateRow:
        if self._row is None:
            assert self._build is not None and self._cells is not None
            self._row = self._build(self._cells)
        return self._row

    def __repr__(self) -> str:
        return f"ParsedRow(line={self.line}, row={self.row!r}, source={self.source!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedRow):
            return NotImplemented
        return (self.line, self.row, self.source) == (other.line, other.row, other.source)

    __hash__ = None  # type: ignore[assignment]


def parse_prefix(text: str) -> str:
    match = _PREFIX_RE.match(text.strip())
    if not match:
        raise InvalidInput(f"prefix must be digits, got {text!r}")
    return match.group(1)


def parse_rate(text: str, field: str) -> Decimal:
    """A non-negative decimal with at most RATE_DECIMALS decimals (exact, never a float)."""
    plain = text.strip()
    digits = plain.replace(".", "", 1)
    if digits.isascii() and digits.isdigit():
        # The common case, plain ASCII digits with at most one point, skips the regex.
        point = plain.find(".")
        if point >= 0 and len(plain) - point - 1 > RATE_DECIMALS:
            raise InvalidInput(f"{field} has more than {RATE_DECIMALS} decimals: {plain!r}")
        return Decimal(plain)
    if not plain.isascii():
        raise InvalidInput(f"{field} must be written with ASCII digits: {plain!r}")
    value = parse_amount(text, field=field)
    if value < 0:
        raise InvalidInput(f"{field} must not be negative, got {text.strip()!r}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > RATE_DECIMALS:
        raise InvalidInput(f"{field} has more than {RATE_DECIMALS} decimals: {text.strip()!r}")
    return value


def rate_nanos(text: str, field: str) -> int:
    """`parse_rate` straight to integer nano-units: same checks and errors, but a plain
    decimal (``0.0123``) is converted by splitting the text, without a Decimal."""
    plain = text.strip()
    whole, _, fraction = plain.partition(".")
    digits = whole + fraction
    if digits and len(fraction) <= RATE_DECIMALS and digits.isascii() and digits.isdigit():
        nanos = int(whole) * NANOS_PER_UNIT if whole else 0
        if fraction:
            nanos += int(fraction.ljust(RATE_DECIMALS, "0"))
        return nanos
    return int(parse_rate(text, field).scaleb(RATE_DECIMALS))


def weekdays_text(days: frozenset[int] | None) -> str | None:
    """How storage writes a weekdays set: ``"1,2,3,4,5"``."""
    return ",".join(str(d) for d in sorted(days)) if days is not None else None


def hours_text(hours: tuple[time, time] | None) -> str | None:
    """How storage writes an hours window: ``"08:00-19:00"``."""
    return f"{hours[0]:%H:%M}-{hours[1]:%H:%M}" if hours is not None else None


def parse_seconds(text: str, field: str) -> int:
    stripped = text.strip()
    if not stripped.isdigit():
        raise InvalidInput(f"{field} must be whole non-negative seconds, got {text!r}")
    return int(stripped)


def parse_increment(text: str) -> Increment:
    try:
        return Increment.parse(text)
    except InvalidInput as exc:
        raise InvalidInput(f"increment: {exc.message}") from exc


def parse_enum(text: str, enum: type[_E], field: str) -> _E:
    value = text.strip().lower()
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidInput(f"{field} must be one of {allowed}, got {text!r}") from None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown timezone {name!r}") from None


def parse_datetime(text: str, field: str, tz: ZoneInfo) -> datetime:
    """ISO 8601 date or date-time; without an offset it is read in the tariff's timezone."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{field} must be an ISO 8601 date or date-time, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def parse_weekdays(text: str) -> frozenset[int]:
    """``1-5``, ``1,3,5``, ``6-7`` or a mix such as ``1-3,5`` (ISO: Monday = 1)."""
    days: set[int] = set()
    for part in text.split(","):
        match = _WEEKDAY_PART_RE.match(part)
        if not match:
            raise InvalidInput(f"weekdays must look like 1-5 or 1,3,5 (Monday = 1), got {text!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if last < first:
            raise InvalidInput(f"weekdays range {part.strip()!r} runs backwards")
        days.update(range(first, last + 1))
    return frozenset(days)


def _clock(hour: str, minute: str, text: str) -> time:
    h, m = int(hour), int(minute)
    if h == 24 and m == 0:
        return time(0, 0)  # 24:00 as an end means midnight
    if h > 23 or m > 59:
        raise InvalidInput(f"hours has an invalid time in {text!r}")
    return time(h, m)


def parse_hours(text: str) -> tuple[time, time]:
    """``08:00-19:00``: a half-open local window; ``22:00-06:00`` wraps midnight."""
    match = _HOURS_RE.match(text)
    if not match:
        raise InvalidInput(f"hours must look like 08:00-19:00, got {text!r}")
    start = _clock(match.group(1), match.group(2), text)
    end = _clock(match.group(3), match.group(4), text)
    if start == end:
        raise InvalidInput(f"hours window {text.strip()!r} is empty")
    return start, end


def row_key(row: RateRow) -> tuple[object, ...]:
    """What makes a row unique inside one tariff version."""
    return (
        row.prefix,
        row.service,
        row.direction,
        row.number_type,
        row.weekdays,
        row.hours,
        row.effective_from,
    )


# The key values after the prefix of a voice, outbound, any-number, unbanded, undated row.
_PLAIN_KEY_TAIL = ("voice", "outbound", "any", None, None, None)


def reject_duplicates(
    items: Iterable[ParsedRow | RowError],
) -> Iterator[ParsedRow | RowError]:
    """Pass items through; a row whose key was seen before becomes a RowError.

    Keys are compared exactly. To keep memory small on million-row decks, the key of a plain
    row (voice, outbound, any number type, no band, no date: most rows) is its prefix string
    alone, and other rows are keyed by their storage values (`RateValues`' first seven), so no
    RateRow is built for a row that arrived as values.
    """
    plain: dict[str, int] = {}
    other: dict[tuple[object, ...], int] = {}
    for item in items:
        if isinstance(item, ParsedRow):
            values = item.values
            if values is None:
                row = item.row
                values = (
                    row.prefix,
                    row.service.value,
                    row.direction.value,
                    row.number_type.value,
                    weekdays_text(row.weekdays),
                    hours_text(row.hours),
                    row.effective_from,
                )
            prefix = values[0]
            if values[1:7] == _PLAIN_KEY_TAIL:
                first = plain.get(prefix)
                if first is None:
                    plain[prefix] = item.line
            else:
                key = values[:7]
                first = other.get(key)
                if first is None:
                    other[key] = item.line
            if first is not None:
                yield RowError(
                    item.line,
                    f"duplicate rate for prefix {prefix} ({values[1]}, "
                    f"{values[2]}, {values[3]}): first on line {first}",
                    item.source,
                )
                continue
        yield item
