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
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from telbill.adapters.db import ledger_store
from telbill.domain.session_holds import money_share
from telbill.ledger import Bucket, BucketKind, DrainPolicy, JournalEntry, Posting, WalletDrain
from telbill.ledger.buckets import DIRECTION_OF_KIND, drain_order
from telbill.services.accounts import Account

USAGE_BATCH = "usage_batch"


def share_of(amount_micros: int, billed_units: int, package_units: int) -> int:
    """Money for the units packages did not cover: amount x uncovered / billed, half-up."""
    return money_share(amount_micros, billed_units, package_units)


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
    cdr_keys: set[int] = field(default_factory=set)
    members: list[int] = field(default_factory=list)


@dataclass(slots=True)
class UsageBatch:
    """The outcome of `post_usage_legs`: one `LegOutcome` per leg, in order, and the
    buckets as they were before the batch with what the batch took from each."""

    legacy_outcomes: list[LegOutcome]
    buckets: dict[int, Bucket]
    taken: dict[int, int]
    # The transaction that last took from each bucket.
    transaction_of_bucket: dict[int, int] = field(default_factory=dict)
    # Per leg: money due, package units, transaction id (-1: none), as columns.
    due_micros: npt.NDArray[np.int64] | None = None
    package_units: npt.NDArray[np.int64] | None = None
    transaction: npt.NDArray[np.int64] | None = None

    @property
    def outcomes(self) -> list[LegOutcome]:
        """One `LegOutcome` per leg, in order (built from the columns)."""
        if self.due_micros is None or self.package_units is None or self.transaction is None:
            return self.legacy_outcomes
        return [
            LegOutcome(units, due, None if tx < 0 else tx)
            for due, units, tx in zip(
                self.due_micros.tolist(), self.package_units.tolist(),
                self.transaction.tolist(), strict=True,
            )
        ]  # fmt: skip

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


@dataclass(slots=True)
class UsageLegTable:
    """Legs to charge as columns, in drain order (the order of the chunk's records).

    `kind` indexes `kinds`: (service, direction, unit) of the leg; `cdr` tells legs of one
    CDR apart (entries count CDRs). Build it with `of_legs` or column by column (a columnar
    CDR chunk makes no object per leg)."""

    payer_id: npt.NDArray[np.int64]
    subject_id: npt.NDArray[np.int64]
    cdr: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int64]
    billed_units: npt.NDArray[np.int64]
    amount_micros: npt.NDArray[np.int64]
    kinds: list[tuple[str, str | None, str]]
    payers: dict[int, Account]

    def __len__(self) -> int:
        return int(self.payer_id.shape[0])

    @classmethod
    def of_legs(cls, legs: Sequence[UsageLeg]) -> UsageLegTable:
        kinds: dict[tuple[str, str | None, str], int] = {}
        cdrs: dict[str, int] = {}
        return cls(
            np.array([leg.payer.id for leg in legs], dtype=np.int64),
            np.array([leg.subject_id for leg in legs], dtype=np.int64),
            np.array([cdrs.setdefault(leg.cdr_id, len(cdrs)) for leg in legs], dtype=np.int64),
            np.array(
                [kinds.setdefault((leg.service, leg.direction, leg.unit), len(kinds))
                 for leg in legs], dtype=np.int64,
            ),  # fmt: skip
            np.array([leg.billed_units for leg in legs], dtype=np.int64),
            np.array([leg.amount_micros for leg in legs], dtype=np.int64),
            list(kinds),
            {leg.payer.id: leg.payer for leg in legs},
        )


@dataclass(slots=True)
class UsagePlan:
    """What a leg table takes, decided in memory: per leg the money due, package units and
    entry (index into `groups`, -1: nothing moved); per entry its takes and revenue."""

    due_micros: npt.NDArray[np.int64]
    package_units: npt.NDArray[np.int64]
    group: npt.NDArray[np.int64]
    groups: list[_Group]
    taken: dict[int, int]


