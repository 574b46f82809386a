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
   and rounded ONCE at the end with the row's decimals and rounding mode (a row may override
   the tariff's). The connect fee is charged once for every call with a positive duration,
   even one inside free seconds.

Rate groups (`RateTier`, CGRateS "GroupIntervalStart"): the chargeable time of step 3 is cut
at each tier's ``start_s``. Group 0 is [0, first tier start) at the row's rate and increment,
group k is [start_k, start_k+1) at tier k's. The seconds falling in each group are rounded up
to that group's increment (``first/next``; a group the call does not reach bills 0 s) and
priced at its rate. Every group but the last must hold a whole number of its increments
(CGRateS requires it too), so the billed time is one contiguous stretch [0, billed) of the
call's timeline: a group the call passes is billed exactly its length, and only the group
the call ends in is rounded up. ``min_seconds`` then extends that stretch to at least
``min_seconds``, each added second priced by the group it falls in. So
cost = (sum over groups of rate x billed seconds in the group) / 60 + connect fee, added
exactly and rounded once; with no tiers this is the one-rate formula above.

MaxCost (CGRateS, `RateRow.max_cost`): the exact cost of step 6, connect fee included, is
capped at ``max_cost`` before the final rounding, whatever the strategy. With ``*free`` the
call may go on and the rest of it is free; with ``*disconnect`` real-time authorisation ends
the call where its cost first reaches ``max_cost`` (`disconnect_after_s`: the increment during
which the cost reaches it is allowed, as in CGRateS).

Band splitting (a tariff whose `band_rule` is ``split_at_band_change``, CGRateS's rule):
when the row pricing a call changes during it (a peak/off-peak boundary, midnight, a
calendar day), the call is priced in parts (`split_groups`). The call's chargeable time is
walked in billing blocks from 0: each block is priced by the row in force at the moment it
starts, and sized by that row's rate group at that point: a block that starts a group (the
call's first block, or a group's start) is the group's ``first_s``, any other ``next_s``. A
part runs until the next band change or group start; its last block is rounded up whole, so
a block that starts before a boundary runs past it at its own price (increments continue
across the boundary, as in CGRateS) and the next part starts after it. Maximum length, free
seconds, minimum, connect fee, MaxCost and rounding are those of the row at the call's start.
With no change during the call this is exactly the single-row price above.

Examples: 61 s at 0.013/min on 60/60 bills 120 s = 0.026; 83 s at 0.06/min on 1/1 = 0.083;
31 s on 15/15 bills 45 s. Tiered: 0.09/min on 60/60 for the first minute, then 0.03/min on
1/1 from 60 s: a 95 s call bills 60 s at 0.09/min + 35 s at 0.03/min = 0.09 + 0.0175 = 0.1075.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext

