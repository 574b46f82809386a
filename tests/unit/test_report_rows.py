"""Report rows without JSON decoding: the CSV's cost text and a call's duration read from
its usage facts agree with the domain's own functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from telbill.domain.money import format_amount, from_micros
from telbill.domain.rating import call_duration_s
from telbill.domain.usage import CallSegment, UsageEvent
from telbill.services.charging import usage_from_json, usage_json
from telbill.services.reports import _duration_s, micros_text

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_cost_text_of_micro_units_is_the_canonical_amount(micros: int) -> None:
    assert micros_text(micros) == format_amount(from_micros(micros))


@st.composite
def calls(draw: st.DrawFn) -> UsageEvent:
    answered = draw(st.booleans())
    answer = START + timedelta(milliseconds=draw(st.integers(0, 5000))) if answered else None
    end = START + timedelta(milliseconds=draw(st.integers(5000, 4_000_000)))
    segments: tuple[CallSegment, ...] = ()
    if draw(st.booleans()):
        cut = START + timedelta(milliseconds=draw(st.integers(0, 4_000_000)))
        segments = (CallSegment(START, cut, draw(st.booleans())), CallSegment(cut, end, True))
    duration = draw(st.none() | st.integers(0, 7200))
    return UsageEvent(
        id="c1", account="alpha", to_number="+15551234567", start=START, answer=answer,
        end=end, duration_s=duration, call_segments=segments,
    )  # fmt: skip


@given(calls())
def test_duration_from_usage_facts_equals_the_domains_duration_of_the_stored_usage(
    event: UsageEvent,
) -> None:
    stored = json.loads(json.dumps(usage_json(event)))  # as the database gives it back
    facts = (
        stored["to"], stored["duration_s"], stored["start"], stored["answer"], stored["end"],
        json.dumps(stored["call_segments"]),
    )  # fmt: skip
    assert _duration_s(*facts) == call_duration_s(usage_from_json(stored))
