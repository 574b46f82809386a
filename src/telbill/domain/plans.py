"""Charging plans: what an account is sold, as far as pricing one event is concerned.

A plan prices usage either with FIXED prices (the tariff it names is a retail price list,
charged as is) or RELATIVE to cost (the tariff is a carrier's cost list; the price is the
cost plus `markup_percent`, and at least `min_margin` above the cost when the cost is above
zero). The markup is applied to the exact, unrounded cost; the charge is rounded once after.

A plan also says which call classes an account may make (incoming, public network, local
extensions, extended local): a refused class raises `CallClassNotAllowed`. Payment mode
(prepaid/postpaid), credit limit and cut-off policy (hard: cut the call when the money is
gone; soft: let a call in progress finish) are carried here for the charging services.

Carrier cost (for margin): a RELATIVE plan's cost is its own tariff before markup; a FIXED
plan has a known cost only when it names a `cost_tariff` to rate the same usage against
(`cost_tariff_name`); otherwise the cost is unknown (None, never 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from enum import StrEnum

from telbill.domain.money import DECIMAL_CONTEXT
from telbill.errors import CallClassNotAllowed, InvalidInput


class Pricing(StrEnum):
    FIXED = "fixed"
    RELATIVE = "relative"


class CallClass(StrEnum):
    INCOMING = "incoming"
    PUBLIC_NETWORK = "public_network"
    LOCAL_EXTENSION = "local_extension"
    EXTENDED_LOCAL = "extended_local"


class PaymentMode(StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class CutOffPolicy(StrEnum):
    HARD = "hard"
    SOFT = "soft"


ALL_CALL_CLASSES = frozenset(CallClass)


@dataclass(frozen=True, slots=True)
class ChargingPlan:
    """A plan's pricing and policy fields (recurring fees and packages live elsewhere)."""

    name: str
    tariff: str
    pricing: Pricing = Pricing.FIXED
    markup_percent: Decimal = Decimal(0)
    min_margin: Decimal = Decimal(0)
    allowed_call_classes: frozenset[CallClass] = field(default=ALL_CALL_CLASSES)
    payment: PaymentMode = PaymentMode.PREPAID
    credit_limit: Decimal = Decimal(0)  # postpaid: how far below zero a balance may go
    cut_off: CutOffPolicy = CutOffPolicy.HARD
    cost_tariff: str | None = None  # fixed prices only: the carrier's cost list

    def __post_init__(self) -> None:
        if self.markup_percent < 0 or self.min_margin < 0:
            raise InvalidInput("markup_percent and min_margin must not be negative")
        if self.pricing is Pricing.FIXED and (self.markup_percent or self.min_margin):
            raise InvalidInput("a fixed-price plan takes no markup or minimum margin")
        if self.credit_limit < 0:
            raise InvalidInput("credit_limit must not be negative")
        if self.cost_tariff is not None and self.pricing is Pricing.RELATIVE:
            raise InvalidInput(
                "a markup plan's tariff is its cost tariff: it takes no separate cost tariff"
            )

    @property
    def cost_tariff_name(self) -> str | None:
        """The tariff that gives this plan's carrier cost (None: cost unknown)."""
        return self.tariff if self.pricing is Pricing.RELATIVE else self.cost_tariff

    def check_call_class(self, call_class: CallClass) -> None:
        """Raise CallClassNotAllowed when this plan refuses `call_class`."""
        if call_class not in self.allowed_call_classes:
            raise CallClassNotAllowed(
                f"plan {self.name!r} does not allow {call_class.value.replace('_', ' ')} calls",
                plan=self.name,
                call_class=call_class.value,
            )

    def price(self, cost: Decimal) -> Decimal:
        """Exact (unrounded) price of a cost under this plan."""
        if self.pricing is Pricing.FIXED or cost <= 0:
            return cost
        with localcontext(DECIMAL_CONTEXT):
            marked_up = cost + cost * self.markup_percent / 100
            return max(marked_up, cost + self.min_margin)


__all__ = [
    "ALL_CALL_CLASSES",
    "CallClass",
    "ChargingPlan",
    "CutOffPolicy",
    "PaymentMode",
    "Pricing",
]