def plan_usage(table: UsageLegTable, buckets: Sequence[Bucket], now: datetime) -> UsagePlan:
    """Drain `table`'s legs in order from the payers' `buckets` (module rules), in memory.

    Set-based: a payer whose money buckets all apply to any usage and who has no package
    for the units of its legs (most wallets) is drained for all its legs at once: leg i
    takes from bucket k the part of [sum of the legs before it, that sum + its amount) that
    falls in [the capacity of the buckets before k, that + bucket k's). That is what
    `WalletDrain.take` leg after leg gives (same order for every leg), without a loop per
    leg. Other payers are drained leg by leg with `WalletDrain` (packages first).
    """
    size = len(table)
    due = table.amount_micros.copy()
    package_units = np.zeros(size, dtype=np.int64)
    group_of = np.full(size, -1, dtype=np.int64)
    groups: list[_Group] = []
    taken: dict[int, int] = {}
    if not size:
        return UsagePlan(due, package_units, group_of, groups, taken)
    # Entries in order of each (payer, subject)'s first leg, as legs were grouped before.
    keys = table.payer_id * (1 << 31) + table.subject_id
    unique_keys, first, entry_of_leg = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(unique_keys.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(unique_keys.shape[0])
    entry_of_leg = rank[entry_of_leg]
    ordered_first = np.sort(first)
    entries = [
        _Group(int(table.payer_id[i]), int(table.subject_id[i])) for i in ordered_first.tolist()
    ]
    owned: dict[int, list[Bucket]] = {}
    for bucket in buckets:
        if bucket.account_id is not None:
            owned.setdefault(bucket.account_id, []).append(bucket)
    packaged = {
        (b.account_id, b.unit) for b in buckets if b.kind is BucketKind.PACKAGE and b.balance > 0
    }
    order = np.argsort(table.payer_id, kind="stable")
    payer_ids, starts = np.unique(table.payer_id[order], return_index=True)
    bounds = [*starts.tolist(), size]
    moved = np.zeros(size, dtype=np.bool_)
    simple_orders: dict[int, list[Bucket]] = {}
    simple_legs: list[npt.NDArray[np.int64]] = []
    for k, payer_id in enumerate(payer_ids.tolist()):
        legs = order[bounds[k] : bounds[k + 1]]
        payer = table.payers[payer_id]
        mine = owned.get(payer_id, [])
        units = {table.kinds[c][2] for c in np.unique(table.kind[legs]).tolist()}
        drain_money = _money_order(mine, payer.currency, now)
        if drain_money is not None and not any((payer_id, u) in packaged for u in units):
            simple_orders[payer_id] = drain_money
            simple_legs.append(legs)
        else:
            _drain_leg_by_leg(
                table, legs, payer, mine, packaged, now, due, package_units, entry_of_leg,
                entries, moved, taken,
            )  # fmt: skip
    if simple_legs:
        _drain_in_one(
            table, np.concatenate(simple_legs), simple_orders, due, entry_of_leg, entries,
            moved, taken,
        )  # fmt: skip
    used = sorted({int(e) for e in entry_of_leg[moved].tolist()})
    renumber = {old: new for new, old in enumerate(used)}
    for position in np.flatnonzero(moved).tolist():
        group_of[position] = renumber[int(entry_of_leg[position])]
    for old in used:
        groups.append(entries[old])
    return UsagePlan(due, package_units, group_of, groups, taken)


def _money_order(buckets: Sequence[Bucket], currency: str, now: datetime) -> list[Bucket] | None:
    """The drain order of a wallet's money when it is the same for every leg (no credit
    limited to a service or direction) and ends in a paid bucket; None otherwise."""
    money = [b for b in buckets if b.unit == currency and b.kind is not BucketKind.SYSTEM]
    if any(b.service is not None or b.direction is not None for b in money):
        return None
    if any(b.kind in DIRECTION_OF_KIND for b in money):
        return None
    ordered = drain_order(money, unit=currency, service=None, direction=None, now=now)
    paid = [i for i, b in enumerate(ordered) if b.kind is BucketKind.PAID]
    return ordered[: paid[0] + 1] if paid else None


def _drain_in_one(
    table: UsageLegTable,
    legs: npt.NDArray[np.int64],
    orders: dict[int, list[Bucket]],
    due: npt.NDArray[np.int64],
    entry_of_leg: npt.NDArray[np.int64],
    entries: list[_Group],
    moved: npt.NDArray[np.bool_],
    taken: dict[int, int],
) -> None:
    """The legs of every wallet drained in one (see `plan_usage`), all wallets at once:
    each leg is paired with each bucket of its wallet's drain order, and takes the overlap
    of its stretch of the wallet's running total with the bucket's stretch of capacity."""
    paying = legs[due[legs] > 0]
    if not paying.shape[0]:
        return
    paying = paying[np.argsort(table.payer_id[paying], kind="stable")]
    payer = table.payer_id[paying]
    amounts = due[paying]
    first = np.ones(paying.shape[0], dtype=np.bool_)
    first[1:] = payer[1:] != payer[:-1]
    wallet = np.cumsum(first) - 1
    running = np.cumsum(amounts)
    upto = running - (running - amounts)[first][wallet]
    before = upto - amounts
    bucket_ids: list[int] = []
    room_before: list[int] = []
    room_after: list[int] = []
    counts: list[int] = []
    for payer_id in payer[first].tolist():
        ordered = orders[payer_id]
        total = 0
        for position, bucket in enumerate(ordered):
            bucket_ids.append(bucket.id)
            room_before.append(total)
            if position == len(ordered) - 1:  # the paid bucket takes the rest
                room_after.append(_NO_LIMIT)
            else:
                total += max(bucket.available, 0)
                room_after.append(total)
        counts.append(len(ordered))
    per_wallet = np.array(counts, dtype=np.int64)
    first_bucket = np.cumsum(per_wallet) - per_wallet
    per_leg = per_wallet[wallet]
    leg_of_pair = np.repeat(np.arange(paying.shape[0]), per_leg)
    within = np.arange(int(per_leg.sum())) - np.repeat(np.cumsum(per_leg) - per_leg, per_leg)
    bucket_of_pair = first_bucket[wallet][leg_of_pair] + within
    gives = np.maximum(
        np.minimum(upto[leg_of_pair], np.array(room_after, dtype=np.int64)[bucket_of_pair])
        - np.maximum(before[leg_of_pair], np.array(room_before, dtype=np.int64)[bucket_of_pair]),
        0,
    )
    entry = entry_of_leg[paying]
    given = gives > 0
    _add_by_key(
        entry[leg_of_pair][given], np.array(bucket_ids, dtype=np.int64)[bucket_of_pair][given],
        gives[given], lambda e, bucket_id, amount: _take(entries[e], taken, bucket_id, amount),
    )  # fmt: skip
    _add_by_key(
        entry, table.kind[paying], amounts,
        lambda e, kind, amount: _earn(entries[e], table, kind, amount),
    )  # fmt: skip
    moved[paying] = True
    by_entry = np.argsort(entry, kind="stable")
    ordered_entries = entry[by_entry]
    starts = np.flatnonzero(np.r_[True, ordered_entries[1:] != ordered_entries[:-1]])
    ends = np.r_[starts[1:], ordered_entries.shape[0]]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        mine = paying[by_entry[start:end]]
        group = entries[int(ordered_entries[start])]
        group.members.extend(mine.tolist())
        group.cdr_keys.update(table.cdr[mine].tolist())


_NO_LIMIT = np.iinfo(np.int64).max


def _add_by_key(
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    amounts: npt.NDArray[np.int64],
    add: Any,
) -> None:
    """`add(first, second, sum of amounts)` once per distinct (first, second) pair."""
    if not first.shape[0]:
        return
    width = int(second.max()) + 1
    keys, inverse = np.unique(first * width + second, return_inverse=True)
    sums = np.zeros(keys.shape[0], dtype=np.int64)
    np.add.at(sums, inverse, amounts)
    for key, amount in zip(keys.tolist(), sums.tolist(), strict=True):
        add(*divmod(key, width), amount)


def _take(group: _Group, taken: dict[int, int], bucket_id: int, amount: int) -> None:
    group.takes[bucket_id] = group.takes.get(bucket_id, 0) + amount
    taken[bucket_id] = taken.get(bucket_id, 0) + amount


def _earn(group: _Group, table: UsageLegTable, kind: int, amount: int) -> None:
    key = (table.kinds[kind][0], table.payers[group.payer_id].currency)
    group.revenue[key] = group.revenue.get(key, 0) + amount


def _drain_leg_by_leg(
    table: UsageLegTable,
    legs: npt.NDArray[np.int64],
    payer: Account,
    buckets: list[Bucket],
    packaged: set[tuple[int | None, str]],
    now: datetime,
    due: npt.NDArray[np.int64],
    package_units: npt.NDArray[np.int64],
    entry_of_leg: npt.NDArray[np.int64],
    entries: list[_Group],
    moved: npt.NDArray[np.bool_],
    taken: dict[int, int],
) -> None:
    """`WalletDrain.take` leg after leg (packages first), as posting always did."""
    drain = WalletDrain(buckets, now=now)
    for position in legs.tolist():
        service, direction, unit = table.kinds[int(table.kind[position])]
        group = entries[int(entry_of_leg[position])]
        billed = int(table.billed_units[position])
        amount = int(table.amount_micros[position])
        moved_here = False
        if billed > 0 and (payer.id, unit) in packaged:
            units = drain.take(
                billed, unit=unit, service=service, direction=direction,
                policy=DrainPolicy.PARTIAL, into=group.takes,
            )  # fmt: skip
            if units:
                package_units[position] = units
                due[position] = share_of(amount, billed, units)
                revenue_key = (service, unit)
                group.revenue[revenue_key] = group.revenue.get(revenue_key, 0) + units
                moved_here = True
        owed = int(due[position])
        if owed > 0:
            currency = payer.currency
            drain.take(
                owed, unit=currency, service=service, direction=direction,
                floor=payer.floor_micros, policy=DrainPolicy.ALLOW_NEGATIVE, into=group.takes,
            )  # fmt: skip
            revenue_key = (service, currency)
            group.revenue[revenue_key] = group.revenue.get(revenue_key, 0) + owed
            moved_here = True
        if moved_here:
            moved[position] = True
            group.members.append(position)
            group.cdr_keys.add(int(table.cdr[position]))
    for bucket_id, amount in drain.taken.items():
        taken[bucket_id] = taken.get(bucket_id, 0) + amount


def post_usage_legs(
    conn: Connection,
    legs: Sequence[UsageLeg] | UsageLegTable,
    *,
    now: datetime,
    source: str,
    locked: Sequence[Bucket] | None = None,
) -> UsageBatch:
    """Drain `legs` in order and write one balanced transaction per (payer, subject).

    `locked`: the payers' buckets, already read and locked in this transaction (else they
    are read and locked here).
    """
    table = legs if isinstance(legs, UsageLegTable) else UsageLegTable.of_legs(legs)
    size = len(table)
    if not size:
        empty = np.zeros(0, dtype=np.int64)
        return UsageBatch([], {}, {}, {}, empty, empty, empty)
    payer_ids = sorted(table.payers)
    wanted = set(payer_ids)
    loaded = (
        ledger_store.load_buckets(conn, payer_ids)
        if locked is None
        else [b for b in locked if b.account_id in wanted]
    )
    buckets = {b.id: b for b in loaded}
    plan = plan_usage(table, loaded, now)
    written = plan.groups
    entries = [_entry(conn, group, buckets, now, source) for group in written]
    transaction_of_bucket: dict[int, int] = {}
    tx_ids = ledger_store.apply_entries(conn, entries, now)
    transaction = np.full(size, -1, dtype=np.int64)
    for group, tx_id in zip(written, tx_ids, strict=True):
        transaction[group.members] = tx_id
        for bucket_id in group.takes:
            transaction_of_bucket[bucket_id] = tx_id
    return UsageBatch(
        [], buckets, plan.taken, transaction_of_bucket,
        due_micros=plan.due_micros, package_units=plan.package_units, transaction=transaction,
    )  # fmt: skip


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
    count = len(group.cdr_keys)
    return JournalEntry(
        kind=USAGE_BATCH,
        account_id=group.payer_id,
        subject_account_id=group.subject_id,
        postings=tuple(postings),
        memo=f"usage of {count} CDR{'s' if count != 1 else ''}",
        details={"cdrs": count, "legs": len(group.members), "source": source},
    )


__all__ = [
    "USAGE_BATCH",
    "LegOutcome",
    "UsageBatch",
    "UsageLeg",
    "UsageLegTable",
    "plan_usage",
    "post_usage_legs",
    "share_of",
]
