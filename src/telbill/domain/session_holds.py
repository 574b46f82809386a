"""Hold arithmetic of a real-time call: what an authorisation holds, what its end takes.

Pure: integers in (micro-units of money, seconds of call-time packages), integers out. The
real-time engine (`services.session_batch`) calls these on wallets it has locked, many
calls per transaction, and writes what they decide in bulk.

* `decide_hold`: a call may last `max_seconds`: the package seconds available first, then
  what the money available affords, capped by the plan's maximum call length; under the
  ``soft`` cut-off any positive balance allows the maximum length. It holds the package
  seconds it counts on and the money the rest costs, never more money than is available.
* `decide_settlement`: at the end the package hold gives what it can of the billed seconds;
  the money due is the price of the seconds it did not cover (`money_share`); the money hold
  gives what it can of that; under ``soft`` the rest is due beyond the hold, under ``hard``
  it is never charged (a hard cut-off never charges more than it held).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from telbill.domain.money import DECIMAL_CONTEXT


def money_share(amount_micros: int, billed_units: int, package_units: int) -> int:
    """Money for the units packages did not cover: amount x uncovered / billed, half-up."""
    if package_units <= 0 or billed_units <= 0:
        return amount_micros
    uncovered = max(billed_units - package_units, 0)
    with localcontext(DECIMAL_CONTEXT):
        share = Decimal(amount_micros) * uncovered / billed_units
        return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class HoldDecision:
    """An allowed call: its length limit and what it holds (package seconds, money)."""

    max_seconds: int
    package_seconds: int
    money_micros: int


def decide_hold(
    *,
    money_available: int,
    package_available: int,
    cap_s: int,
    soft: bool,
    affordable_s: Callable[[int], int],
    cost_micros: Callable[[int], int],
) -> HoldDecision | None:
    """What a priced call may last and hold; None when not one second is affordable.

    Args:
        money_available: micro-units the wallet can spend on this call (floor and other
            holds deducted; may be negative).
        package_available: call-time package seconds it can spend (>= 0).
        cap_s: the longest call the plan and the tariff allow.
        soft: the plan's cut-off is ``soft`` (a positive balance allows `cap_s`).
        affordable_s: the longest call a positive amount of money pays for.
        cost_micros: the price of a call of so many seconds (monotonic in them).
    """
    package_available = max(package_available, 0)
    if soft and money_available + package_available > 0:
        max_seconds = cap_s
    else:
        money_s = 0 if money_available <= 0 else min(cap_s, affordable_s(money_available))
        max_seconds = min(cap_s, package_available + money_s)
    if max_seconds <= 0:
        return None
    package_seconds = min(package_available, max_seconds)
    money = min(
        money_share(cost_micros(max_seconds), max_seconds, package_seconds),
        max(money_available, 0),
    )
    return HoldDecision(max_seconds, package_seconds, money)


@dataclass(frozen=True, slots=True)
class SettleDecision:
    """What an ended call takes: package seconds and money from its holds, and money due
    beyond the money hold (``soft`` only: charged by a debit that may go negative)."""

    package_units: int
    money_due: int
    money_settled: int
    beyond_hold: int

    @property
    def money_charged(self) -> int:
        return self.money_settled + self.beyond_hold


def decide_settlement(
    *,
    amount_micros: int,
    billed_units: int,
    package_held: int,
    money_held: int,
    hard: bool,
) -> SettleDecision:
    """Split the price of an ended call between its holds (module rules).

    `package_held` / `money_held`: what the call's open holds still reserve (0 for a hold it
    never had or that expired under it)."""
    package_units = min(max(billed_units, 0), max(package_held, 0))
    due = money_share(amount_micros, billed_units, package_units)
    settled = min(due, max(money_held, 0))
    beyond = 0 if hard else due - settled
    return SettleDecision(package_units, due, settled, beyond)


__all__ = [
    "HoldDecision",
    "SettleDecision",
    "decide_hold",
    "decide_settlement",
    "money_share",
]
