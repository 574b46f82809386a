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

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    String,
    Table,
    bindparam,
    func,
    select,
    true,
    update,
)
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


def _buckets_query(*, by_unit: bool, lock: bool) -> Any:
    query = select(*_BUCKET_COLUMNS).where(
        ledger_accounts.c.account_id.in_(bindparam("account_ids", expanding=True))
    )
    if by_unit:
        query = query.where(ledger_accounts.c.unit == bindparam("unit"))
    query = query.order_by(ledger_accounts.c.id)
    return query.with_for_update() if lock else query


# Built once (the real-time path reads buckets in every request): (by unit, locked) -> query.
_BUCKETS = {
    (by_unit, lock): _buckets_query(by_unit=by_unit, lock=lock)
    for by_unit in (False, True)
    for lock in (False, True)
}


def load_buckets(
    conn: Connection,
    account_ids: Iterable[int],
    *,
    unit: str | None = None,
    lock: bool = True,
) -> list[Bucket]:
    """The wallet buckets of `account_ids` (optionally one unit), locked in id order."""
    params: dict[str, Any] = {"account_ids": sorted(set(account_ids))}
    if unit is not None:
        params["unit"] = unit
    query = _BUCKETS[unit is not None, lock]
    return [_bucket(row) for row in conn.execute(query, params)]


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
_FIND_SYSTEM_ACCOUNT = select(ledger_accounts.c.id).where(
    ledger_accounts.c.code == bindparam("code")
)


class _SystemIds:
    """System account ids known to be committed, of one engine (they are never deleted)."""

    def __init__(self) -> None:
        self.by_code: dict[str, int] = {}
        self.ids: set[int] = set()

    def add(self, code: str, account_id: int) -> int:
        self.by_code[code] = account_id
        self.ids.add(account_id)
        return account_id


_system_account_ids: WeakKeyDictionary[Engine, _SystemIds] = WeakKeyDictionary()


def _committed_ids(conn: Connection) -> _SystemIds:
    cache = _system_account_ids.get(conn.engine)
    if cache is None:
        cache = _system_account_ids.setdefault(conn.engine, _SystemIds())
    return cache


def _pending_ids(conn: Connection) -> dict[str, int]:
    """System accounts this transaction created: not known to be committed, so they stay
    with the transaction (``conn.info`` outlives it, on the pooled DBAPI connection: the
    entry names the transaction it belongs to and is dropped by any other)."""
    transaction = conn.get_transaction() or conn.begin()
    entry = conn.info.get(_PENDING_SYSTEM_ACCOUNTS)
    if entry is None or entry[0] is not transaction:
        entry = (transaction, {})
        conn.info[_PENDING_SYSTEM_ACCOUNTS] = entry
    pending: dict[str, int] = entry[1]
    return pending


def system_account(conn: Connection, code: str, unit: str, now: datetime) -> int:
    """Id of the system account `code` ("cash:USD", "revenue:voice:USD"...), created if new.

    Ids never change once committed, so they are remembered per engine without commit or
    rollback listeners (which would cost on every transaction): an id found by a read is
    another transaction's, committed, and remembered for good; an id this transaction
    created is remembered only until it ends, and read again after (then found, or created
    again if the creation was rolled back).
    """
    committed = _committed_ids(conn)
    if code in committed.by_code:
        return committed.by_code[code]
    pending = _pending_ids(conn)
    if code in pending:
        return pending[code]
    found = conn.execute(_FIND_SYSTEM_ACCOUNT, {"code": code}).scalar_one_or_none()
    if found is not None:
        # Visible and not created by this transaction (creations go through here and are
        # pending): committed.
        return committed.add(code, int(found))
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    created = conn.execute(
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
        .returning(ledger_accounts.c.id)
    ).scalar_one_or_none()
    if created is not None:
        pending[code] = int(created)
        return int(created)
    # Another transaction created it meanwhile and committed (the insert waited for it).
    found = conn.execute(_FIND_SYSTEM_ACCOUNT, {"code": code}).scalar_one()
    return committed.add(code, int(found))


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


_INSERT_TRANSACTION = transactions.insert().returning(transactions.c.id)
_INSERT_POSTINGS = postings.insert()


def insert_with_lines(
    parent: Table,
    parent_columns: Sequence[str],
    child: Table,
    link: str,
    lines: Sequence[tuple[str, str, Any]],
) -> Any:
    """PostgreSQL: a parent row and its lines in one statement (one round trip): the parent
    inserted in a data-modifying CTE (its columns bound by name), its lines from arrays
    bound as `(parameter, column, element type)`, each line's `link` column the parent's id.
    Returns the lines' `link`."""
    new_parent = (
        parent.insert()
        .values({name: bindparam(name, type_=parent.c[name].type) for name in parent_columns})
        .returning(parent.c.id)
        .cte(f"new_{parent.name}")
    )
    line = (
        func.unnest(*(bindparam(param, type_=postgresql.ARRAY(kind)) for param, _, kind in lines))
        .table_valued(*(column for _, column, _ in lines))
        .render_derived(name="line")
    )
    return (
        child.insert()
        .from_select(
            [link, *(column for _, column, _ in lines)],
            select(new_parent.c.id, *(line.c[column] for _, column, _ in lines))
            .select_from(new_parent)
            .join(line, true()),
        )
        .returning(child.c[link])
        .add_cte(new_parent)
    )


