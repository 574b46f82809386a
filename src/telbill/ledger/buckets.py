"""Wallet buckets and the drain rule: which buckets a debit or a hold takes from.

Pure: plain values in, plain values out, no database and no clock read.

The rule (DESIGN.md, "Wallet / bucket"): a debit of `unit` for a `service` in a `direction`
drains the applicable, unexpired buckets by priority (lower first), then earliest expiry
(no expiry last), then creation order; the paid balance is always drained last. Only the paid
bucket may go below zero, and only down to its floor: 0 for prepaid accounts, minus the
credit limit for postpaid ones. `DrainPolicy.ALLOW_NEGATIVE` lets the paid bucket go below its
floor; callers use it only where a documented policy allows it (a call already in progress
that must be billed for the time it really lasted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from telbill.errors import InsufficientBalance, InvalidInput


class BucketKind(StrEnum):
    PAID = "paid"  # the paid balance (money), drained last, may go down to the floor
    TRIAL = "trial"  # trial credit (money)
    FREE = "free"  # free / promotional credits, e.g. monthly included credit (money)
    INCOMING = "incoming"  # directional credit usable by inbound usage only (money)
    OUTGOING = "outgoing"  # directional credit usable by outbound usage only (money)
    PACKAGE = "package"  # unit package: seconds of a counter, or messages
    SYSTEM = "system"  # not a wallet: cash, revenue, promotions, VAT payable...


class DrainPolicy(StrEnum):
    ENFORCE_FLOOR = "enforce_floor"
    # The paid bucket may go below its floor. Only for usage already delivered (a call in
    # progress, a late CDR of an authorised call): refusing it would not undo the cost.
    ALLOW_NEGATIVE = "allow_negative"
    # Take what the buckets can give and report the rest as a shortfall instead of failing.
    PARTIAL = "partial"


DIRECTION_OF_KIND = {BucketKind.INCOMING: "inbound", BucketKind.OUTGOING: "outbound"}


@dataclass(frozen=True, slots=True)
class Bucket:
    """One wallet bucket as read (and locked) from storage. Amounts in minor units."""

    id: int
    kind: BucketKind
    unit: str
    balance: int
    held: int = 0
    priority: int = 100
    expires_at: datetime | None = None
    service: str | None = None
    direction: str | None = None
    account_id: int | None = None  # the wallet owner

    @property
    def available(self) -> int:
        return self.balance - self.held

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def applies_to(self, unit: str, service: str | None, direction: str | None) -> bool:
        """Whether usage of `unit`/`service`/`direction` may be paid from this bucket."""
        if self.kind is BucketKind.SYSTEM or self.unit != unit:
            return False
        if self.service is not None and self.service != service:
            return False
        wanted_direction = self.direction or DIRECTION_OF_KIND.get(self.kind)
        return wanted_direction is None or wanted_direction == direction


@dataclass(frozen=True, slots=True)
class Take:
    """`amount` minor units taken from (or reserved in) bucket `bucket_id`."""

    bucket_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class DrainPlan:
    """What a debit or a hold takes from each bucket; `shortfall` is what none could cover."""

    unit: str
    amount: int
    takes: tuple[Take, ...]
    shortfall: int = 0

    @property
    def covered(self) -> int:
        return sum(take.amount for take in self.takes)


def drain_order(
    buckets: Iterable[Bucket],
    *,
    unit: str,
    service: str | None,
    direction: str | None,
    now: datetime,
) -> list[Bucket]:
    """Applicable, unexpired buckets in the order a debit drains them (paid balance last)."""
    usable = [b for b in buckets if b.applies_to(unit, service, direction)]
    others = [b for b in usable if b.kind is not BucketKind.PAID and not b.is_expired(now)]
    others.sort(key=lambda b: (b.priority, b.expires_at is None, b.expires_at or now, b.id))
    paid = sorted((b for b in usable if b.kind is BucketKind.PAID), key=lambda b: b.id)
    return others + paid


def plan_drain(
    buckets: Sequence[Bucket],
    amount: int,
    *,
    unit: str,
    service: str | None,
    direction: str | None,
    now: datetime,
    floor: int = 0,
    policy: DrainPolicy = DrainPolicy.ENFORCE_FLOOR,
) -> DrainPlan:
    """Decide how much of `amount` each bucket gives.

    Args:
        buckets: the billing account's buckets (any units; the wrong ones are ignored).
        amount: positive minor units to take.
        floor: lowest available balance (balance - held) the paid bucket may reach
            (0 prepaid, -credit_limit postpaid).
        policy: see `DrainPolicy`.

    Raises:
        InsufficientBalance: the buckets cannot cover `amount` and policy is ENFORCE_FLOOR.
    """
    if amount <= 0:
        raise InvalidInput(f"amount to take must be positive, got {amount}")
    remaining = amount
    takes: list[Take] = []
    for bucket in drain_order(buckets, unit=unit, service=service, direction=direction, now=now):
        if remaining == 0:
            break
        if bucket.kind is BucketKind.PAID:
            room = remaining if policy is DrainPolicy.ALLOW_NEGATIVE else bucket.available - floor
        else:
            room = bucket.available
        give = min(remaining, max(room, 0))
        if give > 0:
            takes.append(Take(bucket.id, give))
            remaining -= give
    if remaining and policy is DrainPolicy.ENFORCE_FLOOR:
        available = amount - remaining
        raise InsufficientBalance(
            f"insufficient balance: {amount} {unit} minor units needed, {available} available",
            unit=unit,
            needed=amount,
            available=available,
        )
    return DrainPlan(unit=unit, amount=amount, takes=tuple(takes), shortfall=remaining)


class WalletDrain:
    """Many debits drained in order from one wallet's buckets, in memory.

    Each `take` plans its debit exactly as `plan_drain` would against the balances the
    previous takes left (same order, same floor, same policies); the drain order of a
    (unit, service, direction) is worked out once. A CDR batch uses it to drain thousands
    of legs and then write one journal entry with the summed takes.
    """

    def __init__(self, buckets: Iterable[Bucket], *, now: datetime) -> None:
        self._buckets = tuple(buckets)
        self._now = now
        self._available = {b.id: b.available for b in self._buckets}
        self._orders: dict[tuple[str, str | None, str | None], tuple[tuple[int, bool], ...]] = {}
        self.taken: dict[int, int] = {}  # bucket id -> minor units taken by every take so far

    def balance(self, bucket: Bucket) -> int:
        """`bucket`'s balance after the takes so far."""
        return bucket.balance - self.taken.get(bucket.id, 0)

    def take(
        self,
        amount: int,
        *,
        unit: str,
        service: str | None,
        direction: str | None,
        floor: int = 0,
        policy: DrainPolicy = DrainPolicy.ENFORCE_FLOOR,
        into: dict[int, int] | None = None,
    ) -> int:
        """Drain `amount` (see `plan_drain`); returns the minor units covered.

        The amounts taken per bucket are added to `taken` and, when given, to `into`.

        Raises:
            InsufficientBalance: as `plan_drain` (nothing is taken).
        """
        if amount <= 0:
            raise InvalidInput(f"amount to take must be positive, got {amount}")
        key = (unit, service, direction)
        order = self._orders.get(key)
        if order is None:
            ordered = drain_order(
                self._buckets, unit=unit, service=service, direction=direction, now=self._now
            )
            order = tuple((b.id, b.kind is BucketKind.PAID) for b in ordered)
            self._orders[key] = order
        available = self._available
        remaining = amount
        gives: list[tuple[int, int]] = []
        for bucket_id, is_paid in order:
            if remaining == 0:
                break
            if is_paid:
                room = (
                    remaining
                    if policy is DrainPolicy.ALLOW_NEGATIVE
                    else available[bucket_id] - floor
                )
            else:
                room = available[bucket_id]
            give = min(remaining, max(room, 0))
            if give > 0:
                gives.append((bucket_id, give))
                remaining -= give
        if remaining and policy is DrainPolicy.ENFORCE_FLOOR:
            covered = amount - remaining
            raise InsufficientBalance(
                f"insufficient balance: {amount} {unit} minor units needed, {covered} available",
                unit=unit,
                needed=amount,
                available=covered,
            )
        taken = self.taken
        for bucket_id, give in gives:
            available[bucket_id] -= give
            taken[bucket_id] = taken.get(bucket_id, 0) + give
            if into is not None:
                into[bucket_id] = into.get(bucket_id, 0) + give
        return amount - remaining


def spendable(
    buckets: Sequence[Bucket],
    *,
    unit: str,
    service: str | None,
    direction: str | None,
    now: datetime,
    floor: int = 0,
) -> int:
    """How many minor units a debit could take right now without crossing the floor."""
    total = 0
    for bucket in drain_order(buckets, unit=unit, service=service, direction=direction, now=now):
        room = bucket.available - floor if bucket.kind is BucketKind.PAID else bucket.available
        total += max(room, 0)
    return total
