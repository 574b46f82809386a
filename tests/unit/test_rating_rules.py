"""Rating rules of issue 3: one named test per rule."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rating_helpers import NOON, call, index_of, row

from telbill.domain.rating import Leg, Payer, explain_text, rate_event, rate_forwarded_call
from telbill.domain.tariffs import Direction, Increment, NumberType, Service
from telbill.domain.usage import CallSegment, UsageEvent
from telbill.errors import InvalidInput, NoRate

UK = row("44", "0.013", "United Kingdom")


def test_voice_is_billed_from_answer_to_end() -> None:
    rated = rate_event(call("+442079460000", 61), index_of(UK))
    charge = rated.charges[0]
    assert charge.explanation.duration_s == 61
    assert charge.billed_units == 120
    assert charge.amount == Decimal("0.026")
    assert charge.unit == "s:call"


def test_ringing_time_before_answer_is_not_billed() -> None:
    event = UsageEvent("e", "acme", "+442079460000", start=NOON,
                       answer=NOON + timedelta(seconds=30), end=NOON + timedelta(seconds=60))
    index = index_of(row("44", "0.60", increment=Increment(1, 1)))
    assert rate_event(event, index).total == Decimal("0.3")


def test_unanswered_call_costs_nothing() -> None:
    rated = rate_event(call("+442079460000", None), index_of(UK))
    assert rated.total == 0
    assert rated.charges[0].billed_units == 0


def test_unanswered_call_to_an_unpriced_destination_is_not_an_error() -> None:
    assert rate_event(call("+33123456789", None), index_of(UK)).total == 0


def test_call_of_83_seconds_per_second_costs_0_083() -> None:
    index = index_of(row("44", "0.06", increment=Increment(1, 1)))
    assert rate_event(call("+442079460000", 83), index).total == Decimal("0.083")


def test_duration_is_capped_at_the_tariffs_maximum() -> None:
    index = index_of(row("44", "0.60", increment=Increment(1, 1)), max_call_s=100)
    charge = rate_event(call("+442079460000", 500), index).charges[0]
    assert charge.billed_units == 100
    assert charge.amount == Decimal("1")


def test_connect_fee_is_charged_once_per_call() -> None:
    index = index_of(row("44", "0.60", connect_fee=Decimal("0.10"), increment=Increment(1, 1)))
    assert rate_event(call("+442079460000", 10), index).total == Decimal("0.2")


def test_free_then_increments_then_minimum() -> None:
    index = index_of(row("44", "0.60", increment=Increment(15, 15), free_seconds=10,
                         min_seconds=30))
    assert rate_event(call("+442079460000", 41), index).charges[0].billed_units == 45
    assert rate_event(call("+442079460000", 12), index).charges[0].billed_units == 30


def test_only_billable_call_segments_are_rated() -> None:
    answer = NOON + timedelta(seconds=5)
    event = UsageEvent(
        "e", "acme", "+442079460000", start=NOON, answer=answer,
        end=answer + timedelta(seconds=300),
        call_segments=(
            CallSegment(answer, answer + timedelta(seconds=40)),  # the voice bot
            CallSegment(answer + timedelta(seconds=40), answer + timedelta(seconds=300),
                        billable=False),  # the human agent over the customer's own trunk
        ),
    )
    charge = rate_event(event, index_of(row("44", "0.60", increment=Increment(1, 1)))).charges[0]
    assert charge.explanation.duration_s == 40
    assert charge.amount == Decimal("0.4")


def test_speech_seconds_are_a_separate_charge_with_their_own_rows() -> None:
    index = index_of(UK, row("", "0.024", "speech recognition", service=Service.SPEECH,
                             increment=Increment(15, 15)))
    rated = rate_event(call("+442079460000", 61, speech_s=20), index)
    call_charge, speech = rated.charges
    assert call_charge.amount == Decimal("0.026")
    assert (speech.leg, speech.unit, speech.billed_units) == (Leg.SPEECH, "s:speech", 30)
    assert speech.amount == Decimal("0.012")


def test_speech_without_a_speech_row_is_no_rate() -> None:
    with pytest.raises(NoRate):
        rate_event(call("+442079460000", 61, speech_s=20), index_of(UK))


def test_forwarded_call_yields_an_inbound_and_an_outbound_leg() -> None:
    index = index_of(
        row("1415", "0.0085", "US inbound", direction=Direction.INBOUND, increment=Increment(1, 1)),
        row("44", "0.6", "UK", increment=Increment(1, 1)),
    )
    event = call("+14155552671", 60, direction=Direction.INBOUND)
    rated = rate_forwarded_call(event, "+442079460000", index)
    inbound, outbound = rated.charges
    assert (inbound.leg, inbound.direction, inbound.amount) == (
        Leg.INBOUND_LEG, Direction.INBOUND, Decimal("0.0085"))
    assert (outbound.leg, outbound.direction, outbound.amount) == (
        Leg.OUTBOUND_LEG, Direction.OUTBOUND, Decimal("0.6"))
    assert outbound.explanation.matched_prefix == "44"


def test_inbound_call_to_a_toll_free_number_is_charged_to_the_numbers_owner() -> None:
    index = index_of(
        row("1800", "0.02", "US toll-free", direction=Direction.INBOUND,
            number_type=NumberType.TOLL_FREE),
        row("1", "0.0085", "US inbound", direction=Direction.INBOUND),
    )
    toll_free = rate_event(call("+18002345678", 60, direction=Direction.INBOUND), index)
    local = rate_event(call("+14155552671", 60, direction=Direction.INBOUND), index)
    assert toll_free.charges[0].payer is Payer.NUMBER_OWNER
    assert toll_free.total == Decimal("0.02")
    assert local.charges[0].payer is Payer.ACCOUNT


def sms(to: str, text: str | None = None, segments: int | None = None,
        direction: Direction = Direction.OUTBOUND) -> UsageEvent:
    return UsageEvent("s1", "acme", to, start=NOON, service=Service.SMS, text=text,
                      segments=segments, direction=direction)


SMS_ROWS = (
    row("44", "0.04", "UK SMS", service=Service.SMS),
    row("44", "0.01", "UK SMS inbound", service=Service.SMS, direction=Direction.INBOUND),
)


def test_outbound_sms_costs_segments_times_the_destination_rate() -> None:
    rated = rate_event(sms("+447911123456", "a" * 161), index_of(*SMS_ROWS))
    charge = rated.charges[0]
    assert (charge.explanation.segments, charge.explanation.encoding) == (2, "GSM-7")
    assert charge.amount == Decimal("0.08")
    assert (charge.unit, charge.billed_units) == ("msg:sms", 2)


def test_unicode_sms_is_segmented_as_ucs2() -> None:
    charge = rate_event(sms("+447911123456", "😀" * 36), index_of(*SMS_ROWS)).charges[0]
    assert (charge.explanation.encoding, charge.explanation.segments) == ("UCS-2", 2)


def test_sms_with_a_given_segment_count_uses_it() -> None:
    assert rate_event(sms("+447911123456", segments=3), index_of(*SMS_ROWS)).total == Decimal(
        "0.12")


def test_inbound_sms_is_priced_by_the_inbound_row_per_message() -> None:
    rated = rate_event(sms("+447911123456", "a" * 400, direction=Direction.INBOUND),
                       index_of(*SMS_ROWS))
    assert rated.total == Decimal("0.01")


def test_no_matching_row_is_no_rate() -> None:
    with pytest.raises(NoRate, match="33123456789"):
        rate_event(call("+33123456789", 60), index_of(UK))


def test_sms_to_a_destination_priced_only_for_voice_is_no_rate() -> None:
    with pytest.raises(NoRate):
        rate_event(sms("+447911123456", "hi"), index_of(UK))


def test_call_to_a_local_extension_without_a_row_is_free() -> None:
    rated = rate_event(call("101", 60), index_of(UK))
    assert rated.total == 0
    assert "extension" in (rated.charges[0].explanation.note or "")


def test_junk_number_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        rate_event(call("not-a-number", 60), index_of(UK))


def test_naive_event_time_is_refused() -> None:
    event = UsageEvent("e", "acme", "+442079460000", start=NOON.replace(tzinfo=None),
                       duration_s=5)
    with pytest.raises(InvalidInput, match="timezone"):
        rate_event(event, index_of(UK))


def test_explanation_shows_how_the_charge_was_computed() -> None:
    index = index_of(row("4420", "0.013", "London", connect_fee=Decimal("0.01")), UK)
    charge = rate_event(call("+442079460000", 61), index).charges[0]
    text = explain_text(charge)
    for needed in ("retail v3", "4420", "London", "0.013", "60/60", "billed 120 s",
                   "ROUND_HALF_UP", "0.036000 USD", "GB"):
        assert needed in text
    e = charge.explanation
    assert (e.tariff, e.tariff_version, e.matched_prefix, e.rate) == (
        "retail", 3, "4420", Decimal("0.013"))
    assert e.unrounded == Decimal("0.036")


def test_rating_is_by_the_tariffs_prefixes_not_by_the_librarys_guess() -> None:
    # phonenumbers labels +447911... a Guernsey (GG) mobile; the tariff prices prefix 4479 as
    # "UK special" and that is the price, while the label still tells people what it is.
    index = index_of(row("44", "0.01", "UK"), row("4479", "0.5", "UK special"),
                     row("447", "0.2", "UK mobile", number_type=NumberType.MOBILE))
    charge = rate_event(call("+447911123456", 60), index).charges[0]
    assert charge.explanation.destination == "UK special"
    assert charge.amount == Decimal("0.5")
    assert (charge.explanation.country, charge.explanation.number_label) == ("GG", "mobile")


def test_bulk_rating_without_number_type_labels_keeps_the_country() -> None:
    charge = rate_event(call("+442079460000", 61), index_of(UK), labels=False).charges[0]
    assert (charge.explanation.country, charge.explanation.number_label) == ("GB", None)
    assert charge.amount == Decimal("0.026")


def test_rounding_mode_may_be_named_in_lower_case() -> None:
    index = index_of(row("44", "0.00003", increment=Increment(1, 1)), rounding="half_even")
    assert rate_event(call("+442079460000", 1), index).total == Decimal("0")
    assert rate_event(call("+442079460000", 3), index).total == Decimal("0.000002")


@given(first=st.integers(0, 4000), second=st.integers(0, 4000))
def test_a_longer_call_never_costs_less(first: int, second: int) -> None:
    index = index_of(row("44", "0.013", connect_fee=Decimal("0.01"), free_seconds=5,
                         min_seconds=30, increment=Increment(30, 6)), max_call_s=3600)
    short, long = sorted((first, second))
    assert rate_event(call("+442079460000", short), index).total <= rate_event(
        call("+442079460000", long), index).total
