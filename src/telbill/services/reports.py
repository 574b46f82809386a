"""Call-cost reports read from the `charges` table: every call of a user or an organisation
(its subtree) in a month of the account's timezone, with the month's totals, as pages (JSON)
or one stream (CSV). Period counters, per account and per campaign, are `services.counters`.

Totals are SQL aggregates (GROUP BY currency) that the covering index `ix_charges_reports`
answers without reading the rows. Row order is the charge id, the page cursor too: a page
finds its `limit + 1` ids in that index alone, then reads those rows. The CSV export reads
the month's ids once from the index, then the rows by id in batches, in one read-only
snapshot; the number and duration of a call come out of the stored usage by JSON paths in
SQL (no JSON document decoded in Python), destination names are read once per tariff
prefix, costs are formatted from the integer micro-units (`micros_text`).

`cost` is the rated amount of the leg (`charges.amount_micros`); a rerating adds a row with
the difference, so sums over rows are the money the ledger moved for calls not covered by
a package. Charges name their campaign (`charges.campaign_id`, see `services.counters`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    and_,
    any_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.engine import Database
from telbill.adapters.db.report_tables import reports_index  # noqa: F401  (declares it)
from telbill.adapters.db.tables import accounts
from telbill.domain.money import MICROS_PER_UNIT, format_amount, from_micros
from telbill.domain.rating import call_duration_s
from telbill.domain.tariffs import Service
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput
from telbill.services.accounts import load_account
from telbill.services.charging import usage_from_json
from telbill.services.tariffs import destination_names

MAX_PAGE = 1000
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
CSV_HEADER = (
    "charge_id", "time", "account_id", "number", "destination", "direction",
    "duration_s", "billed_s", "cost", "currency",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CallRow:
    charge_id: int
    time: datetime  # in the account's timezone
    account_id: int
    number: str
    destination: str | None
    direction: str
    duration_s: int
    billed_s: int
    cost: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class CallTotal:
    currency: str
    calls: int
    billed_s: int
    cost: Decimal


@dataclass(frozen=True, slots=True)
class CallReport:
    account_id: int
    month: str
    timezone: str
    start: datetime
    end: datetime
    totals: tuple[CallTotal, ...]
    rows: tuple[CallRow, ...]
    next_cursor: str | None


# A call counts once: its revision-0 row (a rerating adds rows with the difference).
CALLS_COUNTED = func.coalesce(func.sum(case((charges.c.revision == 0, 1), else_=0)), 0)
# A rerating row repeats the call's billed units (only its amount is a difference): units
# are counted from first postings, as on the invoice.
UNITS_COUNTED = func.coalesce(
    func.sum(case((charges.c.revision == 0, charges.c.billed_units), else_=0)), 0
)


def month_bounds(month: str, zone: str) -> tuple[datetime, datetime]:
    """[start, end) of `month` ("YYYY-MM") in timezone `zone`, as UTC datetimes."""
    match = _MONTH.match(month) if isinstance(month, str) else None
    if match is None:
        raise InvalidInput(f"month must be YYYY-MM, got {month!r}")
    year, number = int(match.group(1)), int(match.group(2))
    tz = ZoneInfo(zone)
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def subtree(root_id: int) -> Any:
    """A recursive CTE of `root_id` and every account below it."""
    tree = select(accounts.c.id).where(accounts.c.id == root_id).cte("report_tree", recursive=True)
    return tree.union_all(select(accounts.c.id).where(accounts.c.parent_id == tree.c.id))


def _voice_in(query: Select[Any], root_id: int, start: datetime, end: datetime) -> Select[Any]:
    tree = subtree(root_id)
    return query.where(
        charges.c.account_id.in_(select(tree.c.id)),
        charges.c.service == Service.VOICE.value,
        charges.c.occurred_at >= start,
        charges.c.occurred_at < end,
    )


# What a row shows of its call, read from the stored usage by the database (JSON paths):
# no JSON document is decoded in Python for a row.
_USAGE = charges.c.usage
_FACTS = (
    _USAGE["to"].as_string().label("to_number"),
    _USAGE["duration_s"].as_integer().label("usage_duration_s"),
    _USAGE["start"].as_string().label("usage_start"),
    _USAGE["answer"].as_string().label("usage_answer"),
    _USAGE["end"].as_string().label("usage_end"),
    _USAGE["call_segments"].as_string().label("usage_segments"),
)
_ROW_COLUMNS = (
    charges.c.id, charges.c.account_id, charges.c.cdr_id, charges.c.direction,
    charges.c.billed_units, charges.c.amount_micros, charges.c.currency, charges.c.occurred_at,
    charges.c.tariff, charges.c.tariff_version, charges.c.prefix, charges.c.service, *_FACTS,
)  # fmt: skip
# A row of the stream: charge id, time (account's timezone), account, number, destination,
# direction, duration s, billed s, cost in micro-units, currency.
RawCallRow = tuple[int, datetime, int, str, str | None, str, int, int, int, str]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _duration_s(
    number: str, duration_s: int | None, start: str | None, answer: str | None,
    end: str | None, segments: str | None,
) -> int:  # fmt: skip
    """The call's duration by the domain's rule (`call_duration_s`), from its usage facts
    (`_FACTS`)."""
    if segments and segments != "[]":
        usage = {
            "id": "", "account": "", "service": Service.VOICE.value, "direction": "outbound",
            "to": number, "start": start, "answer": answer, "end": end,
            "duration_s": duration_s, "call_segments": json.loads(segments),
        }  # fmt: skip
        return call_duration_s(usage_from_json(usage))
    answered = _when(answer)
    event = UsageEvent(
        id="", account="", to_number=number, start=_when(start) or _EPOCH, answer=answered,
        end=_when(end), duration_s=duration_s,
    )  # fmt: skip
    return call_duration_s(event)


_NO_CALL: tuple[str, int] = ("", 0)


def _facts_of(row: Any) -> tuple[Any, ...] | None:
    if row.to_number is None:
        return None
    return (
        str(row.to_number), row.usage_duration_s, row.usage_start, row.usage_answer,
        row.usage_end, row.usage_segments,
    )  # fmt: skip


def _missing_calls(conn: Connection, rows: list[Any]) -> dict[tuple[int, str], tuple[str, int]]:
    """(number, duration) of the calls on `rows` whose row carries no usage (a second leg,
    a rerating): read from the call's row that does, one query for the whole batch."""
    missing = {(int(r.account_id), str(r.cdr_id)) for r in rows if r.to_number is None}
    if not missing:
        return {}
    query = select(charges.c.account_id, charges.c.cdr_id, *_FACTS).where(
        charges.c.account_id.in_({a for a, _ in missing}),
        charges.c.cdr_id.in_({c for _, c in missing}),
        _FACTS[0].is_not(None),
    )
    found: dict[tuple[int, str], tuple[str, int]] = {}
    for row in conn.execute(query):
        key = (int(row.account_id), str(row.cdr_id))
        facts = _facts_of(row)
        if key in missing and facts is not None:
            found[key] = (facts[0], _duration_s(*facts))
    return found


