"""Journal entries: transactions of postings that sum to zero per unit.

Pure. A `JournalEntry` cannot be built unbalanced: the check is an always-on invariant
(it raises `UnbalancedEntry`, it is not an ``assert`` that ``python -O`` would strip).
Storage applies an entry by inserting it and adding each posting to its ledger account's
denormalised balance; nothing is updated in place or deleted otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telbill.ledger.buckets import DrainPlan


class LedgerInvariantError(AssertionError):
    """A ledger invariant was about to be broken: a bug, never a user error."""


class UnbalancedEntry(LedgerInvariantError):
    pass


@dataclass(frozen=True, slots=True)
class Posting:
    """A signed amount (minor units of `unit`) on one ledger account."""

    ledger_account_id: int
    amount: int
    unit: str


def assert_balanced(postings: Iterable[Posting]) -> None:
    """Raise `UnbalancedEntry` unless the postings sum to zero for every unit."""
    totals: dict[str, int] = defaultdict(int)
    count = 0
    for posting in postings:
        if not isinstance(posting.amount, int) or isinstance(posting.amount, bool):
            raise LedgerInvariantError(f"posting amount must be an int: {posting!r}")
        totals[posting.unit] += posting.amount
        count += 1
    if count == 0:
        raise UnbalancedEntry("a transaction needs at least one posting")
    unbalanced = {unit: total for unit, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedEntry(f"postings do not sum to zero per unit: {unbalanced}")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced transaction about to be written."""

    kind: str
    account_id: int | None
    postings: tuple[Posting, ...]
    memo: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    subject_account_id: int | None = None

    def __post_init__(self) -> None:
        assert_balanced(self.postings)

    def balance_changes(self) -> dict[int, int]:
        """Net change per ledger account (what storage adds to the denormalised balances)."""
        changes: dict[int, int] = defaultdict(int)
        for posting in self.postings:
            changes[posting.ledger_account_id] += posting.amount
        return dict(changes)


def transfer(
    kind: str,
    *,
    account_id: int | None,
    source_id: int,
    destination_id: int,
    amount: int,
    unit: str,
    memo: str | None = None,
    details: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> JournalEntry:
    """Move `amount` from `source_id` to `destination_id` (one pair of postings)."""
    if amount <= 0:
        raise LedgerInvariantError(f"transfer amount must be positive, got {amount}")
    return JournalEntry(
        kind=kind,
        account_id=account_id,
        postings=(Posting(source_id, -amount, unit), Posting(destination_id, amount, unit)),
        memo=memo,
        details=dict(details or {}),
        idempotency_key=idempotency_key,
    )


def drain_postings(plan: DrainPlan, *, destination_id: int) -> tuple[Posting, ...]:
    """Postings taking each planned amount from its bucket and crediting `destination_id`."""
    taken = tuple(Posting(t.bucket_id, -t.amount, plan.unit) for t in plan.takes)
    total = sum(t.amount for t in plan.takes)
    if total == 0:
        return ()
    return (*taken, Posting(destination_id, total, plan.unit))
