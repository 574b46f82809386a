"""Rules for values that come from outside: text, instants, months, timezone names.

Every interface (API types, CDR readers, CLI options) checks input with these functions, so
one rule holds everywhere:

* Text never holds a NUL character (PostgreSQL cannot store it) or a lone surrogate (it has
  no UTF-8 form: encoding it fails far from where it came in).
* An instant (a naive one counts as UTC) lies between `EARLIEST` and `LATEST` (UTC), with room on
  both sides for any offset or billing period added to it (year 9999 + 14 h overflows).
* A month is ``YYYY-MM`` in those years; a timezone is an IANA name known to zoneinfo.

Text that is already stored (a quarantined CDR from before these rules) is shown through
`printable`, which escapes what cannot be encoded instead of failing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telbill.errors import InvalidInput

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_TIMEZONE_LENGTH = 64
_BAD_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
_MONTH = re.compile(r"(\d{4})-(\d{2})")  # fullmatch: "$" would let a final newline in
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be taken as text (None when it can).

    Python strings never hold a *paired* surrogate (a pair is one code point), so any
    surrogate code point found is a lone one.
    """
    found = _BAD_CHARACTERS.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain a NUL character"
    return f"must not contain a lone surrogate (U+{ord(found.group()):04X})"


def check_text(value: str, field: str, *, max_length: int | None = None) -> str:
    """`value` when it is acceptable text of at most `max_length` characters, else
    InvalidInput naming `field`."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(f"{field} {problem}")
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters")
    return value


def printable(value: str) -> str:
    """`value` with NUL and lone surrogates written as escapes (``\\x00``, ``\\ud800``): text
    that can always be stored and encoded, and still shows what came in."""
    if _BAD_CHARACTERS.search(value) is None:
        return value
    return _BAD_CHARACTERS.sub(lambda m: m.group().encode("unicode_escape").decode(), value)


def printable_value(value: Any, max_length: int | None = None) -> Any:
    """`value` (JSON-like: dicts, lists, strings...) with every string and key `printable`,
    and strings longer than `max_length` cut to it with a note of the length they had."""
    if isinstance(value, str):
        if max_length is not None and len(value) > max_length:
            value = f"{value[:max_length]}... ({len(value)} characters)"
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): printable_value(v, max_length) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_value(item, max_length) for item in value]
    return value


def check_instant(value: datetime, field: str) -> datetime:
    """`value` when it lies between `EARLIEST` and `LATEST` once its offset is applied (a
    naive time counts as UTC, as the interfaces read it), else InvalidInput."""
    try:
        utc = value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise InvalidInput(f"{field} must lie between {EARLIEST.year} and {LATEST.year - 1} (UTC)")
    return value


def check_month(value: str, field: str = "month") -> str:
    """A ``YYYY-MM`` month of a valid year and month number, else InvalidInput."""
    found = _MONTH.fullmatch(value)
    if found is None:
        raise InvalidInput(f"{field} must be YYYY-MM, e.g. 2026-03")
    year, month = int(found.group(1)), int(found.group(2))
    if not 1 <= month <= 12:
        raise InvalidInput(f"{field} has no month {month:02d}: months run 01..12")
    if not EARLIEST.year <= year < LATEST.year:
        raise InvalidInput(f"{field} must lie between {EARLIEST.year} and {LATEST.year - 1}")
    return value


def check_timezone_name(value: str, field: str = "timezone") -> str:
    """An IANA timezone name that zoneinfo knows, else InvalidInput (never OSError: a name
    is checked for shape and length before it is looked up as a file)."""
    if len(value) > MAX_TIMEZONE_LENGTH or _ZONE_NAME.fullmatch(value) is None:
        raise InvalidInput(f"{field}: unknown timezone {value[:80]!r}: expected an IANA name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidInput(
            f"{field}: unknown timezone {value!r}: expected an IANA name such as Europe/Paris"
        ) from exc
    return value


__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_TIMEZONE_LENGTH",
    "check_instant",
    "check_month",
    "check_text",
    "check_timezone_name",
    "printable",
    "printable_value",
    "text_problem",
]
