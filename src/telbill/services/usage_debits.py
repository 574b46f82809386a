"""Usage debits of a CDR chunk: drained leg by leg in memory, written as one journal
transaction per payer and usage account.

The drain rule is the ledger's (`ledger.WalletDrain`, equal to `plan_drain` applied leg
after leg): a leg whose unit (``s:call``, ``msg:sms``) has a package with units left takes
its billed units from packages first (`DrainPolicy.PARTIAL`); the money due is the leg's
price times the share of units the packages did not cover (`share_of`), drained from
credits before the paid balance with `DrainPolicy.ALLOW_NEGATIVE` (usage already happened).

What is written per (payer, usage account) of the chunk: ONE ``usage_batch`` transaction
with one posting per bucket it touched (the sum of that bucket's takes) and one per revenue
account (the sum of its legs), instead of one transaction per leg. The legs' own amounts,
package units and explanations are the charge rows (`services.charging`), which point to
that transaction: history shows the batch as one line with its CDR count; per-call detail
comes from the charges. Postings still sum to zero per unit, so `reconcile` holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

from sqlalchemy import Connection

from telbill.adapters.db import ledger_store
from telbill.domain.money import DECIMAL_CONTEXT
from telbill.ledger import Bucket, BucketKind, DrainPolicy, JournalEntry, Posting, WalletDrain
from telbill.services.accounts import Account

USAGE_BATCH = "usage_batch"


def share_of(amount_micros: int, billed_units: int, package_units: int) -> int:
    """Money for the units packages did not cover: amount x uncovered / billed, half-up."""
    if package_units <= 0 or billed_units <= 0:
        return amount_micros
    uncovered = max(billed_units - package_units, 0)
    with localcontext(DECIMAL_CONTEXT):
        share = Decimal(amount_micros) * uncovered / billed_units
        return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(slots=True)
class UsageLeg:
    """One priced leg to charge: `amount_micros` of the payer's currency for `billed_units`
    of `unit`, made by `subject_id`."""

    payer: Account
    subject_id: int
    cdr_id: str
    service: str
    direction: str | None
    unit: str
    billed_units: int
    amount_micros: int


@dataclass(slots=True)
class LegOutcome:
    """What a leg took: package units, money, and the transaction that moved them."""

    package_units: int = 0
    due_micros: int = 0
    transaction_id: int | None = None


@dataclass(slots=True)
class _Group:
    payer_id: int
    subject_id: int
    takes: dict[int, int] = field(default_factory=dict)
    revenue: dict[tuple[str, str], int] = field(default_factory=dict)
    cdrs: set[str] = field(default_factory=set)
    members: list[int] = field(default_factory=list)


@dataclass(slots=True)
class UsageBatch:
    """The outcome of `post_usage_legs`: one `LegOutcome` per leg, in order, and the
    buckets as they were before the batch with what the batch took from each."""

    outcomes: list[LegOutcome]
    buckets: dict[int, Bucket]
    taken: dict[int, int]
    # The transaction that last took from each bucket.
    transaction_of_bucket: dict[int, int] = field(default_factory=dict)

    def emptied_packages(self) -> list[tuple[Bucket, int]]:
        """Package buckets this batch took to zero (they had units before it), each with
        the transaction that emptied it."""
        return [
            (bucket, self.transaction_of_bucket[bucket_id])
            for bucket_id, amount in sorted(self.taken.items())
            if (bucket := self.buckets[bucket_id]).kind is BucketKind.PACKAGE
            and bucket.balance > 0
            and bucket.balance - amount <= 0
        ]


def money_after(
    buckets: Sequence[Bucket], taken: dict[int, int], currency: str, now: datetime
) -> tuple[int, int]:
    """A wallet's money once `taken` (bucket id -> minor units, `UsageBatch.taken`) left
    its `buckets` (all of them, read and locked in this transaction): its balance as
    `suspension.money_balance` counts it (holds included), and what is available
    (`balances_in`: unexpired, holds deducted). Micro-units of `currency`."""
    balance_total = available = 0
    for bucket in buckets:
        if bucket.unit != currency:
            continue
        balance = bucket.balance - taken.get(bucket.id, 0)
        expired = bucket.is_expired(now)
        if bucket.kind is BucketKind.PAID or (not expired and balance > 0):
            balance_total += balance
        if not expired:
            available += balance - bucket.held
    return balance_total, available


def post_usage_legs(
    conn: Connection,
    legs: Sequence[UsageLeg],
    *,
    now: datetime,
    source: str,
    locked: Sequence[Bucket] | None = None,
) -> UsageBatch:
    """Drain `legs` in order and write one balanced transaction per (payer, subject).

    `locked`: the payers' buckets, already read and locked in this transaction (else they
    are read and locked here).
    """
    outcomes = [LegOutcome(due_micros=leg.amount_micros) for leg in legs]
    if not legs:
        return UsageBatch(outcomes, {}, {})
    payer_ids = sorted({leg.payer.id for leg in legs})
    wanted = set(payer_ids)
    loaded = (
        ledger_store.load_buckets(conn, payer_ids)
        if locked is None
        else [b for b in locked if b.account_id in wanted]
    )
    buckets = {b.id: b for b in loaded}
    owned: dict[int, list[Bucket]] = {payer_id: [] for payer_id in payer_ids}
    for bucket in loaded:
        if bucket.account_id is not None:
            owned[bucket.account_id].append(bucket)
    drains = {payer_id: WalletDrain(own, now=now) for payer_id, own in owned.items()}
    # As before batching: a unit is drained from packages only when the payer has a
    # package of that unit with units left when the chunk starts.
    packaged = {
        (b.account_id, b.unit) for b in loaded if b.kind is BucketKind.PACKAGE and b.balance > 0
    }
    groups: dict[tuple[int, int], _Group] = {}
    for position, leg in enumerate(legs):
        payer = leg.payer
        group_key = (payer.id, leg.subject_id)
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = _Group(payer.id, leg.subject_id)
        drain = drains[payer.id]
        outcome = outcomes[position]
        moved = False
        if leg.billed_units > 0 and (payer.id, leg.unit) in packaged:
            units = drain.take(
                leg.billed_units, unit=leg.unit, service=leg.service, direction=leg.direction,
                policy=DrainPolicy.PARTIAL, into=group.takes,
            )  # fmt: skip
            if units:
                outcome.package_units = units
                outcome.due_micros = share_of(leg.amount_micros, leg.billed_units, units)
                revenue_key = (leg.service, leg.unit)
                group.revenue[revenue_key] = group.revenue.get(revenue_key, 0) + units
                moved = True
        due = outcome.due_micros
        if due > 0:
            currency = payer.currency
            drain.take(
                due, unit=currency, service=leg.service, direction=leg.direction,
                floor=payer.floor_micros, policy=DrainPolicy.ALLOW_NEGATIVE, into=group.takes,
            )  # fmt: skip
            revenue_key = (leg.service, currency)
            group.revenue[revenue_key] = group.revenue.get(revenue_key, 0) + due
            moved = True
        if moved:
            group.members.append(position)
            group.cdrs.add(leg.cdr_id)
    written = [g for g in groups.values() if g.members]
    entries = [_entry(conn, group, buckets, now, source) for group in written]
    transaction_of_bucket: dict[int, int] = {}
    for group, tx_id in zip(written, ledger_store.apply_entries(conn, entries, now), strict=True):
        for position in group.members:
            outcomes[position].transaction_id = tx_id
        for bucket_id in group.takes:
            transaction_of_bucket[bucket_id] = tx_id
    taken: dict[int, int] = {}
    for drain in drains.values():
        taken.update(drain.taken)
    return UsageBatch(outcomes, buckets, taken, transaction_of_bucket)


def _entry(
    conn: Connection, group: _Group, buckets: dict[int, Bucket], now: datetime, source: str
) -> JournalEntry:
    postings = [
        Posting(bucket_id, -amount, buckets[bucket_id].unit)
        for bucket_id, amount in sorted(group.takes.items())
        if amount
    ]
    for (service, unit), amount in sorted(group.revenue.items()):
        revenue = ledger_store.system_account(conn, f"revenue:{service}:{unit}", unit, now)
        postings.append(Posting(revenue, amount, unit))
    count = len(group.cdrs)
    return JournalEntry(
        kind=USAGE_BATCH,
        account_id=group.payer_id,
        subject_account_id=group.subject_id,
        postings=tuple(postings),
        memo=f"usage of {count} CDR{'s' if count != 1 else ''}",
        details={"cdrs": count, "legs": len(group.members), "source": source},
    )


__all__ = ["USAGE_BATCH", "LegOutcome", "UsageBatch", "UsageLeg", "post_usage_legs", "share_of"]
