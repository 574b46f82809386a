"""`telbill rate`: a CDR file rated offline into a CSV, columns from the first byte.

A native CDR file is read in blocks of columns (`adapters.formats.cdr_columns`); each
block's plain calls are priced by the numpy batch rater of the tariff version in force at
their start, and their output lines are built from the columns (the line as written, then
``cost,currency,billed_seconds,prefix,destination,rate,error``) without a Python object per
CDR. Every other line (bad rows, SMS, calls the batch rater hands back, odd shapes) is read
by the per-row reader and rated by `cdr_rating`'s raters, whose output is the reference:
the file written is byte for byte the one the per-row path writes (tests compare both).

Other formats, and native files whose header the column reader does not take, go through
the per-row path. `workers` > 1 cuts a native file into byte ranges at line ends, rates
each in its own process into a part file and joins the parts in order.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from telbill.adapters.db.engine import Database
from telbill.adapters.formats.cdr_columns import (
    INBOUND,
    CdrBlock,
    NativeColumnsReader,
    may_span_lines,
    split_ranges,
)
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.domain.batch import CdrColumns, Status
from telbill.domain.tariffs import Direction
from telbill.errors import InvalidInput

if TYPE_CHECKING:
    from telbill.services.tariffs import Viewer
from telbill.services.cdr_rating import (
    DEFAULT_CHUNK_SIZE,
    MICROS,
    OfflineRater,
    RatedRecord,
    RatingTotals,
    VersionedRater,
    VersionSpec,
    output_columns,
    output_row,
    rate_records,
)

Progress = Callable[[int], None]
_DIRECTIONS = {0: Direction.OUTBOUND, INBOUND: Direction.INBOUND}


def versioned_rater(
    db: Database, name: str, *, use_batch: bool = True, viewer: Viewer | None = None
) -> VersionedRater:
    """The rater of tariff `name` as `viewer` sees it (default: the operator's catalogue):
    each call priced by the version in force at its start."""
    from telbill.services.quotes import load_tariff_index
    from telbill.services.tariffs import OPERATOR, Viewer, list_versions

    found_versions = list_versions(db, name, viewer or OPERATOR)
    exact = Viewer.owner(found_versions[0].owner_id)

    def loader(version: int) -> Callable[[], Any]:
        return lambda: load_tariff_index(db, name, version=version, viewer=exact)

    return VersionedRater(
        [
            VersionSpec(found.version, found.effective_from, loader(found.version))
            for found in found_versions
        ],
        use_batch=use_batch,
    )


@dataclass(slots=True)
class _Part:
    """Output of a block: its column-rated lines (in line order) and per-row records."""

    lines: np.ndarray
    rated: pa.Array | None
    records: list[RatedRecord]


class ColumnarRater:
    """Rates `CdrBlock`s with a `VersionedRater`'s batch raters (see the module docstring)."""

    def __init__(self, rater: VersionedRater, reader: NativeColumnsReader) -> None:
        self.rater = rater
        self.reader = reader
        self._row_texts: dict[int, pa.Array] = {}
        self._decimals: dict[int, np.ndarray] = {}

    def rate_block(self, block: CdrBlock, totals: RatingTotals) -> _Part:
        slow_rows = np.zeros(len(block), dtype=np.bool_)
        rated: list[tuple[np.ndarray, pa.Array]] = []
        spec_of = self._versions(block, slow_rows)
        for spec_index, spec in enumerate(self.rater._newest_first):
            for code, direction in _DIRECTIONS.items():
                rows = np.flatnonzero((spec_of == spec_index) & (block.direction == code))
                if rows.shape[0] == 0:
                    continue
                found = self._rate(spec, direction, block, rows, slow_rows, totals)
                if found is not None:
                    rated.append(found)
        slow_lines = block.slow + block.text_of(np.flatnonzero(slow_rows))
        records = self.reader.slow_records(slow_lines, block.records)
        outputs = self.rater.rate_chunk(records) if records else []
        for record in outputs:
            totals.add(record)
        if not rated:
            return _Part(np.zeros(0, np.int64), None, outputs)
        rows = np.concatenate([r for r, _ in rated])
        texts = pa.concat_arrays([t for _, t in rated]) if len(rated) > 1 else rated[0][1]
        order = np.argsort(rows, kind="stable")
        if len(rated) > 1 or not np.all(order == np.arange(order.shape[0])):
            texts = texts.take(pa.array(order))
            rows = rows[order]
        return _Part(block.line[rows], texts, outputs)

    def _versions(self, block: CdrBlock, slow_rows: np.ndarray) -> np.ndarray:
        """Index (in newest-first order) of the version in force at each call's start;
        -1 (and slow) when none is."""
        spec_of = np.full(len(block), -1, dtype=np.int64)
        start_us = block.start_s * 1_000_000
        for k, spec in enumerate(self.rater._newest_first):
            free = spec_of < 0
            if spec.effective_from is not None:
                free &= _epoch_us(spec.effective_from) <= start_us
            spec_of[free] = k
        slow_rows |= spec_of < 0
        return spec_of

    def _rate(
        self,
        spec: VersionSpec,
        direction: Direction,
        block: CdrBlock,
        rows: np.ndarray,
        slow_rows: np.ndarray,
        totals: RatingTotals,
    ) -> tuple[np.ndarray, pa.Array] | None:
        offline = self.rater._rater(spec)
        batch = offline._batch.get(direction)
        if batch is None:
            if not offline.use_batch or rows.shape[0] < offline.batch_min:
                slow_rows[rows] = True
                return None
            from telbill.domain.batch import compile_batch
            from telbill.domain.tariffs import Service

            batch = compile_batch(offline.index, service=Service.VOICE, direction=direction)
            offline._batch[direction] = batch
        result = batch.rate(
            CdrColumns(
                block.number[rows], block.ndigits[rows], block.duration_s[rows],
                block.start_s[rows],
            )
        )  # fmt: skip
        good = (result.status == Status.OK) & (result.row >= 0) & (result.cost_micros >= 0)
        slow_rows[rows[~good]] = True
        if not np.any(good):
            return None
        rows = rows[good]
        micros, billed, row = result.cost_micros[good], result.billed_s[good], result.row[good]
        offline.fast_path += int(rows.shape[0])
        currency = offline.index.currency
        total = int(micros.sum())
        totals.records += int(rows.shape[0])
        totals.rated += int(rows.shape[0])
        totals.cost[currency] = totals.cost.get(currency, Decimal(0)) + Decimal(total) / MICROS
        cost = _cost_texts(micros, self._decimals_of(offline)[row])
        text = block.text.take(pa.array(rows))
        lines = pc.binary_join_element_wise(
            text, cost, _csv_field(currency), pc.cast(pa.array(billed), pa.string()),
            self._rows_of(offline).take(pa.array(row)), "\r\n", ",",
        )  # fmt: skip
        return rows, lines

    def _rows_of(self, offline: OfflineRater) -> pa.Array:
        """``prefix,destination,rate`` of each tariff row, as `csv` writes them (built
        column-wise: a deck has tens of thousands of rows)."""
        key = id(offline)
        found = self._row_texts.get(key)
        if found is None:
            rows = offline.index.tariff.rows
            rates: dict[Decimal, str] = {}
            found = pc.binary_join_element_wise(
                _csv_fields(pa.array([row.prefix for row in rows], pa.string())),
                _csv_fields(pa.array([row.destination for row in rows], pa.string())),
                _csv_fields(pa.array(
                    [rates.get(r.rate) or rates.setdefault(r.rate, str(r.rate)) for r in rows],
                    pa.string(),
                )),
                ",",
            )  # fmt: skip
            self._row_texts[key] = found
        return found

    def _decimals_of(self, offline: OfflineRater) -> np.ndarray:
        key = id(offline)
        found = self._decimals.get(key)
        if found is None:
            index = offline.index
            found = np.array(
                [index.rounding_of(p)[0] for p in range(len(index.tariff.rows))], dtype=np.int64
            )
            self._decimals[key] = found
        return found


def _epoch_us(moment: datetime) -> int:
    from telbill.adapters.formats.cdr_columns import _EPOCH

    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _cost_texts(micros: np.ndarray, decimals: np.ndarray) -> pa.Array:
    """`cdr_rating._micros_text` of each cost (non-negative micros, 0-6 decimals)."""
    units = pc.cast(pa.array(micros // 1_000_000), pa.string())
    fraction = pc.utf8_lpad(pc.cast(pa.array(micros % 1_000_000), pa.string()), 6, "0")
    result: pa.Array | None = None
    for places in np.unique(decimals).tolist():
        if places == 0:
            text = units
        else:
            text = pc.binary_join_element_wise(
                units, pc.utf8_slice_codeunits(fraction, 0, places), "."
            )
        if result is None:
            result = text
        else:
            result = pc.if_else(pa.array(decimals == places), text, result)
    assert result is not None
    return result


def _csv_fields(values: pa.StringArray) -> pa.StringArray:
    """`_csv_field` of each value."""
    needs = pc.match_substring_regex(values, '[,"\r\n]')
    if not pc.any(needs).as_py():
        return values
    quoted = pc.binary_join_element_wise(
        '"', pc.replace_substring(values, '"', '""'), '"', ""
    )
    chosen: pa.StringArray = pc.if_else(needs, quoted, values)
    return chosen


def _csv_field(value: str) -> str:
    """`value` as `csv.writer` writes it (quoted when it holds a comma, quote or line end)."""
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


# ---------------------------------------------------------------------------- files


def rate_cdr_file(
    path: Path,
    rater: VersionedRater,
    out: Path,
    *,
    fmt: str = "native",
    timezone: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    columnar: bool = True,
    byte_range: tuple[int, int] | None = None,
    header: bool = True,
) -> RatingTotals:
    """Rate the CDR file at `path` into the CSV `out` (see the module docstring).

    `columnar` False takes the per-row path for every line (the reference). `byte_range`
    and `header` are a worker's share: rate only those bytes, write no header line.
    """
    if columnar and fmt == "native" and path.is_file():
        reader = NativeColumnsReader(path, timezone=timezone, byte_range=byte_range)
        reader.read_header()
        if reader.columnar:
            return _rate_columns(reader, rater, out, progress, header)
    if byte_range is not None:
        raise InvalidInput("a byte range is rated by the column reader only")
    return _rate_rows(path, fmt, timezone, rater, out, chunk_size, progress)


def _rate_rows(
    path: Path, fmt: str, timezone: str | None, rater: VersionedRater, out: Path,
    chunk_size: int, progress: Progress | None,
) -> RatingTotals:  # fmt: skip
    totals = RatingTotals()
    records = read_cdr_file(path, fmt, timezone=timezone, progress=progress)
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        columns: list[str] | None = None
        input_count = 0
        for record in rate_records(records, None, chunk_size=chunk_size, rater=rater):
            if columns is None:
                input_count = len(record.raw)
                columns = output_columns(list(record.raw))
                writer.writerow(columns)
            writer.writerow(output_row(record, columns, input_count))
            totals.add(record)
    return totals


def _rate_columns(
    reader: NativeColumnsReader,
    rater: VersionedRater,
    out: Path,
    progress: Progress | None,
    header: bool,
) -> RatingTotals:
    assert reader.layout is not None
    totals = RatingTotals()
    columnar = ColumnarRater(rater, reader)
    header_columns = list(dict.fromkeys(reader.layout.header))
    columns = output_columns(header_columns)
    count = len(header_columns)
    with out.open("wb") as handle:
        wrote_header = not header
        for block in reader.blocks():
            part = columnar.rate_block(block, totals)
            if not wrote_header and (len(part.lines) or part.records):
                handle.write(_csv_line(columns))
                wrote_header = True
            _write_part(handle, part, columns, count)
            if progress is not None:
                progress(block.bytes_read)
    return totals


def _write_part(handle: IO[bytes], part: _Part, columns: list[str], count: int) -> None:
    rated = part.rated
    data = b""
    offsets = np.zeros(1, dtype=np.int64)
    if rated is not None and len(rated):
        buffers = rated.buffers()
        offsets = np.frombuffer(buffers[1], dtype=np.int32)[
            rated.offset : rated.offset + len(rated) + 1
        ].astype(np.int64)
        data = memoryview(buffers[2])  # type: ignore[assignment]
    if not part.records:
        if rated is not None and len(rated):
            handle.write(data[int(offsets[0]) : int(offsets[-1])])
        return
    records = sorted(part.records, key=lambda r: r.line or 0)
    at = np.searchsorted(part.lines, [r.line or 0 for r in records]).tolist()
    done = 0
    for position, record in zip(at, records, strict=True):
        if position > done:
            handle.write(data[int(offsets[done]) : int(offsets[position])])
            done = position
        handle.write(_csv_line(output_row(record, columns, count)))
    if len(part.lines) > done:
        handle.write(data[int(offsets[done]) : int(offsets[-1])])


def _csv_line(values: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------- workers


@dataclass(frozen=True, slots=True)
class _RateShare:
    url: str
    tariff: str
    path: str
    part: str
    timezone: str | None
    byte_range: tuple[int, int]
    owner: int | None = None  # whose tariff `tariff` is (None: the operator's)


def _rate_share(share: _RateShare) -> RatingTotals:
    from telbill.services.tariffs import Viewer

    db = Database(share.url)
    try:
        rater = versioned_rater(db, share.tariff, viewer=Viewer.owner(share.owner))
        return rate_cdr_file(
            Path(share.path), rater, Path(share.part), timezone=share.timezone,
            byte_range=share.byte_range, header=False,
        )  # fmt: skip
    finally:
        db.dispose()


def rate_cdr_file_workers(
    db: Database,
    tariff: str,
    path: Path,
    out: Path,
    *,
    workers: int,
    fmt: str = "native",
    timezone: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    viewer: Viewer | None = None,
) -> RatingTotals:
    """`rate_cdr_file` with `workers` processes (native files; others use one), with the
    tariff `viewer` sees (default: the operator's)."""
    from telbill.services.tariffs import OPERATOR, Viewer, get_version

    if workers < 1:
        raise InvalidInput("workers must be at least 1")
    owner = get_version(db, tariff, viewer=viewer or OPERATOR).owner_id
    rater = versioned_rater(db, tariff, viewer=Viewer.owner(owner))
    reader = NativeColumnsReader(path, timezone=timezone) if path.is_file() else None
    if reader is not None and fmt == "native":
        reader.read_header()
    if (
        workers == 1 or reader is None or fmt != "native" or not reader.columnar
        or may_span_lines(path)
    ):  # fmt: skip
        return rate_cdr_file(
            path, rater, out, fmt=fmt, timezone=timezone, chunk_size=chunk_size,
            progress=progress,
        )  # fmt: skip
    url = db.engine.url.render_as_string(hide_password=False)
    folder = tempfile.mkdtemp(prefix=".rate-", dir=out.parent)
    shares = [
        _RateShare(
            url, tariff, str(path), os.path.join(folder, f"part-{k}"), timezone, span, owner
        )
        for k, span in enumerate(split_ranges(path, workers))
    ]
    totals = RatingTotals()
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
            futures = [pool.submit(_rate_share, share) for share in shares[1:]]
            first = rate_cdr_file(
                path, rater, Path(shares[0].part), timezone=timezone,
                byte_range=shares[0].byte_range, header=False,
            )  # fmt: skip
            others = [future.result() for future in futures]
        for found in [first, *others]:
            _add_totals(totals, found)
        assert reader.layout is not None
        with out.open("wb") as handle:
            if totals.records:
                handle.write(_csv_line(output_columns(list(dict.fromkeys(reader.layout.header)))))
            for share in shares:
                with open(share.part, "rb") as part:
                    while chunk := part.read(8 << 20):
                        handle.write(chunk)
        if progress is not None:
            progress(path.stat().st_size)
    finally:
        for share in shares:
            if os.path.exists(share.part):
                os.remove(share.part)
        os.rmdir(folder)
    return totals


def _add_totals(total: RatingTotals, other: RatingTotals) -> None:
    total.records += other.records
    total.rated += other.rated
    total.errors += other.errors
    total.fast_path += other.fast_path
    for currency, amount in other.cost.items():
        total.cost[currency] = total.cost.get(currency, Decimal(0)) + amount


__all__ = ["ColumnarRater", "rate_cdr_file", "rate_cdr_file_workers", "versioned_rater"]
