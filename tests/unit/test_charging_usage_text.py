"""The usage text stored with a charge (and hashed to refuse a reused CDR id) is exactly the
canonical JSON of `usage_json`: files posted before and after the fast path hash alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from telbill.domain.tariffs import Direction, Service
from telbill.domain.usage import CallSegment, UsageEvent
from telbill.services.charging import usage_json, usage_text

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_times = st.one_of(
    st.none(), st.integers(0, 10**7).map(lambda us: START + timedelta(microseconds=us * 997))
)
_texts = st.one_of(st.none(), st.text(max_size=12))


@given(
    id_=st.text(min_size=1, max_size=12),
    account=st.text(max_size=8),
    to=st.text(min_size=1, max_size=16),
    user=_texts,
    from_=_texts,
    text=_texts,
    call_class=_texts,
    answer=_times,
    end=_times,
    numbers=st.tuples(*[st.one_of(st.none(), st.integers(0, 10**9))] * 2),
    speech_s=st.integers(0, 10**6),
    service=st.sampled_from(list(Service)),
    direction=st.sampled_from(list(Direction)),
    segments=st.lists(st.tuples(_times, _times, st.booleans()), max_size=3),
    campaign=_texts,
)
def test_usage_text_is_the_canonical_json_of_the_usage(
    id_: str, account: str, to: str, user: str | None, from_: str | None, text: str | None,
    call_class: str | None, answer: datetime | None, end: datetime | None,
    numbers: tuple[int | None, int | None], speech_s: int, service: Service,
    direction: Direction, segments: list[tuple[datetime | None, datetime | None, bool]],
    campaign: str | None,
) -> None:  # fmt: skip
    event = UsageEvent(
        id=id_, account=account, to_number=to, start=START, service=service,
        direction=direction, user=user, from_number=from_, answer=answer, end=end,
        duration_s=numbers[0], text=text, segments=numbers[1], speech_s=speech_s,
        call_class=call_class, campaign=campaign,
        call_segments=tuple(CallSegment(s or START, e or START, b) for s, e, b in segments),
    )  # fmt: skip
    canonical = json.dumps(usage_json(event), sort_keys=True, separators=(",", ":"))
    assert usage_text(event) == canonical
