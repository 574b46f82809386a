"""Tariff use cases: import a deck as a new immutable version, load, list, compare versions.

An import runs in ONE transaction: the version row is created, rate rows are inserted in
large chunks (COPY on PostgreSQL, one driver executemany on SQLite) while the (streamed)
input is read, and if any input row was bad the whole transaction is rolled back (unless
`skip_bad`), so a tariff is never half imported. Readers may hand plain rows as storage
values (`RateValues`) instead of RateRows: those go to the driver as they are.
Versions are never edited: a new deck under the same name becomes version N+1. The version in
force at a moment is the newest one whose `effective_from` is not after it.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from telbill.adapters.db.engine import Database
from telbill.adapters.db.tariff_tables import (
    NANOS_PER_UNIT,
    RATE_SCALE,
    RATE_VALUE_COLUMNS,
    tariff_rates,
    tariffs,
)
from telbill.domain.money import MONEY_DECIMALS, validate_currency
from telbill.domain.tariffs import (
    BAND_RULES,
    NUMBER_MATCH_DIGITS,
    NUMBER_MATCHES,
    PRICE_AT_START,
    CalendarDays,
    Direction,
    Increment,
    NumberType,
    RateRow,
    RateTier,
    RowError,
    Service,
    Tariff,
    TariffSettings,
)
from telbill.errors import Conflict, InvalidInput, NotFound

INSERT_CHUNK = 50_000
MAX_REPORTED_ERRORS = 10_000


@dataclass(frozen=True, slots=True)
class TariffSource:
    """Where a version came from: file name, its sha256 and the reader used."""

    file: str = ""
    sha256: str = ""
    format: str = "native"


@dataclass(frozen=True, slots=True)
class TariffVersion:
    name: str
    version: int
    currency: str
    settings: TariffSettings
    created_at: datetime
    effective_from: datetime | None
    row_count: int
    source: TariffSource


@dataclass(frozen=True, slots=True)
class ImportResult:
    version: TariffVersion
    skipped: tuple[RowError, ...] = ()


@dataclass(frozen=True, slots=True)
class RateChange:
    before: RateRow
    after: RateRow


@dataclass(frozen=True, slots=True)
class TariffDiff:
    name: str
    from_version: int
    to_version: int
    added: tuple[RateRow, ...] = ()
    removed: tuple[RateRow, ...] = ()
    changed: tuple[RateChange, ...] = field(default_factory=tuple)


class BadTariffRows(InvalidInput):
    """The input had bad rows; nothing was imported. `errors` lists every one."""

    code = "bad_tariff_rows"

    def __init__(self, errors: Sequence[RowError]) -> None:
        super().__init__(
            f"{len(errors)} bad row(s); nothing imported",
            errors=[{"line": e.line, "reason": e.reason, "source": e.source} for e in errors],
        )
        self.errors = list(errors)


# --- settings -------------------------------------------------------------------------


def validate_settings(settings: TariffSettings) -> TariffSettings:
    """Check every tariff-level setting; returns them with the currency normalised."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown timezone {settings.timezone!r}") from None
    if not 0 <= settings.decimals <= MONEY_DECIMALS:
        raise InvalidInput(f"decimals must be between 0 and {MONEY_DECIMALS}")
    if not settings.rounding.startswith("ROUND_") or not hasattr(decimal, settings.rounding):
        raise InvalidInput(f"unknown rounding mode {settings.rounding!r} (e.g. ROUND_HALF_UP)")
    if settings.max_call_s < 1:
        raise InvalidInput("the maximum call length must be at least 1 second")
    if settings.number_match not in NUMBER_MATCHES:
        raise InvalidInput(f"number_match must be one of {', '.join(NUMBER_MATCHES)}")
    if settings.band_rule not in BAND_RULES:
        raise InvalidInput(f"the band rule must be one of {', '.join(BAND_RULES)}")
    return replace(settings, currency=validate_currency(settings.currency))


def _settings_json(settings: TariffSettings) -> dict[str, Any]:
    return {
        "default_increment": str(settings.default_increment),
        "timezone": settings.timezone,
        "decimals": settings.decimals,
        "rounding": settings.rounding,
        "max_call_s": settings.max_call_s,
        "number_match": settings.number_match,
        "free_extensions": settings.free_extensions,
        "band_rule": settings.band_rule,
    }


