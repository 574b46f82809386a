"""End to end: a CGRateS tariff-plan folder imported by `adapters/formats/cgrates.py` and
rated by `domain/rating.py` (and the batch rater) gives the costs worked out by hand.

The fixture `tests/data/cgrates/retail`: German mobiles 0.09/min for the first whole minute
then 0.03/min by the second (a GroupIntervalStart at 60s); German landlines 0.012/min peak
(weekdays 08:00-19:00) and 0.006/min off-peak on 60/60 with a 0.05 connect fee; the US at
0.0001 per second; France (vip) 0.02/min on 60/6 plus 0.01; wholesale ``*any`` 0.005/min on
6/6. Rounding per destination rate: ``*up`` to 4 decimals, US ``*middle`` to 6, wholesale
``*middle`` to 4.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from telbill.adapters.formats.cgrates import read_cgrates_folder
from telbill.domain.batch import CdrColumns, compile_batch
from telbill.domain.lookup import TariffIndex, compile_tariff
from telbill.domain.money import to_micros
from telbill.domain.rating import explain_text, rate_event
from telbill.domain.tariffs import Tariff, TariffSettings
from telbill.domain.usage import UsageEvent
from telbill.errors import NoRate

RETAIL = Path(__file__).resolve().parents[1] / "data" / "cgrates" / "retail"
WEDNESDAY_NOON = datetime(2026, 3, 4, 12, tzinfo=UTC)
WEDNESDAY_EVENING = datetime(2026, 3, 4, 21, tzinfo=UTC)
SATURDAY_NOON = datetime(2026, 3, 7, 12, tzinfo=UTC)
NEXT_YEAR_EVENING = datetime(2027, 3, 3, 21, tzinfo=UTC)  # a Wednesday, after the 2027 plan

DE_MOBILE = "+4915112345678"
DE_LANDLINE = "+493012345678"
US = "+12125551234"
FR = "+33123456789"
JAPAN = "+81312345678"


def import_folder(folder: Path) -> dict[str, TariffIndex]:
    plan = read_cgrates_folder(folder)
    assert plan.errors == []
    return {
        name: compile_tariff(
            Tariff(name, plan.settings_for(name, TariffSettings("EUR")), tuple(rows))
        )
        for name, rows in plan.tariffs.items()
    }


@pytest.fixture(scope="module")
def tariffs() -> dict[str, TariffIndex]:
    return import_folder(RETAIL)


def cost(index: TariffIndex, to: str, seconds: int, at: datetime = WEDNESDAY_NOON) -> Decimal:
    event = UsageEvent(id="c1", account="acme", to_number=to, start=at, duration_s=seconds)
    return rate_event(event, index, labels=False).total


@pytest.mark.parametrize(
    ("to", "seconds", "at", "expected"),
    [
        # first minute whole at 0.09, then 35 s x 0.03/60 = 0.0175
        (DE_MOBILE, 95, WEDNESDAY_NOON, "0.1075"),
        (DE_MOBILE, 30, WEDNESDAY_NOON, "0.09"),
        (DE_MOBILE, 61, WEDNESDAY_NOON, "0.0905"),
        # 61 s on 60/60 = 120 s x 0.012/60 + 0.05
        (DE_LANDLINE, 61, WEDNESDAY_NOON, "0.074"),
        # off-peak: 120 s x 0.006/60 + 0.05
        (DE_LANDLINE, 61, WEDNESDAY_EVENING, "0.062"),
        # the mobile rate binds weekdays only: at the weekend the landline off-peak rate
        (DE_MOBILE, 61, SATURDAY_NOON, "0.062"),
        # 2027 plan: peak all week; mobiles keep their two groups
        (DE_LANDLINE, 61, NEXT_YEAR_EVENING, "0.074"),
        (DE_MOBILE, 150, NEXT_YEAR_EVENING, "0.135"),
        # 83 s x 0.0001 per second
        (US, 83, WEDNESDAY_NOON, "0.0083"),
    ],
)
def test_retail_subject_costs_match_the_hand_computation(
    tariffs: dict[str, TariffIndex], to: str, seconds: int, at: datetime, expected: str
) -> None:
    assert cost(tariffs["acme.com:call:*any"], to, seconds, at) == Decimal(expected)


def test_vip_subject_prices_france_and_falls_back_to_the_retail_rates(
    tariffs: dict[str, TariffIndex],
) -> None:
    vip = tariffs["acme.com:call:vip"]
    # 67 s on 60/6 = 72 s x 0.02/60 + 0.01
    assert cost(vip, FR, 67) == Decimal("0.034")
    assert cost(vip, US, 83) == Decimal("0.0083")
    assert cost(vip, DE_MOBILE, 95) == Decimal("0.1075")


def test_wholesale_any_destination_prices_every_number(tariffs: dict[str, TariffIndex]) -> None:
    wholesale = tariffs["acme.com:call:wholesale"]
    # 7 s on 6/6 = 12 s x 0.005/60; 100 s = 102 s x 0.005/60 = 0.0085
    assert cost(wholesale, JAPAN, 7) == Decimal("0.001")
    assert cost(wholesale, DE_MOBILE, 100) == Decimal("0.0085")


def test_explanation_of_an_imported_tiered_call_shows_both_groups(
    tariffs: dict[str, TariffIndex],
) -> None:
    event = UsageEvent(id="c1", account="acme", to_number=DE_MOBILE, start=WEDNESDAY_NOON,
                       duration_s=95)
    (charge,) = rate_event(event, tariffs["acme.com:call:*any"], labels=False).charges
    text = explain_text(charge)
    assert "rate group from 0 s: 60 s at 0.09 per minute (increment 60/60)" in text
    assert "rate group from 60 s: 35 s at 0.03 per minute (increment 1/1)" in text
    assert "rounded once to 4 decimals (ROUND_UP): 0.1075" in text


def test_rows_round_per_destination_rate_when_a_tariff_mixes_roundings(tmp_path: Path) -> None:
    files = {
        "Destinations.csv": "#Id,Prefix\nDST_DE,49\nDST_FR,33\n",
        "Rates.csv": "#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\n"
        "RT_DE,0,0.0137,60s,1s,0s\nRT_DE,0,0.011,60s,1s,60s\nRT_FR,0,0.0137,60s,1s,0s\n",
        "DestinationRates.csv": "#Id,DestinationId,RatesTag,RoundingMode,RoundingDecimals,"
        "MaxCost,MaxCostStrategy\nDR,DST_DE,RT_DE,*up,2,0,\nDR,DST_FR,RT_FR,*middle,4,0,\n",
        "Timings.csv": "#Id,Years,Months,MonthDays,WeekDays,Time\n",
        "RatingPlans.csv": "#Id,DestinationRatesId,TimingTag,Weight\nRP,DR,*any,10\n",
        "RatingProfiles.csv": "#Tenant,Category,Subject,ActivationTime,RatingPlanId,"
        "RatesFallbackSubject\nt,call,s,2026-01-01T00:00:00Z,RP,\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    index = import_folder(tmp_path)["t:call:s"]
    # Germany: 60 s x 0.0137/60 + 1 s x 0.011/60 = 0.0138833..., *up to 2 decimals = 0.02
    assert cost(index, DE_LANDLINE, 61) == Decimal("0.02")
    # France: 61 s x 0.0137/60 = 0.0139283..., *middle to 4 decimals = 0.0139
    assert cost(index, FR, 61) == Decimal("0.0139")
    # The batch rater rounds each row its own way too, on its fast path.
    numbers = [DE_LANDLINE, FR, DE_LANDLINE, FR]
    durations = [61, 61, 3000, 1]
    cdrs = CdrColumns.from_strings(numbers, durations, [int(WEDNESDAY_NOON.timestamp())] * 4)
    result = compile_batch(index).rate(cdrs)
    assert result.fallbacks == 0
    expected = [to_micros(cost(index, n, d)) for n, d in zip(numbers, durations, strict=True)]
    assert result.cost_micros.tolist() == expected


@pytest.mark.parametrize("name", ["acme.com:call:*any", "acme.com:call:vip",
                                  "acme.com:call:wholesale"])
def test_batch_rating_of_the_imported_tariffs_equals_rate_event(
    tariffs: dict[str, TariffIndex], name: str
) -> None:
    index = tariffs[name]
    rng = np.random.default_rng(7)
    numbers = [str(n) for n in rng.choice([DE_MOBILE, DE_LANDLINE, US, FR, JAPAN], size=200)]
    durations = rng.integers(0, 4000, size=200).tolist()
    starts = rng.integers(int(WEDNESDAY_NOON.timestamp()),
                          int(NEXT_YEAR_EVENING.timestamp()), size=200).tolist()
    result = compile_batch(index).rate(CdrColumns.from_strings(numbers, durations, starts))
    for i, (number, seconds, start) in enumerate(zip(numbers, durations, starts, strict=True)):
        event = UsageEvent(id=str(i), account="batch", to_number=number,
                           start=datetime.fromtimestamp(start, UTC), duration_s=seconds)
        try:
            expected = to_micros(rate_event(event, index, labels=False).total)
        except NoRate:  # the batch reports it with cost 0
            expected = 0
        assert int(result.cost_micros[i]) == expected, (number, seconds, start)
    if name == "acme.com:call:wholesale":
        assert result.fallbacks == 0  # the *any row with its own rounding is vectorised
