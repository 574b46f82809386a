"""Batched usage debits for CDR posting: many charges, one bucket read, one bulk write.

The same drain rule as `wallets.debit_many_in` (`ledger.plan_drain`, packages and credits
before the paid balance) with the parts a CDR batch does not need left out: no
idempotency-key rows (a CDR's charge row, unique per CDR and leg, written in the same
transaction, is its idempotency record) and one revenue-account lookup per service and unit
instead of one per debit. Each payer's buckets are read and locked once per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from telbill.adapters.db import ledger_store
from telbill.errors import InsufficientBalance
from telbill.ledger import Bucket, DrainPolicy, JournalEntry, drain_postings, plan_drain
from telbill.services.accounts import Account


@dataclass(frozen=True, slots=True)
class UsageDebit:
    """`amount` minor units of `unit` for usage of `subject_id`, paid by `payer`."""

    payer: Account
    subject_id: int
    unit: str
    amount: int
    service: str
    direction: str | None
    policy: DrainPolicy
    memo: str | None = None
    details: Mapping[str, Any] | None = None


def post_usage_debits(
    conn: Connection, debits: Sequence[UsageDebit], *, now: datetime
) -> list[tuple[int | None, int]]:
    """Post `debits` in order; for each, (transaction id or None, minor units taken).

    ENFORCE_FLOOR debits that cannot be covered take nothing (None, 0); PARTIAL ones take
    what the buckets have; ALLOW_NEGATIVE ones always take the whole amount.
    """
    if not debits:
        return []
    payer_ids = sorted({d.payer.id for d in debits})
    buckets: dict[int, Bucket] = {b.id: b for b in ledger_store.load_buckets(conn, payer_ids)}
    owned: dict[int, list[int]] = {payer_id: [] for payer_id in payer_ids}
    for bucket in buckets.values():
        if bucket.account_id is not None:
            owned[bucket.account_id].append(bucket.id)
    revenue: dict[tuple[str, str], int] = {}
    entries: list[JournalEntry] = []
    owners: list[int] = []
    results: list[tuple[int | None, int]] = [(None, 0)] * len(debits)
    for position, debit in enumerate(debits):
        if debit.amount <= 0:
            continue
        own = [buckets[i] for i in owned[debit.payer.id]]
        try:
            plan = plan_drain(
                own, debit.amount, unit=debit.unit, service=debit.service,
                direction=debit.direction, now=now,
                floor=debit.payer.floor_micros if debit.unit == debit.payer.currency else 0,
                policy=debit.policy,
            )  # fmt: skip
        except InsufficientBalance:
            continue
        if not plan.takes:
            continue
        for take in plan.takes:
            bucket = buckets[take.bucket_id]
            # A new value rather than dataclasses.replace: this loop runs once per CDR leg.
            buckets[take.bucket_id] = Bucket(
                bucket.id, bucket.kind, bucket.unit, bucket.balance - take.amount, bucket.held,
                bucket.priority, bucket.expires_at, bucket.service, bucket.direction,
                bucket.account_id,
            )  # fmt: skip
        revenue_key = (debit.service, debit.unit)
        if revenue_key not in revenue:
            revenue[revenue_key] = ledger_store.system_account(
                conn, f"revenue:{debit.service}:{debit.unit}", debit.unit, now
            )
        details = dict(debit.details or {})
        details["service"] = debit.service
        if debit.direction:
            details["direction"] = debit.direction
        entries.append(
            JournalEntry(
                kind="debit",
                account_id=debit.payer.id,
                subject_account_id=debit.subject_id,
                postings=drain_postings(plan, destination_id=revenue[revenue_key]),
                memo=debit.memo,
                details=details,
            )
        )
        owners.append(position)
        results[position] = (None, plan.covered)
    for position, tx_id in zip(owners, ledger_store.apply_entries(conn, entries, now), strict=True):
        results[position] = (tx_id, results[position][1])
    return results


__all__ = ["UsageDebit", "post_usage_debits"]
