"""CGRateS constructs its loader accepts, imported and priced with CGRateS's meaning.

The plans are in tests/data/cgrates/ (`constructs`, `any_only`); each expected cost is worked
out by hand in the test. See docs/cgrates.md for the rule each one checks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from telbill.adapters.formats.cgrates import read_cgrates_folder
from telbill.domain.batch import CdrColumns, compile_batch
from telbill.domain.lookup import TariffIndex, compile_tariff
from telbill.domain.money import to_micros
from telbill.domain.rating import explain_text, max_affordable_call_seconds, rate_event
from telbill.domain.tariffs import NUMBER_MATCH_EXACT, Service, Tariff, TariffSettings
from telbill.domain.usage import UsageEvent
from telbill.errors import NoRate

DATA = Path(__file__).resolve().parents[1] / "data" / "cgrates"
NOON = datetime(2026, 3, 4, 12, tzinfo=UTC)


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
def main() -> TariffIndex:
    return import_folder(DATA / "constructs")["acme:call:main"]


def call(to: str, seconds: int) -> UsageEvent:
    return UsageEvent(id="c1", account="acme", to_number=to, start=NOON, duration_s=seconds)


def cost(index: TariffIndex, to: str, seconds: int) -> Decimal:
    return rate_event(call(to, seconds), index, labels=False).total


def test_plus_49_and_49_are_different_destinations(main: TariffIndex) -> None:
    assert main.tariff.settings.number_match == NUMBER_MATCH_EXACT
    # +49: 61 s on 60/60 = 120 s x 0.6/60
    assert cost(main, "+4930123456", 61) == Decimal("1.2")
    # 49: 120 s x 0.3/60 + 0.1 connect fee
    assert cost(main, "4930123456", 61) == Decimal("0.7")


def test_named_destination_is_matched_by_its_name(main: TariffIndex) -> None:
    rated = rate_event(call("voicemail", 30), main, labels=False)
    assert rated.total == 0
    assert rated.charges[0].explanation.matched_prefix == "voicemail"


def test_rate_unit_and_increment_0_mean_one_second(main: TariffIndex) -> None:
    rated = rate_event(call("voicemail", 7), main, labels=False)
    assert rated.charges[0].billed_units == 7  # 1 s increments, not refused


def test_empty_connect_fee_of_a_second_group_is_0_and_keeps_the_group(
    main: TariffIndex,
) -> None:
    # group 1: 0.2 connect + 1.2/min for the first whole minute; group 2: 1.2/min by the
    # second from 60 s: 90 s -> 1.2 + 30 x 1.2/60 + 0.2 = 2.0
    assert cost(main, "15551234567", 90) == Decimal("2.0")
    assert cost(main, "15551234567", 61) == Decimal("1.42")


def test_seconds_before_the_first_rate_group_are_free(main: TariffIndex) -> None:
    assert cost(main, "33123456789", 59) == 0
    # 150 s: 60 free, then 90 s rounded up to 120 s at 0.05/min = 0.1
    assert cost(main, "33123456789", 150) == Decimal("0.1")


def test_rounding_decimals_above_six_round_at_micro_units_with_the_same_method(
    main: TariffIndex,
) -> None:
    # 7 s x 0.0000001 = 0.0000007, *up at 20 decimals -> stored micro-units, rounded up
    assert cost(main, "39123456789", 7) == Decimal("0.000001")
    explanation = rate_event(call("39123456789", 7), main, labels=False).charges[0].explanation
    assert explanation.unrounded == Decimal("0.0000007")


def test_unmatched_short_number_is_no_rate_not_a_free_extension(main: TariffIndex) -> None:
    with pytest.raises(NoRate):
        rate_event(call("2001", 60), main, labels=False)  # no prefix 2


def test_short_number_of_a_native_tariff_is_still_a_free_extension(main: TariffIndex) -> None:
    native = compile_tariff(
        Tariff("native", TariffSettings("EUR"), main.tariff.rows[3:4])  # prefix 1 only
    )
    rated = rate_event(call("2001", 60), native, labels=False)
    assert rated.total == 0 and "extension" in (rated.charges[0].explanation.note or "")


def test_fallback_subject_without_a_profile_is_ignored() -> None:
    plan = read_cgrates_folder(DATA / "constructs")
    assert plan.errors == [] and list(plan.tariffs) == ["acme:call:main"]


def test_any_destination_needs_no_destinations_file() -> None:
    index = import_folder(DATA / "any_only")["acme:call:*any"]
    # 10 s x 0.01 per second
    assert cost(index, "+81312345678", 10) == Decimal("0.1")
    assert index.tariff.settings.free_extensions is False


def test_explanation_of_a_named_destination_shows_it_as_given(main: TariffIndex) -> None:
    text = explain_text(rate_event(call("voicemail", 30), main, labels=False).charges[0])
    assert "to voicemail" in text and "matched prefix voicemail" in text


# --- MaxCost and calendar timings (tests/data/cgrates/caps_calendar) ----------------------
# Germany 0.6/min on 60/60 capped at 1 (*free); France the same capped at 1 (*disconnect);
# Germany 0.06/min on 1 January (weight 20) and 0.3/min 12:00-13:00 in 2027 (weight 30).


@pytest.fixture(scope="module")
def capped() -> TariffIndex:
    return import_folder(DATA / "caps_calendar")["acme:call:main"]


def at(index: TariffIndex, to: str, seconds: int, moment: datetime) -> Decimal:
    event = UsageEvent(id="c1", account="acme", to_number=to, start=moment, duration_s=seconds)
    return rate_event(event, index, labels=False).total


def test_max_cost_free_caps_the_call_and_makes_the_rest_free(capped: TariffIndex) -> None:
    assert cost(capped, "+4930123456", 30) == Decimal("0.6")  # under the cap
    assert cost(capped, "+4930123456", 61) == Decimal("1")  # 1.2 capped at 1
    assert cost(capped, "+4930123456", 3600) == Decimal("1")
    charge = rate_event(call("+4930123456", 61), capped, labels=False).charges[0]
    assert charge.billed_units == 120  # the seconds are still counted
    assert "capped at MaxCost 1 (*free)" in explain_text(charge)


def test_max_cost_free_does_not_limit_the_authorised_seconds(capped: TariffIndex) -> None:
    assert max_affordable_call_seconds(Decimal(100), call("+4930123456", 0), capped) == 3600
    # 0.7 pays the first minute (0.6) but not the capped 1 of a longer call
    assert max_affordable_call_seconds(Decimal("0.7"), call("+4930123456", 0), capped) == 60


def test_max_cost_disconnect_caps_the_cost_and_ends_the_call_at_the_cap(
    capped: TariffIndex,
) -> None:
    assert cost(capped, "+33123456789", 61) == Decimal("1")
    # the cost reaches 1 in the second minute (0.6 -> 1.2): that minute runs, no more
    assert max_affordable_call_seconds(Decimal(100), call("+33123456789", 0), capped) == 120


def test_calendar_timing_prices_its_days_only(capped: TariffIndex) -> None:
    new_year = datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert at(capped, "+4930123456", 61, new_year) == Decimal("0.12")  # 120 s x 0.06/60
    assert at(capped, "+4930123456", 61, datetime(2026, 1, 2, 9, tzinfo=UTC)) == Decimal("1")


def test_year_and_time_timing_wins_by_weight_where_it_overlaps_another_calendar(
    capped: TariffIndex,
) -> None:
    new_year_noon = datetime(2027, 1, 1, 12, 30, tzinfo=UTC)
    assert at(capped, "+4930123456", 61, new_year_noon) == Decimal("0.6")  # 0.3/min wins
    new_year_evening = datetime(2027, 1, 1, 18, tzinfo=UTC)
    assert at(capped, "+4930123456", 61, new_year_evening) == Decimal("0.12")
    march_noon = datetime(2027, 3, 3, 12, 30, tzinfo=UTC)
    assert at(capped, "+4930123456", 61, march_noon) == Decimal("0.6")
    march_evening = datetime(2027, 3, 3, 18, tzinfo=UTC)
    assert at(capped, "+4930123456", 61, march_evening) == Decimal("1")  # capped 0.6/min


def test_capped_and_calendar_rows_take_the_per_event_path_in_batch(
    capped: TariffIndex,
) -> None:
    numbers = ["+4930123456", "+33123456789", "+4930123456"]
    durations = [61, 3000, 30]
    moments = [datetime(2027, 1, 1, 12, 30, tzinfo=UTC), NOON, NOON]
    cdrs = CdrColumns.from_strings(numbers, durations, [int(m.timestamp()) for m in moments])
    result = compile_batch(capped).rate(cdrs)
    expected = [
        to_micros(at(capped, n, d, m)) for n, d, m in zip(numbers, durations, moments, strict=True)
    ]
    assert result.cost_micros.tolist() == expected == [600_000, 1_000_000, 600_000]


def test_data_category_is_rated_in_bytes_not_seconds() -> None:
    index = import_folder(DATA / "units")["acme:data:*any"]
    event = UsageEvent(
        id="d1", account="acme", to_number="+4930123456", start=NOON, service=Service.DATA,
        units=1_000_000,
    )  # fmt: skip
    charge = rate_event(event, index, labels=False).charges[0]
    # 1,000,000 bytes in 10240-byte increments: 98 x 10240 = 1,003,520 bytes;
    # 0.1 x 1003520 / 1048576 = 0.095703125, *up at 6 decimals
    assert (charge.billed_units, charge.unit) == (1_003_520, "B:data")
    assert charge.amount == Decimal("0.095704")
    assert charge.explanation.unrounded == Decimal("0.095703125")
    assert "per 1048576 bytes" in explain_text(charge)


def test_generic_units_are_rated_per_unit_with_the_connect_fee() -> None:
    index = import_folder(DATA / "units")["acme:generic:*any"]

    def units(count: int) -> Decimal:
        event = UsageEvent(
            id="g1", account="acme", to_number="1002", start=NOON, service=Service.GENERIC,
            units=count,
        )  # fmt: skip
        return rate_event(event, index, labels=False).total

    assert units(3) == Decimal("0.65")  # 3 x 0.2 + 0.05
    assert units(0) == 0


def test_batch_rater_of_a_tariff_matching_numbers_as_given_takes_the_per_event_path(
    main: TariffIndex,
) -> None:
    cdrs = CdrColumns.from_strings(
        ["4930123456", "15551234567"], [61, 90], [int(NOON.timestamp())] * 2
    )
    result = compile_batch(main).rate(cdrs)
    assert result.fallbacks == 2
    assert result.cost_micros.tolist() == [700_000, 2_000_000]  # 0.7 and 2.0 by hand above
