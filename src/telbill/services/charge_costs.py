"""Carrier cost of the legs a CDR chunk or a session prices, for margin (`domain.costs`).

The cost tariff of a plan (`ChargingPlan.cost_tariff_name`: a markup plan's own tariff, a
fixed-price plan's `cost_tariff`) is taken in the version in force at the usage's start,
like the price. Plain outbound calls are costed with the numpy batch rater of that version
without a plan, bit-for-bit equal to `rate_event`; everything else, and every call the batch
rater hands back without a row, is costed one event at a time (`domain.costs`). A markup
plan's leg rated one by one already carries its cost (`Explanation.cost`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from telbill.domain.batch import CdrColumns
from telbill.domain.batch import Status as BatchStatus
from telbill.domain.costs import costs_by_leg
from telbill.domain.lookup import TariffIndex
from telbill.domain.money import to_micros
from telbill.domain.plans import ChargingPlan, Pricing
from telbill.domain.rating import Charge, Leg
from telbill.domain.tariffs import Direction, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import TelbillError
from telbill.services.plans import TariffCache, TariffRef


class PricedLeg(Protocol):
    """A priced leg: its name, and its `Charge` when it was rated one by one."""

    @property
    def leg(self) -> str: ...

    @property
    def charge(self) -> Charge | None: ...


@dataclass(frozen=True, slots=True)
class CostRequest:
    """One rated event: its plan, the currency it was charged in and its legs in order."""

    event: UsageEvent
    plan: ChargingPlan
    currency: str
    legs: Sequence[PricedLeg]
    scope: int | None = None  # the customer's provider, whose catalogue names the tariff


def cost_index_at(
    cache: TariffCache, plan: ChargingPlan, at: datetime, *, scope: int | None = None
) -> TariffIndex | None:
    """The plan's cost tariff in the version in force at `at` (None: no cost tariff, or
    none in force then), in the catalogue of the customer's provider `scope`. Reads the
    database: call it outside a writing transaction."""
    name = plan.cost_tariff_name
    if name is None or plan.pricing is Pricing.RELATIVE:
        return None  # a markup plan's charges carry their cost
    try:
        return cache.at((scope, name), at)
    except TelbillError:
        return None


def leg_cost_micros(
    cache: TariffCache, requests: Sequence[CostRequest], *, columns: Any = CdrColumns
) -> list[list[int | None]]:
    """Cost in micro-units of every leg of every request (None: unknown), in order.

    `columns`: the batch column builder (`CdrColumns`); the charging service passes its
    own so that one switch sends prices and costs through the same path."""
    out: list[list[int | None] | None] = [None] * len(requests)
    groups: dict[tuple[TariffRef, int], list[int]] = {}
    single: list[tuple[int, TariffRef, int]] = []
    call = Leg.CALL.value
    for i, request in enumerate(requests):
        cost_name = request.plan.cost_tariff_name
        charges = [leg.charge for leg in request.legs]
        if cost_name is None:
            out[i] = [None] * len(charges)
            continue
        if request.plan.pricing is Pricing.RELATIVE and all(c is not None for c in charges):
            out[i] = [to_micros(c.explanation.cost) for c in charges if c is not None]
            continue
        try:
            name = (request.scope, cost_name)
            version = cache.version_at(name, request.event.start)
        except TelbillError:
            out[i] = [None] * len(charges)
            continue
        event = request.event
        plain_call = len(request.legs) == 1 and request.legs[0].leg == call
        if plain_call and event.service is Service.VOICE and event.direction is Direction.OUTBOUND:
            groups.setdefault((name, version), []).append(i)
        else:
            single.append((i, name, version))
    for (name, version), members in groups.items():
        rater = cache.batch_rater(name, version, None, Service.VOICE, Direction.OUTBOUND)
        built, batched, rest = columns.from_events([requests[m].event for m in members])
        single.extend((members[r], name, version) for r in rest)
        if not batched:
            continue
        result = rater.rate(built)
        costs, rows, status = (
            result.cost_micros.tolist(),
            result.row.tolist(),
            result.status.tolist(),
        )
        ok, currency = BatchStatus.OK, rater.index.currency
        for column, member in enumerate(batched):
            i = members[member]
            if status[column] != ok or rows[column] < 0:
                single.append((i, name, version))  # rate_event gives the exact answer
            else:
                out[i] = [costs[column] if currency == requests[i].currency else None]
    for i, name, version in single:
        request = requests[i]
        by_leg = costs_by_leg(request.event, cache.index(name, version), request.currency)
        out[i] = [
            None if by_leg is None or leg.leg not in by_leg else to_micros(by_leg[leg.leg])
            for leg in request.legs
        ]
    return [costs if costs is not None else [] for costs in out]


__all__ = ["CostRequest", "PricedLeg", "cost_index_at", "leg_cost_micros"]
