"""Readers of FreeSWITCH CDRs: mod_cdr_csv files and mod_json_cdr JSON.

mod_cdr_csv writes no header; the column order is its template. The default is the vanilla
``example`` template (the module's built-in default stops after ``accountcode``)::

    caller_id_name, caller_id_number, destination_number, context, start_stamp,
    answer_stamp, end_stamp, duration, billsec, hangup_cause, uuid, bleg_uuid,
    accountcode, read_codec, write_codec

A custom template is read by passing its variable names as `columns`; a first row that
spells the column names is taken as a header. Stamps (``2026-01-31 10:00:00``) are the
switch's local time: pass its `timezone`. A blank ``answer_stamp`` means unanswered;
``billsec`` is the billed duration.

mod_json_cdr writes one JSON document per call leg; the facts are in ``variables``
(``uuid``, ``accountcode``, ``start_epoch``/``answer_epoch``/``end_epoch`` or the
URL-encoded ``*_stamp``, ``billsec``...), numbers may sit in ``callflow[].caller_profile``.
Accepted files: JSON Lines (one document per line, streamed), a single document, a JSON
array (read whole), or a folder of ``*.json`` files.

Direction: FreeSWITCH's own ``direction`` is relative to the switch (the A-leg of a
customer's outgoing call is "inbound" to FreeSWITCH), so it is not a billing direction.
Events are outbound unless the dialplan sets the channel variable ``telbill_direction``
(JSON) or the reader is given a `direction`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from telbill.adapters.formats.cdr_common import (
    MAX_FOREIGN_FIELD,
    CdrRowError,
    CdrStream,
    Unreadable,
    check_call_times,
    check_columns,
    error_reason,
    parse_direction,
    parse_epoch,
    parse_seconds,
    parse_timestamp,
    resolve_timezone,
    stable_id,
    tolerant_rows,
)
from telbill.domain.tariffs import Direction
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput

FREESWITCH_CSV_COLUMNS = (
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "context",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "uuid",
    "bleg_uuid",
    "accountcode",
    "read_codec",
    "write_codec",
)
# The module's compiled-in default template ends here; shorter rows are malformed.
MIN_CSV_COLUMNS = 13

# The JSON variables copied into `UsageEvent.raw` (a fixed set: rated output has fixed columns).
FREESWITCH_JSON_COLUMNS = (
    "uuid",
    "accountcode",
    "caller_id_number",
    "destination_number",
    "direction",
    "start_epoch",
    "answer_epoch",
    "end_epoch",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "telbill_direction",
    "telbill_user",
)
EMPTY_JSON_RAW = dict.fromkeys(FREESWITCH_JSON_COLUMNS, "")


def read_freeswitch_csv(
    lines: Iterable[str],
    *,
    columns: Sequence[str] = FREESWITCH_CSV_COLUMNS,
    timezone: str | tzinfo | None = None,
    direction: Direction = Direction.OUTBOUND,
    default_account: str = "",
) -> CdrStream:
    """Yield a `UsageEvent` or a `CdrRowError` per mod_cdr_csv record.

    Args:
        lines: an open text file (``newline=""``) or an iterable of lines.
        columns: the template's variable names in order.
        timezone: the switch's zone for its local stamps (default UTC).
        direction: billing direction of every event (default outbound).
        default_account: account when ``accountcode`` is blank.
    """
    local_tz = resolve_timezone(timezone)
    names = list(columns)
    required = (
        min(len(names), MIN_CSV_COLUMNS) if names == list(FREESWITCH_CSV_COLUMNS) else len(names)
    )
    reader = csv.reader(iter(lines), skipinitialspace=True)
    previous_end = 0
    for fields in tolerant_rows(reader):
        line = previous_end + 1
        previous_end = reader.line_num
        if isinstance(fields, Unreadable):
            yield CdrRowError(line, fields.reason, raw={})
            continue
        if not any(value.strip() for value in fields):
            continue
        if line == 1 and fields and fields[0].strip().lstrip("\ufeff") == names[0]:
            names = [value.strip().lstrip("\ufeff") for value in fields]
            required = len(names)
            continue
        raw = _name_fields(names, fields)
        if len(fields) < required:
            yield CdrRowError(line, f"expected {required} columns, got {len(fields)}", raw=raw)
            continue
        try:
            check_columns(list(raw), list(raw.values()), limit=MAX_FOREIGN_FIELD)
            yield _event_from_variables(raw, raw, line, local_tz, direction, default_account)
        except (InvalidInput, ValueError) as exc:
            yield CdrRowError(line, error_reason(exc), raw=raw)


def _name_fields(names: Sequence[str], fields: Sequence[str]) -> dict[str, str]:
    raw = {name: fields[i] if i < len(fields) else "" for i, name in enumerate(names)}
    for extra, value in enumerate(fields[len(names) :], start=len(names) + 1):
        raw[f"column_{extra}"] = value
    return raw


def _event_from_variables(
    variables: Mapping[str, str],
    raw: dict[str, str],
    line: int,
    tz: tzinfo,
    direction: Direction | None,
    default_account: str,
) -> UsageEvent:
    def get(name: str) -> str:
        return (variables.get(name) or "").strip()

    to_number = get("destination_number")
    if not to_number:
        raise InvalidInput("destination_number is blank")
    start = _time(variables, "start", tz)
    if start is None:
        raise InvalidInput("start_stamp is blank")
    answer = _time(variables, "answer", tz)
    end = _time(variables, "end", tz)
    billsec = parse_seconds(get("billsec"), "billsec") if get("billsec") else None
    if end is None:
        raise InvalidInput("end_stamp is blank")
    check_call_times(start, answer, end)
    if direction is None:
        chosen = get("telbill_direction")
        direction = parse_direction(chosen, "telbill_direction")
    return UsageEvent(
        id=get("uuid") or stable_id("fs", raw),
        account=get("accountcode") or default_account,
        to_number=to_number,
        start=start,
        direction=direction,
        user=get("telbill_user") or get("user") or None,
        from_number=get("caller_id_number") or None,
        answer=answer,
        end=end,
        duration_s=billsec if answer is not None else None,
        line=line,
        raw=raw,
    )


def _time(variables: Mapping[str, str], stage: str, tz: tzinfo) -> datetime | None:
    epoch = (variables.get(f"{stage}_epoch") or "").strip()
    if epoch:
        return parse_epoch(epoch, f"{stage}_epoch")
    stamp = (variables.get(f"{stage}_stamp") or "").strip()
    return parse_timestamp(stamp, f"{stage}_stamp", tz) if stamp else None


def read_freeswitch_json(
    path_or_lines: Path | Iterable[str],
    *,
    timezone: str | tzinfo | None = None,
    direction: Direction | None = None,
    default_account: str = "",
) -> CdrStream:
    """Yield a `UsageEvent` or a `CdrRowError` per mod_json_cdr document.

    Args:
        path_or_lines: a file (JSON Lines, one document, or an array), a folder of ``*.json``
            files, or an iterable of JSON Lines.
        timezone: zone of the ``*_stamp`` variables when no ``*_epoch`` is present.
        direction: force a billing direction; default: ``telbill_direction`` or outbound.
        default_account: account when ``accountcode`` is blank.
    """
    local_tz = resolve_timezone(timezone)
    for line, source, document in _json_documents(path_or_lines):
        if isinstance(document, CdrRowError):
            yield CdrRowError(document.line, document.reason, document.source, dict(EMPTY_JSON_RAW))
            continue
        try:
            variables = _json_variables(document)
        except InvalidInput as exc:
            yield CdrRowError(line, exc.message, source=source, raw=dict(EMPTY_JSON_RAW))
            continue
        raw = {name: variables.get(name, "") for name in FREESWITCH_JSON_COLUMNS}
        try:
            values = [str(value) for value in raw.values()]
            check_columns(list(raw), values, limit=MAX_FOREIGN_FIELD)
            yield _event_from_variables(variables, raw, line, local_tz, direction, default_account)
        except (InvalidInput, ValueError) as exc:
            yield CdrRowError(line, error_reason(exc), source=source, raw=raw)


def _json_documents(
    path_or_lines: Path | Iterable[str],
) -> Iterator[tuple[int, str, Any]]:
    if isinstance(path_or_lines, Path):
        if path_or_lines.is_dir():
            for file in sorted(path_or_lines.glob("*.json")):
                yield from _documents_of_file(file, source=file.name)
            return
        yield from _documents_of_file(path_or_lines, source="")
        return
    yield from _json_lines(path_or_lines, source="")


def _documents_of_file(file: Path, source: str) -> Iterator[tuple[int, str, Any]]:
    # surrogateescape: a byte that is not UTF-8 reaches its document's values, which
    # `check_columns` refuses (that document, not the file).
    with file.open(encoding="utf-8-sig", errors="surrogateescape") as handle:
        first = ""
        while not first:
            chunk = handle.read(1)
            if not chunk:
                return
            first = chunk.strip()
        handle.seek(0)
        if first == "[":
            yield from _json_array(handle.read(), source)
            return
        text_head = handle.readline()
        rest = handle.readline()
        handle.seek(0)
        if not rest.strip() or _parses(text_head):
            yield from _json_lines(handle, source)
        else:  # one pretty-printed document
            yield from _single_document(handle.read(), source)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _json_lines(lines: Iterable[str], source: str) -> Iterator[tuple[int, str, Any]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, source, json.loads(text)
        except ValueError as exc:
            yield number, source, CdrRowError(number, f"not valid JSON: {exc}", source=source)


def _json_array(text: str, source: str) -> Iterator[tuple[int, str, Any]]:
    try:
        documents = json.loads(text)
    except ValueError as exc:
        yield 1, source, CdrRowError(1, f"not valid JSON: {exc}", source=source)
        return
    for number, document in enumerate(documents, start=1):
        yield number, source, document


def _single_document(text: str, source: str) -> Iterator[tuple[int, str, Any]]:
    try:
        yield 1, source, json.loads(text)
    except ValueError as exc:
        yield 1, source, CdrRowError(1, f"not valid JSON: {exc}", source=source)


def _json_variables(document: Any) -> dict[str, str]:
    """Flatten the variables of one CDR document into URL-decoded strings."""
    if not isinstance(document, dict):
        raise InvalidInput("a CDR must be a JSON object")
    variables = document.get("variables")
    if not isinstance(variables, dict):
        raise InvalidInput("the CDR has no 'variables' object")
    flat = {str(key): unquote(str(value)) for key, value in variables.items()}
    profile = _caller_profile(document.get("callflow"))
    for name in ("caller_id_number", "destination_number"):
        if not flat.get(name) and profile.get(name):
            flat[name] = unquote(str(profile[name]))
    return flat


def _caller_profile(callflow: Any) -> dict[str, Any]:
    flows = callflow if isinstance(callflow, list) else [callflow]
    for flow in flows:
        if isinstance(flow, dict) and isinstance(flow.get("caller_profile"), dict):
            profile: dict[str, Any] = flow["caller_profile"]
            return profile
    return {}
