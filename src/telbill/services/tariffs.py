"""Tariff use cases: import a deck as a new immutable version, load, list, compare versions.

An import runs in ONE transaction: the version row is created, rate rows are inserted in
large chunks (COPY on PostgreSQL, one driver executemany on SQLite) while the (streamed)
input is read, and if any input row was bad the whole transaction is rolled back (unless
`skip_bad`), so a tariff is never half imported. Readers may hand plain rows as storage
values (`RateValues`) instead of RateRows: those go to the driver as they are.
Versions are never edited: a new deck under the same name becomes version N+1. The version in
force at a moment is the newest one whose `effective_from` is not after it.

Tariffs belong to a provider (`owner`; None: the operator's global catalogue) and names are
unique per owner. Every read goes through a `Viewer`: a provider sees its own tariffs and
the operator's retail ones (its own win on a shared name), never another provider's; a
viewer without `costs` (org_admin and user keys) never sees a carrier cost deck.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, func, insert, or_, select, update
from sqlalchemy.exc import DataError, IntegrityError

from telbill.adapters.db.engine import Database, RetryTransaction
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
from telbill.services import idempotency

if TYPE_CHECKING:
    from telbill.services.auth import Principal

INSERT_CHUNK = 50_000
MAX_REPORTED_ERRORS = 10_000


@dataclass(frozen=True, slots=True)
class TariffSource:
    """Where a version came from: file name, its sha256 and the reader used."""

    file: str = ""
    sha256: str = ""
    format: str = "native"


PURPOSES = ("retail", "cost")


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose catalogue a read looks into.

    `provider`: the provider account (None: the operator). `costs`: may see carrier cost
    decks (provider admins and the operator). `fallback`: what of the operator's catalogue a
    provider sees when it has no tariff of a name: "retail" (its shared price lists; people
    and keys), "all" (rating a customer: an operator plan may price with an operator cost
    deck) or "none" (exactly the provider's own)."""

    provider: int | None = None
    costs: bool = True
    fallback: str = "retail"

    @classmethod
    def owner(cls, owner: int | None) -> Viewer:
        """Exactly the catalogue of `owner` (None: the operator's)."""
        return cls(owner, True, "none")

    @classmethod
    def rating(cls, provider: int | None) -> Viewer:
        """The tariffs a customer of `provider` is rated with."""
        return cls(provider, True, "all")


OPERATOR = Viewer()


def provider_viewer(db: Database, provider: int | None) -> Viewer:
    """What the admin of `provider` sees (None: the operator, who sees its own catalogue);
    NotFound unless `provider` is a provider account."""
    if provider is None:
        return OPERATOR
    from telbill.adapters.db.tables import accounts

    with db.read() as conn:
        found = conn.execute(
            select(accounts.c.provider_id).where(accounts.c.id == provider)
        ).scalar()
    if found != provider:
        raise NotFound(f"no provider {provider}")
    return Viewer(provider, costs=True)


def viewer_of(db: Database, principal: Principal) -> Viewer:
    """What an API key sees: the tariffs of its account's provider (and the operator's shared
    retail ones); carrier cost decks only with a provider admin key."""
    from telbill.adapters.db.tables import accounts
    from telbill.services.auth import Role

    with db.read() as conn:
        provider = conn.execute(
            select(accounts.c.provider_id).where(accounts.c.id == principal.account_id)
        ).scalar()
    if provider is None:
        raise NotFound(f"account {principal.account_id} not found")
    return Viewer(int(provider), costs=principal.role is Role.PROVIDER_ADMIN)


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
    owner_id: int | None = None
    purpose: str = "retail"


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
        owner_id=record.owner_id,
        purpose=record.purpose,
    )


def owned_by(owner: int | None) -> ColumnElement[bool]:
    """The tariffs of `owner` (None: the operator's)."""
    return tariffs.c.owner_id.is_(None) if owner is None else tariffs.c.owner_id == owner