class _Destinations:
    """Destination names of (tariff, version, prefix, service, direction), read once per
    key for a whole report (charges store the matched prefix, not its name)."""

    def __init__(self, provider: int | None = None) -> None:
        self.names: dict[tuple[Any, ...], str | None] = {}
        self.provider = provider  # the account's provider: names from its catalogue

    def load(self, conn: Connection, rows: list[Any]) -> None:
        keys = {
            (r.tariff, r.tariff_version, r.prefix, r.service, r.direction)
            for r in rows
            if r.tariff is not None and r.prefix is not None
        } - set(self.names)
        if not keys:
            return
        self.names.update(dict.fromkeys(keys))
        self.names.update(
            destination_names(conn, keys, by=("service", "direction"), provider=self.provider)
        )


def _raw_rows(
    conn: Connection, rows: list[Any], tz: ZoneInfo, destinations: _Destinations
) -> list[RawCallRow]:
    """The report rows of `rows` (selected as `_ROW_COLUMNS`), a batch at a time: the
    per-row work is plain tuple unpacking and the duration rule."""
    destinations.load(conn, rows)
    others = _missing_calls(conn, rows)
    names = destinations.names
    out: list[RawCallRow] = []
    for row in rows:
        (charge_id, account_id, cdr_id, direction, billed_units, amount_micros, currency,
         occurred, tariff, version, prefix, service, *facts) = row  # fmt: skip
        if facts[0] is None:
            number, duration_s = others.get((account_id, cdr_id), _NO_CALL)
        else:
            number, duration_s = facts[0], _duration_s(*facts)
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        out.append((
            charge_id, occurred.astimezone(tz), account_id, number,
            names.get((tariff, version, prefix, service, direction)), direction, duration_s,
            billed_units, amount_micros, currency,
        ))  # fmt: skip
    return out


