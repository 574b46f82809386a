"""Helpers the lifecycle services share: charging and granting inside the caller's
transaction, the provider's number policy, the account's plan settings, and the scheduler's
exactly-once key.

Everything here runs on a `Connection` the caller already holds, so a job's key, its ledger
transaction, its state change and its events commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from telbill.adapters.db import ledger_store
from telbill.adapters.db.event_tables import events
from telbill.adapters.db.lifecycle_tables import (
    job_runs,
    number_policies,
    subscription_plans,
    subscriptions,
)
from telbill.adapters.db.tables import accounts
from telbill.domain.calendar import DEFAULT_GRACE_MONTHS, DEFAULT_TRIAL_DAYS
from telbill.domain.money import from_micros
from telbill.errors import InsufficientBalance, InvalidInput, TelbillError
from telbill.ledger import BucketKind, JournalEntry, transfer
from telbill.ledger.buckets import spendable
from telbill.services.accounts import Account
from telbill.services.events import EVENT_TYPES
from telbill.services.wallets import DEFAULT_PRIORITY, DebitRequest, debit_many_in

DEFAULT_QUARANTINE_DAYS = 30


@dataclass(frozen=True, slots=True)
class Charge:
    """One line of a charge taken in one go (setup fee, first month...)."""

    amount_micros: int
    service: str
    idempotency_key: str
    memo: str
    details: dict[str, Any]


def charge_in(
    conn: Connection, account_id: int, charges: Sequence[Charge], now: datetime
) -> list[int]:
    """Debit every charge from the payer of `account_id`, all or nothing.

    Raises InsufficientBalance (or another TelbillError) when any line is refused; the caller's
    transaction then rolls back, so no line is kept. Returns the transaction ids.
    """
    requests = [
        DebitRequest(
            account_id=account_id,
            amount=from_micros(charge.amount_micros),
            idempotency_key=charge.idempotency_key,
            service=charge.service,
            memo=charge.memo,
            details=charge.details,
        )
        for charge in charges
        if charge.amount_micros > 0
    ]
    if not requests:
        return []
    outcomes = debit_many_in(conn, requests, now=now)
    for outcome in outcomes:
        if isinstance(outcome, TelbillError):
            raise outcome
    return [o.id for o in outcomes if not isinstance(o, TelbillError)]


def can_afford(
    conn: Connection, account: Account, amount_micros: int, service: str, now: datetime
) -> bool:
    """Whether the buckets a `service` debit may drain cover `amount_micros` right now.

    A cheap pre-check before attempting a charge that would otherwise fail; the charge itself
    still enforces the rule.
    """
    buckets = ledger_store.load_buckets(conn, [account.id], unit=account.currency, lock=False)
    room = spendable(
        buckets,
        unit=account.currency,
        service=service,
        direction=None,
        now=now,
        floor=account.floor_micros,
    )
    return room >= amount_micros


def grant_in(
    conn: Connection,
    account: Account,
    *,
    kind: BucketKind,
    amount: int,
    unit: str,
    idempotency_key: str,
    now: datetime,
    label: str,
    service: str | None = None,
    expires_at: datetime | None = None,
    counter: str | None = None,
) -> tuple[int, int]:
    """Create a bucket and fill it from ``promotions:<unit>``; returns (bucket id, tx id)."""
    grant = Grant(account, kind, amount, unit, idempotency_key, now, label, service, expires_at)
    return grant_many_in(conn, [grant], counter=counter)[0]


@dataclass(frozen=True, slots=True)
class Grant:
    """A new bucket of `kind` for `account`, filled with `amount` from ``promotions``."""

    account: Account
    kind: BucketKind
    amount: int
    unit: str
    idempotency_key: str
    now: datetime
    label: str
    service: str | None = None
    expires_at: datetime | None = None


def grant_many_in(
    conn: Connection, grants: Sequence[Grant], *, counter: str | None = None
) -> list[tuple[int, int]]:
    """`grant_in` for many grants: one bucket row each, the ledger entries of each instant
    posted together. Returns (bucket id, tx id) per grant, in order."""
    entries: list[JournalEntry] = []
    bucket_ids: list[int] = []
    for grant in grants:
        bucket_id = ledger_store.create_bucket(
            conn,
            account_id=grant.account.id,
            kind=grant.kind,
            unit=grant.unit,
            now=grant.now,
            priority=DEFAULT_PRIORITY[grant.kind],
            expires_at=grant.expires_at,
            service=grant.service,
            counter=counter,
            label=grant.label,
        )
        bucket_ids.append(bucket_id)
        code = f"promotions:{grant.unit}"
        source = ledger_store.system_account(conn, code, grant.unit, grant.now)
        entries.append(
            transfer(
                "grant",
                account_id=grant.account.id,
                source_id=source,
                destination_id=bucket_id,
                amount=grant.amount,
                unit=grant.unit,
                memo=grant.label,
                details={"bucket_kind": grant.kind.value, "bucket_id": bucket_id},
                idempotency_key=grant.idempotency_key,
            )
        )
    tx_ids: list[int] = []
    start = 0
    while start < len(grants):  # one apply per run of grants at the same instant
        end = start + 1
        while end < len(grants) and grants[end].now == grants[start].now:
            end += 1
        tx_ids.extend(ledger_store.apply_entries(conn, entries[start:end], grants[start].now))
        start = end
    return list(zip(bucket_ids, tx_ids, strict=True))


@dataclass(frozen=True, slots=True)
class NumberPolicy:
    grace_months: int = DEFAULT_GRACE_MONTHS
    quarantine_days: int = DEFAULT_QUARANTINE_DAYS
    idle_release_days: int | None = None


def number_policy(conn: Connection, provider_id: int) -> NumberPolicy:
    row = conn.execute(
        select(number_policies).where(number_policies.c.provider_id == provider_id)
    ).first()
    if row is None:
        return NumberPolicy()
    return NumberPolicy(row.grace_months, row.quarantine_days, row.idle_release_days)


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The number-related settings of the account's subscription plan (defaults: no plan)."""

    trial_number_days: int = 0
    keep_anniversary: bool = False