def resolve_owner(conn: Connection, name: str, viewer: Viewer) -> int | None:
    """The owner of the tariff `name` that `viewer` sees (None: the operator's), or NotFound.

    The viewer's own tariff wins over the operator's of the same name; the purpose of a
    name is that of its newest version."""
    candidates = owned_by(viewer.provider)
    if viewer.provider is not None and viewer.fallback != "none":
        candidates = or_(candidates, tariffs.c.owner_id.is_(None))
    newest: dict[int | None, str] = {}
    for owner, purpose in conn.execute(
        select(tariffs.c.owner_id, tariffs.c.purpose)
        .where(tariffs.c.name == name, candidates)
        .order_by(tariffs.c.version.desc())
    ):
        newest.setdefault(None if owner is None else int(owner), purpose)
    own = newest.get(viewer.provider)
    if own is not None and (viewer.costs or own == "retail"):
        return viewer.provider
    if viewer.provider is not None and None in newest:
        shared = newest[None]
        if viewer.fallback == "all" or (shared == "retail" and viewer.fallback == "retail"):
            return None
    raise NotFound(f"no tariff {name!r}")


def owner_at(conn: Connection, name: str, provider: int | None, at: datetime) -> int | None:
    """The owner of the tariff `name` that rating gave a customer of `provider` at `at`: the
    provider's own if it had imported one by then, else the operator's (None). For explaining
    a charge after its provider imported a tariff named like the operator's one."""
    if provider is None:
        return None
    own = conn.execute(
        select(tariffs.c.id)
        .where(
            tariffs.c.name == name,
            tariffs.c.owner_id == provider,
            tariffs.c.created_at <= at,
        )
        .limit(1)
    ).first()
    return provider if own is not None else None


