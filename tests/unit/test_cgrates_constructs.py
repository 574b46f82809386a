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
from telbill.domain.lookup import TariffIndex, compile_tariff
from telbill.domain.rating import explain_text, rate_event
from telbill.domain.tariffs import NUMBER_MATCH_EXACT, Tariff, TariffSettings
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
