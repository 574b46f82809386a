"""Carrier cost of rated usage, for margin: pure, like the rating it follows.

Rules:

* The cost of a leg is what the carrier's cost tariff charges for the same usage, with the
  same increments, minimums, connect fees, rate groups and rounding as any rating
  (`rate_event` without a plan): the markup is never part of it.
* A markup (RELATIVE) plan's cost tariff is its own tariff: the cost is the charge's
  explanation's rounded cost before markup (`Explanation.cost`), nothing to rate again.
* A fixed-price plan has a cost only when it names a cost tariff (`ChargingPlan.cost_tariff`).
* Unknown is None, never 0: no cost tariff, no cost rate for the destination, a cost tariff
  in another currency than the charge, or usage the cost tariff cannot price.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from telbill.domain.lookup import TariffIndex
from telbill.domain.plans import ChargingPlan, Pricing
from telbill.domain.rating import Charge, rate_event
from telbill.domain.usage import UsageEvent
from telbill.errors import TelbillError


def costs_by_leg(
    event: UsageEvent, cost_index: TariffIndex, currency: str
) -> dict[str, Decimal] | None:
    """Cost of each leg of `event` (by leg name) rated with `cost_index`; None when unknown
    (the cost tariff's currency is not `currency`, or it cannot price the event)."""
    if cost_index.currency != currency:
        return None
    try:
        rated = rate_event(event, cost_index, None, labels=False)
    except TelbillError:
        return None
    return {charge.leg.value: charge.amount for charge in rated.charges}


def charge_costs(
    event: UsageEvent,
    charges: Sequence[Charge],
    plan: ChargingPlan,
    cost_index: TariffIndex | None,
) -> list[Decimal | None]:
    """Cost of each of `charges` (the rating of `event` under `plan`), in order.

    `cost_index`: the plan's cost tariff in force at the event's start (see
    `ChargingPlan.cost_tariff_name`), None when there is none or it is not in force; a
    markup plan needs none (its charges carry their cost)."""
    if plan.pricing is Pricing.RELATIVE:
        return [charge.explanation.cost for charge in charges]
    if cost_index is None or not charges:
        return [None] * len(charges)
    by_leg = costs_by_leg(event, cost_index, charges[0].currency)
    if by_leg is None:
        return [None] * len(charges)
    return [by_leg.get(charge.leg.value) for charge in charges]


__all__ = ["charge_costs", "costs_by_leg"]