def _visible(viewer: Viewer) -> ColumnElement[bool]:
    """Rows of the tariffs `viewer` may list (before own-over-shared names are settled)."""
    own = owned_by(viewer.provider)
    if not viewer.costs:
        own = own & (tariffs.c.purpose == "retail")
    if viewer.provider is None or viewer.fallback == "none":
        return own
    shared = tariffs.c.owner_id.is_(None)
    if viewer.fallback == "retail":
        shared = shared & (tariffs.c.purpose == "retail")
    return or_(own, shared)


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
    owner: int | None = None,
    purpose: str = "retail",
    idempotency_key: str | None = None,
) -> ImportResult:
    """Store `rows` as a new version of tariff `name` of `owner`'s catalogue and return it.

    Args:
        rows: the reader's stream of RateRows or, faster, of plain rows as storage values
            (`ParsedRow.values` of the CSV reader, in RATE_VALUE_COLUMNS order); a RowError
            in it makes the import fail with BadTariffRows (listing every bad row) and write
            nothing, unless `skip_bad`.
        now: the clock's time (creation stamp of the version).
        effective_from: when this version takes over from the previous one.
        on_progress: called with the number of rows read so far, once per chunk.
        owner: the provider whose catalogue gets it (None: the operator's); another
            owner's tariff of the same name is a different tariff, never touched.
        purpose: "retail" (a price list) or "cost" (a carrier cost deck).
        idempotency_key: the same key again (same name, owner, settings and file sha256)
            returns the first import's version and imports nothing.
    """
    if purpose not in PURPOSES:
        raise InvalidInput(f"a tariff's purpose is one of {', '.join(PURPOSES)}, got {purpose!r}")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a tariff name is 1 to 200 characters")
    settings = validate_settings(settings)
    source = source or TariffSource()
    if effective_from is not None and effective_from.tzinfo is None:
        raise InvalidInput("effective_from must carry a timezone")
    request = {
        "name": name, "owner": owner, "purpose": purpose, "settings": _settings_json(settings),
        "currency": settings.currency, "sha256": source.sha256, "skip_bad": skip_bad,
        "effective_from": effective_from,
    }  # fmt: skip
    scope, hashed = f"tariff.import:{owner or 0}", idempotency.request_hash(request)
    try:
        with db.transaction() as conn:
            if idempotency_key is not None:
                stored = idempotency.check(conn, scope, idempotency_key, hashed)
                if stored is not None:
                    return _replayed(conn, owner, stored)
            result = _import(
                conn, name, rows, settings, source, now, effective_from, skip_bad, on_progress,
                owner, purpose,
            )  # fmt: skip
            if idempotency_key is not None:
                response = {
                    "name": name, "version": result.version.version,
                    "skipped": [[e.line, e.reason, e.source] for e in result.skipped],
                }  # fmt: skip
                idempotency.remember(conn, scope, idempotency_key, hashed, response, now)
            return result
    except RetryTransaction as exc:
        raise Conflict(f"tariff {name!r} was imported concurrently with this key; retry") from exc
    except DataError as exc:
        raise _too_long() from exc
    except IntegrityError as exc:
        raise Conflict(f"tariff {name!r} was changed by a concurrent import; retry") from exc
    except Exception as exc:
        if str(getattr(exc, "sqlstate", "") or "").startswith("22"):  # COPY's data exception
            raise _too_long() from exc
        raise


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
    owner: int | None,
    purpose: str,
) -> ImportResult:
    last = conn.execute(
        select(tariffs.c.version, tariffs.c.currency, tariffs.c.purpose)
        .where(tariffs.c.name == name, owned_by(owner))
        .order_by(tariffs.c.version.desc())
        .limit(1)
    ).first()
    if last is not None and last.currency != settings.currency:
        raise Conflict(
            f"tariff {name!r} is priced in {last.currency}; a new version cannot switch to "
            f"{settings.currency} (import it under another name)"
        )
    if last is not None and last.purpose != purpose:
        raise Conflict(
            f"tariff {name!r} is a {last.purpose} tariff; a new version cannot be a {purpose} "
            "one (import it under another name)"
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
            owner_id=owner,
            purpose=purpose,
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


def _too_long() -> InvalidInput:
    return InvalidInput(
        "a value does not fit its column (a prefix is at most 32 characters, a destination "
        "200); nothing imported"
    )


def _replayed(conn: Connection, owner: int | None, stored: dict[str, Any]) -> ImportResult:
    """The result of the import an idempotency key was first used for."""
    record = conn.execute(
        select(tariffs).where(
            tariffs.c.name == stored["name"],
            tariffs.c.version == stored["version"],
            owned_by(owner),
        )
    ).one()
    skipped = tuple(RowError(line, reason, source) for line, reason, source in stored["skipped"])
    return ImportResult(_version_from(record), skipped)


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


def _version_row(
    conn: Connection, name: str, version: int | None, at: datetime | None, viewer: Viewer
) -> Any:
    owner = resolve_owner(conn, name, viewer)
    query = select(tariffs).where(tariffs.c.name == name, owned_by(owner))
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
    db: Database,
    name: str,
    version: int | None = None,
    *,
    at: datetime | None = None,
    viewer: Viewer = OPERATOR,
) -> TariffVersion:
    """One version's metadata: `version`, else the one in force `at`, else the newest."""
    with db.transaction() as conn:
        return _version_from(_version_row(conn, name, version, at, viewer))


def load_tariff(
    db: Database,
    name: str,
    version: int | None = None,
    *,
    at: datetime | None = None,
    viewer: Viewer = OPERATOR,
) -> Tariff:
    """The whole tariff (settings and rows) of `version`, else in force `at`, else newest."""
    with db.transaction() as conn:
        record = _version_row(conn, name, version, at, viewer)
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