from telbill.domain.money import DECIMAL_CONTEXT, round_money
from telbill.domain.tariffs import (
    DEFAULT_INCREMENT,
    DEFAULT_MAX_CALL_S,
    MAX_COST_DISCONNECT,
    Increment,
    RateRow,
    RateTier,
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


def _rounded_up(seconds: int, increment: Increment) -> int:
    """`seconds` (> 0) rounded up to ``first/next``: the first block, then started blocks."""
    first, nxt = increment.first_s, increment.next_s
    if seconds <= first:
        return first
    return first + -(-(seconds - first) // nxt) * nxt


def billed_units(quantity: int, increment: Increment) -> int:
    """Data bytes or generic units billed for `quantity`: 0 for 0, else rounded up to the
    increment ``first/next`` counted in units."""
    return 0 if quantity <= 0 else _rounded_up(quantity, increment)


def check_tiers(increment: Increment, tiers: tuple[RateTier, ...]) -> None:
    """Raise InvalidInput unless the tiers start in increasing order and every group before
    the last holds a whole number of its increments (see the module rule)."""
    start, group_increment = 0, increment
    for tier in tiers:
        if not isinstance(tier, RateTier) or not tier.rate.is_finite() or tier.rate < 0:
            raise InvalidInput(
                f"a rate tier must be a RateTier with a finite, non-negative rate: {tier!r}"
            )
        length = tier.start_s - start
        if length <= 0:
            raise InvalidInput(
                f"rate tiers must start in increasing order: {tier.start_s} s after {start} s"
            )
        if _rounded_up(length, group_increment) != length:
            raise InvalidInput(
                f"the rate group from {start} s to {tier.start_s} s is not a whole number of "
                f"its increment {group_increment}"
            )
        start, group_increment = tier.start_s, tier.increment


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
    tiers: tuple[RateTier, ...] = ()  # later rate groups (module rule), by start_s
    max_cost: Decimal | None = None  # cap of the exact cost (module rule); None: no cap
    max_cost_strategy: str | None = None

    def __post_init__(self) -> None:
        if self.tiers:
            check_tiers(self.increment, self.tiers)

    @classmethod
    def for_row(cls, row: RateRow, settings: TariffSettings) -> TimedPrice:
        """The timed price of a tariff row under its tariff's settings (default increment,
        maximum call length), with the row's decimals and rounding mode when it sets them
        and the tariff's otherwise."""
        return cls(
            rate=row.rate,
            connect_fee=row.connect_fee,
            increment=row.increment or settings.default_increment,
            free_seconds=row.free_seconds,
            min_seconds=row.min_seconds,
            max_call_s=settings.max_call_s,
            decimals=settings.decimals if row.decimals is None else row.decimals,
            rounding=validate_rounding(
                settings.rounding if row.rounding is None else row.rounding
            ),
            tiers=row.tiers,
            max_cost=row.max_cost,
            max_cost_strategy=row.max_cost_strategy if row.max_cost is not None else None,
        )

    def groups(self) -> tuple[tuple[int, Decimal, Increment], ...]:
        """The rate groups as (start_s, rate per minute, increment), group 0 first."""
        return ((0, self.rate, self.increment),) + tuple(
            (tier.start_s, tier.rate, tier.increment) for tier in self.tiers
        )


@dataclass(frozen=True, slots=True)
class GroupSeconds:
    """The billed seconds of a call falling in one rate group, and the group's price."""

    start_s: int
    billed_s: int
    rate: Decimal  # per minute
    increment: Increment


def billed_seconds(duration_s: int, price: TimedPrice) -> int:
    """Seconds billed for a call of `duration_s` seconds (steps 1-5 of the module rule)."""
    if duration_s <= 0:
        return 0
    capped = min(duration_s, price.max_call_s)
    chargeable = capped - price.free_seconds
    if chargeable <= 0:
        return 0
    start, increment = 0, price.increment
    for tier in price.tiers:  # the group the call ends in: the last one starting before it
        if tier.start_s >= chargeable:
            break
        start, increment = tier.start_s, tier.increment
    billed = start + _rounded_up(chargeable - start, increment)
    return max(billed, price.min_seconds)


def billed_groups(duration_s: int, price: TimedPrice) -> tuple[GroupSeconds, ...]:
    """The billed seconds of a call cut into its rate groups (one group without tiers);
    groups the billed time does not reach are left out, so a free call gives ()."""
    billed = billed_seconds(duration_s, price)
    groups = price.groups()
    result: list[GroupSeconds] = []
    for k, (start, rate, increment) in enumerate(groups):
        if billed <= start:
            break
        end = groups[k + 1][0] if k + 1 < len(groups) else billed
        result.append(GroupSeconds(start, min(billed, end) - start, rate, increment))
    return tuple(result)


def unrounded_cost(duration_s: int, price: TimedPrice) -> Decimal:
    """Exact cost before the final rounding (connect fee included when duration > 0), capped
    at the price's MaxCost when it has one."""
    cost = uncapped_cost(duration_s, price)
    if price.max_cost is not None and cost > price.max_cost:
        return price.max_cost
    return cost


def uncapped_cost(duration_s: int, price: TimedPrice) -> Decimal:
    """Exact cost before the final rounding and before any MaxCost cap."""
    if duration_s <= 0:
        return Decimal(0)
    with localcontext(DECIMAL_CONTEXT):
        if not price.tiers:
            return price.rate * billed_seconds(duration_s, price) / SECONDS_PER_MINUTE + (
                price.connect_fee
            )
        per_minute_seconds = sum(
            (group.rate * group.billed_s for group in billed_groups(duration_s, price)),
            Decimal(0),
        )
        return per_minute_seconds / SECONDS_PER_MINUTE + price.connect_fee


def timed_cost(duration_s: int, price: TimedPrice) -> Decimal:
    """Cost of a call of `duration_s` seconds, rounded once per the price's decimals/mode."""
    return round_money(unrounded_cost(duration_s, price), price.decimals, price.rounding)


def _group_at(price: TimedPrice, position: int) -> tuple[int, Decimal, Increment, int | None]:
    """The rate group of `price` holding `position` (seconds of chargeable time): its start,
    rate, increment, and the next group's start (None for the last)."""
    groups = price.groups()
    for k in range(len(groups) - 1, -1, -1):
        start, rate, increment = groups[k]
        if start <= position:
            following = groups[k + 1][0] if k + 1 < len(groups) else None
            return start, rate, increment, following
    raise AssertionError("group 0 starts at 0")  # pragma: no cover


def split_groups(
    duration_s: int, parts: tuple[tuple[int, TimedPrice], ...]
) -> tuple[GroupSeconds, ...]:
    """The billed stretch of a call priced by parts (module rule "Band splitting").

    `parts`: (offset in seconds from the call's start, price in force from then), the first
    at 0, in increasing order. Returns the billed pieces in order; each names its start in
    chargeable time, billed seconds, rate per minute and the increment that sized it.
    """
    first = parts[0][1]
    if duration_s <= 0:
        return ()
    capped = min(duration_s, first.max_call_s)
    chargeable = capped - first.free_seconds
    if chargeable <= 0:
        return ()
    # Band changes in chargeable time (the free seconds come off the start).
    cuts = [(max(offset - first.free_seconds, 0), price) for offset, price in parts]
    pieces: list[GroupSeconds] = []
    position, part = 0, 0
    while position < chargeable:
        while part + 1 < len(cuts) and cuts[part + 1][0] <= position:
            part += 1
        price = cuts[part][1]
        group_start, rate, increment, next_group = _group_at(price, position)
        ends = [chargeable]
        if part + 1 < len(cuts):
            ends.append(cuts[part + 1][0])
        if next_group is not None:
            ends.append(next_group)
        length = min(ends) - position
        first_block = increment.first_s if position == group_start else increment.next_s
        billed = _rounded_up(length, Increment(first_block, increment.next_s))
        pieces.append(GroupSeconds(position, billed, rate, increment))
        position += billed
    last = cuts[part][1]
    while position < first.min_seconds:  # the minimum extends the stretch, priced as it falls
        _, rate, increment, next_group = _group_at(last, position)
        end = first.min_seconds if next_group is None else min(next_group, first.min_seconds)
        pieces.append(GroupSeconds(position, end - position, rate, increment))
        position = end
    return tuple(pieces)


def split_cost(duration_s: int, parts: tuple[tuple[int, TimedPrice], ...]) -> Decimal:
    """Exact cost of a call priced by parts, before the final rounding: the pieces of
    `split_groups` plus the first row's connect fee, capped at its MaxCost."""
    if duration_s <= 0:
        return Decimal(0)
    first = parts[0][1]
    with localcontext(DECIMAL_CONTEXT):
        per_minute_seconds = sum(
            (g.rate * g.billed_s for g in split_groups(duration_s, parts)), Decimal(0)
        )
        cost = per_minute_seconds / SECONDS_PER_MINUTE + first.connect_fee
    if first.max_cost is not None and cost > first.max_cost:
        return first.max_cost
    return cost


def disconnect_after_s(price: TimedPrice) -> int | None:
    """For a ``*disconnect`` MaxCost: the call length at which real-time authorisation ends
    the call, i.e. the end of the billing increment during which its cost first reaches
    ``max_cost`` (CGRateS lets that increment run). None when there is no such cap or the
    longest call (``max_call_s``) costs less."""
    cap = price.max_cost
    if cap is None or price.max_cost_strategy != MAX_COST_DISCONNECT:
        return None
    if uncapped_cost(price.max_call_s, price) < cap:
        return None
    low, high = 0, price.max_call_s  # cost(low) < cap <= cost(high)
    while high - low > 1:
        middle = (low + high) // 2
        if uncapped_cost(middle, price) < cap:
            low = middle
        else:
            high = middle
    return min(billed_seconds(high, price), price.max_call_s)


def max_affordable_seconds(
    available: Decimal,
    price: TimedPrice,
    cost_of: Callable[[int], Decimal] | None = None,
) -> int:
    """Largest duration in seconds whose cost is <= `available`, capped at ``max_call_s``.

    Cost is non-decreasing in duration (billed seconds only grow, and with tiers each added
    billed second is priced by its group's non-negative rate), so a binary search over
    [0, max_call_s] is exact. `cost_of` replaces :func:`timed_cost` when a plan changes the
    price (a markup). Returns 0 when not even one second can be afforded.
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
    "GroupSeconds",
    "TimedPrice",
    "billed_groups",
    "billed_seconds",
    "billed_units",
    "check_tiers",
    "disconnect_after_s",
    "max_affordable_seconds",
    "split_cost",
    "split_groups",
    "timed_cost",
    "uncapped_cost",
    "unrounded_cost",
    "validate_rounding",
]
