"""CGRateS tariff-plan folders: groups, rounding, timings, activations, fallback subjects."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telbill.adapters.formats.cgrates import parse_duration_s, read_cgrates_folder
from telbill.domain.tariffs import Increment, RateRow, RateTier, Service, TariffSettings
from telbill.errors import InvalidInput

DATA = Path(__file__).resolve().parents[1] / "data" / "cgrates"
WEEKDAYS = frozenset({1, 2, 3, 4, 5})


@pytest.fixture(scope="module")
def retail() -> dict[str, list[RateRow]]:
    plan = read_cgrates_folder(DATA / "retail")
    assert plan.errors == []
    return plan.tariffs


def only(rows: list[RateRow], prefix: str, **match: object) -> RateRow:
    found = [
        r for r in rows if r.prefix == prefix and all(getattr(r, k) == v for k, v in match.items())
    ]
    assert len(found) == 1, found
    return found[0]


def write_plan(folder: Path, **files: str) -> Path:
    defaults = {
        "Destinations.csv": "#Id,Prefix\nDST_DE,49\n",
        "Rates.csv": "#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\n"
        "RT_A,0,0.01,60s,60s,0s\nRT_B,0,0.02,60s,60s,0s\nRT_C,0,0.03,60s,60s,0s\n",
        "DestinationRates.csv": "#Id,DestinationId,RatesTag,RoundingMode,RoundingDecimals,"
        "MaxCost,MaxCostStrategy\nDR_A,DST_DE,RT_A,*up,4,0,\nDR_B,DST_DE,RT_B,*up,4,0,\n"
        "DR_C,DST_DE,RT_C,*up,4,0,\n",
        "Timings.csv": "#Id,Years,Months,MonthDays,WeekDays,Time\n",
        "RatingPlans.csv": "#Id,DestinationRatesId,TimingTag,Weight\n",
        "RatingProfiles.csv": "#Tenant,Category,Subject,ActivationTime,RatingPlanId,"
        "RatesFallbackSubject\nt,call,s,2026-01-01T00:00:00Z,RP,\n",
    }
    for name, text in {**defaults, **{k.replace("_", "."): v for k, v in files.items()}}.items():
        (folder / name).write_text(text)
    return folder


def test_each_rating_profile_becomes_a_tariff_named_tenant_category_subject(
    retail: dict[str, list[RateRow]],
) -> None:
    assert sorted(retail) == ["acme.com:call:*any", "acme.com:call:vip", "acme.com:call:wholesale"]


def test_rate_per_second_is_converted_to_an_exact_per_minute_rate(
    retail: dict[str, list[RateRow]],
) -> None:
    row = only(retail["acme.com:call:*any"], "1", effective_to=None)
    assert row.rate == Decimal("0.0001") * 60 and row.increment == Increment(1, 1)


def test_later_rate_group_becomes_a_tier_after_the_first_minute(
    retail: dict[str, list[RateRow]],
) -> None:
    row = only(retail["acme.com:call:*any"], "4915", effective_to=None)
    assert row.rate == Decimal("0.09") and row.increment == Increment(60, 60)
    assert row.tiers == (RateTier(60, Decimal("0.03"), Increment(1, 1)),)


def test_same_price_group_starting_at_the_first_increment_becomes_first_next_increment(
    retail: dict[str, list[RateRow]],
) -> None:
    row = only(retail["acme.com:call:vip"], "33")
    assert row.increment == Increment(60, 6) and row.tiers == ()
    assert row.connect_fee == Decimal("0.01")


def test_rounding_is_taken_per_destination_rate(retail: dict[str, list[RateRow]]) -> None:
    rows = retail["acme.com:call:*any"]
    de = only(rows, "49", effective_to=None)
    us = only(rows, "1", effective_to=None)
    assert (de.decimals, de.rounding) == (4, "ROUND_UP")
    assert (us.decimals, us.rounding) == (6, "ROUND_HALF_UP")


def test_peak_and_off_peak_timings_become_weekday_hour_bands(
    retail: dict[str, list[RateRow]],
) -> None:
    first_period = [
        r for r in retail["acme.com:call:*any"] if r.prefix == "49" and r.effective_to is not None
    ]
    bands = {(r.weekdays, r.hours): r.rate for r in first_period}
    assert bands == {
        (WEEKDAYS, (time(0), time(8))): Decimal("0.006"),
        (WEEKDAYS, (time(8), time(19))): Decimal("0.012"),
        (WEEKDAYS, (time(19), time(0))): Decimal("0.006"),
        (frozenset({6, 7}), None): Decimal("0.006"),
    }


def test_successive_activations_become_effective_dates(
    retail: dict[str, list[RateRow]],
) -> None:
    rows = [r for r in retail["acme.com:call:*any"] if r.prefix == "1"]
    periods = sorted((r.effective_from, r.effective_to) for r in rows if r.effective_from)
    switch = datetime(2027, 1, 1, tzinfo=UTC)
    assert periods == [(datetime(2026, 1, 1, tzinfo=UTC), switch), (switch, None)]


def test_fallback_subject_supplies_destinations_the_subject_lacks(
    retail: dict[str, list[RateRow]],
) -> None:
    vip = retail["acme.com:call:vip"]
    assert {r.prefix for r in vip} == {"33", "49", "4915", "4916", "4917", "1"}
    assert only(vip, "33").rate == Decimal("0.02")  # its own rate is kept


def test_any_destination_matches_every_number_with_an_empty_prefix(
    retail: dict[str, list[RateRow]],
) -> None:
    [row] = retail["acme.com:call:wholesale"]
    assert row.prefix == "" and row.increment == Increment(6, 6)


def test_fallback_is_not_used_where_a_shorter_own_prefix_covers_the_number(
    tmp_path: Path,
) -> None:
    write_plan(
        tmp_path,
        Destinations_csv="#Id,Prefix\nDST_DE,49\nDST_DE_MOBILE,4915\n",
        DestinationRates_csv="#Id,DestinationId,RatesTag,RoundingMode,RoundingDecimals,"
        "MaxCost,MaxCostStrategy\nDR_A,DST_DE,RT_A,*up,4,0,\nDR_B,DST_DE_MOBILE,RT_B,*up,4,0,\n",
        RatingPlans_csv="#Id,DestinationRatesId,TimingTag,Weight\nRP,DR_A,*any,10\n"
        "RP_F,DR_B,*any,10\n",
        RatingProfiles_csv="#Tenant,Category,Subject,ActivationTime,RatingPlanId,"
        "RatesFallbackSubject\nt,call,s,2026-01-01T00:00:00Z,RP,f\n"
        "t,call,f,2026-01-01T00:00:00Z,RP_F,\n",
    )
    plan = read_cgrates_folder(tmp_path)
    assert plan.errors == []
    assert {r.prefix for r in plan.tariffs["t:call:s"]} == {"49"}


def test_higher_weight_wins_over_a_later_start(tmp_path: Path) -> None:
    write_plan(
        tmp_path,
        Timings_csv="#Id,Years,Months,MonthDays,WeekDays,Time\n"
        "TM_DAY,*any,*any,*any,*any,08:00:00\n",
        RatingPlans_csv="#Id,DestinationRatesId,TimingTag,Weight\n"
        "RP,DR_A,*any,20\nRP,DR_B,TM_DAY,10\n",
    )
    [row] = read_cgrates_folder(tmp_path).tariffs["t:call:s"]
    assert row.rate == Decimal("0.01") and row.hours is None and row.weekdays is None


def test_on_equal_weight_the_latest_start_wins(tmp_path: Path) -> None:
    write_plan(
        tmp_path,
        Timings_csv="#Id,Years,Months,MonthDays,WeekDays,Time\n"
        "TM_DAY,*any,*any,*any,*any,08:00:00\nTM_NIGHT,*any,*any,*any,*any,20:00:00\n",
        RatingPlans_csv="#Id,DestinationRatesId,TimingTag,Weight\n"
        "RP,DR_A,*any,10\nRP,DR_B,TM_DAY,10\nRP,DR_C,TM_NIGHT,10\n",
    )
    rows = read_cgrates_folder(tmp_path).tariffs["t:call:s"]
    assert {r.hours: r.rate for r in rows} == {
        (time(0), time(8)): Decimal("0.01"),
        (time(8), time(20)): Decimal("0.02"),
        (time(20), time(0)): Decimal("0.03"),
    }
    assert all(r.weekdays is None for r in rows)


def test_sms_category_gives_per_message_rows(tmp_path: Path) -> None:
    write_plan(
        tmp_path,
        Rates_csv="#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\n"
        "RT_A,0,0.0075,1,1,0\n",
        DestinationRates_csv="#Id,DestinationId,RatesTag,RoundingMode,RoundingDecimals,"
        "MaxCost,MaxCostStrategy\nDR_A,DST_DE,RT_A,*middle,4,0,\n",
        RatingPlans_csv="#Id,DestinationRatesId,TimingTag,Weight\nRP,DR_A,*any,10\n",
        RatingProfiles_csv="#Tenant,Category,Subject,ActivationTime,RatingPlanId,"
        "RatesFallbackSubject\nt,sms,s,2026-01-01T00:00:00Z,RP,\n",
    )
    [row] = read_cgrates_folder(tmp_path).tariffs["t:sms:s"]
    assert row.service is Service.SMS and row.rate == Decimal("0.0075")


def test_settings_take_the_rounding_shared_by_all_rows(tmp_path: Path) -> None:
    write_plan(
        tmp_path, RatingPlans_csv="#Id,DestinationRatesId,TimingTag,Weight\nRP,DR_A,*any,10\n"
    )
    plan = read_cgrates_folder(tmp_path)
    settings = plan.settings_for("t:call:s", TariffSettings("USD"))
    assert (settings.decimals, settings.rounding) == (4, "ROUND_UP")


def test_bad_folder_reports_every_bad_line_with_its_file() -> None:
    plan = read_cgrates_folder(DATA / "bad")
    found = {(e.source, e.line): e.reason for e in plan.errors}
    assert "not a destination" in found[("Destinations.csv", 3)]
    assert "decimal" in found[("Rates.csv", 6)]
    assert "per 7s" in found[("Rates.csv", 3)]
    assert "90s" in found[("Rates.csv", 4)]
    assert "MaxCostStrategy" in found[("DestinationRates.csv", 5)]
    assert "RoundingMode" in found[("DestinationRates.csv", 6)]
    assert "DST_NONE" in found[("DestinationRates.csv", 7)]
    assert "Months" in found[("Timings.csv", 2)]
    assert "TM_NONE" in found[("RatingPlans.csv", 6)]
    assert "ActivationTime" in found[("RatingProfiles.csv", 4)]
    assert "RP_NONE" in found[("RatingProfiles.csv", 5)]


def test_go_durations_are_read_in_seconds() -> None:
    assert parse_duration_s("60s") == 60
    assert parse_duration_s("1m30s") == 90
    assert parse_duration_s("1h") == 3600
    assert parse_duration_s("0") == 0
    with pytest.raises(InvalidInput):
        parse_duration_s("sixty")


timing_strategy = st.tuples(
    st.frozensets(st.integers(1, 7), min_size=1),  # ISO weekdays
    st.integers(0, 23),  # start hour
    st.integers(0, 3),  # weight
)


@settings(max_examples=40, deadline=None)
@given(st.lists(timing_strategy, min_size=1, max_size=4))
def test_bands_give_each_moment_of_the_week_to_the_rate_cgrates_would_pick(
    timings: list[tuple[frozenset[int], int, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rates = "".join(f"RT_{k},0,0.0{k + 1},60s,60s,0s\n" for k in range(len(timings)))
        dest_rates = "".join(f"DR_{k},DST_DE,RT_{k},*up,4,0,\n" for k in range(len(timings)))
        timing_rows = "".join(
            f"TM_{k},*any,*any,*any,{';'.join(str(d % 7) for d in sorted(days))},{hour:02d}:00:00\n"
            for k, (days, hour, _) in enumerate(timings)
        )
        plans = "".join(f"RP,DR_{k},TM_{k},{w}\n" for k, (_, _, w) in enumerate(timings))
        write_plan(
            folder,
            Rates_csv="#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\n" + rates,
            DestinationRates_csv="#Id,DestinationId,RatesTag,RoundingMode,RoundingDecimals,"
            "MaxCost,MaxCostStrategy\n" + dest_rates,
            Timings_csv="#Id,Years,Months,MonthDays,WeekDays,Time\n" + timing_rows,
            RatingPlans_csv="#Id,DestinationRatesId,TimingTag,Weight\n" + plans,
        )
        rows = read_cgrates_folder(folder).tariffs["t:call:s"]
    for day in range(1, 8):
        for hour in range(24):
            live = [
                (weight, start, -k)
                for k, (days, start, weight) in enumerate(timings)
                if day in days and start <= hour
            ]
            expected = Decimal(f"0.0{-max(live)[2] + 1}") if live else None
            matching = [r for r in rows if _row_covers(r, day, time(hour))]
            assert len(matching) == (1 if live else 0)
            if live:
                assert matching[0].rate == expected


def _row_covers(row: RateRow, day: int, moment: time) -> bool:
    if row.weekdays is not None and day not in row.weekdays:
        return False
    if row.hours is None:
        return True
    start, end = row.hours
    return start <= moment and (end == time(0) or moment < end)
