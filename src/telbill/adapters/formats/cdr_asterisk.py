"""Reader of Asterisk's ``Master.csv`` (cdr_csv backend).

cdr_csv writes no header; each record is, in order::

    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
    start, answer, end, duration, billsec, disposition, amaflags, [uniqueid], [userfield]

(``uniqueid`` and ``userfield`` appear with ``loguniqueid``/``loguserfield`` in cdr.conf).
Stamps (``2026-01-31 10:00:00``) are the PBX's local time unless ``usegmtime=yes``: pass
the `timezone`. A disposition other than ``ANSWERED`` (NO ANSWER, BUSY, FAILED,
CONGESTION) is an unanswered call; ``billsec`` is the billed duration. A record without a
``uniqueid`` gets a stable id derived from its content, so replays stay idempotent.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import tzinfo

from telbill.adapters.formats.cdr_common import (
    MAX_FOREIGN_FIELD,
    CdrRowError,
    CdrStream,
    Unreadable,
    check_call_times,
    check_columns,
    error_reason,
    parse_seconds,
    parse_timestamp,
    resolve_timezone,
    stable_id,
    tolerant_rows,
)
from telbill.domain.tariffs import Direction
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput

ASTERISK_COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
)
MIN_COLUMNS = 16  # without the optional uniqueid and userfield


def read_asterisk_csv(
    lines: Iterable[str],
    *,
    timezone: str | tzinfo | None = None,
    direction: Direction = Direction.OUTBOUND,
    default_account: str = "",
) -> CdrStream:
    """Yield a `UsageEvent` or a `CdrRowError` per Master.csv record.

    Args:
        lines: an open text file (``newline=""``) or an iterable of lines.
        timezone: the PBX's zone for its local stamps (default UTC).
        direction: billing direction of every event (default outbound).
        default_account: account when ``accountcode`` is blank.
    """
    local_tz = resolve_timezone(timezone)
    reader = csv.reader(iter(lines))
    previous_end = 0
    for fields in tolerant_rows(reader):
        line = previous_end + 1
        previous_end = reader.line_num
        if isinstance(fields, Unreadable):
            yield CdrRowError(line, fields.reason, raw={})
            continue
        if not any(value.strip() for value in fields):
            continue
        raw = {
            name: fields[i] if i < len(fields) else "" for i, name in enumerate(ASTERISK_COLUMNS)
        }
        if not MIN_COLUMNS <= len(fields) <= len(ASTERISK_COLUMNS):
            expected = f"{MIN_COLUMNS} to {len(ASTERISK_COLUMNS)}"
            yield CdrRowError(line, f"expected {expected} columns, got {len(fields)}", raw=raw)
            continue
        try:
            check_columns(list(raw), list(raw.values()), limit=MAX_FOREIGN_FIELD)
            yield _event(raw, line, local_tz, direction, default_account)
        except (InvalidInput, ValueError) as exc:
            yield CdrRowError(line, error_reason(exc), raw=raw)


def _event(
    raw: dict[str, str], line: int, tz: tzinfo, direction: Direction, default_account: str
) -> UsageEvent:
    def get(name: str) -> str:
        return raw.get(name, "").strip()

    to_number = get("dst")
    if not to_number:
        raise InvalidInput("dst is blank")
    start = parse_timestamp(get("start"), "start", tz)
    end = parse_timestamp(get("end"), "end", tz)
    billsec = parse_seconds(get("billsec"), "billsec")
    parse_seconds(get("duration"), "duration")
    answered = get("disposition").upper() == "ANSWERED"
    answer = parse_timestamp(get("answer"), "answer", tz) if answered and get("answer") else None
    if answered and answer is None:
        raise InvalidInput("disposition is ANSWERED but answer is blank")
    check_call_times(start, answer, end)
    return UsageEvent(
        id=get("uniqueid") or stable_id("ast", raw),
        account=get("accountcode") or default_account,
        to_number=to_number,
        start=start,
        direction=direction,
        from_number=get("src") or None,
        answer=answer,
        end=end,
        duration_s=billsec if answer is not None else None,
        line=line,
        raw=raw,
    )
