"""Billing increments and the cost arithmetic of one timed charge.

The order of operations for a duration (documented once, here, and used everywhere):

1. A duration of 0 s (or less) bills nothing: no seconds, no connect fee.
2. The duration is capped at the tariff's maximum call length (``max_call_s``).
3. ``free_seconds`` are taken off the start; a call that fits inside them bills 0 s.
4. What remains is rounded up to the increment ``first/next``: the first block is
   ``first_s`` seconds, every further started block ``next_s`` seconds.
5. ``min_seconds`` is applied last: a billed duration above zero is at least ``min_seconds``
   (a call entirely inside the free seconds stays free).
6. cost = rate per minute x billed seconds / 60 + connect fee, computed exactly in Decimal
   and rounded ONCE at the end with the tariff's decimals and rounding mode. The connect fee
   is charged once for every call with a positive duration, even one inside free seconds.

Examples: 61 s at 0.013/min on 60/60 bills 120 s = 0.026; 83 s at 0.06/min on 1/1 = 0.083;
31 s on 15/15 bills 45 s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext

from telbill.domain.money import DECIMAL_CONTEXT, round_money
from telbill.domain.tariffs import (
    DEFAULT_INCREMENT,
    DEFAULT_MAX_CALL_S,
    Increment,
    RateRow,
    TariffSettings,
)
from telbill.errors import InvalidInput

SECONDS_PER_MINUTE = 60

ROUNDING_MODES = frozenset(
    {
        "ROUND_HALF_UP",
        "ROUND_HALF_EVEN",
        "ROUND_HALF_DOWN",
        "ROUND_UP",
        "ROUND_DOWN",
        "ROUND_CEILING",
        "ROUND_FLOOR",
        "ROUND_05UP",
    }
)


def validate_rounding(mode: str) -> str:
    """Return a decimal rounding mode name, accepting ``half_up`` as well as ``ROUND_HALF_UP``."""
    name = mode.strip().upper()
    if not name.startswith("ROUND_"):
        name = "ROUND_" + name
    if name not in ROUNDING_MODES:
        raise InvalidInput(
            f"unknown rounding mode {mode!r}: expected one of {sorted(ROUNDING_MODES)}"
        )
    return name


@dataclass(frozen=True, slots=True)
class TimedPrice:
    """Everything needed to price a duration: one tariff row with its tariff's settings."""

    rate: Decimal  # per minute
    connect_fee: Decimal = Decimal(0)
    increment: Increment = DEFAULT_INCREMENT
    free_seconds: int = 0
    min_seconds: int = 0
    max_call_s: int = DEFAULT_MAX_CALL_S
    decimals: int = 6
    rounding: str = "ROUND_HALF_UP"

    @classmethod
    def for_row(cls, row: RateRow, settings: TariffSettings) -> TimedPrice:
        """The timed price of a tariff row under its tariff's settings (default increment,
        maximum call length, decimals and rounding mode)."""
        return cls(
            rate=row.rate,
            connect_fee=row.connect_fee,
            increment=row.increment or settings.default_increment,
            free_seconds=row.free_seconds,
            min_seconds=row.min_seconds,
            max_call_s=settings.max_call_s,
            decimals=settings.decimals,
            rounding=validate_rounding(settings.rounding),
        )


def billed_seconds(duration_s: int, price: TimedPrice) -> int:
    """Seconds billed for a call of `duration_s` seconds (steps 1-5 of the module rule)."""
    if duration_s <= 0:
        return 0
    capped = min(duration_s, price.max_call_s)
    chargeable = capped - price.free_seconds
    if chargeable <= 0:
        return 0
    first, nxt = price.increment.first_s, price.increment.next_s
    if chargeable <= first:
        billed = first
    else:
        billed = first + -(-(chargeable - first) // nxt) * nxt
    return max(billed, price.min_seconds)


def unrounded_cost(duration_s: int, price: TimedPrice) -> Decimal:
    """Exact cost before the final rounding (connect fee included when duration > 0)."""
    if duration_s <= 0:
        return Decimal(0)
    seconds = billed_seconds(duration_s, price)
    with localcontext(DECIMAL_CONTEXT):
        return price.rate * seconds / SECONDS_PER_MINUTE + price.connect_fee


def timed_cost(duration_s: int, price: TimedPrice) -> Decimal:
    """Cost of a call of `duration_s` seconds, rounded once per the price's decimals/mode."""
    return round_money(unrounded_cost(duration_s, price), price.decimals, price.rounding)


def max_affordable_seconds(
    available: Decimal,
    price: TimedPrice,
    cost_of: Callable[[int], Decimal] | None = None,
) -> int:
    """Largest duration in seconds whose cost is <= `available`, capped at ``max_call_s``.

    Cost is non-decreasing in duration, so a binary search over [0, max_call_s] is exact.
    `cost_of` replaces :func:`timed_cost` when a plan changes the price (a markup).
    Returns 0 when not even one second can be afforded.
    """
    cost = cost_of if cost_of is not None else (lambda seconds: timed_cost(seconds, price))
    low, high = 0, price.max_call_s  # invariant: cost(low) <= available (cost(0) == 0)
    if cost(0) > available:
        return 0
    if cost(high) <= available:
        return high
    while high - low > 1:  # invariant: cost(high) > available
        middle = (low + high) // 2
        if cost(middle) <= available:
            low = middle
        else:
            high = middle
    return low


__all__ = [
    "ROUNDING_MODES",
    "SECONDS_PER_MINUTE",
    "TimedPrice",
    "billed_seconds",
    "max_affordable_seconds",
    "timed_cost",
    "unrounded_cost",
    "validate_rounding",
]
