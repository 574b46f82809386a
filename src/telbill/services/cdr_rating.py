"""Offline rating of a CDR stream: price every record, touch no balance.

`rate_records` takes the records a CDR reader yields (`UsageEvent`s and `RowError`s), rates
them chunk by chunk against one compiled tariff and yields one `RatedRecord` per input record,
in input order: the record's raw columns plus ``cost, currency, billed_seconds, prefix,
destination, rate, error``. A record that cannot be read or priced gets its `error` and the
stream goes on. Memory is bounded by the chunk size, not the file size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from telbill.domain.money import format_amount
from telbill.domain.rating import RatedEvent, rate_event
from telbill.domain.tariffs import RowError
from telbill.domain.usage import UsageEvent
from telbill.errors import TelbillError

RATED_COLUMNS = ("cost", "currency", "billed_seconds", "prefix", "destination", "rate", "error")
DEFAULT_CHUNK_SIZE = 5_000

# Rates a chunk of events: one result per event, a RatedEvent or the error that refused it.
ChunkRater = Callable[[Sequence[UsageEvent], Any], list[RatedEvent | TelbillError]]


@dataclass(frozen=True, slots=True)
class RatedRecord:
    """One output row: the input's raw columns and the rated columns (all text)."""

    line: int | None
    raw: dict[str, str]
    rated: dict[str, str]
    cost: Decimal | None = None
    currency: str | None = None


@dataclass(slots=True)
class RatingTotals:
    """Running totals of a rating run, for the summary line."""

    records: int = 0
    rated: int = 0
    errors: int = 0
    cost: dict[str, Decimal] = field(default_factory=dict)

    def add(self, record: RatedRecord) -> None:
        self.records += 1
        if record.rated.get("error"):
            self.errors += 1
            return
        self.rated += 1
        if record.currency is not None and record.cost is not None:
            self.cost[record.currency] = self.cost.get(record.currency, Decimal(0)) + record.cost


def rate_events_one_by_one(
    events: Sequence[UsageEvent], index: Any
) -> list[RatedEvent | TelbillError]:
    """The per-event path: `domain.rating.rate_event` on each event."""
    results: list[RatedEvent | TelbillError] = []
    for event in events:
        try:
            results.append(rate_event(event, index))
        except TelbillError as exc:
            results.append(exc)
    return results


def default_chunk_rater() -> ChunkRater:
    """The rating domain's vectorised batch rater when present, else the per-event path."""
    try:
        from telbill.domain import batch  # optional fast path
    except ImportError:
        return rate_events_one_by_one
    rater = getattr(batch, "rate_events", None)
    return rater if callable(rater) else rate_events_one_by_one


def rate_records(
    records: Iterable[UsageEvent | RowError],
    index: Any,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rater: ChunkRater | None = None,
) -> Iterator[RatedRecord]:
    """Rate a stream of CDR records against `index` (a compiled `TariffIndex`), in order."""
    rate_chunk = rater or default_chunk_rater()
    chunk: list[UsageEvent | RowError] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= chunk_size:
            yield from _rate_chunk(chunk, index, rate_chunk)
            chunk = []
    if chunk:
        yield from _rate_chunk(chunk, index, rate_chunk)


def _rate_chunk(
    chunk: list[UsageEvent | RowError], index: Any, rate_chunk: ChunkRater
) -> Iterator[RatedRecord]:
    events = [record for record in chunk if isinstance(record, UsageEvent)]
    results = iter(rate_chunk(events, index) if events else [])
    for record in chunk:
        if isinstance(record, RowError):
            yield _failed(record.line, getattr(record, "raw", {}), _row_reason(record))
            continue
        result = next(results)
        if isinstance(result, TelbillError):
            yield _failed(record.line, record.raw, f"{result.code}: {result.message}")
        else:
            yield _priced(record, result)


def _row_reason(error: RowError) -> str:
    where = f"{error.source}:" if error.source else ""
    return f"invalid_input: {where}line {error.line}: {error.reason}"


def _failed(line: int | None, raw: dict[str, str], reason: str) -> RatedRecord:
    rated = dict.fromkeys(RATED_COLUMNS, "")
    rated["error"] = reason
    return RatedRecord(line, raw, rated)


def _priced(event: UsageEvent, rated_event: RatedEvent) -> RatedRecord:
    main = rated_event.charges[0]
    e = main.explanation
    total = rated_event.total
    rated = {
        "cost": format_amount(total, e.decimals),
        "currency": main.currency,
        "billed_seconds": str(e.billed_seconds),
        "prefix": e.matched_prefix or "",
        "destination": e.destination or "",
        "rate": "" if e.rate is None else str(e.rate),
        "error": "",
    }
    return RatedRecord(event.line, event.raw, rated, total, main.currency)


def output_columns(input_columns: Sequence[str]) -> list[str]:
    """Input columns, then the rated ones; a rated name already taken gets ``rated_``."""
    taken = set(input_columns)
    return list(input_columns) + [
        f"rated_{name}" if name in taken else name for name in RATED_COLUMNS
    ]


def output_row(record: RatedRecord, columns: Sequence[str], input_count: int) -> list[str]:
    """Values of `record` in the order of `columns` (as built by `output_columns`)."""
    values = [record.raw.get(name, "") for name in columns[:input_count]]
    values.extend(record.rated[name] for name in RATED_COLUMNS)
    return values


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "RATED_COLUMNS",
    "RatedRecord",
    "RatingTotals",
    "default_chunk_rater",
    "output_columns",
    "output_row",
    "rate_events_one_by_one",
    "rate_records",
]
