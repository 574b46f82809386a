"""Reads of the ledger: balances per unit (posted, held, available) and history pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from telbill.adapters.db import ledger_store
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import ledger_accounts
from telbill.adapters.db.tables import transactions as transactions_table
from telbill.domain.money import from_minor, validate_unit
from telbill.errors import InvalidInput
from telbill.ledger import BucketKind, spendable
from telbill.services.accounts import billing_account, load_account
from telbill.services.clock import Clock
from telbill.services.inputs import direction_name, service_name
from telbill.services.ledger_views import Transaction, load_transactions

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class BucketBalance:
    id: int
    kind: str
    unit: str
    balance: Decimal
    held: Decimal
    available: Decimal
    priority: int
    expires_at: datetime | None
    expired: bool
    service: str | None
    direction: str | None
    label: str | None


@dataclass(frozen=True, slots=True)
class UnitBalance:
    """Per unit: posted (sum of usable buckets), held, available = posted - held, and
    spendable = available down to the floor (includes a postpaid credit limit)."""

    unit: str
    posted: Decimal
    held: Decimal
    available: Decimal
    spendable: Decimal
    buckets: tuple[BucketBalance, ...]


@dataclass(frozen=True, slots=True)
class Balances:
    account_id: int
    billing_account_id: int
    currency: str
    billing_mode: str
    credit_limit: Decimal
    units: tuple[UnitBalance, ...]

    def unit(self, unit: str) -> UnitBalance:
        for balance in self.units:
            if balance.unit == unit:
                return balance
        zero = Decimal(0)
        return UnitBalance(unit, zero, zero, zero, zero, ())


def get_balances(db: Database, account_id: int, *, clock: Clock) -> Balances:
    """The payer's buckets per unit. Expired buckets are listed but count for nothing."""
    with db.transaction() as conn:
        return balances_in(conn, account_id, now=clock.now())


def balances_in(conn: Connection, account_id: int, *, now: datetime) -> Balances:
    payer = billing_account(conn, account_id)
    rows = conn.execute(
        select(ledger_accounts)
        .where(ledger_accounts.c.account_id == payer.id)
        .order_by(ledger_accounts.c.unit, ledger_accounts.c.id)
    ).all()
    units: dict[str, list[Any]] = {}
    for row in rows:
        units.setdefault(row.unit, []).append(row)
    result = []
    for unit in sorted(units, key=lambda u: (u != payer.currency, u)):
        views = []
        posted = held = 0
        for row in units[unit]:
            expired = row.expires_at is not None and row.expires_at <= now
            if not expired:
                posted += row.balance
                held += row.held
            views.append(
                BucketBalance(
                    id=row.id,
                    kind=row.kind,
                    unit=unit,
                    balance=from_minor(row.balance, unit),
                    held=from_minor(row.held, unit),
                    available=from_minor(row.balance - row.held, unit),
                    priority=row.priority,
                    expires_at=row.expires_at,
                    expired=expired,
                    service=row.service,
                    direction=row.direction,
                    label=row.label,
                )
            )
        floor = payer.floor_micros if unit == payer.currency else 0
        room = sum(
            max(r.balance - r.held - (floor if r.kind == BucketKind.PAID.value else 0), 0)
            for r in units[unit]
            if r.expires_at is None or r.expires_at > now
        )
        result.append(
            UnitBalance(
                unit=unit,
                posted=from_minor(posted, unit),
                held=from_minor(held, unit),
                available=from_minor(posted - held, unit),
                spendable=from_minor(room, unit),
                buckets=tuple(views),
            )
        )
    return Balances(
        account_id=account_id,
        billing_account_id=payer.id,
        currency=payer.currency,
        billing_mode=payer.billing_mode.value,
        credit_limit=payer.credit_limit,
        units=tuple(result),
    )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: tuple[Transaction, ...]
    next_cursor: str | None


def list_history(
    db: Database, account_id: int, *, limit: int = 50, cursor: str | None = None
) -> HistoryPage:
    """Transactions of an account, newest first, `limit` at a time.

    For an account with a wallet: every transaction on its wallet (its users' usage too).
    For an account without one: the transactions it caused. Pass `next_cursor` back to get
    the next page; it is None on the last page.
    """
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
    before: int | None = None
    if cursor is not None:
        if not isinstance(cursor, str) or not cursor.isdigit():
            raise InvalidInput(f"invalid cursor {cursor!r}")
        before = int(cursor)
    with db.transaction() as conn:
        account = load_account(conn, account_id)
        column = (
            transactions_table.c.account_id
            if account.has_wallet
            else transactions_table.c.subject_account_id
        )
        query = select(transactions_table.c.id).where(column == account.id)
        if before is not None:
            query = query.where(transactions_table.c.id < before)
        ids = [
            int(i)
            for i in conn.execute(
                query.order_by(transactions_table.c.id.desc()).limit(limit + 1)
            ).scalars()
        ]
        more = len(ids) > limit
        ids = ids[:limit]
        loaded = load_transactions(conn, ids)
        return HistoryPage(
            items=tuple(loaded[i] for i in ids),
            next_cursor=str(ids[-1]) if more and ids else None,
        )


def spendable_now(
    conn: Connection,
    account_id: int,
    *,
    unit: str | None,
    service: str,
    direction: str | None,
    now: datetime,
) -> int:
    """Minor units a debit for `service` could take right now (used to authorise calls)."""
    payer = billing_account(conn, account_id)
    wanted = payer.currency if unit is None else validate_unit(unit)
    buckets = ledger_store.load_buckets(conn, [payer.id], unit=wanted, lock=False)
    floor = payer.floor_micros if wanted == payer.currency else 0
    return spendable(
        buckets,
        unit=wanted,
        service=service_name(service),
        direction=direction_name(direction),
        now=now,
        floor=floor,
    )
