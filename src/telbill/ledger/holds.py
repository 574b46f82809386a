"""Two-phase holds: reserve, then settle (up to the held amount), void or expire.

Pure. A hold reserves amounts in buckets (hold lines, in drain order) by raising their
``held``; available = balance - held. Settling takes the settled amount from the lines in
order and releases the rest; voiding or expiring releases everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from telbill.errors import InvalidInput
from telbill.ledger.buckets import Take


class HoldOutcome(StrEnum):
    SETTLED = "settled"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class HoldLine:
    ledger_account_id: int
    amount: int
    position: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a settlement takes from each bucket and what it releases from each bucket."""

    takes: tuple[Take, ...]
    releases: tuple[Take, ...]

    @property
    def settled(self) -> int:
        return sum(t.amount for t in self.takes)


def plan_settlement(lines: Sequence[HoldLine], amount: int) -> Settlement:
    """Settle `amount` (0 <= amount <= held) against `lines`, releasing the rest.

    Raises:
        InvalidInput: `amount` is negative or more than the hold reserved.
    """
    held = sum(line.amount for line in lines)
    if amount < 0:
        raise InvalidInput(f"settled amount must not be negative, got {amount}")
    if amount > held:
        raise InvalidInput(
            f"cannot settle {amount}: the hold reserved only {held}", held=held, amount=amount
        )
    remaining = amount
    takes: list[Take] = []
    releases: list[Take] = []
    for line in sorted(lines, key=lambda ln: ln.position):
        take = min(remaining, line.amount)
        remaining -= take
        if take:
            takes.append(Take(line.ledger_account_id, take))
        releases.append(Take(line.ledger_account_id, line.amount))
    return Settlement(takes=tuple(takes), releases=tuple(releases))


def plan_release(lines: Sequence[HoldLine]) -> Settlement:
    """Void or expiry: nothing is taken, every line's reservation is released."""
    return plan_settlement(lines, 0)
