"""Field parsers and checks shared by the tariff file readers (native CSV, Twilio, CGRateS).

Each parser takes the raw cell text and returns a domain value or raises `InvalidInput` with a
reason that names the column; the readers turn that into a `RowError` with the line number.
Readers yield `ParsedRow | RowError` so that a whole deck streams through without being held
in memory; `reject_duplicates` wraps such a stream and adds an error for every repeated key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, time
from decimal import Decimal
from itertools import repeat
from operator import itemgetter
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


_PLAIN_DECIMALS_RE = re.compile(
    rf"(?:\d+(?:\.\d{{0,{RATE_DECIMALS}}})?|\.\d{{1,{RATE_DECIMALS}}})"
    rf"(?:\n(?:\d+(?:\.\d{{0,{RATE_DECIMALS}}})?|\.\d{{1,{RATE_DECIMALS}}}))*",
    re.ASCII,
)


_FIRST, _SECOND, _THIRD = itemgetter(0), itemgetter(1), itemgetter(2)


def plain_nanos_column(texts: Sequence[str]) -> list[int] | None:
    """Nano-units of a whole column of cells when every one is a plain decimal (``12``,
    ``0.0123``, ``.5``: ASCII digits, at most RATE_DECIMALS decimals, no sign, no spaces),
    converted without a Python call per cell; None when any cell is not (use `rate_nanos`)."""
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1:
        return None  # a cell holding a line break would pass for two cells
    # Decks usually write every amount with the same number of decimals: then the digits
    # without the point, scaled once, are the nano-units (all in C, no call per cell).
    first = texts[0] if texts else ""
    point = first.find(".")
    if 0 <= point and len(first) - point - 1 <= RATE_DECIMALS:
        parts = list(map(str.partition, texts, repeat(".")))
        wholes = list(map(_FIRST, parts))
        fractions = list(map(_THIRD, parts))
        if (
            set(map(_SECOND, parts)) == {"."}
            and len(set(map(len, fractions))) == 1
            and (digits := "".join(wholes) + "".join(fractions)).isascii()
            and digits.isdigit()
            and (fractions[0] or min(map(len, wholes)))
        ):
            scale = 10 ** (RATE_DECIMALS - len(fractions[0]))
            return list(map(scale.__mul__, map(int, map(str.__add__, wholes, fractions))))
    elif point < 0 and (digits := joined.replace("\n", "")).isascii() and digits.isdigit():
        if all(texts):
            return list(map(NANOS_PER_UNIT.__mul__, map(int, texts)))
    if not _PLAIN_DECIMALS_RE.fullmatch(joined):
        return None
    pad = "0" * RATE_DECIMALS
    return [
        int(whole + (fraction + pad)[:RATE_DECIMALS])
        for whole, _, fraction in map(str.partition, texts, repeat("."))
    ]


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
_KEY_TAIL = itemgetter(1, 2, 3, 4, 5, 6)
_PREFIX = itemgetter(0)


def _values_key(values: RateValues) -> object:
    """A row's key, exact but small: the prefix string alone for a plain row (voice,
    outbound, any number type, no band, no date: most rows), else the first seven values.
    A string never equals a tuple, so both kinds share one dict."""
    return values[0] if values[1:7] == _PLAIN_KEY_TAIL else values[:7]


def _row_values_key(row: RateRow) -> object:
    return _values_key(
        (
            row.prefix,
            row.service.value,
            row.direction.value,
            row.number_type.value,
            weekdays_text(row.weekdays),
            hours_text(row.hours),
            row.effective_from,
        )
    )


class DuplicateCheck:
    """Remembers the key of every row seen (with its line) and flags repeats.

    Keys are compared exactly; a million plain rows cost about one prefix string and one
    dict entry each (no key tuple, no RateRow).
    """

    def __init__(self) -> None:
        self._seen: dict[object, int] = {}

    def block(self, lines: list[int], values: list[RateValues]) -> bool:
        """Record a block of rows at once when none repeats a key (returns True); else
        record nothing and return False, so that the caller checks the rows one by one."""
        if set(map(_KEY_TAIL, values)) == {_PLAIN_KEY_TAIL}:
            keys: list[object] = list(map(_PREFIX, values))
        else:
            keys = list(map(_values_key, values))
        seen = self._seen
        if len(set(keys)) != len(keys) or not seen.keys().isdisjoint(keys):
            return False
        seen.update(zip(keys, lines, strict=True))
        return True

    def check(self, item: ParsedRow) -> RowError | None:
        """Record one row; a RowError if its key was seen before."""
        values = item.values
        key = _values_key(values) if values is not None else _row_values_key(item.row)
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = item.line
            return None
        head = values if values is not None else _row_key_values(item.row)
        return RowError(
            item.line,
            f"duplicate rate for prefix {head[0]} ({head[1]}, {head[2]}, {head[3]}): "
            f"first on line {first}",
            item.source,
        )


def _row_key_values(row: RateRow) -> tuple[str, str, str, str]:
    return (row.prefix, row.service.value, row.direction.value, row.number_type.value)


def reject_duplicates(
    items: Iterable[ParsedRow | RowError],
) -> Iterator[ParsedRow | RowError]:
    """Pass items through; a row whose key was seen before becomes a RowError."""
    duplicates = DuplicateCheck()
    for item in items:
        if isinstance(item, ParsedRow):
            error = duplicates.check(item)
            if error is not None:
                yield error
                continue
        yield item