def _call_row(raw: RawCallRow) -> CallRow:
    charge_id, time, account_id, number, destination, direction, duration_s, billed_s = raw[:8]
    return CallRow(
        charge_id=charge_id, time=time, account_id=account_id, number=number,
        destination=destination, direction=direction, duration_s=duration_s,
        billed_s=billed_s, cost=from_micros(raw[8]), currency=raw[9],
    )  # fmt: skip


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"(\d{1,17})\.(\d{1,19})")


def _cursor_of(row: CallRow) -> str:
    """The position after `row` in call-time order: its time (UTC microseconds) and id."""
    return f"{(row.time - _EPOCH) // timedelta(microseconds=1)}.{row.charge_id}"


def _parse_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if cursor is None:
        return None
    found = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    if found is None:
        raise InvalidInput(f"invalid cursor {cursor!r}")
    return _EPOCH + timedelta(microseconds=int(found[1])), int(found[2])


def call_report(
    db: Database, account_id: int, month: str, *, limit: int = 100, cursor: str | None = None
) -> CallReport:
    """Calls of `account_id` and its subtree in `month` (account's timezone), a page of rows
    (in call-time order, oldest first) and the month's totals per currency."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
    after = _parse_cursor(cursor)
    with db.read() as conn:
        account = load_account(conn, account_id)
        start, end = month_bounds(month, account.timezone)
        tz = ZoneInfo(account.timezone)
        totals_query = _voice_in(
            select(
                charges.c.currency,
                CALLS_COUNTED,
                UNITS_COUNTED,
                func.coalesce(func.sum(charges.c.amount_micros), 0),
            ),
            account_id, start, end,
        ).group_by(charges.c.currency).order_by(charges.c.currency)  # fmt: skip
        totals = tuple(
            CallTotal(str(c), int(n), int(s), from_micros(int(m)))
            for c, n, s, m in conn.execute(totals_query)
        )
        ids = [row.id for row in conn.execute(
            _ids_query(account_id, start, end, after).limit(limit + 1))]  # fmt: skip
        found = _rows_by_id(conn, ids[:limit])
        names = _Destinations(account.provider_id)
        rows = [_call_row(r) for r in _raw_rows(conn, found, tz, names)]
    more = len(ids) > limit
    return CallReport(
        account_id=account_id, month=month, timezone=account.timezone, start=start, end=end,
        totals=totals, rows=tuple(rows),
        next_cursor=_cursor_of(rows[-1]) if more and rows else None,
    )  # fmt: skip


STREAM_BATCH = 5000


def _ids_query(
    root_id: int, start: datetime, end: datetime, after: tuple[datetime, int] | None = None
) -> Select[Any]:
    """(time, id) of the calls of the month after the position `after`, in call-time order:
    read from the covering index alone (the rows, with their usage, are much wider), so
    finding a page or sorting a month costs an index scan, not a sort of whole rows."""
    query = _voice_in(select(charges.c.occurred_at, charges.c.id), root_id, start, end)
    if after is not None:
        at, after_id = after
        query = query.where(
            or_(
                charges.c.occurred_at > at,
                and_(charges.c.occurred_at == at, charges.c.id > after_id),
            )
        )
    return query.order_by(charges.c.occurred_at, charges.c.id)


_ID_ARRAY = ARRAY(BigInteger)


def _rows_by_id(conn: Connection, ids: list[int]) -> list[Any]:
    if not ids:
        return []
    if conn.dialect.name == "postgresql":
        # One array parameter (`id = ANY(...)`) plans and binds much faster than thousands.
        wanted = charges.c.id == any_(cast(literal(ids, _ID_ARRAY), _ID_ARRAY))
    else:
        wanted = charges.c.id.in_(ids)
    rows = {row[0]: row for row in conn.execute(select(*_ROW_COLUMNS).where(wanted))}
    return [rows[i] for i in ids]  # in the order asked (call time)


def _stream(db: Database, account_id: int, month: str) -> Iterator[list[RawCallRow]]:
    """Every call row of the month, oldest charge first, in batches, in one read-only
    snapshot (on SQLite a read unit takes no lock under WAL, so a long export does not hold
    up the writer). The month's ids come sorted from the index through a server-side cursor
    (PostgreSQL; SQLite steps its cursor on demand), `STREAM_BATCH` at a time, and each
    batch's rows are then read by id: memory holds one batch, whatever the month."""
    with db.read() as conn:
        account = load_account(conn, account_id)
        start, end = month_bounds(month, account.timezone)
        tz = ZoneInfo(account.timezone)
        yield []  # validated: the caller may start its response
        destinations = _Destinations(account.provider_id)
        ids = conn.execute(
            _ids_query(account_id, start, end).execution_options(yield_per=STREAM_BATCH)
        )
        for chunk in ids.partitions():
            batch = _rows_by_id(conn, [row.id for row in chunk])
            yield _raw_rows(conn, batch, tz, destinations)