def _settings_from(currency: str, data: dict[str, Any]) -> TariffSettings:
    return TariffSettings(
        currency=currency,
        default_increment=Increment.parse(data["default_increment"]),
        timezone=data["timezone"],
        decimals=int(data["decimals"]),
        rounding=data["rounding"],
        max_call_s=int(data["max_call_s"]),
        # Versions stored before these settings existed keep the native behaviour.
        number_match=str(data.get("number_match", NUMBER_MATCH_DIGITS)),
        free_extensions=bool(data.get("free_extensions", True)),
        band_rule=str(data.get("band_rule", PRICE_AT_START)),
    )


# --- row <-> storage ---------------------------------------------------------------------


def to_nanos(amount: Decimal, what: str = "amount") -> int:
    """Exact Decimal -> integer nano-units, or InvalidInput if digits would be lost."""
    scaled = amount.scaleb(RATE_SCALE)
    integral = scaled.to_integral_value()
    if scaled != integral:
        raise InvalidInput(f"{what} {amount} has more than {RATE_SCALE} decimals")
    return int(integral)


def from_nanos(nanos: int) -> Decimal:
    """Integer nano-units -> Decimal without trailing zeros (0.2093, 1, 0)."""
    if nanos % NANOS_PER_UNIT == 0:
        return Decimal(nanos // NANOS_PER_UNIT)
    return Decimal(nanos).scaleb(-RATE_SCALE).normalize()


def _weekdays_text(days: frozenset[int] | None) -> str | None:
    return ",".join(str(d) for d in sorted(days)) if days is not None else None


def _hours_text(hours: tuple[time, time] | None) -> str | None:
    return f"{hours[0]:%H:%M}-{hours[1]:%H:%M}" if hours is not None else None


# Enum member -> stored text (a dict lookup is cheaper than `.value` on a million rows).
_ENUM_TEXT: dict[Service | Direction | NumberType, str] = {
    member: member.value for enum in (Service, Direction, NumberType) for member in enum
}

RATE_COLUMNS = (
    "tariff_id",
    *RATE_VALUE_COLUMNS,
    "tiers",
    "decimals",
    "rounding",
    "calendar",
    "max_cost_nanos",
    "max_cost_strategy",
    "rate_unit",
)

# A plain row as a reader's storage values, in RATE_VALUE_COLUMNS order (rates in nano-units,
# enums, weekdays and hours as their stored texts): see `tariff_fields.RateValues`.
RateValues = tuple[Any, ...]


def _row_values(
    tariff_id: int, row: RateRow, nanos: dict[Decimal, int] | None = None
) -> tuple[Any, ...]:
    """One rate row as a tuple in RATE_COLUMNS order (Python values, before binding).

    `nanos` memoises the conversion of amounts, which repeat a lot in real decks.
    """
    cache = nanos if nanos is not None else {}
    rate = cache.get(row.rate)
    if rate is None:
        rate = cache[row.rate] = to_nanos(row.rate, "rate")
    fee = cache.get(row.connect_fee)
    if fee is None:
        fee = cache[row.connect_fee] = to_nanos(row.connect_fee, "connect_fee")
    increment = row.increment
    return (
        tariff_id,
        row.prefix,
        _ENUM_TEXT[row.service],
        _ENUM_TEXT[row.direction],
        _ENUM_TEXT[row.number_type],
        _weekdays_text(row.weekdays),
        _hours_text(row.hours),
        row.effective_from,
        row.destination,
        rate,
        fee,
        increment.first_s if increment else None,
        increment.next_s if increment else None,
        row.min_seconds,
        row.free_seconds,
        row.effective_to,
        (
            [
                {
                    "start_s": t.start_s,
                    "rate_nanos": to_nanos(t.rate, "tier rate"),
                    "increment": str(t.increment),
                }
                for t in row.tiers
            ]
            if row.tiers
            else None
        ),
        row.decimals,
        row.rounding,
        _calendar_json(row.calendar),
        to_nanos(row.max_cost, "max_cost") if row.max_cost is not None else None,
        row.max_cost_strategy if row.max_cost is not None else None,
        row.rate_unit,
    )


def _calendar_json(calendar: CalendarDays | None) -> dict[str, list[int]] | None:
    if calendar is None:
        return None
    fields = {
        "years": calendar.years,
        "months": calendar.months,
        "month_days": calendar.month_days,
    }
    return {key: sorted(days) for key, days in fields.items() if days is not None}


def _calendar_from(data: dict[str, list[int]]) -> CalendarDays:
    def days(key: str) -> frozenset[int] | None:
        return frozenset(int(d) for d in data[key]) if key in data else None

    return CalendarDays(days("years"), days("months"), days("month_days"))


_FROM_AT = RATE_VALUE_COLUMNS.index("effective_from")
_TO_AT = RATE_VALUE_COLUMNS.index("effective_to")


def _insert_plain(conn: Connection, tariff_id: int, values: list[RateValues]) -> None:
    """Insert reader values (RATE_VALUE_COLUMNS order) of version `tariff_id` as they are.

    No per-row tuple is rebuilt: the version id is a literal of the statement on SQLite
    (tiers, decimals and rounding take their NULL default), and only rows carrying dates go
    through the datetime bind processor.
    """
    driver = conn.connection.driver_connection
    tariff_id = int(tariff_id)  # formatted into SQL below: an integer, never text
    columns = ", ".join(("tariff_id", *RATE_VALUE_COLUMNS))
    if conn.dialect.name == "postgresql":
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY tariff_rates ({columns}) FROM STDIN") as copy:
                write = copy.write_row
                head = (tariff_id,)
                for value in values:
                    write(head + value)
        return
    if any(v[_FROM_AT] is not None or v[_TO_AT] is not None for v in values):
        bind = tariff_rates.c.effective_from.type.bind_processor(conn.dialect)
        if bind is not None:
            values = [
                v
                if v[_FROM_AT] is None and v[_TO_AT] is None
                else tuple(
                    bind(x) if i in (_FROM_AT, _TO_AT) and x is not None else x
                    for i, x in enumerate(v)
                )
                for v in values
            ]
    marks = ", ".join("?" for _ in RATE_VALUE_COLUMNS)
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        # Only constant column names and the integer id are formatted in; values are bound.
        sql = f"INSERT INTO tariff_rates ({columns}) VALUES ({tariff_id}, {marks})"  # noqa: S608
        cursor.executemany(sql, values)
    finally:
        cursor.close()


def _bulk_insert(conn: Connection, values: list[tuple[Any, ...]]) -> None:
    """Insert rate rows fast: COPY on PostgreSQL, one DB-API executemany on SQLite.

    SQLAlchemy's per-row parameter handling costs more than the database itself on large
    decks, so the values go to the driver directly, converted by the columns' own SQLAlchemy
    bind processors (the same conversion `conn.execute(insert(...))` would apply).
    """
    columns = ", ".join(RATE_COLUMNS)
    driver = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        json_at = (RATE_COLUMNS.index("tiers"), RATE_COLUMNS.index("calendar"))
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY tariff_rates ({columns}) FROM STDIN") as copy:
                for value in values:
                    if any(value[at] is not None for at in json_at):
                        value = tuple(
                            json.dumps(item) if at in json_at and item is not None else item
                            for at, item in enumerate(value)
                        )
                    copy.write_row(value)
        return
    processors = [
        (index, processor)
        for index, name in enumerate(RATE_COLUMNS)
        if (processor := tariff_rates.c[name].type.bind_processor(conn.dialect)) is not None
    ]
    if processors:
        converted = []
        for value in values:
            items = list(value)
            for index, processor in processors:
                if items[index] is not None:
                    items[index] = processor(items[index])
            converted.append(tuple(items))
        values = converted
    marks = ", ".join("?" for _ in RATE_COLUMNS)
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        # Only constant column names are formatted in; every value is a bound parameter.
        sql = f"INSERT INTO tariff_rates ({columns}) VALUES ({marks})"  # noqa: S608
        cursor.executemany(sql, values)
    finally:
        cursor.close()


def _parse_hours(text: str) -> tuple[time, time]:
    start, end = text.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


_SERVICES = {s.value: s for s in Service}
_DIRECTIONS = {d.value: d for d in Direction}
_NUMBER_TYPES = {n.value: n for n in NumberType}


class _RowDecoder:
    """Stored rate tuples -> RateRows, memoising the values decks repeat (rates, increments,
    bands)."""

    def __init__(self) -> None:
        self._amounts: dict[int, Decimal] = {}
        self._increments: dict[tuple[int, int], Increment] = {}
        self._weekdays: dict[str, frozenset[int]] = {}
        self._hours: dict[str, tuple[time, time]] = {}

    def amount(self, nanos: int) -> Decimal:
        value = self._amounts.get(nanos)
        if value is None:
            value = from_nanos(nanos)
            if len(self._amounts) < 1_000_000:
                self._amounts[nanos] = value
        return value

    def increment(self, first: int | None, nxt: int | None) -> Increment | None:
        if first is None or nxt is None:
            return None
        key = (first, nxt)
        value = self._increments.get(key)
        if value is None:
            value = self._increments[key] = Increment(first, nxt)
        return value

    def weekdays(self, text: str | None) -> frozenset[int] | None:
        if not text:
            return None
        value = self._weekdays.get(text)
        if value is None:
            value = self._weekdays[text] = frozenset(int(d) for d in text.split(","))
        return value

    def hours(self, text: str | None) -> tuple[time, time] | None:
        if not text:
            return None
        value = self._hours.get(text)
        if value is None:
            value = self._hours[text] = _parse_hours(text)
        return value

    def rows(self, records: Sequence[Sequence[Any]]) -> list[RateRow]:
        """`records` in RATE_COLUMNS order without the tariff id -> RateRows.

        One loop with the memo dicts in locals: a repeated value costs a dict lookup and no
        call; RateRows are made by `_make_rate_row`.
        """
        amounts, increments = self._amounts, self._increments
        weekdays_of, hours_of = self._weekdays, self._hours
        services, directions, number_types = _SERVICES, _DIRECTIONS, _NUMBER_TYPES
        make = _make_rate_row
        rows: list[RateRow] = []
        append = rows.append
        for (
            prefix, service, direction, number_type, weekdays, hours, eff_from, destination,
            rate_nanos, fee_nanos, first, nxt, min_s, free_s, eff_to, tiers, decimals,
            rounding, calendar, max_cost_nanos, max_cost_strategy, rate_unit,
        ) in records:
            rate = amounts.get(rate_nanos)
            if rate is None:
                rate = self.amount(rate_nanos)
            fee = amounts.get(fee_nanos)
            if fee is None:
                fee = self.amount(fee_nanos)
            increment = increments.get((first, nxt)) if first is not None else None
            if increment is None and first is not None:
                increment = self.increment(first, nxt)
            append(
                make(
                    prefix,
                    destination,
                    rate,
                    services[service],
                    directions[direction],
                    number_types[number_type],
                    fee,
                    increment,
                    min_s,
                    free_s,
                    eff_from,
                    eff_to,
                    (weekdays_of.get(weekdays) or self.weekdays(weekdays)) if weekdays else None,
                    (hours_of.get(hours) or self.hours(hours)) if hours else None,
                    _tiers(tiers) if tiers else (),
                    decimals,
                    rounding,
                    _calendar_from(calendar) if calendar is not None else None,
                    from_nanos(max_cost_nanos) if max_cost_nanos is not None else None,
                    max_cost_strategy,
                    rate_unit,
                )
            )
        return rows


_RATE_ROW_FIELDS = (
    "prefix", "destination", "rate", "service", "direction", "number_type", "connect_fee",
    "increment", "min_seconds", "free_seconds", "effective_from", "effective_to", "weekdays",
    "hours", "tiers", "decimals", "rounding", "calendar", "max_cost", "max_cost_strategy",
    "rate_unit",
)


def _rate_row_maker() -> Callable[..., RateRow]:
    """A maker of RateRows from positional field values, for loading a million of them.

    The frozen dataclass's `__init__` assigns each field through `object.__setattr__`; when
    RateRow is exactly the plain slots dataclass this module knows (these fields in this order,
    no `__post_init__`), the slots are filled directly, about twice as fast. Any other shape
    (a field added to the domain model, a check in `__post_init__`) uses the constructor.
    """
    fields = tuple(getattr(RateRow, "__dataclass_fields__", {}))
    if fields != _RATE_ROW_FIELDS or hasattr(RateRow, "__post_init__"):
        return RateRow
    setters = [getattr(RateRow, name).__set__ for name in fields]
    new = object.__new__

    def make(*values: Any) -> RateRow:
        row: RateRow = new(RateRow)
        for set_field, value in zip(setters, values, strict=True):
            set_field(row, value)
        return row

    return make


_make_rate_row = _rate_row_maker()


def _tiers(data: list[dict[str, Any]]) -> tuple[RateTier, ...]:
    return tuple(
        RateTier(t["start_s"], from_nanos(t["rate_nanos"]), Increment.parse(t["increment"]))
        for t in data
    )


LOAD_CHUNK = 50_000


def _fetch_rates(conn: Connection, tariff_id: int) -> Iterator[list[tuple[Any, ...]]]:
    """The stored rows of version `tariff_id` (RATE_COLUMNS without the id), in file order,
    in chunks of LOAD_CHUNK.

    Fetched with the driver's own cursor (`fetchmany`, no per-row result objects); the
    columns whose type converts values (dates, JSON tiers) go through their SQLAlchemy result
    processors, and only where a row has a value there.
    """
    columns = [tariff_rates.c[name] for name in RATE_COLUMNS[1:]]
    query = (
        select(*columns).where(tariff_rates.c.tariff_id == tariff_id).order_by(tariff_rates.c.id)
    )
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect)
    params = compiled.construct_params()
    positional = compiled.positiontup
    bound: Any = [params[k] for k in positional] if positional is not None else params
    processors = [
        (index, processor)
        for index, column in enumerate(columns)
        if (processor := column.type.dialect_impl(dialect).result_processor(dialect, None))
        is not None
    ]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), bound)
        while records := cursor.fetchmany(LOAD_CHUNK):
            yield _processed(records, processors)
    finally:
        cursor.close()


