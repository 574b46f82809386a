"""Reader of telbill's native CDR CSV.

Header (names case-insensitive, order free; line 1 is the header)::

    id, account, user, direction, from, to, start, answer, end | duration,
    service, text | segments, [speech_seconds], [campaign], [units]

* Required: ``id``, ``to``, ``start``. ``account`` may be blank when the caller gives a
  default (offline rating needs none). ``direction`` defaults to outbound, ``service`` to voice.
* Times are ISO 8601. A naive time is UTC (or the reader's `timezone`); an offset is
  converted to UTC.
* Voice: a blank ``answer`` with ``end`` means unanswered. With ``duration`` instead of
  ``end``: the call is billed for ``duration`` seconds from ``answer`` (or from ``start`` when
  ``answer`` is blank); a duration of 0 with no answer is an unanswered call. ``end`` and
  ``duration`` both given must agree.
* SMS/MMS: ``text`` (segments are computed when rated) or ``segments`` (a positive count).
* ``campaign`` (optional): id or name of the account's campaign that made the usage.
* Data and generic usage (service ``data`` or ``generic``): ``units``, the bytes or units
  used (a whole number, 0 or more).

Every record gives a `UsageEvent` (with `line` and the raw columns in `raw`) or a
`CdrRowError` with its 1-based line and reason; a bad row never stops the file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from telbill.adapters.formats.cdr_common import (
    CdrRowError,
    CdrStream,
    Unreadable,
    check_call_times,
    check_columns,
    error_reason,
    parse_direction,
    parse_seconds,
    parse_service,
    parse_timestamp,
    resolve_timezone,
    tolerant_rows,
)
from telbill.domain.tariffs import UNIT_SERVICES, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput

NATIVE_COLUMNS = (
    "id", "account", "user", "direction", "from", "to", "start", "answer", "end",
    "duration", "service", "text", "segments", "speech_seconds", "campaign", "units",
)  # fmt: skip
REQUIRED_COLUMNS = ("id", "to", "start")
MESSAGE_SERVICES = frozenset({Service.SMS, Service.MMS})


def read_native_cdrs(
    lines: Iterable[str],
    *,
    default_account: str = "",
    timezone: str | tzinfo | None = None,
    keep: Callable[[int], bool] | None = None,
) -> CdrStream:
    """Yield a `UsageEvent` or a `CdrRowError` per record of a native CDR CSV.

    Args:
        lines: an open text file (opened with ``newline=""``) or any iterable of lines.
        default_account: account for rows whose ``account`` is blank or absent.
        timezone: IANA zone for naive times (default UTC).
        keep: given the 0-based ordinal of a record (blank lines are not records), whether
            to yield it; the others are skipped unparsed (a worker's share of a file).

    Raises:
        InvalidInput: the header lacks a required column (nothing is yielded).
    """
    local_tz = resolve_timezone(timezone)
    reader = csv.reader(iter(lines))
    header = next(reader, None)
    if header is None:
        return
    layout = NativeLayout.of(header)
    previous_end = reader.line_num
    ordinal = -1
    for fields in tolerant_rows(reader):
        line = previous_end + 1
        previous_end = reader.line_num
        if isinstance(fields, Unreadable):
            ordinal += 1
            if keep is None or keep(ordinal):
                yield CdrRowError(line, fields.reason, raw={})
            continue
        if not any(value.strip() for value in fields):
            continue
        ordinal += 1
        if keep is not None and not keep(ordinal):
            continue
        yield layout.record(fields, line, default_account, local_tz)


@dataclass(frozen=True, slots=True)
class NativeLayout:
    """A native file's header: its columns as written and where each known column is."""

    header: tuple[str, ...]
    where: dict[str, int]
    names: tuple[str, ...] = ()  # the header's names, lower case (`check_columns`)

    @classmethod
    def of(cls, header: Sequence[str]) -> NativeLayout:
        """The layout of a header row (InvalidInput when a required column is missing)."""
        names = [name.strip().lower().lstrip("\ufeff") for name in header]
        missing = [name for name in REQUIRED_COLUMNS if name not in names]
        if missing:
            raise InvalidInput(f"line 1: CDR header lacks column(s) {', '.join(missing)}")
        # Position of each known column (the last one when a name repeats, as a dict would
        # keep it); -1 when the file lacks it.
        where = {name: -1 for name in NATIVE_COLUMNS}
        for position, name in enumerate(names):
            where[name] = position
        return cls(tuple(header), where, tuple(names))

    def record(
        self, fields: list[str], line: int, default_account: str, tz: tzinfo
    ) -> UsageEvent | CdrRowError:
        """The event (or the error) of one non-blank record at `line`."""
        header = self.header
        if len(fields) != len(header):
            raw = {name: fields[i] if i < len(fields) else "" for i, name in enumerate(header)}
            reason = f"expected {len(header)} columns, got {len(fields)}"
            return CdrRowError(line, reason, raw=raw)
        raw = dict(zip(header, fields, strict=True))
        try:
            check_columns(self.names, fields)
            return _event(fields, self.where, raw, line, default_account, tz)
        except (InvalidInput, ValueError, OverflowError) as exc:  # a time past year 9999
            return CdrRowError(line, error_reason(exc), raw=raw)

    def records_of_lines(
        self, lines: Iterable[tuple[int, str]], default_account: str, tz: tzinfo
    ) -> Iterator[UsageEvent | CdrRowError]:
        """The records of single physical lines (line number, text without its end), as
        `read_native_cdrs` reads them: a blank line is no record."""
        for line, text in lines:
            try:
                fields = next(csv.reader([text]), [])
            except csv.Error as exc:
                yield CdrRowError(line, f"unreadable CSV: {exc}", raw={})
                continue
            if not any(value.strip() for value in fields):
                continue
            yield self.record(fields, line, default_account, tz)


def _event(
    fields: list[str],
    where: dict[str, int],
    raw: dict[str, str],
    line: int,
    default_account: str,
    tz: tzinfo,
) -> UsageEvent:
    def get(name: str) -> str:
        position = where[name]
        return fields[position].strip() if position >= 0 else ""

    event_id = get("id")
    if not event_id:
        raise InvalidInput("id is blank")
    to_number = get("to")
    if not to_number:
        raise InvalidInput("to is blank")
    service = parse_service(get("service"))
    start = parse_timestamp(get("start"), "start", tz)
    text: str | None = None
    segments: int | None = None
    answer: datetime | None = None
    end: datetime | None = None
    duration_s: int | None = None
    units: int | None = None
    if service in UNIT_SERVICES:
        if not get("units"):
            raise InvalidInput(f"units is blank (the bytes or units of {service.value} usage)")
        units = _units(get("units"))
    elif service in MESSAGE_SERVICES:
        position = where["text"]
        text, segments = _message(get("segments"), fields[position] if position >= 0 else "")
    else:
        answer, end, duration_s = _call_times(start, get("answer"), get("end"), get("duration"), tz)
    speech = get("speech_seconds")
    return UsageEvent(
        id=event_id,
        account=get("account") or default_account,
        to_number=to_number,
        start=start,
        service=service,
        direction=parse_direction(get("direction")),
        user=get("user") or None,
        from_number=get("from") or None,
        answer=answer,
        end=end,
        duration_s=duration_s,
        text=text,
        segments=segments,
        speech_s=parse_seconds(speech, "speech_seconds") if speech else 0,
        campaign=get("campaign") or None,
        line=line,
        raw=raw,
        units=units,
    )


MAX_UNITS = 10**15  # a petabyte of data in one record is junk


def _units(text: str) -> int:
    """Bytes or units used: a whole number from 0 to MAX_UNITS."""
    if not (text.isascii() and text.isdigit()) or len(text) > 16 or int(text) > MAX_UNITS:
        raise InvalidInput(f"units: expected a whole number from 0 to {MAX_UNITS}, got {text!r}")
    return int(text)


def _message(segments: str, raw_text: str) -> tuple[str | None, int | None]:
    # `raw_text` is not stripped: spaces are part of a message.
    if segments:
        count = parse_seconds(segments, "segments")
        if count < 1:
            raise InvalidInput("segments must be at least 1")
        return (raw_text or None), count
    if not raw_text:
        raise InvalidInput("a message needs text or segments")
    return raw_text, None


def _call_times(
    start: datetime, answer_text: str, end_text: str, duration_text: str, tz: tzinfo
) -> tuple[datetime | None, datetime | None, int | None]:
    answer = parse_timestamp(answer_text, "answer", tz) if answer_text else None
    end = parse_timestamp(end_text, "end", tz) if end_text else None
    duration_s = parse_seconds(duration_text, "duration") if duration_text else None
    if end is None and duration_s is None:
        raise InvalidInput("a call needs end or duration")
    if end is None and duration_s is not None:
        if answer is None and duration_s == 0:
            return None, start, None  # never answered
        answer = answer or start
        end = answer + timedelta(seconds=duration_s)
    check_call_times(start, answer, end)
    if duration_s is not None and answer is not None and end is not None:
        measured = int((end - answer).total_seconds())
        if measured != duration_s:
            raise InvalidInput(f"duration {duration_s} s disagrees with answer..end ({measured} s)")
    if answer is None:
        duration_s = None
    return answer, end, duration_s
