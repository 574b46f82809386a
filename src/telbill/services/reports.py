"""Usage reports read from the `charges` table: the call-cost report of a user or an
organisation (its subtree) for a month in the account's timezone, and the period counters
(minutes, SMS, speech seconds, unique users) of the current month.

Totals and counters are SQL aggregates (GROUP BY), rows are read a page at a time (keyset on
the charge id) so a month of a busy account never sits in memory; `iter_call_rows` and
`call_csv_lines` stream every row for the CSV export.

`cost` is the rated amount of the leg (`charges.amount_micros`); a rerating adds a row with
the difference, so sums over rows are the money the ledger moved for calls not covered by
a package. Charges carry no campaign, so counters are per account only.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Select, case, distinct, func, select

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import accounts
from telbill.adapters.db.tariff_tables import tariff_rates, tariffs
from telbill.domain.money import format_amount, from_micros
from telbill.domain.rating import call_duration_s
from telbill.domain.tariffs import Service
from telbill.errors import InvalidInput
from telbill.services.accounts import load_account
from telbill.services.charging import usage_from_json

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


@dataclass(frozen=True, slots=True)
class Counters:
    account_id: int
    period: str
    timezone: str
    calls: int
    voice_s: int  # billed voice seconds
    minutes: Decimal  # voice_s / 60, to 2 decimals
    sms: int  # billed SMS segments
    speech_s: int
    unique_users: int


# A call counts once: its revision-0 row (a rerating adds rows with the difference).
_FIRST_POSTINGS = func.coalesce(func.sum(case((charges.c.revision == 0, 1), else_=0)), 0)


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


def _subtree(root_id: int) -> Any:
    tree = select(accounts.c.id).where(accounts.c.id == root_id).cte("report_tree", recursive=True)
    return tree.union_all(select(accounts.c.id).where(accounts.c.parent_id == tree.c.id))


def _voice_in(query: Select[Any], root_id: int, start: datetime, end: datetime) -> Select[Any]:
    tree = _subtree(root_id)
    return query.where(
        charges.c.account_id.in_(select(tree.c.id)),
        charges.c.service == Service.VOICE.value,
        charges.c.occurred_at >= start,
        charges.c.occurred_at < end,
    )


def _call_facts(usage: Any) -> tuple[str, int]:
    """(dialled number, call duration) from a stored usage (JSON)."""
    if not usage:
        return "", 0
    event = usage_from_json(usage)
    return event.to_number, call_duration_s(event)


def _usages(conn: Connection, page: list[Any]) -> dict[tuple[int, str], Any]:
    """The usage of each call on the page. A second leg or a rerating row carries none: it
    is read from the call's row that does (one query per page, only when needed)."""
    found = {(int(r.account_id), str(r.cdr_id)): r.usage for r in page if r.usage}
    missing = {(int(r.account_id), str(r.cdr_id)) for r in page if not r.usage} - set(found)
    if missing:
        query = select(charges.c.account_id, charges.c.cdr_id, charges.c.usage).where(
            charges.c.account_id.in_({a for a, _ in missing}),
            charges.c.cdr_id.in_({c for _, c in missing}),
            charges.c.usage.is_not(None),
        )
        for account_id, cdr_id, usage in conn.execute(query):
            if (int(account_id), str(cdr_id)) in missing:
                found[(int(account_id), str(cdr_id))] = usage
    return found


def _destinations(conn: Connection, page: list[Any]) -> dict[tuple[Any, ...], str]:
    """Destination names of the (tariff, version, prefix, service, direction) on a page: one
    query per page, since charges store the matched prefix and not its name."""
    keys = {
        (r.tariff, r.tariff_version, r.prefix, r.service, r.direction)
        for r in page
        if r.tariff is not None and r.prefix is not None
    }
    if not keys:
        return {}
    found: dict[tuple[Any, ...], str] = {}
    query = (
        select(
            tariffs.c.name, tariffs.c.version, tariff_rates.c.prefix, tariff_rates.c.service,
            tariff_rates.c.direction, func.min(tariff_rates.c.destination),
        )
        .join(tariffs, tariffs.c.id == tariff_rates.c.tariff_id)
        .where(
            tariffs.c.name.in_({k[0] for k in keys}),
            tariff_rates.c.prefix.in_({k[2] for k in keys}),
        )
        .group_by(
            tariffs.c.name, tariffs.c.version, tariff_rates.c.prefix, tariff_rates.c.service,
            tariff_rates.c.direction,
        )
    )  # fmt: skip
    for name, version, prefix, service, direction, destination in conn.execute(query):
        found[(name, version, prefix, service, direction)] = str(destination)
    return found