def _processed(
    records: list[tuple[Any, ...]], processors: list[tuple[int, Callable[[Any], Any]]]
) -> list[tuple[Any, ...]]:
    used = [
        (index, processor)
        for index, processor in processors
        if any(record[index] is not None for record in records)
    ]
    if not used:
        return records
    converted = []
    for record in records:
        items = list(record)
        for index, processor in used:
            if items[index] is not None:
                items[index] = processor(items[index])
        converted.append(tuple(items))
    return converted


def _version_from(record: Any) -> TariffVersion:
    return TariffVersion(
        name=record.name,
        version=record.version,
        currency=record.currency,
        settings=_settings_from(record.currency, record.settings),
        created_at=record.created_at,
        effective_from=record.effective_from,
        row_count=record.row_count,
        source=TariffSource(record.source_file, record.source_sha256, record.source_format),
    )


# --- use cases ---------------------------------------------------------------------------


def import_tariff(
    db: Database,
    name: str,
    rows: Iterable[RateRow | RateValues | RowError],
    settings: TariffSettings,
    source: TariffSource | None = None,
    *,
    now: datetime,
    effective_from: datetime | None = None,
    skip_bad: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Store `rows` as a new version of tariff `name` and return it.

    Args:
        rows: the reader's stream of RateRows or, faster, of plain rows as storage values
            (`ParsedRow.values` of the CSV reader, in RATE_VALUE_COLUMNS order); a RowError
            in it makes the import fail with BadTariffRows (listing every bad row) and write
            nothing, unless `skip_bad`.
        now: the clock's time (creation stamp of the version).
        effective_from: when this version takes over from the previous one.
        on_progress: called with the number of rows read so far, once per chunk.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a tariff name is 1 to 200 characters")
    settings = validate_settings(settings)
    source = source or TariffSource()
    if effective_from is not None and effective_from.tzinfo is None:
        raise InvalidInput("effective_from must carry a timezone")
    try:
        with db.transaction() as conn:
            return _import(
                conn, name, rows, settings, source, now, effective_from, skip_bad, on_progress
            )
    except IntegrityError as exc:
        raise Conflict(f"tariff {name!r} was changed by a concurrent import; retry") from exc


def _import(
    conn: Connection,
    name: str,
    rows: Iterable[RateRow | RateValues | RowError],
    settings: TariffSettings,
    source: TariffSource,
    now: datetime,
    effective_from: datetime | None,
    skip_bad: bool,
    on_progress: Callable[[int], None] | None,
) -> ImportResult:
    last = conn.execute(
        select(tariffs.c.version, tariffs.c.currency)
        .where(tariffs.c.name == name)
        .order_by(tariffs.c.version.desc())
        .limit(1)
    ).first()
    if last is not None and last.currency != settings.currency:
        raise Conflict(
            f"tariff {name!r} is priced in {last.currency}; a new version cannot switch to "
            f"{settings.currency} (import it under another name)"
        )
    version = (last.version if last is not None else 0) + 1
    tariff_id = conn.execute(
        insert(tariffs)
        .values(
            name=name,
            version=version,
            currency=settings.currency,
            settings=_settings_json(settings),
            created_at=now,
            effective_from=effective_from,
            row_count=0,
            source_format=source.format,
            source_file=source.file[-500:],
            source_sha256=source.sha256,
        )
        .returning(tariffs.c.id)
    ).scalar_one()
    errors: list[RowError] = []
    count = 0
    nanos: dict[Decimal, int] = {}
    for chunk in _chunks(rows, errors):
        if len(nanos) > 1_000_000:
            nanos.clear()
        if all(type(item) is tuple for item in chunk):
            _insert_plain(conn, tariff_id, chunk)  # type: ignore[arg-type]
        else:
            tail = (None,) * (len(RATE_COLUMNS) - 1 - len(RATE_VALUE_COLUMNS))
            _bulk_insert(
                conn,
                [
                    (tariff_id, *item, *tail)
                    if type(item) is tuple
                    else _row_values(tariff_id, item, nanos)  # type: ignore[arg-type]
                    for item in chunk
                ],
            )
        count += len(chunk)
        if on_progress:
            on_progress(count + len(errors))
    if errors and not skip_bad:
        raise BadTariffRows(errors)
    if count == 0:
        raise InvalidInput(f"no good rate rows to import into tariff {name!r}")
    conn.execute(update(tariffs).where(tariffs.c.id == tariff_id).values(row_count=count))
    stored = conn.execute(select(tariffs).where(tariffs.c.id == tariff_id)).one()
    return ImportResult(_version_from(stored), tuple(errors))


def _chunks(
    rows: Iterable[RateRow | RateValues | RowError], errors: list[RowError]
) -> Iterator[list[RateRow | RateValues]]:
    chunk: list[RateRow | RateValues] = []
    append = chunk.append
    for item in rows:
        if isinstance(item, RowError):
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(item)
            continue
        append(item)  # type: ignore[arg-type]
        if len(chunk) >= INSERT_CHUNK:
            yield chunk
            chunk = []
            append = chunk.append
    if chunk:
        yield chunk


def _version_row(conn: Connection, name: str, version: int | None, at: datetime | None) -> Any:
    query = select(tariffs).where(tariffs.c.name == name)
    if version is not None:
        query = query.where(tariffs.c.version == version)
    elif at is not None:
        query = query.where(
            (tariffs.c.effective_from.is_(None)) | (tariffs.c.effective_from <= at)
        )
    record = conn.execute(query.order_by(tariffs.c.version.desc()).limit(1)).first()
    if record is None:
        which = f" version {version}" if version is not None else ""
        when = f" in force at {at.isoformat()}" if at is not None and version is None else ""
        raise NotFound(f"no tariff {name!r}{which}{when}")
    return record


def get_version(
    db: Database, name: str, version: int | None = None, *, at: datetime | None = None
) -> TariffVersion:
    """One version's metadata: `version`, else the one in force `at`, else the newest."""
    with db.transaction() as conn:
        return _version_from(_version_row(conn, name, version, at))


def load_tariff(
    db: Database, name: str, version: int | None = None, *, at: datetime | None = None
) -> Tariff:
    """The whole tariff (settings and rows) of `version`, else in force `at`, else newest."""
    with db.transaction() as conn:
        record = _version_row(conn, name, version, at)
        decoder = _RowDecoder()
        decoded: list[RateRow] = []
        for chunk in _fetch_rates(conn, record.id):
            decoded.extend(decoder.rows(chunk))
        rows = tuple(decoded)
    return Tariff(
        name=record.name,
        settings=_settings_from(record.currency, record.settings),
        rows=rows,
        version=record.version,
    )


def list_tariffs(db: Database) -> list[TariffVersion]:
    """The newest version of every tariff, by name."""
    newest = (
        select(tariffs.c.name, func.max(tariffs.c.version).label("version"))
        .group_by(tariffs.c.name)
        .subquery()
    )
    query = (
        select(tariffs)
        .join(
            newest,
            (tariffs.c.name == newest.c.name) & (tariffs.c.version == newest.c.version),
        )
        .order_by(tariffs.c.name)
    )
    with db.transaction() as conn:
        return [_version_from(r) for r in conn.execute(query)]


def list_versions(db: Database, name: str) -> list[TariffVersion]:
    """Every version of tariff `name`, oldest first (NotFound when there is none)."""
    with db.transaction() as conn:
        records = conn.execute(
            select(tariffs).where(tariffs.c.name == name).order_by(tariffs.c.version)
        ).all()
    if not records:
        raise NotFound(f"no tariff {name!r}")
    return [_version_from(r) for r in records]


def diff_versions(db: Database, name: str, from_version: int, to_version: int) -> TariffDiff:
    """Rows added, removed and changed between two versions, keyed by prefix, service,
    direction, number type, band and effective_from."""
    before = {_key(r): r for r in load_tariff(db, name, from_version).rows}
    after = {_key(r): r for r in load_tariff(db, name, to_version).rows}
    added = tuple(row for key, row in after.items() if key not in before)
    removed = tuple(row for key, row in before.items() if key not in after)
    changed = tuple(
        RateChange(before[key], row)
        for key, row in after.items()
        if key in before and before[key] != row
    )
    return TariffDiff(name, from_version, to_version, added, removed, changed)


def _key(row: RateRow) -> tuple[object, ...]:
    return (
        row.prefix,
        row.service,
        row.direction,
        row.number_type,
        row.weekdays,
        row.hours,
        row.effective_from,
    )


# Prefixes per destination-name query (SQLite's bound-parameter limit, short statements).
_NAME_BATCH = 500


def destination_names(
    conn: Connection, keys: Iterable[tuple[Any, ...]], by: Sequence[str] = ()
) -> dict[tuple[Any, ...], str]:
    """Destination names of charges, which store the matched prefix, not its name.

    `keys`: (tariff name, version, prefix, *values of the rate columns `by`), e.g.
    ``by=("service",)`` names a prefix's calls and its SMS apart ("United Kingdom", "UK
    SMS"). Where several rates of a key carry names, the smallest is taken. Keys without a
    tariff or prefix, or with no named rate, are absent from the answer."""
    wanted = {k for k in keys if k[0] is not None and k[2] is not None}
    if not wanted:
        return {}
    extra = [tariff_rates.c[name] for name in by]
    found: dict[tuple[Any, ...], str] = {}
    prefixes = sorted({k[2] for k in wanted})
    for start in range(0, len(prefixes), _NAME_BATCH):
        query = (
            select(tariffs.c.name, tariffs.c.version, tariff_rates.c.prefix, *extra,
                   func.min(tariff_rates.c.destination))
            .join(tariffs, tariffs.c.id == tariff_rates.c.tariff_id)
            .where(tariffs.c.name.in_({k[0] for k in wanted}),
                   tariff_rates.c.prefix.in_(prefixes[start : start + _NAME_BATCH]),
                   *(column.in_({k[3 + n] for k in wanted}) for n, column in enumerate(extra)))
            .group_by(tariffs.c.name, tariffs.c.version, tariff_rates.c.prefix, *extra)
        )  # fmt: skip
        for *key, destination in conn.execute(query):
            if tuple(key) in wanted and destination:
                found[tuple(key)] = str(destination)
    return found
