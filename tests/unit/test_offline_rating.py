"""Offline rating of CDR streams: the batch path equals the per-event path, order is kept,
bad records carry their reason, and explanations survive a JSON round trip."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from telbill.adapters.formats.cdr_common import CdrRowError
from telbill.domain.lookup import compile_tariff
from telbill.domain.money import format_amount
from telbill.domain.rating import rate_event
from telbill.domain.tariffs import (
    Direction,
    Increment,
    NumberType,
    RateRow,
    RowError,
    Service,
    Tariff,
    TariffSettings,
)
from telbill.domain.usage import UsageEvent
from telbill.services.cdr_rating import (
    OfflineRater,
    _micros_text,
    output_columns,
    rate_records,
)
from telbill.services.quotes import (
    QuoteRequest,
    charge_from_json,
    charge_to_json,
    quote,
    quote_summary,
    render_explanation,
)

START = datetime(2026, 1, 5, 10, tzinfo=UTC)

TARIFF = Tariff(
    name="t",
    settings=TariffSettings(currency="EUR", decimals=4),
    rows=(
        RateRow("44", "UK", Decimal("0.013")),
        RateRow("447", "UK mobile", Decimal("0.0725"), increment=Increment(30, 6)),
        RateRow("4420", "London", Decimal("0.0073"), connect_fee=Decimal("0.015"),
                increment=Increment(1, 1), free_seconds=5, min_seconds=30),
        RateRow("33", "France", Decimal("0.02"), increment=Increment(15, 15)),
        RateRow("331", "Paris", Decimal("0.01"), number_type=NumberType.MOBILE),
        RateRow("1", "NANP", Decimal("0.005"), effective_to=START + timedelta(days=1)),
        RateRow("1", "NANP", Decimal("0.006"), effective_from=START + timedelta(days=1)),
        RateRow("44", "UK in", Decimal("0.001"), direction=Direction.INBOUND),
        RateRow("44", "UK sms", Decimal("0.04"), service=Service.SMS),
        # A row with its own rounding (CGRateS rounds per destination rate).
        RateRow("49", "Germany", Decimal("0.0333"), decimals=2, rounding="ROUND_UP"),
    ),
)  # fmt: skip
INDEX = compile_tariff(TARIFF)


def random_events(seed: int, count: int) -> list[UsageEvent]:
    rng = random.Random(seed)
    numbers = ["+447911123456", "+442071234567", "+4420", "+33612345678", "+33142000000",
               "+12125551234", "+8612345678901", "+441", "0044207123456", "1234",
               "+4915112345678"]  # fmt: skip
    events = []
    for n in range(count):
        start = START + timedelta(seconds=rng.choice([0, 86_399, 86_400, 90_000]))
        answered = rng.random() > 0.2
        duration = rng.choice([0, 1, 5, 6, 29, 30, 31, 59, 60, 61, 3599, 3600, 3601, 7200])
        events.append(
            UsageEvent(
                id=f"e{n}", account="a", to_number=rng.choice(numbers), start=start,
                direction=rng.choice([Direction.OUTBOUND, Direction.OUTBOUND, Direction.INBOUND]),
                answer=start if answered else None,
                end=start + timedelta(seconds=duration), line=n + 2, raw={"id": f"e{n}"},
            )
        )  # fmt: skip
    return events


def test_batch_path_gives_the_same_rated_rows_as_rate_event_one_by_one() -> None:
    events = random_events(seed=7, count=3000)
    fast = OfflineRater(INDEX, batch_min=1)
    batched = list(rate_records(events, INDEX, chunk_size=700, rater=fast))
    one_by_one = list(rate_records(events, INDEX, use_batch=False))
    assert fast.fast_path > 0  # the vectorised path really ran
    assert [r.rated for r in batched] == [r.rated for r in one_by_one]


def test_rated_cost_is_the_rate_event_total() -> None:
    events = random_events(seed=11, count=300)
    for event, record in zip(events, rate_records(events, INDEX, use_batch=False), strict=True):
        if record.rated["error"]:
            continue
        assert record.cost == rate_event(event, INDEX).total


def test_bad_rows_and_unpriced_calls_keep_their_place_with_a_reason() -> None:
    good = random_events(seed=3, count=2)
    unpriced = UsageEvent(id="x", account="a", to_number="+8612345678901", start=START,
                          answer=START, end=START + timedelta(seconds=10), line=4)  # fmt: skip
    records = [good[0], CdrRowError(3, "start: not an ISO 8601 time", raw={"id": "?"}),
               unpriced, good[1], RowError(6, "broken", source="b.json")]  # fmt: skip
    out = list(rate_records(records, INDEX, chunk_size=2))
    assert [r.line for r in out] == [good[0].line, 3, 4, good[1].line, 6]
    assert "line 3: start" in out[1].rated["error"] and out[1].raw == {"id": "?"}
    assert out[2].rated["error"].startswith("no_rate")
    assert "b.json:line 6" in out[4].rated["error"]


def test_output_columns_never_overwrite_an_input_column() -> None:
    assert output_columns(["id", "rate"])[-7:] == [
        "cost", "currency", "billed_seconds", "prefix", "destination", "rated_rate", "error",
    ]  # fmt: skip


def test_a_stored_explanation_renders_exactly_like_the_live_charge() -> None:
    rated = quote(QuoteRequest("+442071234567", START, duration_s=83), INDEX)
    (charge,) = rated.charges
    stored = json.loads(json.dumps(charge_to_json(charge)))
    assert charge_from_json(stored) == charge
    assert render_explanation(stored) == render_explanation(charge)


def test_quote_summary_has_the_stable_keys_and_decimal_strings() -> None:
    summary = quote_summary(quote(QuoteRequest("+442071234567", START, duration_s=83), INDEX))
    # 83 s - 5 free = 78 s on 1/1 at 0.0073/min + 0.015 connect: 0.02449 -> 4 decimals
    assert summary["cost"] == "0.0245"
    assert summary["billed_seconds"] == 78 and summary["prefix"] == "4420"
    assert summary["rate"] == "0.0073" and summary["connect_fee"] == "0.015"
    assert summary["increment"] == "1/1" and summary["currency"] == "EUR"


def test_sms_quote_defaults_to_one_segment_without_text() -> None:
    summary = quote_summary(quote(QuoteRequest("+447911123456", START, Service.SMS), INDEX))
    assert summary["segments"] == 1 and summary["cost"] == "0.0400"


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=6))
def test_cost_text_of_the_batch_path_is_format_amount(units: int, decimals: int) -> None:
    micros = units * 10 ** (6 - decimals)  # the batch rater's costs are rounded to `decimals`
    assert _micros_text(micros, decimals) == format_amount(Decimal(micros) / 10**6, decimals)