def _row(
    data: Any, tz: ZoneInfo, destinations: dict[tuple[Any, ...], str],
    usages: dict[tuple[int, str], Any],
) -> CallRow:  # fmt: skip
    occurred: datetime = data.occurred_at
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    number, duration_s = _call_facts(usages.get((int(data.account_id), str(data.cdr_id))))
    key = (data.tariff, data.tariff_version, data.prefix, data.service, data.direction)
    return CallRow(
        charge_id=int(data.id),
        time=occurred.astimezone(tz),
        account_id=int(data.account_id),
        number=number,
        destination=destinations.get(key),
        direction=str(data.direction),
        duration_s=duration_s,
        billed_s=int(data.billed_units),
        cost=from_micros(int(data.amount_micros)),
        currency=str(data.currency),
    )


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise InvalidInput(f"invalid cursor {cursor!r}")
    return int(cursor)


def _page(
    conn: Connection, root_id: int, start: datetime, end: datetime, tz: ZoneInfo,
    after_id: int, limit: int,
) -> list[CallRow]:  # fmt: skip
    query = _voice_in(select(*_ROW_COLUMNS), root_id, start, end).where(charges.c.id > after_id)
    rows = list(conn.execute(query.order_by(charges.c.id).limit(limit)))
    destinations, usages = _destinations(conn, rows), _usages(conn, rows)
    return [_row(r, tz, destinations, usages) for r in rows]


_ROW_COLUMNS = (
    charges.c.id, charges.c.account_id, charges.c.direction, charges.c.billed_units,
    charges.c.amount_micros, charges.c.currency, charges.c.occurred_at,
    charges.c.cdr_id, charges.c.usage, charges.c.tariff, charges.c.tariff_version,
    charges.c.prefix, charges.c.service,
)  # fmt: skip


