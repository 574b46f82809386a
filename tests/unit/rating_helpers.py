"""Small builders shared by the rating tests (tariffs as tables, events in one line)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from telbill.domain.lookup import TariffIndex, compile_tariff
from telbill.domain.tariffs import RateRow, Tariff, TariffSettings
from telbill.domain.usage import UsageEvent

NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday


def row(prefix: str, rate: str, destination: str = "", **kwargs: Any) -> RateRow:
    return RateRow(prefix=prefix, destination=destination or prefix, rate=Decimal(rate), **kwargs)


def index_of(*rows: RateRow, **settings: Any) -> TariffIndex:
    return compile_tariff(
        Tariff("retail", TariffSettings(currency="USD", **settings), tuple(rows), version=3)
    )


def call(to: str, seconds: int | None, at: datetime = NOON, **kwargs: Any) -> UsageEvent:
    answer = None if seconds is None else at + timedelta(seconds=2)
    end = None if answer is None or seconds is None else answer + timedelta(seconds=seconds)
    return UsageEvent(id="e1", account="acme", to_number=to, start=at, answer=answer, end=end,
                      **kwargs)
