"""Offline rating of a CDR stream: price every record, touch no balance.

`rate_records` takes the records a CDR reader yields (`UsageEvent`s and `RowError`s), rates
them chunk by chunk against a compiled tariff (`OfflineRater`), or against the version of a
versioned tariff in force at each call's start (`VersionedRater`), and yields one
`RatedRecord` per input record,
in input order: the record's raw columns plus ``cost, currency, billed_seconds, prefix,
destination, rate, error``. A record that cannot be read or priced gets its `error` and the
stream goes on. Memory is bounded by the chunk size, not the file size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import numpy as np

from telbill.domain.batch import BatchRater, CdrColumns, Status, compile_batch
from telbill.domain.lookup import TariffIndex
from telbill.domain.money import format_amount
from telbill.domain.numbers import rating_digits
from telbill.domain.rating import RatedEvent, call_duration_s, rate_event
from telbill.domain.tariffs import Direction, RowError, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import TelbillError

RATED_COLUMNS = ("cost", "currency", "billed_seconds", "prefix", "destination", "rate", "error")
DEFAULT_CHUNK_SIZE = 5_000
MICROS = Decimal(1_000_000)
# Compiling the batch rater costs about a second on a 36,000-prefix deck: worth it only
# when a chunk brings at least this many plain calls.
DEFAULT_BATCH_MIN = 500


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
    fast_path: int = 0
    cost: dict[str, Decimal] = field(default_factory=dict)

    def add(self, record: RatedRecord) -> None:
        self.records += 1
        if record.rated.get("error"):
            self.errors += 1
            return
        self.rated += 1
        if record.currency is not None and record.cost is not None:
            self.cost[record.currency] = self.cost.get(record.currency, Decimal(0)) + record.cost


class OfflineRater:
    """Rates chunks of CDR records against one compiled tariff index.

    Plain voice calls (no call segments, no speech seconds, no call class, whole-second
    start) go through the rating domain's vectorised batch rater (`domain.batch`), whose
    costs are bit-for-bit those of `rate_event`; every other record, and every call the
    batch rater hands back without a row, is rated by `rate_event` one at a time.
    """

    def __init__(
        self, index: TariffIndex, *, use_batch: bool = True, batch_min: int = DEFAULT_BATCH_MIN
    ) -> None:
        self.index = index
        self.use_batch = use_batch
        self.batch_min = batch_min
        self.fast_path = 0
        self._batch: dict[Direction, BatchRater] = {}
        self._row_texts: dict[int, tuple[str, str, str]] = {}
        self._rows = index.tariff.rows

    def rate_chunk(self, chunk: Sequence[UsageEvent | RowError]) -> list[RatedRecord]:
        """One `RatedRecord` per input record, in order."""
        out: list[RatedRecord | None] = [None] * len(chunk)
        batched: dict[Direction, list[tuple[int, UsageEvent, int]]] = {}
        for position, record in enumerate(chunk):
            if isinstance(record, RowError):
                out[position] = _failed(
                    record.line, getattr(record, "raw", {}), _row_reason(record)
                )
                continue
            duration = self._batchable_duration(record)
            if duration is None:
                out[position] = self._rate_one(record)
            else:
                batched.setdefault(record.direction, []).append((position, record, duration))
        for direction, items in batched.items():
            if direction not in self._batch and len(items) < self.batch_min:
                for position, event, _ in items:
                    out[position] = self._rate_one(event)
                continue
            for position, rated in self._rate_batch(direction, items):
                out[position] = rated
        return [record for record in out if record is not None]

    def _batchable_duration(self, event: UsageEvent) -> int | None:
        if not self.use_batch or event.service is not Service.VOICE:
            return None
        if event.call_segments or event.speech_s or event.call_class:
            return None
        if event.start.microsecond or event.start.tzinfo is None:
            return None
        try:
            return call_duration_s(event)
        except TelbillError:
            return None  # rate_event reports it

    def _rate_batch(
        self, direction: Direction, items: list[tuple[int, UsageEvent, int]]
    ) -> Iterator[tuple[int, RatedRecord]]:
        if self.index.exact:  # numbers matched as given: digit columns cannot carry them
            for position, event, _ in items:
                yield position, self._rate_one(event)
            return
        rater = self._batch.get(direction)
        if rater is None:
            rater = compile_batch(self.index, service=Service.VOICE, direction=direction)
            self._batch[direction] = rater
        numbers: list[str] = []
        good: list[tuple[int, UsageEvent, int]] = []
        for position, event, duration in items:
            try:
                numbers.append(rating_digits(event.to_number))
            except TelbillError:  # junk number: rate_event names the problem
                yield position, self._rate_one(event)
                continue
            good.append((position, event, duration))
        if not good:
            return
        columns = CdrColumns(
            number=np.array([int(digits) if digits else 0 for digits in numbers], np.int64),
            ndigits=np.array([len(digits) for digits in numbers], np.int64),
            duration_s=np.array([duration for _, _, duration in good], np.int64),
            start_s=np.array([int(event.start.timestamp()) for _, event, _ in good], np.int64),
        )
        items = good
        result = rater.rate(columns)
        for i, (position, event, _) in enumerate(items):
            row_position = int(result.row[i])
            if row_position < 0 or int(result.status[i]) != Status.OK:
                yield position, self._rate_one(event)
                continue
            self.fast_path += 1
            micros = int(result.cost_micros[i])
            yield position, self._from_row(event, row_position, micros, int(result.billed_s[i]))

    def _from_row(
        self, event: UsageEvent, row_position: int, micros: int, billed_s: int
    ) -> RatedRecord:
        prefix, destination, rate = self._row_text(row_position)
        rated = {
            "cost": _micros_text(micros, self.index.rounding_of(row_position)[0]),
            "currency": self.index.currency,
            "billed_seconds": str(billed_s),
            "prefix": prefix,
            "destination": destination,
            "rate": rate,
            "error": "",
        }
        cost = Decimal(micros) / MICROS
        return RatedRecord(event.line, event.raw, rated, cost, self.index.currency)

    def _row_text(self, row_position: int) -> tuple[str, str, str]:
        text = self._row_texts.get(row_position)
        if text is None:
            row = self._rows[row_position]
            text = (row.prefix, row.destination, str(row.rate))
            self._row_texts[row_position] = text
        return text

    def _rate_one(self, event: UsageEvent) -> RatedRecord:
        try:
            rated_event = rate_event(event, self.index, labels=False)  # labels: not in the CSV
        except TelbillError as exc:
            return _failed(event.line, event.raw, f"{exc.code}: {exc.message}")
        return _priced(event, rated_event)


class ChunkRater(Protocol):
    def rate_chunk(self, chunk: Sequence[UsageEvent | RowError]) -> list[RatedRecord]: ...


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """One version of a tariff: from when it is in force, and how to load its index."""

    version: int
    effective_from: datetime | None
    load: Callable[[], TariffIndex]


class VersionedRater:
    """Rates each record with the tariff version in force at its start.

    The version in force at a moment is the newest one whose `effective_from` is not after
    it (the rule of `services.tariffs`); a call older than every version gets an error row.
    Each version's index is loaded on first use, so a file inside one version's span loads
    only that one.
    """

    def __init__(
        self, versions: Sequence[VersionSpec], *, use_batch: bool = True,
        batch_min: int = DEFAULT_BATCH_MIN,
    ) -> None:  # fmt: skip
        if not versions:
            raise ValueError("a versioned rater needs at least one version")
        self._newest_first = sorted(versions, key=lambda spec: spec.version, reverse=True)
        self._raters: dict[int, OfflineRater] = {}
        self.use_batch = use_batch
        self.batch_min = batch_min

    @property
    def fast_path(self) -> int:
        return sum(rater.fast_path for rater in self._raters.values())

    def version_at(self, moment: datetime) -> VersionSpec | None:
        for spec in self._newest_first:
            if spec.effective_from is None or spec.effective_from <= moment:
                return spec
        return None

    def _rater(self, spec: VersionSpec) -> OfflineRater:
        rater = self._raters.get(spec.version)
        if rater is None:
            rater = OfflineRater(spec.load(), use_batch=self.use_batch, batch_min=self.batch_min)
            self._raters[spec.version] = rater
        return rater

    def rate_chunk(self, chunk: Sequence[UsageEvent | RowError]) -> list[RatedRecord]:
        """One `RatedRecord` per input record, in order."""
        out: list[RatedRecord | None] = [None] * len(chunk)
        groups: dict[int, tuple[VersionSpec, list[int]]] = {}
        for position, record in enumerate(chunk):
            if isinstance(record, RowError):
                spec: VersionSpec | None = self._newest_first[0]
            else:
                spec = self.version_at(record.start)
                if spec is None:
                    out[position] = _failed(
                        record.line, dict(record.raw or {}),
                        f"no tariff version in force at {record.start.isoformat()}",
                    )  # fmt: skip
                    continue
            assert spec is not None
            groups.setdefault(spec.version, (spec, []))[1].append(position)
        for spec, positions in groups.values():
            rated = self._rater(spec).rate_chunk([chunk[p] for p in positions])
            for position, record in zip(positions, rated, strict=True):
                out[position] = record
        return [record for record in out if record is not None]


def rate_records(
    records: Iterable[UsageEvent | RowError],
    index: TariffIndex | None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    use_batch: bool = True,
    rater: ChunkRater | None = None,
) -> Iterator[RatedRecord]:
    """Rate a stream of CDR records against `index` (or with `rater`), in input order,
    `chunk_size` at a time."""
    if rater is None:
        if index is None:
            raise ValueError("rate_records needs a tariff index or a rater")
        rater = OfflineRater(index, use_batch=use_batch)
    chunk: list[UsageEvent | RowError] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= chunk_size:
            yield from rater.rate_chunk(chunk)
            chunk = []
    if chunk:
        yield from rater.rate_chunk(chunk)


def _micros_text(micros: int, decimals: int) -> str:
    """`format_amount` of micros already rounded to `decimals` (the batch rater's output),
    without building a Decimal per row."""
    if micros < 0 or not 0 <= decimals <= 6:
        return format_amount(Decimal(micros) / MICROS, decimals)
    units, fraction = divmod(micros, 1_000_000)
    if decimals == 0:
        return str(units)
    return f"{units}.{fraction:06d}"[: len(str(units)) + 1 + decimals]


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
    "OfflineRater",
    "output_columns",
    "output_row",
    "rate_records",
]