def list_tariffs(db: Database, viewer: Viewer = OPERATOR) -> list[TariffVersion]:
    """The newest version of every tariff `viewer` sees, by name (its own before the
    operator's of the same name, which it then does not see)."""
    owner_key = func.coalesce(tariffs.c.owner_id, 0)
    newest = (
        select(
            owner_key.label("owner_key"),
            tariffs.c.name,
            func.max(tariffs.c.version).label("version"),
        )
        .where(_visible(viewer))
        .group_by(owner_key, tariffs.c.name)
        .subquery()
    )
    query = (
        select(tariffs)
        .join(
            newest,
            (func.coalesce(tariffs.c.owner_id, 0) == newest.c.owner_key)
            & (tariffs.c.name == newest.c.name)
            & (tariffs.c.version == newest.c.version),
        )
        .order_by(tariffs.c.name, tariffs.c.owner_id.is_(None))
    )
    with db.transaction() as conn:
        found: dict[str, TariffVersion] = {}
        for record in conn.execute(query):
            found.setdefault(record.name, _version_from(record))
    return list(found.values())


def list_versions(db: Database, name: str, viewer: Viewer = OPERATOR) -> list[TariffVersion]:
    """Every version of tariff `name`, oldest first (NotFound when there is none)."""
    with db.transaction() as conn:
        owner = resolve_owner(conn, name, viewer)
        records = conn.execute(
            select(tariffs)
            .where(tariffs.c.name == name, owned_by(owner))
            .order_by(tariffs.c.version)
        ).all()
    if not records:
        raise NotFound(f"no tariff {name!r}")
    return [_version_from(r) for r in records]


def diff_versions(
    db: Database, name: str, from_version: int, to_version: int, viewer: Viewer = OPERATOR
) -> TariffDiff:
    """Rows added, removed and changed between two versions, keyed by prefix, service,
    direction, number type, band and effective_from."""
    before = {_key(r): r for r in load_tariff(db, name, from_version, viewer=viewer).rows}
    after = {_key(r): r for r in load_tariff(db, name, to_version, viewer=viewer).rows}
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
    conn: Connection,
    keys: Iterable[tuple[Any, ...]],
    by: Sequence[str] = (),
    *,
    provider: int | None = None,
) -> dict[tuple[Any, ...], str]:
    """Destination names of charges, which store the matched prefix, not its name.

    `keys`: (tariff name, version, prefix, *values of the rate columns `by`), e.g.
    ``by=("service",)`` names a prefix's calls and its SMS apart ("United Kingdom", "UK
    SMS"). Where several rates of a key carry names, the smallest is taken. Keys without a
    tariff or prefix, or with no named rate, are absent from the answer.

    `provider`: the charges are of that provider's customers: names come from its own
    tariffs, else the operator's, never another provider's (None: any owner's)."""
    wanted = {k for k in keys if k[0] is not None and k[2] is not None}
    if not wanted:
        return {}
    extra = [tariff_rates.c[name] for name in by]
    found: dict[tuple[Any, ...], str] = {}
    prefixes = sorted({k[2] for k in wanted})
    scope = (
        or_(tariffs.c.owner_id.is_(None), tariffs.c.owner_id == provider)
        if provider is not None
        else tariffs.c.id.is_not(None)
    )
    own: set[tuple[Any, ...]] = set()
    for start in range(0, len(prefixes), _NAME_BATCH):
        query = (
            select(tariffs.c.owner_id, tariffs.c.name, tariffs.c.version, tariff_rates.c.prefix,
                   *extra, func.min(tariff_rates.c.destination))
            .join(tariffs, tariffs.c.id == tariff_rates.c.tariff_id)
            .where(tariffs.c.name.in_({k[0] for k in wanted}), scope,
                   tariff_rates.c.prefix.in_(prefixes[start : start + _NAME_BATCH]),
                   *(column.in_({k[3 + n] for k in wanted}) for n, column in enumerate(extra)))
            .group_by(tariffs.c.owner_id, tariffs.c.name, tariffs.c.version,
                      tariff_rates.c.prefix, *extra)
        )  # fmt: skip
        for owner, *key, destination in conn.execute(query):
            key_ = tuple(key)
            if key_ not in wanted or not destination:
                continue
            mine = provider is not None and owner == provider
            if key_ in own and not mine:
                continue  # the provider's own tariff names it
            if mine:
                own.add(key_)
                found[key_] = str(destination)
            else:
                found[key_] = min(found.get(key_, str(destination)), str(destination))
    return found