def call_report(
    db: Database, account_id: int, month: str, *, limit: int = 100, cursor: str | None = None
) -> CallReport:
    """Calls of `account_id` and its subtree in `month` (account's timezone), a page of rows
    (oldest charge first) and the month's totals per currency."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
    after_id = _parse_cursor(cursor)
    with db.transaction() as conn:
        account = load_account(conn, account_id)
        start, end = month_bounds(month, account.timezone)
        tz = ZoneInfo(account.timezone)
        totals_query = _voice_in(
            select(
                charges.c.currency,
                _FIRST_POSTINGS,
                func.coalesce(func.sum(charges.c.billed_units), 0),
                func.coalesce(func.sum(charges.c.amount_micros), 0),
            ),
            account_id, start, end,
        ).group_by(charges.c.currency).order_by(charges.c.currency)  # fmt: skip
        totals = tuple(
            CallTotal(str(c), int(n), int(s), from_micros(int(m)))
            for c, n, s, m in conn.execute(totals_query)
        )
        rows = _page(conn, account_id, start, end, tz, after_id, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return CallReport(
        account_id=account_id, month=month, timezone=account.timezone, start=start, end=end,
        totals=totals, rows=tuple(rows),
        next_cursor=str(rows[-1].charge_id) if more and rows else None,
    )  # fmt: skip


def iter_call_rows(
    db: Database, account_id: int, month: str, *, page_size: int = MAX_PAGE
) -> Iterator[CallRow]:
    """Every call row of the month. The month's charge ids are sorted once (one query), then
    rows are read `page_size` ids at a time, each page in a short transaction: paging with a
    cursor would sort the month again for every page, and one long read would hold SQLite's
    write lock for the whole export."""
    with db.transaction() as conn:
        account = load_account(conn, account_id)
        start, end = month_bounds(month, account.timezone)
        ids = list(
            conn.execute(
                _voice_in(select(charges.c.id), account_id, start, end).order_by(charges.c.id)
            ).scalars()
        )
    tz = ZoneInfo(account.timezone)
    for offset in range(0, len(ids), page_size):
        chunk = ids[offset : offset + page_size]
        with db.transaction() as conn:
            query = select(*_ROW_COLUMNS).where(charges.c.id.in_(chunk)).order_by(charges.c.id)
            rows = list(conn.execute(query))
            destinations, usages = _destinations(conn, rows), _usages(conn, rows)
        yield from (_row(r, tz, destinations, usages) for r in rows)


def csv_row(row: CallRow) -> list[str]:
    return [
        str(row.charge_id), row.time.isoformat(), str(row.account_id), row.number,
        row.destination or "", row.direction, str(row.duration_s), str(row.billed_s),
        format_amount(row.cost), row.currency,
    ]  # fmt: skip


def call_csv_lines(db: Database, account_id: int, month: str) -> Iterator[str]:
    """The call report as CSV text, one line at a time (header first). Validates eagerly:
    an unknown account or a bad month raises before the first line."""
    rows = iter_call_rows(db, account_id, month)
    first = next(rows, None)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")

        def emit(values: list[str] | tuple[str, ...]) -> str:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(values)
            return buffer.getvalue()

        yield emit(CSV_HEADER)
        if first is not None:
            yield emit(csv_row(first))
        for row in rows:
            yield emit(csv_row(row))

    return lines()


def _month_of(now: datetime, zone: str) -> str:
    local = now.astimezone(ZoneInfo(zone))
    return f"{local.year:04d}-{local.month:02d}"


def current_month(db: Database, account_id: int, *, now: datetime) -> str:
    """"YYYY-MM" of `now` in the account's timezone."""
    with db.transaction() as conn:
        return _month_of(now, load_account(conn, account_id).timezone)


def period_counters(db: Database, account_id: int, *, now: datetime) -> Counters:
    """Usage of the month containing `now` (account's timezone) by `account_id`'s subtree."""
    with db.transaction() as conn:
        account = load_account(conn, account_id)
        period = _month_of(now, account.timezone)
        start, end = month_bounds(period, account.timezone)
        tree = _subtree(account_id)
        scope = (
            charges.c.account_id.in_(select(tree.c.id)),
            charges.c.occurred_at >= start,
            charges.c.occurred_at < end,
        )
        by_service = {
            str(service): (int(count), int(units))
            for service, count, units in conn.execute(
                select(
                    charges.c.service,
                    _FIRST_POSTINGS,
                    func.coalesce(func.sum(charges.c.billed_units), 0),
                )
                .where(*scope)
                .group_by(charges.c.service)
            )
        }
        users = conn.execute(
            select(func.count(distinct(charges.c.account_id)))
            .select_from(charges.join(accounts, accounts.c.id == charges.c.account_id))
            .where(*scope, accounts.c.kind == "user")
        ).scalar_one()
    calls, voice_s = by_service.get(Service.VOICE.value, (0, 0))
    return Counters(
        account_id=account_id, period=period, timezone=account.timezone, calls=calls,
        voice_s=voice_s, minutes=(Decimal(voice_s) / 60).quantize(Decimal("0.01")),
        sms=by_service.get(Service.SMS.value, (0, 0))[1],
        speech_s=by_service.get(Service.SPEECH.value, (0, 0))[1],
        unique_users=int(users),
    )  # fmt: skip


__all__ = [
    "CSV_HEADER",
    "CallReport",
    "CallRow",
    "CallTotal",
    "Counters",
    "call_csv_lines",
    "call_report",
    "current_month",
    "iter_call_rows",
    "month_bounds",
    "period_counters",
]
