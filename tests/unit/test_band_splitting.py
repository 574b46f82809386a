"""Band splitting: a call crossing a time-band boundary under `split_at_band_change` is priced
by parts, each billing block by the row in force when it starts (domain/increments.py,
"Band splitting"); under `price_at_start` (native default) wholly by the band of its start."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from telbill.adapters.formats.cgrates import read_cgrates_folder
from telbill.domain.increments import (
    TimedPrice,
    billed_seconds,
    split_cost,
    split_groups,
    unrounded_cost,
)
from telbill.domain.lookup import TariffIndex, compile_tariff
from telbill.domain.money import DECIMAL_CONTEXT
from telbill.domain.rating import explain_text, max_affordable_call_seconds, rate_event
from telbill.domain.tariffs import (
    PRICE_AT_START,
    SPLIT_AT_BAND_CHANGE,
    Increment,
    RateRow,
    RateTier,
    Tariff,
    TariffSettings,
)
from telbill.domain.usage import UsageEvent

WEEKDAYS = frozenset({1, 2, 3, 4, 5})
WEEKEND = frozenset({6, 7})
BEFORE_SIX = datetime(2026, 3, 4, 17, 59, 30, tzinfo=UTC)  # a Wednesday
FRIDAY_BEFORE_MIDNIGHT = datetime(2026, 3, 6, 23, 59, tzinfo=UTC)
RETAIL = Path(__file__).resolve().parents[1] / "data" / "cgrates" / "retail"


def banded(increment: Increment, rule: str = SPLIT_AT_BAND_CHANGE) -> TariffIndex:
    rows = (
        RateRow("44", "UK peak", Decimal("0.12"), increment=increment, weekdays=WEEKDAYS,
                hours=(time(8), time(18))),
        RateRow("44", "UK off-peak", Decimal("0.06"), increment=increment),
        RateRow("44", "UK weekend", Decimal("0.03"), increment=increment, weekdays=WEEKEND),
    )  # fmt: skip
    return compile_tariff(Tariff("t", TariffSettings("EUR", band_rule=rule), rows))


def call(seconds: int, start: datetime = BEFORE_SIX) -> UsageEvent:
    return UsageEvent("c", "acme", "+442079460000", start=start, duration_s=seconds)


def test_a_call_over_six_pm_is_priced_by_each_band_under_the_split_rule() -> None:
    # block 1 starts 17:59:30 (peak, runs to 18:00:30): 0.12; block 2 starts 18:00:30
    # (off-peak): 30 s rounded up to 60 s: 0.06
    assert rate_event(call(90), banded(Increment(60, 60))).total == Decimal("0.18")
    # the same call priced wholly at its start band: 120 s x 0.12/60
    assert rate_event(call(90), banded(Increment(60, 60), PRICE_AT_START)).total == Decimal("0.24")


def test_per_second_increments_split_exactly_at_the_boundary() -> None:
    # 30 s x 0.12/60 + 60 s x 0.06/60
    assert rate_event(call(90), banded(Increment(1, 1))).total == Decimal("0.12")


def test_a_call_over_midnight_into_the_weekend_takes_the_weekend_rate() -> None:
    # Friday 23:59 off-peak 60 s = 0.06, then Saturday 60 s at 0.03
    event = call(120, FRIDAY_BEFORE_MIDNIGHT)
    assert rate_event(event, banded(Increment(60, 60))).total == Decimal("0.09")


def test_explanation_lists_each_band_part() -> None:
    charge = rate_event(call(90), banded(Increment(60, 60))).charges[0]
    assert charge.explanation.split and charge.billed_units == 120
    text = explain_text(charge)
    assert "band part from 0 s: 60 s at 0.12" in text
    assert "band part from 60 s: 60 s at 0.06" in text


def test_authorisation_affords_the_cheaper_band_after_the_boundary() -> None:
    index = banded(Increment(60, 60))
    # 0.18 pays the peak minute and the off-peak minute after it (120 s); at the start
    # band's price it would pay one minute only
    assert max_affordable_call_seconds(Decimal("0.18"), call(0), index) == 120
    at_start = banded(Increment(60, 60), PRICE_AT_START)
    assert max_affordable_call_seconds(Decimal("0.18"), call(0), at_start) == 60


def test_cgrates_import_splits_a_call_at_the_evening_boundary() -> None:
    plan = read_cgrates_folder(RETAIL)
    name = "acme.com:call:*any"
    settings = plan.settings_for(name, TariffSettings("EUR"))
    assert settings.band_rule == SPLIT_AT_BAND_CHANGE
    index = compile_tariff(Tariff(name, settings, tuple(plan.tariffs[name])))
    start = datetime(2026, 3, 4, 18, 59, 30, tzinfo=UTC)
    event = UsageEvent("c", "acme", "+493012345678", start=start, duration_s=61)
    # 60 s peak (0.012/min) + 60 s off-peak (0.006/min) + 0.05 connect fee
    assert rate_event(event, index, labels=False).total == Decimal("0.068")


# --- properties ---------------------------------------------------------------------------

increments = st.sampled_from(
    [Increment(1, 1), Increment(6, 6), Increment(30, 6), Increment(60, 60), Increment(60, 1)]
)
rates = st.decimals(min_value=0, max_value=2, places=4)


@st.composite
def prices(draw: st.DrawFn) -> TimedPrice:
    increment = draw(increments)
    tiers: tuple[RateTier, ...] = ()
    if draw(st.booleans()):
        start = increment.first_s * draw(st.integers(1, 3))
        tiers = (RateTier(start, draw(rates), draw(increments)),)
    return TimedPrice(
        rate=draw(rates), connect_fee=draw(rates), increment=increment, tiers=tiers,
        min_seconds=draw(st.sampled_from([0, 0, 30, 90])),
        free_seconds=draw(st.sampled_from([0, 0, 5])),
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    first=prices(),
    later=st.lists(st.tuples(st.integers(1, 4000), prices()), max_size=3),
    duration=st.integers(0, 4000),
)
def test_split_parts_sum_to_the_whole(
    first: TimedPrice, later: list[tuple[int, TimedPrice]], duration: int
) -> None:
    parts = ((0, first), *sorted(later, key=lambda part: part[0]))
    offsets = [offset for offset, _ in parts]
    if len(set(offsets)) != len(offsets):
        return
    pieces = split_groups(duration, parts)
    with localcontext(DECIMAL_CONTEXT):
        total = sum((p.rate * p.billed_s for p in pieces), Decimal(0)) / 60 + first.connect_fee
    assert split_cost(duration, parts) == (total if duration > 0 else 0)
    # the pieces tile the billed stretch [0, billed) without gap or overlap
    position = 0
    for piece in pieces:
        assert piece.start_s == position and piece.billed_s > 0
        position += piece.billed_s
    assert position >= min(duration, first.max_call_s) - first.free_seconds


@settings(max_examples=300, deadline=None)
@given(price=prices(), duration=st.integers(0, 4000))
def test_split_price_equals_the_single_band_price_when_no_boundary_is_crossed(
    price: TimedPrice, duration: int
) -> None:
    parts = ((0, price),)
    assert split_cost(duration, parts) == unrounded_cost(duration, price)
    assert sum(p.billed_s for p in split_groups(duration, parts)) == billed_seconds(duration, price)


@settings(max_examples=200, deadline=None)
@given(
    increment=increments,
    start_minute=st.integers(0, 7 * 24 * 60 - 1),
    duration=st.integers(0, 3600),
)
def test_a_call_inside_one_band_costs_the_same_under_both_rules(
    increment: Increment, start_minute: int, duration: int
) -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=start_minute)
    split, at_start = banded(increment), banded(increment, PRICE_AT_START)
    if split.band_changes(start, start + timedelta(seconds=duration)):
        return  # crosses a band edge: the rules may differ
    event = call(duration, start)
    assert rate_event(event, split).total == rate_event(event, at_start).total


@settings(max_examples=200, deadline=None)
@given(
    increment=increments,
    start_minute=st.integers(0, 7 * 24 * 60 - 1),
    first=st.integers(0, 3600),
    second=st.integers(0, 3600),
)
def test_a_longer_split_call_never_costs_less(
    increment: Increment, start_minute: int, first: int, second: int
) -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=start_minute)
    index = banded(increment)
    short, long = sorted((first, second))
    assert rate_event(call(short, start), index).total <= rate_event(call(long, start), index).total


def test_native_settings_default_to_pricing_at_the_start() -> None:
    assert TariffSettings("EUR").band_rule == PRICE_AT_START
    assert replace(TariffSettings("EUR"), band_rule=SPLIT_AT_BAND_CHANGE).band_rule == (
        SPLIT_AT_BAND_CHANGE
    )