def _validated(batches: Iterator[list[RawCallRow]]) -> Iterator[list[RawCallRow]]:
    next(batches)  # raises NotFound / InvalidInput before any output
    return batches


def iter_call_rows(db: Database, account_id: int, month: str) -> Iterator[CallRow]:
    """Every call row of the month, streamed (see `_stream`)."""
    batches = _validated(_stream(db, account_id, month))
    return (_call_row(raw) for batch in batches for raw in batch)


def micros_text(micros: int) -> str:
    """`format_amount(from_micros(micros))` with integer arithmetic (the CSV's cost)."""
    whole, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    return f"{'-' if micros < 0 else ''}{whole}.{fraction:06d}"


def csv_row(row: CallRow) -> list[str]:
    return [
        str(row.charge_id), row.time.isoformat(), str(row.account_id), row.number,
        row.destination or "", row.direction, str(row.duration_s), str(row.billed_s),
        format_amount(row.cost), row.currency,
    ]  # fmt: skip


def _csv_values(raw: RawCallRow) -> tuple[object, ...]:
    charge_id, time, account_id, number, destination, direction, duration_s, billed_s = raw[:8]
    return (
        charge_id, time.isoformat(), account_id, number, destination or "", direction,
        duration_s, billed_s, micros_text(raw[8]), raw[9],
    )  # fmt: skip


@dataclass(slots=True)
class CsvExport:
    """The call report as CSV text, in chunks of many lines (header first); `rows` counts
    the data rows written so far."""

    chunks: Iterator[str]
    rows: int = 0

    def __iter__(self) -> Iterator[str]:
        return self.chunks


def call_csv(db: Database, account_id: int, month: str) -> CsvExport:
    """The CSV export of the call report. Validates eagerly: an unknown account or a bad
    month raises here, before the first chunk."""
    batches = _validated(_stream(db, account_id, month))

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        yield buffer.getvalue()
        for batch in batches:
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(map(_csv_values, batch))
            export.rows += len(batch)
            yield buffer.getvalue()

    export = CsvExport(chunks())
    return export


def call_csv_lines(db: Database, account_id: int, month: str) -> Iterator[str]:
    """The CSV text of `call_csv`, chunk by chunk (each chunk whole lines)."""
    return iter(call_csv(db, account_id, month))


def month_of(now: datetime, zone: str) -> str:
    """The month of `now` in timezone `zone`, as "YYYY-MM"."""
    local = now.astimezone(ZoneInfo(zone))
    return f"{local.year:04d}-{local.month:02d}"


def current_month(db: Database, account_id: int, *, now: datetime) -> str:
    """The month of `now` in the account's timezone, as "YYYY-MM"."""
    with db.read() as conn:
        return month_of(now, load_account(conn, account_id).timezone)


__all__ = [
    "CALLS_COUNTED",
    "CSV_HEADER",
    "UNITS_COUNTED",
    "CallReport",
    "CallRow",
    "CallTotal",
    "CsvExport",
    "call_csv",
    "call_csv_lines",
    "call_report",
    "current_month",
    "iter_call_rows",
    "micros_text",
    "month_bounds",
    "month_of",
    "subtree",
]
