"""Storage of the ledger: reads and locks buckets, writes journal entries and hold rows.

The ledger (`telbill.ledger`) decides; this module writes what it decided. Bucket rows are
locked in id order (``SELECT ... FOR UPDATE ORDER BY id`` on PostgreSQL; on SQLite the whole
transaction already holds the write lock from ``BEGIN IMMEDIATE``). The only UPDATEs are to
the denormalised ``balance`` and ``held`` columns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, bindparam, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from telbill.adapters.db import bulk
from telbill.adapters.db.tables import ledger_accounts, postings, transactions
from telbill.ledger import (
    Bucket,
    BucketKind,
    JournalEntry,
    LedgerInvariantError,
    assert_balanced,
)

_BUCKET_COLUMNS = (
    ledger_accounts.c.id,
    ledger_accounts.c.kind,
    ledger_accounts.c.unit,
    ledger_accounts.c.balance,
    ledger_accounts.c.held,
    ledger_accounts.c.priority,
    ledger_accounts.c.expires_at,
    ledger_accounts.c.service,
    ledger_accounts.c.direction,
    ledger_accounts.c.account_id,
)


def _bucket(row: Any) -> Bucket:
    return Bucket(
        id=row.id,
        kind=BucketKind(row.kind),
        unit=row.unit,
        balance=row.balance,
        held=row.held,
        priority=row.priority,
        expires_at=row.expires_at,
        service=row.service,
        direction=row.direction,
        account_id=row.account_id,
    )


def load_buckets(
    conn: Connection,
    account_ids: Iterable[int],
    *,
    unit: str | None = None,
    lock: bool = True,
) -> list[Bucket]:
    """The wallet buckets of `account_ids` (optionally one unit), locked in id order."""
    ids = sorted(set(account_ids))
    query = select(*_BUCKET_COLUMNS).where(ledger_accounts.c.account_id.in_(ids))
    if unit is not None:
        query = query.where(ledger_accounts.c.unit == unit)
    query = query.order_by(ledger_accounts.c.id)
    if lock:
        query = query.with_for_update()
    return [_bucket(row) for row in conn.execute(query)]


def create_bucket(
    conn: Connection,
    *,
    account_id: int,
    kind: BucketKind,
    unit: str,
    now: datetime,
    priority: int = 100,
    expires_at: datetime | None = None,
    service: str | None = None,
    direction: str | None = None,
    counter: str | None = None,
    label: str | None = None,
) -> int:
    if kind is BucketKind.SYSTEM:
        raise LedgerInvariantError("system accounts are created with system_account()")
    result = conn.execute(
        ledger_accounts.insert()
        .values(
            account_id=account_id,
            kind=kind.value,
            unit=unit,
            counter=counter,
            service=service,
            direction=direction,
            priority=priority,
            expires_at=expires_at,
            label=label,
            balance=0,
            held=0,
            created_at=now,
        )
        .returning(ledger_accounts.c.id)
    )
    return int(result.scalar_one())


_PENDING_SYSTEM_ACCOUNTS = "telbill.pending_system_accounts"
_system_account_ids: WeakKeyDictionary[Engine, dict[str, int]] = WeakKeyDictionary()


def _committed_ids(conn: Connection) -> dict[str, int]:
    """System account ids known to be committed, per engine (they are never deleted).

    Ids found or created inside a transaction wait in ``conn.info`` and join the cache only
    when that transaction commits, so a rolled-back creation never leaves a stale id behind.
    """
    engine = conn.engine
    cache = _system_account_ids.get(engine)
    if cache is None:
        cache = {}
        _system_account_ids[engine] = cache

        def promote(connection: Connection) -> None:
            cache.update(connection.info.pop(_PENDING_SYSTEM_ACCOUNTS, {}))

        def discard(connection: Connection) -> None:
            connection.info.pop(_PENDING_SYSTEM_ACCOUNTS, None)

        event.listen(engine, "commit", promote)
        event.listen(engine, "rollback", discard)
    return cache


def system_account(conn: Connection, code: str, unit: str, now: datetime) -> int:
    """Id of the system account `code` ("cash:USD", "revenue:voice:USD"...), created if new."""
    committed = _committed_ids(conn)
    if code in committed:
        return committed[code]
    pending: dict[str, int] = conn.info.setdefault(_PENDING_SYSTEM_ACCOUNTS, {})
    if code in pending:
        return pending[code]
    found = conn.execute(
        select(ledger_accounts.c.id).where(ledger_accounts.c.code == code)
    ).scalar_one_or_none()
    if found is None:
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            dialect_insert(ledger_accounts)
            .values(
                account_id=None,
                code=code,
                kind=BucketKind.SYSTEM.value,
                unit=unit,
                priority=0,
                balance=0,
                held=0,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["code"])
        )
        found = conn.execute(
            select(ledger_accounts.c.id).where(ledger_accounts.c.code == code)
        ).scalar_one()
    pending[code] = int(found)
    return int(found)


def system_balance(conn: Connection, code: str) -> int:
    """The balance of system account `code` in micro-units: the sum of its postings (system
    accounts keep no running balance, see `add_to_columns`); 0 for an unknown code."""
    total = conn.execute(
        select(func.coalesce(func.sum(postings.c.amount), 0))
        .select_from(
            postings.join(ledger_accounts, ledger_accounts.c.id == postings.c.ledger_account_id)
        )
        .where(ledger_accounts.c.code == code)
    ).scalar_one()
    return int(total)


_TRANSACTION_COLUMNS = (
    "kind", "account_id", "subject_account_id", "idempotency_key", "memo", "details",
    "created_at",
)  # fmt: skip
_POSTING_COLUMNS = ("transaction_id", "ledger_account_id", "amount", "unit")


def apply_entries(conn: Connection, entries: Sequence[JournalEntry], now: datetime) -> list[int]:
    """Insert balanced entries with their postings and move the balances; returns their ids."""
    if not entries:
        return []
    for entry in entries:
        assert_balanced(entry.postings)  # again, at the storage boundary: always on
    if len(entries) == 1 or conn.dialect.name != "sqlite":
        rows = [
            {
                "kind": e.kind,
                "account_id": e.account_id,
                "subject_account_id": e.subject_account_id,
                "idempotency_key": e.idempotency_key,
                "memo": e.memo,
                "details": dict(e.details) or None,
                "created_at": now,
            }
            for e in entries
        ]
        statement = transactions.insert().returning(
            transactions.c.id, sort_by_parameter_order=len(rows) > 1
        )
        ids = [int(i) for i in conn.execute(statement, rows).scalars()]
    else:
        # The transaction holds SQLite's write lock (BEGIN IMMEDIATE) and rowids are
        # max(rowid) + 1, so one executemany gets consecutive ids. (With RETURNING and a
        # guaranteed order, SQLAlchemy would insert row by row on SQLite.)
        created_at = bulk.timestamp_param(conn)(now)
        bulk.insert_rows(
            conn,
            transactions,
            _TRANSACTION_COLUMNS,
            [
                (
                    e.kind,
                    e.account_id,
                    e.subject_account_id,
                    e.idempotency_key,
                    e.memo,
                    bulk.json_text(dict(e.details)) if e.details else None,
                    created_at,
                )
                for e in entries
            ],  # fmt: skip
        )
        last = int(conn.execute(select(func.max(transactions.c.id))).scalar_one())
        ids = list(range(last - len(entries) + 1, last + 1))
    bulk.insert_rows(
        conn,
        postings,
        _POSTING_COLUMNS,
        [
            (tx_id, p.ledger_account_id, p.amount, p.unit)
            for tx_id, entry in zip(ids, entries, strict=True)
            for p in entry.postings
        ],
    )
    changes: dict[int, int] = defaultdict(int)
    for entry in entries:
        for account_id, delta in entry.balance_changes().items():
            changes[account_id] += delta
    add_to_columns(conn, balance=changes)
    return ids


def apply_entry(conn: Connection, entry: JournalEntry, now: datetime) -> int:
    return apply_entries(conn, [entry], now)[0]


def add_to_columns(
    conn: Connection,
    *,
    balance: Mapping[int, int] | None = None,
    held: Mapping[int, int] | None = None,
) -> None:
    """Add deltas to the denormalised balance / held columns (the only in-place updates).

    Only wallet buckets keep a running balance. A system account (cash, revenue, VAT
    payable...) is touched by almost every transaction of every wallet: a running balance there
    would make every call end and every CDR chunk of every worker wait for the one row lock
    (PostgreSQL). Its balance is the sum of its postings (`system_balance`), and its column
    stays 0: the statement skips system rows and takes no lock on them.
    """
    skip = set(_committed_ids(conn).values()) | set(
        conn.info.get(_PENDING_SYSTEM_ACCOUNTS, {}).values()
    )
    for column_name, deltas in (("balance", balance), ("held", held)):
        params = [
            {"target_id": account_id, "delta": delta}
            for account_id, delta in sorted((deltas or {}).items())
            if delta != 0 and account_id not in skip
        ]
        if not params:
            continue
        column = ledger_accounts.c[column_name]
        statement = (
            update(ledger_accounts)
            .where(
                ledger_accounts.c.id == bindparam("target_id"),
                ledger_accounts.c.account_id.is_not(None),  # never a system account's row
            )
            .values({column_name: column + bindparam("delta")})
        )
        conn.execute(statement, params)
