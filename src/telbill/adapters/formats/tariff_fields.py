"""Field parsers and checks shared by the tariff file readers (native CSV, Twilio, CGRateS).

Each parser takes the raw cell text and returns a domain value or raises `InvalidInput` with a
reason that names the column; the readers turn that into a `RowError` with the line number.
Readers yield `ParsedRow | RowError` so that a whole deck streams through without being held
in memory; `reject_duplicates` wraps such a stream and adds an error for every repeated key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import NamedTuple, TypeVar
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


class ParsedRow(NamedTuple):
    """A good row and where it came from (1-based line; header is line 1).

    A NamedTuple rather than a dataclass: one is made per deck line, and tuples are cheap.
    """

    line: int
    row: RateRow
    source: str = ""


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


def reject_duplicates(
    items: Iterable[ParsedRow | RowError],
) -> Iterator[ParsedRow | RowError]:
    """Pass items through; a row whose key was seen before becomes a RowError."""
    seen: dict[tuple[object, ...], int] = {}
    for item in items:
        if isinstance(item, ParsedRow):
            key = row_key(item.row)
            first = seen.get(key)
            if first is None:
                seen[key] = item.line
            else:
                yield RowError(
                    item.line,
                    f"duplicate rate for prefix {item.row.prefix} ({item.row.service}, "
                    f"{item.row.direction}, {item.row.number_type}): first on line {first}",
                    item.source,
                )
                continue
        yield item
