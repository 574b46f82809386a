"""Helpers shared by the CDR readers (`cdr_native`, `cdr_freeswitch`, `cdr_asterisk`).

A CDR reader is a generator: it takes an open text stream, reads one record at a time
(constant memory in the file size) and yields, per record, either a `UsageEvent` or a
`CdrRowError` (a `RowError` that also carries the record's raw columns, so that offline
rating can copy them to its output). A bad record never stops the file.

Timestamps: naive stamps are read in the reader's timezone (UTC unless told otherwise:
switches usually log local time), aware ones keep their offset; every stamp leaves here
as timezone-aware UTC.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telbill.domain.inputs import check_instant, check_text, text_problem
from telbill.domain.tariffs import Direction, RowError, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput

CDR_FORMATS = ("native", "freeswitch", "asterisk")


@dataclass(frozen=True, slots=True)
class CdrRowError(RowError):
    """A bad CDR record: line, reason, and the record's raw columns (possibly partial)."""

    raw: dict[str, str] = field(default_factory=dict)


CdrRecord = UsageEvent | RowError
CdrStream = Iterator[CdrRecord]


def resolve_timezone(name: str | tzinfo | None) -> tzinfo:
    """Return a tzinfo for an IANA name (``"Europe/Paris"``), ``None``/``"UTC"`` meaning UTC."""
    if name is None:
        return UTC
    if isinstance(name, tzinfo):
        return name
    if name.strip().upper() in {"", "UTC", "Z"}:
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown timezone {name!r}: expected an IANA name") from exc


def parse_timestamp(text: str, column: str, local_tz: tzinfo = UTC) -> datetime:
    """Parse an ISO 8601 stamp (``2026-01-31T10:00:00Z``, ``2026-01-31 10:00:00+02:00``).

    A naive stamp is read in `local_tz`; the result is always aware UTC.
    """
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{column}: not an ISO 8601 time: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = _localize(parsed, local_tz)
    check_instant(parsed, column)  # also: 0001-01-01T00:00:00+14:00 has no UTC time
    return parsed.astimezone(UTC)


def _localize(naive: datetime, local_tz: tzinfo) -> datetime:
    if isinstance(local_tz, ZoneInfo):
        # fold=0 picks the first of two ambiguous wall times (DST end), the usual switch log.
        return naive.replace(tzinfo=local_tz, fold=0)
    return naive.replace(tzinfo=local_tz)


# Longest column of a CDR record (ids, accounts, numbers, campaigns) and longest message
# text: a longer one is corrupt or hostile, refused with its line (and stored cut short).
MAX_CDR_FIELD = 200
MAX_MESSAGE_TEXT = 10_000
FIELD_LIMITS = {"text": MAX_MESSAGE_TEXT}
MAX_FOREIGN_FIELD = 2_000  # a column of a switch's own format (SIP URIs, user agents...)


def check_columns(
    names: Sequence[str], fields: Sequence[str], *, limit: int = MAX_CDR_FIELD
) -> None:
    """Refuse a record whose columns hold a NUL, a lone surrogate, bytes that were not UTF-8
    (files are decoded with ``surrogateescape``: each such byte is a lone surrogate), or
    more characters than their limit (`limit`, `FIELD_LIMITS`); InvalidInput names the
    first such column.

    `names`: the columns' names, lower case, in the order of `fields`. The usual record
    (short, clean) costs one search over its joined text.
    """
    joined = "".join(fields)
    if len(joined) <= limit and text_problem(joined) is None:
        return
    for name, value in zip(names, fields, strict=False):
        escaped = _ESCAPED_BYTE.search(value)
        if escaped is not None:
            byte = ord(escaped.group()) - 0xDC00
            raise InvalidInput(f"{name}: not UTF-8 text (byte 0x{byte:02X})")
        check_text(value, name, max_length=FIELD_LIMITS.get(name, limit))


# What `surrogateescape` makes of a byte that is not UTF-8 (0x80..0xFF).
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record the csv module could not read (a field over its size limit...)."""

    reason: str


def tolerant_rows(reader: Any) -> Iterator[list[str] | Unreadable]:
    """The rows of a `csv.reader`, with an `Unreadable` for a row it refuses (csv.Error)
    instead of the exception: the reader goes on with the next line, and so does the file."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Unreadable(f"unreadable CSV: {exc}")


MAX_SECONDS = 10**9  # ~31 years: larger durations/counts are corrupt and would overflow storage


def parse_epoch(text: str, column: str) -> datetime | None:
    """Parse whole Unix seconds; ``0`` or blank mean "never" (FreeSWITCH's unanswered)."""
    value = text.strip()
    if value in {"", "0"}:
        return None
    if not (value.isascii() and value.isdigit()):
        raise InvalidInput(f"{column}: not Unix epoch seconds: {text!r}")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInput(f"{column}: Unix epoch seconds out of range: {text!r}") from exc


def parse_seconds(text: str, column: str) -> int:
    """Parse a whole, non-negative number of seconds (or count), at most MAX_SECONDS."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()):
        raise InvalidInput(f"{column}: expected whole seconds >= 0, got {text!r}")
    if len(value) > 12 or int(value) > MAX_SECONDS:
        raise InvalidInput(f"{column}: {text!r} is over the limit of {MAX_SECONDS}")
    return int(value)


def parse_direction(text: str, column: str = "direction") -> Direction:
    value = text.strip().lower()
    try:
        return Direction(value) if value else Direction.OUTBOUND
    except ValueError as exc:
        choices = ", ".join(d.value for d in Direction)
        raise InvalidInput(f"{column}: unknown direction {text!r} (expected {choices})") from exc


def parse_service(text: str, column: str = "service") -> Service:
    value = text.strip().lower()
    try:
        return Service(value) if value else Service.VOICE
    except ValueError as exc:
        choices = ", ".join(s.value for s in Service)
        raise InvalidInput(f"{column}: unknown service {text!r} (expected {choices})") from exc


def check_call_times(start: datetime, answer: datetime | None, end: datetime | None) -> None:
    """Refuse impossible call times: answer before start, end before answer/start."""
    if answer is not None and answer < start:
        raise InvalidInput("answer is before start")
    if end is not None and end < start:
        raise InvalidInput("end is before start")
    if answer is not None and end is not None and end < answer:
        raise InvalidInput("end is before answer")


def stable_id(prefix: str, raw: Mapping[str, str]) -> str:
    """A deterministic id for a record that has none: the same row always gets the same id,
    so replaying a file stays idempotent."""
    digest = hashlib.sha256("\x1f".join(raw.values()).encode()).hexdigest()[:24]
    return f"{prefix}-{digest}"


def error_reason(exc: Exception) -> str:
    """One-line reason for a bad record."""
    if isinstance(exc, InvalidInput):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
