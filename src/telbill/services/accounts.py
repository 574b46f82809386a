"""Accounts: the tree provider -> organisation -> user/extension, and who pays for usage.

Usage names the leaf that made it; it is charged to the nearest account (itself or an
ancestor) that holds a wallet (`billing_account_for`). A new account with a wallet gets its
paid-balance bucket in its currency at creation.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select, update

from telbill.adapters.db import ledger_store
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import accounts
from telbill.domain.money import from_micros, parse_amount, to_micros, validate_currency
from telbill.errors import InvalidInput, NotFound
from telbill.ledger import BucketKind
from telbill.services import idempotency
from telbill.services.clock import Clock

PPM = 1_000_000


class AccountKind(StrEnum):
    PROVIDER = "provider"
    ORGANISATION = "organisation"
    USER = "user"


class BillingMode(StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


# Which kinds of parent each kind of account may hang under.
ALLOWED_PARENTS: Mapping[AccountKind, frozenset[AccountKind | None]] = {
    AccountKind.PROVIDER: frozenset({None}),
    AccountKind.ORGANISATION: frozenset({AccountKind.PROVIDER}),
    AccountKind.USER: frozenset({AccountKind.ORGANISATION, AccountKind.USER}),
}


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    parent_id: int | None
    provider_id: int
    kind: AccountKind
    name: str
    currency: str
    timezone: str
    billing_mode: BillingMode
    credit_limit: Decimal
    status: AccountStatus
    vat_country: str | None
    vat_rate: Decimal
    has_wallet: bool
    created_at: datetime

    @property
    def floor_micros(self) -> int:
        """Lowest available paid balance: 0 prepaid, minus the credit limit postpaid."""
        if self.billing_mode is BillingMode.POSTPAID:
            return -to_micros(self.credit_limit)
        return 0


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        parent_id=row.parent_id,
        provider_id=row.provider_id,
        kind=AccountKind(row.kind),
        name=row.name,
        currency=row.currency,
        timezone=row.timezone,
        billing_mode=BillingMode(row.billing_mode),
        credit_limit=from_micros(row.credit_limit_micros),
        status=AccountStatus(row.status),
        vat_country=row.vat_country,
        vat_rate=(Decimal(row.vat_rate_ppm) / PPM).normalize(),
        has_wallet=row.has_wallet,
        created_at=row.created_at,
    )


def _enum(enum: type[StrEnum], value: object, field: str) -> Any:
    try:
        return enum(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidInput(f"{field} must be one of {choices}, got {value!r}") from None


def _vat_rate_ppm(value: object) -> int:
    rate = parse_amount(value, field="vat_rate")
    ppm = rate * PPM
    if ppm != ppm.to_integral_value() or not 0 <= rate < 1:
        raise InvalidInput(
            f"vat_rate must be a fraction between 0 and 1 with at most 6 decimals "
            f"(0.2 for 20%), got {value!r}"
        )
    return int(ppm)


def _validate_timezone(zone: str) -> None:
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown timezone {zone!r}: expected an IANA name") from None


def load_account(conn: Connection, account_id: int, *, lock: bool = False) -> Account:
    """Read one account in the current transaction (NotFound if it does not exist)."""
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        raise InvalidInput(f"account id must be an integer, got {account_id!r}")
    query = select(accounts).where(accounts.c.id == account_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"account {account_id} not found", account_id=account_id)
    return _account(row)


def load_accounts(conn: Connection, account_ids: Iterable[int]) -> dict[int, Account]:
    """`load_account` of many accounts, by id (NotFound if one does not exist)."""
    ids = set(account_ids)
    found = find_accounts(conn, ids)
    missing = sorted(ids - set(found))
    if missing:
        raise NotFound(f"account {missing[0]} not found", account_id=missing[0])
    return found


def find_accounts(conn: Connection, account_ids: Iterable[int]) -> dict[int, Account]:
    """The accounts among `account_ids` that exist, by id (a few queries for all)."""
    ids = sorted(set(account_ids))
    found: dict[int, Account] = {}
    for start in range(0, len(ids), 500):
        query = select(accounts).where(accounts.c.id.in_(ids[start : start + 500]))
        found.update((row.id, _account(row)) for row in conn.execute(query))
    return found


def billing_account(conn: Connection, account_id: int) -> Account:
    """The nearest account, `account_id` itself or an ancestor, that holds a wallet."""
    account = load_account(conn, account_id)
    while not account.has_wallet:
        if account.parent_id is None:
            raise NotFound(f"account {account_id} has no wallet above it", account_id=account_id)
        account = load_account(conn, account.parent_id)
    return account


def create_account(
    db: Database,
    *,
    kind: str,
    name: str,
    parent_id: int | None = None,
    currency: str | None = None,
    timezone: str | None = None,
    billing_mode: str | None = None,
    credit_limit: Decimal | str | int = 0,
    vat_country: str | None = None,
    vat_rate: Decimal | str | int | None = None,
    has_wallet: bool | None = None,
    idempotency_key: str,
    clock: Clock,
) -> Account:
    """Create an account under `parent_id`; unset settings are inherited from the parent.

    A provider has no parent; an organisation hangs under a provider; a user under an
    organisation (or a user, for extensions). Providers and organisations hold a wallet
    unless told otherwise; users are charged to their organisation unless given one.
    """
    account_kind: AccountKind = _enum(AccountKind, kind, "kind")
    clean_name = name.strip() if isinstance(name, str) else ""
    if not clean_name:
        raise InvalidInput("account name must not be empty")
    request = {
        "kind": account_kind,
        "name": clean_name,
        "parent_id": parent_id,
        "currency": currency,
        "timezone": timezone,
        "billing_mode": billing_mode,
        "credit_limit": str(credit_limit),
        "vat_country": vat_country,
        "vat_rate": None if vat_rate is None else str(vat_rate),
        "has_wallet": has_wallet,
    }

    def work(conn: Connection) -> Account:
        now = clock.now()

        def perform() -> dict[str, Any]:
            parent = None if parent_id is None else load_account(conn, parent_id)
            parent_kind = None if parent is None else parent.kind
            if parent_kind not in ALLOWED_PARENTS[account_kind]:
                raise InvalidInput(
                    f"a {account_kind.value} cannot be created under "
                    f"{'no parent' if parent is None else 'a ' + parent.kind.value}"
                )
            values = _resolve_settings(parent, account_kind)
            wallet = values["has_wallet"] if has_wallet is None else bool(has_wallet)
            account_currency = validate_currency(currency or values["currency"] or "")
            if parent is not None and not wallet and account_currency != parent.currency:
                raise InvalidInput(
                    f"account without a wallet must use its payer's currency {parent.currency}"
                )
            zone = timezone or values["timezone"]
            _validate_timezone(zone)
            mode: BillingMode = _enum(
                BillingMode, billing_mode or values["billing_mode"], "billing_mode"
            )
            limit = parse_amount(credit_limit, field="credit_limit")
            if limit < 0:
                raise InvalidInput(f"credit_limit must not be negative, got {credit_limit}")
            if limit and mode is BillingMode.PREPAID:
                raise InvalidInput("a credit limit is only for postpaid accounts")
            country = vat_country if vat_country is not None else values["vat_country"]
            if country is not None and (len(country) != 2 or not country.isalpha()):
                raise InvalidInput(f"vat_country must be an ISO 3166 alpha-2 code: {country!r}")
            ppm = values["vat_rate_ppm"] if vat_rate is None else _vat_rate_ppm(vat_rate)
            new_id = conn.execute(
                accounts.insert()
                .values(
                    parent_id=parent_id,
                    provider_id=None if parent is None else parent.provider_id,
                    kind=account_kind.value,
                    name=clean_name,
                    currency=account_currency,
                    timezone=zone,
                    billing_mode=mode.value,
                    credit_limit_micros=to_micros(limit),
                    status=AccountStatus.ACTIVE.value,
                    vat_country=country.upper() if country else None,
                    vat_rate_ppm=ppm,
                    has_wallet=wallet,
                    created_at=now,
                )
                .returning(accounts.c.id)
            ).scalar_one()
            if parent is None:
                conn.execute(
                    update(accounts).where(accounts.c.id == new_id).values(provider_id=new_id)
                )
            if wallet:
                ledger_store.create_bucket(
                    conn,
                    account_id=new_id,
                    kind=BucketKind.PAID,
                    unit=account_currency,
                    now=now,
                    priority=1_000_000,
                    label="paid balance",
                )
            return {"account_id": int(new_id)}

        return idempotency.once(
            conn,
            scope=f"accounts.create:{parent_id or 'root'}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=perform,
            load=lambda response: load_account(conn, int(response["account_id"])),
        )

    return db.run(work)


def _resolve_settings(parent: Account | None, kind: AccountKind) -> dict[str, Any]:
    if parent is None:
        return {
            "currency": None,
            "timezone": "UTC",
            "billing_mode": BillingMode.PREPAID.value,
            "vat_country": None,
            "vat_rate_ppm": 0,
            "has_wallet": True,
        }
    return {
        "currency": parent.currency,
        "timezone": parent.timezone,
        "billing_mode": parent.billing_mode.value,
        "vat_country": parent.vat_country,
        "vat_rate_ppm": int(parent.vat_rate * PPM),
        "has_wallet": kind is not AccountKind.USER,
    }


def get_account(db: Database, account_id: int) -> Account:
    with db.transaction() as conn:
        return load_account(conn, account_id)


def list_subtree(db: Database, root_id: int) -> list[Account]:
    """`root_id` and every account below it, parents before children (by id)."""
    with db.transaction() as conn:
        load_account(conn, root_id)
        tree = select(accounts.c.id).where(accounts.c.id == root_id).cte(recursive=True)
        tree = tree.union_all(select(accounts.c.id).where(accounts.c.parent_id == tree.c.id))
        rows = conn.execute(
            select(accounts).where(accounts.c.id.in_(select(tree.c.id))).order_by(accounts.c.id)
        )
        return [_account(row) for row in rows]


def is_descendant(db: Database, account_id: int, ancestor_id: int) -> bool:
    """True when `account_id` is `ancestor_id` or lies below it."""
    with db.transaction() as conn:
        current: int | None = load_account(conn, account_id).id
        while current is not None:
            if current == ancestor_id:
                return True
            current = conn.execute(
                select(accounts.c.parent_id).where(accounts.c.id == current)
            ).scalar_one_or_none()
        return False


def billing_account_for(db: Database, account_id: int) -> Account:
    with db.transaction() as conn:
        return billing_account(conn, account_id)


def set_status(
    db: Database, account_id: int, status: str, *, idempotency_key: str, clock: Clock
) -> Account:
    """Set an account's status (active, suspended, closed). Who decides when is charging."""
    new_status: AccountStatus = _enum(AccountStatus, status, "status")

    def work(conn: Connection) -> Account:
        def perform() -> dict[str, Any]:
            load_account(conn, account_id, lock=True)
            conn.execute(
                update(accounts).where(accounts.c.id == account_id).values(status=new_status.value)
            )
            return {"account_id": account_id}

        return idempotency.once(
            conn,
            scope=f"accounts.set_status:{account_id}",
            key=idempotency_key,
            request={"status": new_status},
            now=clock.now(),
            perform=perform,
            load=lambda response: load_account(conn, int(response["account_id"])),
        )

    return db.run(work)
