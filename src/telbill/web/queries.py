"""Read-only views the dashboard lists and the services do not offer as such.

Every list is one keyset page (`Page`): the query seeks past the cursor on an index and
reads `limit + 1` rows, so a page costs the same on the first day and on an account with a
million charges. Nothing here writes or decides anything; amounts come back as Decimal
from the integer micro-units of storage (`domain.money.from_micros`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

from telbill.adapters.db import tables as t
from telbill.adapters.db.charging_tables import campaigns, charges
from telbill.adapters.db.engine import Database
from telbill.adapters.db.lifecycle_tables import number_inventory
from telbill.adapters.db.tables import UTCDateTime
from telbill.adapters.db.web_tables import web_sessions  # noqa: F401  (table + charges index)
from telbill.domain.money import from_micros
from telbill.domain.tariffs import NUMBER_MATCH_DIGITS
from telbill.errors import InvalidInput
from telbill.services.counters import counters_by_campaign

T = TypeVar("T")
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE}")
    return limit


def _id_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidInput("bad page cursor")
    return int(cursor)


def subtree(root_id: int) -> Any:
    """A recursive CTE of `root_id` and every account below it."""
    tree = (
        sa.select(t.accounts.c.id)
        .where(t.accounts.c.id == root_id)
        .cte(f"tree_{root_id}", recursive=True)
    )
    return tree.union_all(sa.select(t.accounts.c.id).where(t.accounts.c.parent_id == tree.c.id))


# ---------------------------------------------------------------------------------- usage


@dataclass(frozen=True, slots=True)
class UsageRow:
    charge_id: int
    occurred_at: datetime
    account_id: int
    service: str
    direction: str
    number: str
    prefix: str | None
    billed_units: int
    unit: str
    package_units: int
    amount: Decimal
    currency: str
    revision: int


def _usage_filter(
    account_id: int, has_wallet: bool, since: datetime | None, until: datetime | None,
    service: str | None,
) -> list[Any]:  # fmt: skip
    # A wallet shows every charge it paid (index payer_id, occurred_at); an account without
    # a wallet shows its own usage (index account_id, occurred_at).
    owner = charges.c.payer_id if has_wallet else charges.c.account_id
    where: list[Any] = [owner == account_id]
    if since is not None:
        where.append(charges.c.occurred_at >= since)
    if until is not None:
        where.append(charges.c.occurred_at < until)
    if service:
        where.append(charges.c.service == service)
    return where


def _usage_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    try:
        stamp, _, charge_id = cursor.partition("~")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError
        return moment.astimezone(UTC), int(charge_id)
    except ValueError:
        raise InvalidInput("bad page cursor") from None


def _number_of(usage: Any) -> str:
    if isinstance(usage, dict):
        return str(usage.get("to_number") or usage.get("to") or "")
    return ""


def usage_query(
    account_id: int,
    *,
    has_wallet: bool,
    since: datetime | None = None,
    until: datetime | None = None,
    service: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Any:
    """The SELECT of one usage page (`limit + 1` rows, to know whether more follow)."""
    where = _usage_filter(account_id, has_wallet, since, until, service)
    after = _usage_cursor(cursor)
    if after is not None:
        # A row-value comparison, not (a < x OR a = x AND id < y): both databases seek the
        # (…, occurred_at, id) index straight to the cursor instead of walking up to it.
        where.append(
            sa.tuple_(charges.c.occurred_at, charges.c.id)
            < sa.tuple_(sa.literal(after[0], UTCDateTime()), sa.literal(after[1], sa.BigInteger()))
        )
    return (
        sa.select(
            charges.c.id, charges.c.occurred_at, charges.c.account_id, charges.c.service,
            charges.c.direction, charges.c.usage, charges.c.prefix, charges.c.billed_units,
            charges.c.unit, charges.c.package_units, charges.c.amount_micros,
            charges.c.currency, charges.c.revision,
        )
        .where(*where)
        .order_by(charges.c.occurred_at.desc(), charges.c.id.desc())
        .limit(limit + 1)
    )  # fmt: skip


def usage_page(
    db: Database,
    account_id: int,
    *,
    has_wallet: bool,
    since: datetime | None = None,
    until: datetime | None = None,
    service: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[UsageRow]:
    """Charges newest first (by time, then id), one keyset page."""
    limit = _limit(limit)
    query = usage_query(
        account_id, has_wallet=has_wallet, since=since, until=until, service=service,
        cursor=cursor, limit=limit,
    )  # fmt: skip
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    items = [
        UsageRow(
            charge_id=int(r.id), occurred_at=r.occurred_at, account_id=int(r.account_id),
            service=str(r.service), direction=str(r.direction), number=_number_of(r.usage),
            prefix=r.prefix, billed_units=int(r.billed_units), unit=str(r.unit),
            package_units=int(r.package_units), amount=from_micros(int(r.amount_micros)),
            currency=str(r.currency), revision=int(r.revision),
        )
        for r in rows[:limit]
    ]  # fmt: skip
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = f"{last.occurred_at.astimezone(UTC).isoformat()}~{last.charge_id}"
    return Page(items, next_cursor)


def iter_usage(
    db: Database, account_id: int, *, has_wallet: bool, since: datetime | None = None,
    until: datetime | None = None, service: str | None = None,
) -> Iterator[UsageRow]:  # fmt: skip
    """Every matching charge, newest first, read page by page (for the CSV export)."""
    cursor: str | None = None
    while True:
        page = usage_page(
            db, account_id, has_wallet=has_wallet, since=since, until=until, service=service,
            cursor=cursor, limit=MAX_PAGE,
        )  # fmt: skip
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@dataclass(frozen=True, slots=True)
class DaySpend:
    day: date
    amount: Decimal


def daily_spend(
    db: Database, account_id: int, *, has_wallet: bool, now: datetime, days: int = 30
) -> list[DaySpend]:
    """Money charged per UTC day over the last `days` days (zero days included)."""
    start_day = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
    where = _usage_filter(account_id, has_wallet, start, None, None)
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            day = sa.cast(sa.func.timezone("UTC", charges.c.occurred_at), sa.Date)
        else:
            day = sa.func.date(charges.c.occurred_at)
        query = (
            sa.select(day.label("day"), sa.func.sum(charges.c.amount_micros))
            .where(*where)
            .group_by(day)
        )
        totals: dict[date, int] = {}
        for day_value, micros in conn.execute(query):
            key = day_value if isinstance(day_value, date) else date.fromisoformat(str(day_value))
            totals[key] = totals.get(key, 0) + int(micros or 0)
    every_day = [start_day + timedelta(days=n) for n in range(days)]
    return [DaySpend(day, from_micros(totals.get(day, 0))) for day in every_day]


# ------------------------------------------------------------------------------- campaigns


@dataclass(frozen=True, slots=True)
class CampaignRow:
    id: int
    account_id: int
    name: str
    status: str
    paused_reason: str | None
    created_at: datetime
    voice_s: int


def campaigns_page(
    db: Database, account_id: int, *, cursor: str | None = None, limit: int = 50
) -> Page[CampaignRow]:
    """Campaigns of the account's subtree, newest first, with the call seconds billed to the
    calls that named each campaign (`services.counters`, one aggregate for the page)."""
    limit = _limit(limit)
    before = _id_cursor(cursor)
    tree = subtree(account_id)
    query = sa.select(campaigns).where(campaigns.c.account_id.in_(sa.select(tree.c.id)))
    if before is not None:
        query = query.where(campaigns.c.id < before)
    query = query.order_by(campaigns.c.id.desc()).limit(limit + 1)
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    used = counters_by_campaign(db, [int(r.id) for r in rows[:limit]])
    items = [
        CampaignRow(
            id=int(r.id), account_id=int(r.account_id), name=str(r.name), status=str(r.status),
            paused_reason=r.paused_reason, created_at=r.created_at,
            voice_s=used[int(r.id)].voice_s if int(r.id) in used else 0,
        )
        for r in rows[:limit]
    ]  # fmt: skip
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return Page(items, next_cursor)


# -------------------------------------------------------------------------------- receipts


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    id: int
    number: int
    created_at: datetime
    amount: Decimal
    vat: Decimal
    currency: str
    payment_ref: str | None


def receipts_page(
    db: Database, account_id: int, *, cursor: str | None = None, limit: int = 50
) -> Page[ReceiptRow]:
    limit = _limit(limit)
    before = _id_cursor(cursor)
    query = sa.select(t.receipts).where(t.receipts.c.account_id == account_id)
    if before is not None:
        query = query.where(t.receipts.c.id < before)
    query = query.order_by(t.receipts.c.id.desc()).limit(limit + 1)
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    items = [
        ReceiptRow(
            id=int(r.id), number=int(r.number), created_at=r.created_at,
            amount=from_micros(int(r.gross_micros)), vat=from_micros(int(r.vat_micros)),
            currency=str(r.currency), payment_ref=r.payment_ref,
        )
        for r in rows[:limit]
    ]  # fmt: skip
    return Page(items, str(items[-1].id) if len(rows) > limit else None)


# -------------------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    parent_id: int | None
    kind: str
    name: str
    status: str
    currency: str
    billing_mode: str
    has_wallet: bool
    children: int


def _account_rows(conn: Connection, rows: list[Any]) -> list[AccountRow]:
    ids = [int(r.id) for r in rows]
    counts: dict[int, int] = {}
    if ids:
        counted = conn.execute(
            sa.select(t.accounts.c.parent_id, sa.func.count())
            .where(t.accounts.c.parent_id.in_(ids))
            .group_by(t.accounts.c.parent_id)
        )
        counts = {int(parent): int(n) for parent, n in counted}
    return [
        AccountRow(
            id=int(r.id), parent_id=r.parent_id, kind=str(r.kind), name=str(r.name),
            status=str(r.status), currency=str(r.currency), billing_mode=str(r.billing_mode),
            has_wallet=bool(r.has_wallet), children=counts.get(int(r.id), 0),
        )
        for r in rows
    ]  # fmt: skip


def children_page(
    db: Database, parent_id: int, *, cursor: str | None = None, limit: int = 50
) -> Page[AccountRow]:
    """Direct children of an account, by id (the tree is browsed one level at a time)."""
    query = sa.select(t.accounts).where(t.accounts.c.parent_id == parent_id)
    return _accounts_page(db, query, cursor, limit)


def _accounts_page(db: Database, query: Any, cursor: str | None, limit: int) -> Page[AccountRow]:
    """A page of the accounts `query` selects, by id, after `cursor`."""
    limit = _limit(limit)
    after = _id_cursor(cursor)
    if after is not None:
        query = query.where(t.accounts.c.id > after)
    query = query.order_by(t.accounts.c.id).limit(limit + 1)
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
        items = _account_rows(conn, rows[:limit])
    return Page(items, str(items[-1].id) if len(rows) > limit else None)


ACCOUNT_KINDS = ("organisation", "user")
ACCOUNT_STATUSES = ("active", "suspended", "closed")


def search_accounts(
    db: Database,
    root_id: int,
    *,
    text: str = "",
    kind: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[AccountRow]:
    """Accounts anywhere below `root_id` whose name contains `text` (any case) or whose id
    is `text`, optionally of one kind and status; by id."""
    tree = subtree(root_id)
    query = sa.select(t.accounts).where(
        t.accounts.c.id.in_(sa.select(tree.c.id)), t.accounts.c.id != root_id
    )
    wanted = text.strip()
    if wanted:
        by_name = sa.func.lower(t.accounts.c.name).contains(wanted.lower(), autoescape=True)
        query = query.where(
            sa.or_(by_name, t.accounts.c.id == int(wanted)) if wanted.isdigit() and
            len(wanted) < 19 else by_name
        )  # fmt: skip
    if kind:
        if kind not in ACCOUNT_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(ACCOUNT_KINDS)}")
        query = query.where(t.accounts.c.kind == kind)
    if status:
        if status not in ACCOUNT_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(ACCOUNT_STATUSES)}")
        query = query.where(t.accounts.c.status == status)
    return _accounts_page(db, query, cursor, limit)


def suspended_page(
    db: Database, root_id: int, *, cursor: str | None = None, limit: int = 50
) -> Page[AccountRow]:
    """Suspended accounts below `root_id`, by id."""
    tree = subtree(root_id)
    query = sa.select(t.accounts).where(
        t.accounts.c.id.in_(sa.select(tree.c.id)), t.accounts.c.status == "suspended"
    )
    return _accounts_page(db, query, cursor, limit)


# ------------------------------------------------------------------------------- inventory


@dataclass(frozen=True, slots=True)
class InventoryRow:
    id: int
    number: str
    country: str
    number_type: str
    locality: str | None
    area_code: str | None
    status: str
    monthly_price: Decimal
    setup_price: Decimal
    currency: str


def inventory_page(
    db: Database, provider_id: int, *, status: str | None = None, cursor: str | None = None,
    limit: int = 50,
) -> Page[InventoryRow]:  # fmt: skip
    limit = _limit(limit)
    after = _id_cursor(cursor)
    query = sa.select(number_inventory).where(number_inventory.c.provider_id == provider_id)
    if status:
        query = query.where(number_inventory.c.status == status)
    if after is not None:
        query = query.where(number_inventory.c.id > after)
    query = query.order_by(number_inventory.c.id).limit(limit + 1)
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    items = [
        InventoryRow(
            id=int(r.id), number=str(r.number), country=str(r.country),
            number_type=str(r.number_type), locality=r.locality, area_code=r.area_code,
            status=str(r.status), monthly_price=from_micros(int(r.monthly_price_micros)),
            setup_price=from_micros(int(r.setup_price_micros)), currency=str(r.currency),
        )
        for r in rows[:limit]
    ]  # fmt: skip
    return Page(items, str(items[-1].id) if len(rows) > limit else None)


__all__ = [
    "AccountRow",
    "Catalogue",
    "CampaignRow",
    "DaySpend",
    "InventoryRow",
    "MAX_PAGE",
    "Page",
    "RateView",
    "ReceiptRow",
    "UsageRow",
    "campaigns_page",
    "catalogue",
    "children_page",
    "daily_spend",
    "inventory_page",
    "iter_usage",
    "receipts_page",
    "subtree",
    "suspended_page",
    "tariff_rates_page",
    "usage_page",
    "usage_query",
]


# ----------------------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class Catalogue:
    charging_plans: list[dict[str, Any]]
    subscription_plans: list[dict[str, Any]]
    packages: list[dict[str, Any]]


def catalogue(db: Database, provider_id: int) -> Catalogue:
    """What the provider sells: charging plans (its own and the operator's), its subscription
    plans and its packages (small catalogues: read whole)."""
    from telbill.adapters.db.charging_tables import charging_plans
    from telbill.adapters.db.lifecycle_tables import packages, subscription_plans

    with db.engine.connect() as conn:
        charging = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(charging_plans)
                .where(
                    charging_plans.c.owner_id.is_(None) | (charging_plans.c.owner_id == provider_id)
                )
                .order_by(charging_plans.c.name)
            )
        ]
        subs = [
            {**r._mapping, "monthly_fee": from_micros(int(r.monthly_fee_micros))}
            for r in conn.execute(
                sa.select(subscription_plans)
                .where(subscription_plans.c.provider_id == provider_id)
                .order_by(subscription_plans.c.code)
            )
        ]
        packs = [
            {**r._mapping, "price": from_micros(int(r.price_micros))}
            for r in conn.execute(
                sa.select(packages)
                .where(packages.c.provider_id == provider_id)
                .order_by(packages.c.code)
            )
        ]
    return Catalogue(charging, subs, packs)


# ----------------------------------------------------------------------------- tariff rates


@dataclass(frozen=True, slots=True)
class RateView:
    """One stored rate row as a provider admin reads it: amounts as exact Decimals, the
    increment as "first/next" seconds (`default_increment`: the tariff's default applies)."""

    id: int
    prefix: str
    destination: str
    service: str
    direction: str
    number_type: str
    rate: Decimal
    connect_fee: Decimal
    increment: str
    default_increment: bool
    min_seconds: int
    band: str


def tariff_rates_page(
    db: Database, name: str, version: int, viewer: Any, *, prefix: str = "",
    destination: str = "", cursor: str | None = None, limit: int = 50,
) -> tuple[Any, Page[RateView]]:  # fmt: skip
    """The version's metadata and one keyset page of its rates, in file order (by row id),
    optionally only prefixes starting with `prefix` and destinations containing
    `destination` (any case).

    The version is found through `viewer` (`services.tariffs.Viewer`): a tariff the viewer
    may not see is NotFound, exactly as on the versions page."""
    from telbill.adapters.db.tariff_tables import tariff_rates, tariffs
    from telbill.services import tariffs as tariffs_service

    limit = _limit(limit)
    after = _id_cursor(cursor)
    found = tariffs_service.get_version(db, name, version, viewer=viewer)
    wanted_prefix = "".join(prefix.split())
    if found.settings.number_match == NUMBER_MATCH_DIGITS:
        wanted_prefix = wanted_prefix.lstrip("+")
    wanted_text = destination.strip().lower()
    with db.engine.connect() as conn:
        tariff_id = conn.execute(
            sa.select(tariffs.c.id).where(
                tariffs.c.name == found.name,
                tariffs.c.version == found.version,
                tariffs_service.owned_by(found.owner_id),
            )
        ).scalar_one()
        query = sa.select(tariff_rates).where(tariff_rates.c.tariff_id == tariff_id)
        if wanted_prefix:
            query = query.where(tariff_rates.c.prefix.startswith(wanted_prefix, autoescape=True))
        if wanted_text:
            query = query.where(
                sa.func.lower(tariff_rates.c.destination).contains(wanted_text, autoescape=True)
            )
        if after is not None:
            query = query.where(tariff_rates.c.id > after)
        rows = conn.execute(query.order_by(tariff_rates.c.id).limit(limit + 1)).all()
    default = str(found.settings.default_increment)
    items = [
        RateView(
            id=int(r.id), prefix=str(r.prefix), destination=str(r.destination),
            service=str(r.service), direction=str(r.direction), number_type=str(r.number_type),
            rate=tariffs_service.from_nanos(int(r.rate_nanos)),
            connect_fee=tariffs_service.from_nanos(int(r.connect_fee_nanos)),
            increment=(default if r.increment_first_s is None
                       else f"{r.increment_first_s}/{r.increment_next_s}"),
            default_increment=r.increment_first_s is None, min_seconds=int(r.min_seconds),
            band=" ".join(part for part in (r.weekdays and f"days {r.weekdays}", r.hours) if part),
        )
        for r in rows[:limit]
    ]  # fmt: skip
    return found, Page(items, str(items[-1].id) if len(rows) > limit else None)
