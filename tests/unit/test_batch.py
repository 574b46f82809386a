"""The numpy batch rater gives bit-for-bit the costs of `rate_event`."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telbill.domain.batch import BatchResult, CdrColumns, Status, compile_batch
from telbill.domain.lookup import TariffIndex, compile_tariff
from telbill.domain.money import to_micros
from telbill.domain.plans import CallClass, ChargingPlan, Pricing
from telbill.domain.rating import rate_event
from telbill.domain.tariffs import (
    Increment,
    NumberType,
    RateRow,
    RateTier,
    Tariff,
    TariffSettings,
)
from telbill.domain.usage import UsageEvent
from telbill.errors import CallClassNotAllowed, InvalidInput, NoRate

BASE_S = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
CHANGE = datetime(2026, 3, 1, 12, tzinfo=UTC)
ROUNDINGS = ["ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_HALF_DOWN", "ROUND_UP", "ROUND_DOWN",
             "ROUND_CEILING", "ROUND_FLOOR", "ROUND_05UP"]


def per_event(index: TariffIndex, cdrs: CdrColumns, i: int,
              plan: ChargingPlan | None = None) -> tuple[int, int, Status]:
    event = UsageEvent(str(i), "acme", cdrs.digits(i),
                       datetime.fromtimestamp(int(cdrs.start_s[i]), UTC),
                       duration_s=int(cdrs.duration_s[i]))
    try:
        charge = rate_event(event, index, plan, labels=False).charges[0]
    except NoRate:
        return 0, 0, Status.NO_RATE
    except InvalidInput:
        return 0, 0, Status.INVALID
    except CallClassNotAllowed:
        return 0, 0, Status.NOT_ALLOWED
    return to_micros(charge.amount), charge.billed_units, Status.OK


def assert_same_as_rate_event(index: TariffIndex, cdrs: CdrColumns, result: BatchResult,
                              plan: ChargingPlan | None = None) -> None:
    for i in range(len(cdrs)):
        expected = per_event(index, cdrs, i, plan)
        got = (int(result.cost_micros[i]), int(result.billed_s[i]), Status(result.status[i]))
        assert got == expected, f"CDR {i} to {cdrs.digits(i)} for {cdrs.duration_s[i]} s"
        if got[2] is Status.OK and got[1] > 0:
            at = datetime.fromtimestamp(int(cdrs.start_s[i]), UTC)
            match = index.lookup(cdrs.digits(i), at=at)
            assert int(result.row[i]) == match.position


rates = st.one_of(
    st.sampled_from(["0", "0.00003", "0.00009", "0.013", "0.06", "0.5", "1.0000001"]),
    st.decimals(min_value=0, max_value=3, places=7).map(str),
)


INCREMENTS = [Increment(1, 1), Increment(6, 6), Increment(30, 6), Increment(15, 15),
              Increment(60, 60), Increment(60, 1)]


@st.composite
def rate_tiers(draw: st.DrawFn, increment: Increment) -> tuple[RateTier, ...]:
    """0 to 2 later rate groups, each group before the last a whole number of increments."""
    tiers: list[RateTier] = []
    start, group_increment = 0, increment
    for _ in range(draw(st.integers(0, 2))):
        blocks = draw(st.integers(0, 4))
        start += group_increment.first_s + blocks * group_increment.next_s
        group_increment = draw(st.sampled_from(INCREMENTS))
        tiers.append(RateTier(start, Decimal(draw(rates)), group_increment))
    return tuple(tiers)


@st.composite
def rate_rows(draw: st.DrawFn) -> RateRow:
    prefix = draw(st.sampled_from(["", "4", "44", "447", "4479", "4420", "33", "331", "1",
                                   "1800", "0", "00", "4479111"]))
    kind = draw(st.sampled_from(["plain", "plain", "plain", "dated_old", "dated_new", "banded",
                                 "typed", "tiered", "tiered"]))
    increment = draw(st.sampled_from([None, *INCREMENTS]))
    tiers: tuple[RateTier, ...] = ()
    if kind == "tiered":
        increment = increment or draw(st.sampled_from(INCREMENTS))
        tiers = draw(rate_tiers(increment))
    return RateRow(
        prefix=prefix,
        destination=f"d{prefix}",
        rate=Decimal(draw(rates)),
        connect_fee=Decimal(draw(st.sampled_from(["0", "0", "0.01", "0.0000005", "0.1"]))),
        increment=increment,
        free_seconds=draw(st.sampled_from([0, 0, 5, 60])),
        min_seconds=draw(st.sampled_from([0, 0, 10, 90])),
        effective_from=CHANGE if kind == "dated_new" else None,
        effective_to=CHANGE if kind == "dated_old" else None,
        hours=(time(8), time(19)) if kind == "banded" else None,
        number_type=NumberType.TOLL_FREE if kind == "typed" else NumberType.ANY,
        tiers=tiers,
        decimals=draw(st.one_of(st.none(), st.integers(0, 6))),
        rounding=draw(st.one_of(st.none(), st.sampled_from(ROUNDINGS))),
    )


@st.composite
def tariffs(draw: st.DrawFn) -> TariffIndex:
    rows = tuple(draw(st.lists(rate_rows(), min_size=0, max_size=12)))
    settings = TariffSettings(
        currency="USD",
        decimals=draw(st.integers(0, 6)),
        rounding=draw(st.sampled_from(ROUNDINGS)),
        max_call_s=draw(st.sampled_from([3600, 100, 7200])),
        default_increment=draw(st.sampled_from([Increment(60, 60), Increment(1, 1)])),
    )
    return compile_tariff(Tariff("t", settings, rows))


@st.composite
def cdr_columns(draw: st.DrawFn) -> CdrColumns:
    count = draw(st.integers(1, 30))
    numbers = draw(st.lists(
        st.tuples(st.sampled_from(["44", "447911", "4420", "33", "1800", "1", "0", "9", ""]),
                  st.integers(0, 11), st.integers(0, 10**11 - 1))
        .map(lambda t: t[0] + str(t[2]).zfill(11)[: t[1]])
        .filter(lambda n: 1 <= len(n) <= 15 and not n.startswith("00")),
        min_size=count, max_size=count))
    durations = draw(st.lists(
        st.one_of(st.sampled_from([0, 0, 1, 59, 60, 61, 3600, 3601, 10_000, -1]),
                  st.integers(0, 5000)),
        min_size=count, max_size=count))
    starts = draw(st.lists(
        st.one_of(st.sampled_from([int(CHANGE.timestamp()) - 1, int(CHANGE.timestamp())]),
                  st.integers(BASE_S, BASE_S + 86_400)),
        min_size=count, max_size=count))
    return CdrColumns.from_strings(numbers, durations, starts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=tariffs(), cdrs=cdr_columns())
def test_batch_costs_equal_rate_event_on_random_cdrs(index: TariffIndex, cdrs: CdrColumns) -> None:
    assert_same_as_rate_event(index, cdrs, compile_batch(index).rate(cdrs))


@settings(max_examples=40, deadline=None)
@given(index=tariffs(), cdrs=cdr_columns(),
       markup=st.sampled_from(["0", "12.5"]), refuse=st.booleans())
def test_batch_with_a_plan_equals_rate_event(index: TariffIndex, cdrs: CdrColumns, markup: str,
                                             refuse: bool) -> None:
    classes = frozenset({CallClass.INCOMING}) if refuse else frozenset(CallClass)
    pricing = Pricing.RELATIVE if markup != "0" else Pricing.FIXED
    plan = ChargingPlan("p", "t", pricing, markup_percent=Decimal(markup),
                        allowed_call_classes=classes)
    result = compile_batch(index, plan=plan).rate(cdrs)
    assert_same_as_rate_event(index, cdrs, result, plan)


def test_simple_tariff_is_rated_on_the_fast_path() -> None:
    rows = (RateRow("44", "UK", Decimal("0.013")),
            RateRow("4420", "London", Decimal("0.06"), increment=Increment(1, 1)))
    index = compile_tariff(Tariff("t", TariffSettings("USD"), rows))
    cdrs = CdrColumns.from_strings(["442071234567", "441234567890", "331234567890"],
                                   [83, 61, 30], [BASE_S] * 3)
    result = compile_batch(index).rate(cdrs)
    assert result.fallbacks == 0
    assert result.cost_micros.tolist() == [83_000, 26_000, 0]
    assert result.status.tolist() == [Status.OK, Status.OK, Status.NO_RATE]


def read_astpp(path: Path) -> Tariff:
    with path.open(newline="") as handle:
        rows = tuple(
            RateRow(prefix=r["prefix"], destination=r["destination"],
                    rate=Decimal(r["rate_per_minute"]), connect_fee=Decimal(r["connect_fee"]),
                    free_seconds=int(r["included_seconds"]), increment=Increment(6, 6))
            for r in csv.DictReader(handle)
        )
    return Tariff("astpp", TariffSettings("USD"), rows)


def test_batch_equals_rate_event_on_the_astpp_deck(astpp_deck: Path) -> None:
    index = compile_tariff(read_astpp(astpp_deck))
    rng = random.Random(7)
    prefixes = [row.prefix for row in index.tariff.rows]
    numbers = [p + "".join(rng.choice("0123456789") for _ in range(12 - len(p)))
               for p in rng.choices(prefixes, k=1500)] + ["999999999999", "88812345678"]
    durations = [rng.choice([0, 1, 6, 7, 59, 61, rng.randint(0, 4000)]) for _ in numbers]
    cdrs = CdrColumns.from_strings(numbers, durations, [BASE_S] * len(numbers))
    result = compile_batch(index).rate(cdrs)
    assert result.fallbacks < len(numbers) // 10
    assert_same_as_rate_event(index, cdrs, result)
    assert np.all(result.cost_micros >= 0)


def test_threaded_batch_gives_the_same_result_as_one_thread() -> None:
    rows = (RateRow("44", "UK", Decimal("0.013")),
            RateRow("4420", "London", Decimal("0.06"), increment=Increment(1, 1),
                    connect_fee=Decimal("0.01")),
            RateRow("33", "France", Decimal("0.02"), free_seconds=5, min_seconds=30))
    rater = compile_batch(compile_tariff(Tariff("t", TariffSettings("USD"), rows)))
    rng = np.random.default_rng(3)
    size = 140_000
    prefixes = np.array([44, 4420, 33, 49])[rng.integers(0, 4, size)]
    number = prefixes * 10**8 + rng.integers(0, 10**8, size)
    cdrs = CdrColumns(number, np.array([len(str(n)) for n in number.tolist()]),
                      rng.integers(0, 4000, size), np.full(size, BASE_S))
    one, two = rater.rate(cdrs), rater.rate(cdrs, threads=2)
    for field in ("cost_micros", "billed_s", "row", "status"):
        assert np.array_equal(getattr(one, field), getattr(two, field))
    assert one.fallbacks == two.fallbacks == 0


def test_usage_events_split_into_batch_columns_and_the_rest() -> None:
    rows = (RateRow("44", "UK", Decimal("0.013")),)
    index = compile_tariff(Tariff("t", TariffSettings("USD"), rows))
    at = datetime(2026, 3, 4, 12, tzinfo=UTC)
    events = [
        UsageEvent("a", "acme", "+442079460000", at, duration_s=61),
        UsageEvent("b", "acme", "+442079460000", at, duration_s=61, speech_s=5),
        UsageEvent("c", "acme", "+442079460000", at.replace(microsecond=5), duration_s=61),
        UsageEvent("d", "acme", "junk", at, duration_s=61),
        UsageEvent("e", "acme", "0044 20 7946 0001", at, answer=at, end=at.replace(minute=2)),
    ]
    columns, batched, rest = CdrColumns.from_events(events)
    assert (batched, rest) == ([0, 4], [1, 2, 3])
    result = compile_batch(index).rate(columns)
    expected = [to_micros(rate_event(events[i], index).total) for i in batched]
    assert result.cost_micros.tolist() == expected == [26_000, 26_000]