_INSERT_ENTRY_PG = insert_with_lines(
    transactions, _TRANSACTION_COLUMNS, postings, "transaction_id",
    [("posting_accounts", "ledger_account_id", BigInteger),
     ("posting_amounts", "amount", BigInteger), ("posting_units", "unit", String)],
)  # fmt: skip
# Both running columns of a wallet bucket in one statement; a system account's row is never
# matched (see `add_to_columns`).
_ADD_TO_COLUMNS = (
    update(ledger_accounts)
    .where(
        ledger_accounts.c.id == bindparam("target_id"),
        ledger_accounts.c.account_id.is_not(None),
    )
    .values(
        balance=ledger_accounts.c.balance + bindparam("balance_delta"),
        held=ledger_accounts.c.held + bindparam("held_delta"),
    )
)


def apply_entries(conn: Connection, entries: Sequence[JournalEntry], now: datetime) -> list[int]:
    """Insert balanced entries with their postings and move the balances; returns their ids."""
    if not entries:
        return []
    if len(entries) == 1:
        return [apply_entry(conn, entries[0], now)]
    ids = insert_entries(conn, entries, now)
    changes: dict[int, int] = defaultdict(int)
    for entry in entries:
        for account_id, delta in entry.balance_changes().items():
            changes[account_id] += delta
    add_to_columns(conn, balance=changes)
    return ids


def insert_entries(conn: Connection, entries: Sequence[JournalEntry], now: datetime) -> list[int]:
    """Insert balanced entries with their postings (a few statements for all of them);
    returns their ids. The buckets' columns are the caller's to move (`add_to_columns`)."""
    if not entries:
        return []
    for entry in entries:
        assert_balanced(entry.postings)  # again, at the storage boundary: always on
    created_at = bulk.timestamp_param(conn)(now)
    ids = bulk.insert_with_ids(
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
        ],
    )
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
    return ids


def apply_entry(
    conn: Connection,
    entry: JournalEntry,
    now: datetime,
    *,
    held: Mapping[int, int] | None = None,
) -> int:
    """Insert one balanced entry with its postings and move the balances; returns its id.

    `held`: deltas to the buckets' ``held`` made in the same UPDATE as their balance (a hold
    settled: the amount taken leaves the balance and the reservation goes, in one write).
    Three statements, built once: the transaction, its postings, the buckets' columns.
    """
    assert_balanced(entry.postings)  # again, at the storage boundary: always on
    row = {
        "kind": entry.kind,
        "account_id": entry.account_id,
        "subject_account_id": entry.subject_account_id,
        "idempotency_key": entry.idempotency_key,
        "memo": entry.memo,
        "details": dict(entry.details) or None,
        "created_at": now,
    }
    if conn.dialect.name == "postgresql":
        row["posting_accounts"] = [p.ledger_account_id for p in entry.postings]
        row["posting_amounts"] = [p.amount for p in entry.postings]
        row["posting_units"] = [p.unit for p in entry.postings]
        tx_id = int(conn.execute(_INSERT_ENTRY_PG, row).scalars().first())
    else:
        tx_id = int(conn.execute(_INSERT_TRANSACTION, row).scalar_one())
        conn.execute(
            _INSERT_POSTINGS,
            [
                {"transaction_id": tx_id, "ledger_account_id": p.ledger_account_id,
                 "amount": p.amount, "unit": p.unit}
                for p in entry.postings
            ],  # fmt: skip
        )
    add_to_columns(conn, balance=entry.balance_changes(), held=held)
    return tx_id


def add_to_columns(
    conn: Connection,
    *,
    balance: Mapping[int, int] | None = None,
    held: Mapping[int, int] | None = None,
) -> None:
    """Add deltas to the denormalised balance / held columns (the only in-place updates), both
    columns of a bucket in one statement.

    Only wallet buckets keep a running balance. A system account (cash, revenue, VAT
    payable...) is touched by almost every transaction of every wallet: a running balance there
    would make every call end and every CDR chunk of every worker wait for the one row lock
    (PostgreSQL). Its balance is the sum of its postings (`system_balance`), and its column
    stays 0: the statement skips system rows and takes no lock on them (the ids known to be
    system accounts are not even sent).
    """
    balance = balance or {}
    held = held or {}
    entry = conn.info.get(_PENDING_SYSTEM_ACCOUNTS)
    pending = entry[1].values() if entry and entry[0] is conn.get_transaction() else ()
    system = _committed_ids(conn).ids.union(pending)
    params = [
        {"target_id": account_id, "balance_delta": balance.get(account_id, 0),
         "held_delta": held.get(account_id, 0)}
        for account_id in sorted(balance.keys() | held.keys())
        if account_id not in system and (balance.get(account_id) or held.get(account_id))
    ]  # fmt: skip
    if params:
        conn.execute(_ADD_TO_COLUMNS, params[0] if len(params) == 1 else params)
