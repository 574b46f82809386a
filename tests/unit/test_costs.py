"""Carrier cost of rated usage (`domain.costs`): pure, no database."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from rating_helpers import call, index_of, row

from telbill.domain.costs import charge_costs, costs_by_leg
from telbill.domain.lookup import compile_tariff
from telbill.domain.plans import ChargingPlan, Pricing
from telbill.domain.rating import rate_event
from telbill.domain.tariffs import Increment, Service, Tariff, TariffSettings

RETAIL = index_of(
    row("44", "0.60", increment=Increment(60, 60)),
    row("1", "0.12", increment=Increment(1, 1)),
    row("", "0.02", service=Service.SPEECH, increment=Increment(1, 1)),
)
CARRIER = index_of(
    row("44", "0.40", increment=Increment(60, 60)),
    row("", "0.01", service=Service.SPEECH, increment=Increment(15, 15)),
)
FIXED = ChargingPlan("retail", "retail", cost_tariff="carrier")
UK, US = "+447700900123", "+15551234567"


def test_fixed_plan_leg_costs_what_the_cost_tariff_charges_with_its_own_increments() -> None:
    event = call(UK, 61, speech_s=20)
    charges = rate_event(event, RETAIL, FIXED).charges
    assert [c.amount for c in charges] == [Decimal("1.20"), Decimal("0.006667")]
    # Speech: 20 s in 15/15 = 30 s at 0.01/min.
    assert charge_costs(event, charges, FIXED, CARRIER) == [Decimal("0.80"), Decimal("0.005")]


def test_cost_is_unknown_without_cost_tariff_or_rate_or_in_another_currency() -> None:
    event = call(US, 61)
    charges = rate_event(event, RETAIL, FIXED).charges
    assert charge_costs(event, charges, FIXED, None) == [None]
    assert charge_costs(event, charges, FIXED, CARRIER) == [None]  # the carrier has no US rate
    euro = compile_tariff(Tariff("euro", TariffSettings(currency="EUR"), (row("1", "0.01"),)))
    assert costs_by_leg(event, euro, "USD") is None


@given(
    seconds=st.integers(min_value=0, max_value=7200),
    speech_s=st.integers(min_value=0, max_value=600),
    markup=st.decimals(min_value=0, max_value=300, places=2),
    min_margin=st.decimals(min_value=0, max_value=1, places=4),
    to=st.sampled_from([UK, US]),
)
def test_markup_plan_cost_is_its_tariff_without_the_plan(
    seconds: int, speech_s: int, markup: Decimal, min_margin: Decimal, to: str
) -> None:
    plan = ChargingPlan("resale", "retail", Pricing.RELATIVE, markup_percent=markup,
                        min_margin=min_margin)  # fmt: skip
    event = call(to, seconds, speech_s=speech_s)
    charges = rate_event(event, RETAIL, plan).charges
    costs = charge_costs(event, charges, plan, None)
    unmarked = rate_event(event, RETAIL, None).charges
    assert costs == [c.amount for c in unmarked]
    for cost, charge in zip(costs, charges, strict=True):
        assert cost is not None and cost <= charge.amount