def plan_settings(conn: Connection, account_id: int) -> PlanSettings:
    """Settings of the newest non-cancelled subscription of `account_id`; defaults without one.

    Without a subscription there is no free trial number: the trial is something a plan sells.
    """
    row = conn.execute(
        select(subscription_plans.c.trial_number_days, subscription_plans.c.keep_anniversary)
        .select_from(subscriptions.join(subscription_plans))
        .where(subscriptions.c.account_id == account_id, subscriptions.c.status != "cancelled")
        .order_by(subscriptions.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return PlanSettings()
    return PlanSettings(row.trial_number_days, row.keep_anniversary)


DEFAULT_PLAN_TRIAL_NUMBER_DAYS = DEFAULT_TRIAL_DAYS


def lock_account(conn: Connection, account_id: int) -> None:
    """Serialise lifecycle work on one account across processes (PostgreSQL row lock).

    SQLite has no row locks: its write transactions (BEGIN IMMEDIATE) already run one at a
    time, so the statement would only cost a round trip."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())


def claim_job(conn: Connection, job: str, entity: str, period: str, now: datetime) -> bool:
    """Insert the (job, entity, period) key; False when it already ran (or is running).

    On PostgreSQL a concurrent transaction holding the same key makes this wait until it
    commits (then False) or rolls back (then True): the unique index is the lock.
    """
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(job_runs)
        .values(job=job, entity=entity, period=period, ran_at=now, outcome="running")
        .on_conflict_do_nothing(index_elements=["job", "entity", "period"])
        .returning(job_runs.c.id)
    )
    return conn.execute(statement).first() is not None


def finish_job(conn: Connection, job: str, entity: str, period: str, outcome: str | None) -> None:
    """Record the outcome; None means nothing was done, so the key is given back."""
    where = (job_runs.c.job == job, job_runs.c.entity == entity, job_runs.c.period == period)
    if outcome is None:
        conn.execute(delete(job_runs).where(*where))
    else:
        conn.execute(job_runs.update().where(*where).values(outcome=outcome))


def lock_accounts(conn: Connection, account_ids: Iterable[int]) -> None:
    """`lock_account` for many accounts: one statement, rows locked in id order (so two
    workers locking overlapping sets wait for each other instead of deadlocking)."""
    ids = sorted(set(account_ids))
    if conn.dialect.name != "postgresql" or not ids:
        return
    conn.execute(
        select(accounts.c.id)
        .where(accounts.c.id.in_(ids))
        .order_by(accounts.c.id)
        .with_for_update()
    )


JobKey = tuple[str, str, str]  # (job, entity, period)
_CLAIMS_PER_STATEMENT = 500


def claim_jobs(conn: Connection, keys: Sequence[tuple[str, str, str, datetime]]) -> set[JobKey]:
    """`claim_job` for many (job, entity, period, now): the keys this transaction won.

    One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per 500 keys; a key
    another transaction holds is waited for (PostgreSQL) and then not returned."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    won: set[JobKey] = set()
    for start in range(0, len(keys), _CLAIMS_PER_STATEMENT):
        rows = [
            {"job": job, "entity": entity, "period": period, "ran_at": now, "outcome": "running"}
            for job, entity, period, now in keys[start : start + _CLAIMS_PER_STATEMENT]
        ]
        statement = (
            insert(job_runs)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["job", "entity", "period"])
            .returning(job_runs.c.job, job_runs.c.entity, job_runs.c.period)
        )
        won.update((r.job, r.entity, r.period) for r in conn.execute(statement))
    return won


def finish_jobs(conn: Connection, outcomes: Sequence[tuple[str, str, str, str | None]]) -> None:
    """`finish_job` for many (job, entity, period, outcome): two statements at most."""
    where = (
        job_runs.c.job == bindparam("b_job"),
        job_runs.c.entity == bindparam("b_entity"),
        job_runs.c.period == bindparam("b_period"),
    )
    done = [
        {"b_job": job, "b_entity": entity, "b_period": period, "b_outcome": outcome}
        for job, entity, period, outcome in outcomes
        if outcome is not None
    ]
    given_back = [
        {"b_job": job, "b_entity": entity, "b_period": period}
        for job, entity, period, outcome in outcomes
        if outcome is None
    ]
    if done:
        conn.execute(job_runs.update().where(*where).values(outcome=bindparam("b_outcome")), done)
    if given_back:
        conn.execute(delete(job_runs).where(*where), given_back)


def emit_many(conn: Connection, emitted: Sequence[Mapping[str, Any]]) -> None:
    """`events.emit` for many events (dicts of its arguments), in one statement."""
    for item in emitted:
        if item["type"] not in EVENT_TYPES:
            raise InvalidInput(f"unknown event type {item['type']!r}")
    if not emitted:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(events).on_conflict_do_nothing(index_elements=["dedupe_key"])
    conn.execute(statement, [dict(item) for item in emitted])


def is_insufficient(error: BaseException) -> bool:
    return isinstance(error, InsufficientBalance)


__all__ = [
    "DEFAULT_PLAN_TRIAL_NUMBER_DAYS",
    "DEFAULT_QUARANTINE_DAYS",
    "Charge",
    "NumberPolicy",
    "PlanSettings",
    "can_afford",
    "charge_in",
    "claim_job",
    "claim_jobs",
    "emit_many",
    "finish_jobs",
    "grant_many_in",
    "Grant",
    "lock_accounts",
    "finish_job",
    "grant_in",
    "is_insufficient",
    "lock_account",
    "number_policy",
    "plan_settings",
]
