"""Columnar reading of native CDR files: blocks of bytes into Arrow and numpy columns.

The per-row readers (`cdr_native`...) build one `UsageEvent` per record; this reader
builds columns for a block of records at once, for the vectorised paths of `telbill rate`
and `cdr post` (issue 14). It never decides a hard case itself: every line it is not sure
to read exactly as `read_native_cdrs` would is handed back, with its line number, to be read
by that reader, which stays the reference. A line goes back when it has:

* a quote, a NUL, a lone CR, bytes that are not UTF-8, or a wrong number of commas;
* a field with blank space (or a non-ASCII character) at either end (the per-row reader
  strips fields; the columns keep them as written);
* a value outside the shapes parsed here: timestamps other than ``YYYY-MM-DD[T ]HH:MM:SS``
  with ``Z``/``+HH:MM``/no offset, numbers other than ``+digits``/``00digits``/``digits``,
  services other than blank/``voice``, directions other than blank/``outbound``/``inbound``,
  speech seconds other than blank/``0``, call times that disagree (answer before start...).

How a block is read: the bytes up to a line end (about 8 MB) are scanned with numpy for
line ends, commas, quotes and field edges; the lines that pass are parsed by Arrow's CSV
reader (all columns as text, no quoting), then numbers and times are parsed from the
Arrow buffers with fixed-width numpy arithmetic. A line with an odd number of quotes may
start a record spanning lines: from there the rest of the file is read by the per-row
reader (exact, slower), as it is for a file with lone CRs (a line end to `csv`).

Naive times are read in the reader's zone: UTC, or an IANA zone whose offset is looked up
with `zoneinfo` once per distinct hour (and per second in an hour holding a transition),
so a local time means what it means to `parse_timestamp` (fold 0).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from telbill.adapters.formats.cdr_common import (
    FIELD_LIMITS,
    MAX_CDR_FIELD,
    CdrRecord,
    CdrRowError,
    resolve_timezone,
)
from telbill.adapters.formats.cdr_native import NativeLayout, read_native_cdrs
from telbill.domain.inputs import EARLIEST, LATEST

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
BLOCK_BYTES = 8 << 20
_MAX_NUMBER_DIGITS = 15  # `numbers.MAX_DIGITS`
_MAX_SECONDS = 10**9  # `cdr_common.MAX_SECONDS`
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_S = int((EARLIEST - _EPOCH).total_seconds())  # `inputs.check_instant`
_LATEST_S = int((LATEST - _EPOCH).total_seconds())

OUTBOUND, INBOUND = 0, 1

# Bytes that may not sit at either end of a field: what `str.strip` removes (ASCII
# whitespace, the 0x1c-0x1f separators) and any non-ASCII byte (unicode blanks), so that a
# field as written equals the stripped value the per-row reader uses.
_BAD_EDGE = np.zeros(256, dtype=np.bool_)
_BAD_EDGE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_BAD_EDGE[128:] = True


@dataclass(slots=True)
class CdrBlock:
    """A block of a native CDR file: columns of the lines read here, lines to read per row.

    Column `k` of every array is the record at `line[k]`; `text[k]` is that line as
    written (without its end). `slow` holds (line, text) of lines for the per-row reader;
    `records` holds records the per-row reader already read (after a multi-line record).
    """

    line: I64
    text: pa.StringArray
    fields: dict[str, pa.StringArray]
    number: I64
    ndigits: I64
    start_s: I64
    answer_s: I64  # -1: no answer
    end_s: I64  # -1: no end given
    duration_s: I64  # billable seconds (0: unanswered)
    given_duration: I64  # the file's duration column (-1: blank)
    direction: npt.NDArray[np.int8]
    slow: list[tuple[int, str]] = field(default_factory=list)
    records: list[CdrRecord] = field(default_factory=list)
    bytes_read: int = 0

    def __len__(self) -> int:
        return int(self.line.shape[0])

    def take(self, keep: Mask) -> CdrBlock:
        """The block with only the column rows where `keep` is true (same slow lines)."""
        at = pa.array(np.flatnonzero(keep))
        return CdrBlock(
            self.line[keep], self.text.take(at),
            {name: values.take(at) for name, values in self.fields.items()},
            self.number[keep], self.ndigits[keep], self.start_s[keep], self.answer_s[keep],
            self.end_s[keep], self.duration_s[keep], self.given_duration[keep],
            self.direction[keep], self.slow, self.records,
        )  # fmt: skip

    @classmethod
    def concat(cls, blocks: list[CdrBlock]) -> CdrBlock:
        """The column rows of `blocks` one after the other (slow lines and records too)."""
        names = blocks[0].fields.keys()
        return cls(
            np.concatenate([b.line for b in blocks]),
            pa.concat_arrays([b.text for b in blocks]),
            {name: pa.concat_arrays([b.fields[name] for b in blocks]) for name in names},
            *(np.concatenate([getattr(b, name) for b in blocks]) for name in _ARRAYS),
            [line for b in blocks for line in b.slow],
            [record for b in blocks for record in b.records],
        )

    def text_of(self, positions: npt.NDArray[np.intp]) -> list[tuple[int, str]]:
        """(line, text) of the column rows at `positions` (to read them per row)."""
        lines = self.line[positions].tolist()
        texts = self.text.take(pa.array(positions)).to_pylist()
        return list(zip(lines, texts, strict=True))


_ARRAYS = (
    "number", "ndigits", "start_s", "answer_s", "end_s", "duration_s", "given_duration",
    "direction",
)  # fmt: skip


class NativeColumnsReader:
    """Reads a native CDR file into `CdrBlock`s (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        timezone: str | tzinfo | None = None,
        default_account: str = "",
        block_bytes: int = BLOCK_BYTES,
        byte_range: tuple[int, int] | None = None,
    ) -> None:
        self.path = path
        self.tz = resolve_timezone(timezone)
        self.default_account = default_account
        self.block_bytes = block_bytes
        self.byte_range = byte_range
        self.layout: NativeLayout | None = None
        self.columnar = False
        self._offsets = _LocalOffsets(self.tz)

    def read_header(self) -> tuple[int, int]:
        """Read the header; returns (byte offset after it, lines it spans). Raises
        InvalidInput for a header without the required columns."""
        with self.path.open("rb") as handle:
            first = handle.readline()
            text = first.decode("utf-8-sig", errors="replace") if first else ""
            if not text.strip("\r\n") and not first:
                return len(first), 1
            fields = next(csv.reader([text.rstrip("\r\n")]), [])
            self.layout = NativeLayout.of(fields)
            names = [name.strip().lower().lstrip("\ufeff") for name in fields]
            self.columnar = (
                len(set(fields)) == len(fields)
                and len(set(names)) == len(names)
                and '"' not in text
                and "\r" not in text.rstrip("\r\n")
            )
            return len(first), 1

    def blocks(self) -> Iterator[CdrBlock]:
        """The file's blocks in order (after `read_header`)."""
        start, header_lines = self.read_header()
        if self.layout is None:
            return
        stop = None
        if self.byte_range is not None:
            start, stop = max(start, self.byte_range[0]), self.byte_range[1]
            first_line = header_lines + 1 + count_lines(self.path, header_lines, start)
        else:
            first_line = header_lines + 1
        if not self.columnar:
            yield from self._per_row(start, first_line, stop)
            return
        with self.path.open("rb") as handle:
            handle.seek(start)
            position = start
            while stop is None or position < stop:
                want = self.block_bytes if stop is None else min(self.block_bytes, stop - position)
                data = handle.read(want)
                if not data:
                    return
                if not data.endswith(b"\n"):
                    data += handle.readline()
                block, lines = self._block(data, first_line)
                if block is None:  # a record may span lines: the rest per row
                    yield from self._per_row(position, first_line, stop)
                    return
                block.bytes_read = len(data)
                yield block
                position += len(data)
                first_line += lines

    def _per_row(self, start: int, first_line: int, stop: int | None) -> Iterator[CdrBlock]:
        """The file from byte `start` (a record boundary) read per row, in blocks."""
        assert self.layout is not None
        with self.path.open("rb") as raw:
            raw.seek(start)
            body = raw.read(stop - start) if stop is not None else None
        stream: Any = io.BytesIO(body) if body is not None else self.path.open("rb")
        if body is None:
            stream.seek(start)
        header = ",".join(_quoted(name) for name in self.layout.header)
        shift = first_line - 2  # the reader counts the header as line 1
        # surrogateescape: a line that is not UTF-8 is refused by the reader, by line.
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
        with text:
            records = read_native_cdrs(
                _prefixed(header + "\n", text), default_account=self.default_account,
                timezone=self.tz,
            )  # fmt: skip
            batch: list[CdrRecord] = []
            for record in records:
                batch.append(_moved(record, shift))
                if len(batch) >= 20_000:
                    yield _records_block(batch)
                    batch = []
            if batch:
                yield _records_block(batch)

    def _block(self, data: bytes, first_line: int) -> tuple[CdrBlock | None, int]:
        """The block of `data` (whole lines) whose first line is `first_line`; None when a
        line may end inside a field (odd quotes, lone CR). Also returns its line count."""
        assert self.layout is not None
        raw = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(raw == 10)
        if ends.shape[0] == 0 or ends[-1] != raw.shape[0] - 1:
            ends = np.append(ends, raw.shape[0])
        count = int(ends.shape[0])
        starts = np.empty(count, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        text_ends = ends.copy()
        slow = np.zeros(count, dtype=np.bool_)
        if b"\r" in data:
            crs = np.flatnonzero(raw == 13)
            line_of = np.searchsorted(ends, crs)
            if not np.all(crs + 1 == ends[line_of]):
                return None, count  # a lone CR ends a line for `csv`: read it per row
            text_ends[line_of] -= 1
        if b'"' in data:
            quotes = np.bincount(np.searchsorted(ends, np.flatnonzero(raw == 34)), minlength=count)
            if np.any(quotes % 2):
                return None, count
            slow |= quotes > 0
        if b"\0" in data:
            slow[np.searchsorted(ends, np.flatnonzero(raw == 0))] = True
        if not data.isascii():
            slow |= _not_utf8_lines(data, starts, text_ends)
        line_numbers = first_line + np.arange(count, dtype=np.int64)
        empty = text_ends == starts  # no record, nothing to say
        table = self._table(data, raw, starts, ends, ~slow & ~empty)
        if table is None:  # a row of another width: count the commas of every line
            slow |= self._wrong_widths(raw, starts, text_ends, ends)
            table = self._table(data, raw, starts, ends, ~slow & ~empty)
            assert table is not None
        keep = ~slow & ~empty
        fields = {
            name: _one_chunk(table.column(position))
            for name, position in self.layout.where.items()
            if position >= 0
        }
        every = [_one_chunk(table.column(k)) for k in range(table.num_columns)]
        block = self._parse(line_numbers[keep], every, fields)
        texts, unreadable = _line_texts(
            data, starts, text_ends, line_numbers, slow, self.layout.header
        )
        block.slow = sorted(block.slow + texts)
        block.records = unreadable
        return block, count

    def _table(
        self, data: bytes, raw: npt.NDArray[np.uint8], starts: I64, ends: I64, keep: Mask
    ) -> pa.Table | None:
        """Arrow's parse of the kept lines (all text, no quoting); None when a line has
        another number of fields than the header."""
        assert self.layout is not None
        columns = len(self.layout.header)
        kept = data if np.all(keep) else _kept_bytes(raw, starts, ends, keep)
        invalid: list[int] = []

        def on_invalid(row: Any) -> str:
            invalid.append(1)
            return "skip"

        table = pa_csv.read_csv(
            io.BytesIO(kept),
            read_options=pa_csv.ReadOptions(
                column_names=[f"c{i}" for i in range(columns)], block_size=len(kept) + 1,
                use_threads=False,
            ),
            parse_options=pa_csv.ParseOptions(
                quote_char=False, newlines_in_values=False, invalid_row_handler=on_invalid,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={f"c{i}": pa.string() for i in range(columns)},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )  # fmt: skip
        return None if invalid else table

    def _wrong_widths(
        self, raw: npt.NDArray[np.uint8], starts: I64, text_ends: I64, ends: I64
    ) -> Mask:
        assert self.layout is not None
        commas = np.bincount(np.searchsorted(ends, np.flatnonzero(raw == 44)), minlength=len(ends))
        wrong: Mask = commas != len(self.layout.header) - 1
        return wrong

    def _parse(
        self, lines: I64, every: list[pa.StringArray], fields: dict[str, pa.StringArray]
    ) -> CdrBlock:
        """Numbers and times of the column rows; a row any value of which is outside the
        shapes parsed here moves to the block's slow lines."""
        text = _joined(every)
        size = len(text)
        ok = np.ones(size, dtype=np.bool_)
        for column in fields.values():
            ok &= _clean_edges(column)
        for name in ("id", "to", "start"):
            ok &= _lengths(fields[name]) > 0
        # A column longer than its limit, or a time out of range, is refused by the per-row
        # reader with its reason (bytes >= characters: a long non-ASCII column goes per row).
        for name, column in fields.items():
            ok &= _lengths(column) <= FIELD_LIMITS.get(name, MAX_CDR_FIELD)
        number, ndigits, good = parse_numbers(fields["to"])
        ok &= good
        start_s, good, blank = parse_times(fields["start"], self._offsets)
        ok &= good & ~blank
        answer_s, good, no_answer = self._optional_time(fields, "answer", size)
        ok &= good
        end_s, good, no_end = self._optional_time(fields, "end", size)
        ok &= good
        given, good, no_given = parse_small_ints(fields.get("duration"), size)
        ok &= good
        ok &= _one_of(fields.get("service"), size, ("", "voice"))
        ok &= _one_of(fields.get("speech_seconds"), size, ("", "0"))
        direction_column = fields.get("direction")
        ok &= _one_of(direction_column, size, ("", "outbound", "inbound"))
        direction = np.zeros(size, dtype=np.int8)
        if direction_column is not None:
            direction[_equals(direction_column, "inbound")] = INBOUND
        for seconds, absent in ((start_s, blank), (answer_s, no_answer), (end_s, no_end)):
            ok &= absent | ((seconds >= _EARLIEST_S) & (seconds < _LATEST_S))
        duration, good, answer_s, end_s = call_times(
            start_s, answer_s, no_answer, end_s, no_end, given, no_given
        )
        ok &= good
        block = CdrBlock(
            lines, text, fields, number, ndigits, start_s, answer_s, end_s, duration,
            np.where(no_given, -1, given), direction,
        )  # fmt: skip
        if np.all(ok):
            return block
        moved = block.text_of(np.flatnonzero(~ok))
        kept = block.take(ok)
        kept.slow = moved
        return kept

    def _optional_time(
        self, fields: dict[str, pa.StringArray], name: str, size: int
    ) -> tuple[I64, Mask, Mask]:
        column = fields.get(name)
        if column is None:
            return np.zeros(size, np.int64), np.ones(size, np.bool_), np.ones(size, np.bool_)
        seconds, good, blank = parse_times(column, self._offsets)
        return seconds, good | blank, blank

    def slow_records(
        self, lines: list[tuple[int, str]], records: list[CdrRecord]
    ) -> list[CdrRecord]:
        """The records of slow `lines` (read per row), then the per-row `records`."""
        assert self.layout is not None
        found = list(self.layout.records_of_lines(lines, self.default_account, self.tz))
        return found + records if records else found


def call_times(
    start: I64, answer: I64, no_answer: Mask, end: I64, no_end: Mask, given: I64,
    no_given: Mask,
) -> tuple[I64, Mask, I64, I64]:  # fmt: skip
    """Billable seconds and whether the times are consistent, as `cdr_native._call_times`
    and `rating.call_duration_s` decide them for whole-second times; also the answer and end
    after the duration rule (-1: none)."""
    ok = ~(no_end & no_given)  # a call needs end or duration
    from_duration = no_end & ~no_given
    unanswered = from_duration & no_answer & (given == 0)
    answered_at = np.where(no_answer, start, answer)
    end = np.where(from_duration, answered_at + given, end)
    answer = np.where(from_duration & ~unanswered, answered_at, answer)
    has_answer = ~no_answer | (from_duration & ~unanswered)
    end = np.where(unanswered, start, end)
    ok &= ~has_answer | (answer >= start)
    ok &= end >= start
    ok &= ~has_answer | (end >= answer)
    measured = end - answer
    ok &= no_given | ~has_answer | (measured == given)
    duration = np.where(has_answer, measured, 0)
    answer = np.where(has_answer, answer, -1)
    return duration.astype(np.int64), ok, answer, end


def count_lines(path: Path, skip: int, until: int) -> int:
    """Line ends in `path` from after its first `skip` lines to byte `until` (a worker's
    first line number)."""
    lines = 0
    with path.open("rb") as handle:
        for _ in range(skip):
            handle.readline()
        position = handle.tell()
        while position < until:
            data = handle.read(min(BLOCK_BYTES, until - position))
            if not data:
                break
            lines += data.count(b"\n")
            position += len(data)
    return lines


def may_span_lines(path: Path) -> bool:
    """Whether a record of `path` may span lines (a line with an odd number of quotes, or
    a lone CR): then the file cannot be cut at line ends."""
    with path.open("rb") as handle:
        while data := handle.read(BLOCK_BYTES):
            data += handle.readline()
            if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
                return True
            if b'"' in data:
                raw = np.frombuffer(data, dtype=np.uint8)
                ends = np.flatnonzero(raw == 10)
                quotes = np.searchsorted(ends, np.flatnonzero(raw == 34))
                if np.any(np.bincount(quotes) % 2):
                    return True
    return False


def split_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """`parts` byte ranges of `path` after its header, each ending at a line end."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.readline()
        begin = handle.tell()
        edges = [begin]
        for k in range(1, parts):
            handle.seek(max(begin + (size - begin) * k // parts, edges[-1]))
            if handle.tell() > begin:
                handle.seek(handle.tell() - 1)
                handle.readline()
            edges.append(max(handle.tell(), edges[-1]))
        edges.append(size)
    return list(zip(edges[:-1], edges[1:], strict=True))


# ---------------------------------------------------------------------------- values


def _offsets_and_data(column: pa.StringArray) -> tuple[I64, npt.NDArray[np.uint8]]:
    buffers = column.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None and buffers[2].size
        else np.zeros(0, dtype=np.uint8)
    )
    return offsets.astype(np.int64), data


def _lengths(column: pa.StringArray) -> I64:
    offsets, _ = _offsets_and_data(column)
    return np.diff(offsets)


class _Bytes:
    """Byte k of each value of a string column (0 past its end), one position at a time."""

    def __init__(self, column: pa.StringArray) -> None:
        self.offsets, self.data = _offsets_and_data(column)
        self.starts = self.offsets[:-1]
        self.lengths = np.diff(self.offsets)
        self.size = int(self.lengths.shape[0])

    def at(self, positions: I64) -> npt.NDArray[np.int64]:
        """The byte at `positions` (per value, from its start) or 0 outside the value."""
        if self.data.shape[0] == 0:
            return np.zeros(self.size, dtype=np.int64)
        inside = (positions >= 0) & (positions < self.lengths)
        found = self.data[np.clip(self.starts + positions, 0, self.data.shape[0] - 1)]
        return np.where(inside, found, 0).astype(np.int64)

    def digits(self, first: int, count: int) -> tuple[I64, Mask]:
        """The number written at positions first..first+count-1, and whether all are digits."""
        value = np.zeros(self.size, dtype=np.int64)
        ok = np.ones(self.size, dtype=np.bool_)
        for k in range(first, first + count):
            digit = self.at(np.full(self.size, k, dtype=np.int64)) - 48
            ok &= (digit >= 0) & (digit <= 9)
            value = value * 10 + digit
        return value, ok


def parse_numbers(column: pa.StringArray) -> tuple[I64, I64, Mask]:
    """Rating digits of called numbers: ``+digits``, ``00digits`` or ``digits`` (1-15
    digits after the prefix) as an integer and a digit count; `ok` false otherwise
    (separators, letters...: `rating_digits` decides per row)."""
    values = _Bytes(column)
    size, lengths = values.size, values.lengths
    zero = np.zeros(size, dtype=np.int64)
    head, second = values.at(zero), values.at(zero + 1)
    plus = head == 43
    skip = np.where(plus, 1, np.where((head == 48) & (second == 48), 2, 0))
    ndigits = lengths - skip
    ok = (ndigits >= 1) & (ndigits <= _MAX_NUMBER_DIGITS)
    number = np.zeros(size, dtype=np.int64)
    scale = np.ones(size, dtype=np.int64)
    for k in range(1, _MAX_NUMBER_DIGITS + 1):  # from the last digit back
        inside = k <= ndigits
        digit = values.at(lengths - k) - 48
        ok &= ~inside | ((digit >= 0) & (digit <= 9))
        number = np.where(inside, number + np.clip(digit, 0, 9) * scale, number)
        scale = np.where(inside, scale * 10, scale)
    return np.where(ok, number, 0), np.where(ok, ndigits, 0), ok


def parse_small_ints(column: pa.StringArray | None, size: int) -> tuple[I64, Mask, Mask]:
    """Whole seconds as `parse_seconds` reads them (digits only, at most 10^9): (values,
    ok-or-blank, blank)."""
    if column is None:
        return np.zeros(size, np.int64), np.ones(size, np.bool_), np.ones(size, np.bool_)
    values = _Bytes(column)
    lengths = values.lengths
    blank = lengths == 0
    value = np.zeros(size, dtype=np.int64)
    ok = (lengths >= 1) & (lengths <= 10)
    for k in range(10):
        inside = k < lengths
        digit = values.at(np.full(size, k, dtype=np.int64)) - 48
        ok &= ~inside | ((digit >= 0) & (digit <= 9))
        value = np.where(inside, value * 10 + np.clip(digit, 0, 9), value)
    ok &= value <= _MAX_SECONDS
    return np.where(ok, value, 0), ok | blank, blank


_CLOCK_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_STAMP_DIGITS = {19: _CLOCK_DIGITS, 20: _CLOCK_DIGITS, 25: [*_CLOCK_DIGITS, 20, 21, 23, 24]}
_DAYS_BEFORE_MONTH = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def parse_times(column: pa.StringArray, offsets_of: _LocalOffsets) -> tuple[I64, Mask, Mask]:
    """UTC epoch seconds of ISO 8601 stamps of the shapes ``YYYY-MM-DD[T ]HH:MM:SS`` +
    ``Z`` | ``+HH:MM`` | ``-HH:MM`` | nothing (naive: the reader's zone), as
    `parse_timestamp` reads them; (seconds, ok, blank). Other shapes are not ok."""
    offsets, data = _offsets_and_data(column)
    lengths = np.diff(offsets)
    size = int(lengths.shape[0])
    seconds = np.zeros(size, dtype=np.int64)
    ok = np.zeros(size, dtype=np.bool_)
    for width in (19, 20, 25):
        rows = np.flatnonzero(lengths == width)
        if rows.shape[0] == 0:
            continue
        if rows.shape[0] == size:  # every value this wide: the data is a matrix already
            first = int(offsets[0])
            matrix = data[first : first + size * width].reshape(size, width)
        else:
            at = offsets[rows][:, None] + np.arange(width, dtype=np.int64)
            matrix = data[at]
        found, good = _stamps(matrix, width, offsets_of)
        seconds[rows] = found
        ok[rows] = good
    return seconds, ok, lengths == 0


def _stamps(
    m: npt.NDArray[np.uint8], width: int, offsets_of: _LocalOffsets
) -> tuple[I64, Mask]:
    """Epoch seconds of fixed-width stamps (rows of `m`) and whether each is valid."""

    digits = m[:, _STAMP_DIGITS[width]].astype(np.int32) - 48
    good = np.all((digits >= 0) & (digits <= 9), axis=1)

    def number(first: int, count: int) -> I64:
        value = digits[:, first].astype(np.int64)
        for k in range(first + 1, first + count):
            value = value * 10 + digits[:, k]
        return value

    year, month, day = number(0, 4), number(4, 2), number(6, 2)
    hour, minute, second = number(8, 2), number(10, 2), number(12, 2)
    good &= (m[:, 4] == 45) & (m[:, 7] == 45) & ((m[:, 10] == 84) | (m[:, 10] == 32))
    good &= (m[:, 13] == 58) & (m[:, 16] == 58)
    good &= (year >= 1971) & (year <= 9998) & (month >= 1) & (month <= 12)
    good &= (hour <= 23) & (minute <= 59) & (second <= 59)
    month_index = np.clip(month, 1, 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days_in = _DAYS_IN_MONTH[month_index] + ((month_index == 2) & leap)
    good &= (day >= 1) & (day <= days_in)
    offset_s: I64 | int = 0
    if width == 20:
        good &= m[:, 19] == 90
    elif width == 25:
        off_hour, off_minute = number(14, 2), number(16, 2)
        sign = m[:, 19]
        good &= ((sign == 43) | (sign == 45)) & (m[:, 22] == 58)
        good &= (off_hour <= 23) & (off_minute <= 59)
        offset_s = np.where(sign == 45, -1, 1) * (off_hour * 3600 + off_minute * 60)
    y = year - 1
    days = (
        365 * y + y // 4 - y // 100 + y // 400
        + _DAYS_BEFORE_MONTH[month_index] + ((month_index > 2) & leap) + day - 1
        - 719162  # days from 0001-01-01 to 1970-01-01
    )  # fmt: skip
    utc = days * 86400 + hour * 3600 + minute * 60 + second - offset_s
    if width == 19:
        naive = np.flatnonzero(good)
        utc[naive] = offsets_of.to_utc(utc[naive])
    return np.where(good, utc, 0), good


def iso_texts(seconds: I64, separator: str = "T", suffix: str = "+00:00") -> pa.StringArray:
    """``YYYY-MM-DD<separator>HH:MM:SS<suffix>`` of UTC epoch seconds (years 1000-9999), as
    one Arrow string array built from a fixed-width byte matrix (no object per value)."""
    days, clock = np.divmod(seconds.astype(np.int64), 86_400)
    shifted = days + 719_468  # civil date from days (H. Hinnant's algorithm)
    era = shifted // 146_097
    day_of_era = shifted - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1_460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = np.where(month_index < 10, month_index + 3, month_index - 9)
    year = year_of_era + era * 400 + (month <= 2)
    hour, rest = np.divmod(clock, 3_600)
    minute, second = np.divmod(rest, 60)
    tail = separator.encode() + b"00:00:00" + suffix.encode()
    width = 10 + len(tail)
    matrix = np.empty((seconds.shape[0], width), dtype=np.uint8)
    matrix[:] = np.frombuffer(b"0000-00-00" + tail, dtype=np.uint8)
    start = 10 + len(separator)
    for column, value, digits in (
        (0, year, 4), (5, month, 2), (8, day, 2), (start, hour, 2), (start + 3, minute, 2),
        (start + 6, second, 2),
    ):  # fmt: skip
        for k in range(digits):
            matrix[:, column + digits - 1 - k] = 48 + (value // 10**k) % 10
    offsets = np.arange(0, (seconds.shape[0] + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(
        seconds.shape[0], pa.py_buffer(offsets), pa.py_buffer(matrix.tobytes())
    )


class _LocalOffsets:
    """Local wall-clock seconds to UTC in one zone, as `parse_timestamp` converts a naive
    stamp (zoneinfo, fold 0): one lookup per distinct hour, per second in an hour that
    holds a change of offset."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._hours: dict[int, int | None] = {}

    def _offset(self, wall_s: int) -> int:
        naive = datetime(1970, 1, 1) + timedelta(seconds=wall_s)
        aware = naive.replace(tzinfo=self.tz, fold=0)
        utc = aware.astimezone(UTC)
        return wall_s - int((utc - _EPOCH).total_seconds())

    def to_utc(self, wall: I64) -> I64:
        if self.tz is UTC:
            return wall
        hours, inverse = np.unique(wall // 3600, return_inverse=True)
        offsets = np.zeros(hours.shape[0], dtype=np.int64)
        steady = np.ones(hours.shape[0], dtype=np.bool_)
        for k, hour in enumerate(hours.tolist()):
            known = self._hours.get(hour, -1)
            if known == -1:
                first, last = self._offset(hour * 3600), self._offset(hour * 3600 + 3599)
                known = first if first == last else None
                if len(self._hours) < 1_000_000:
                    self._hours[hour] = known
            if known is None:
                steady[k] = False
            else:
                offsets[k] = known
        utc = wall - offsets[inverse]
        unsteady = np.flatnonzero(~steady[inverse])
        for i in unsteady.tolist():
            utc[i] = int(wall[i]) - self._offset(int(wall[i]))
        return utc


def _one_of(column: pa.StringArray | None, size: int, allowed: tuple[str, ...]) -> Mask:
    if column is None:
        return np.ones(size, dtype=np.bool_)
    found = np.zeros(size, dtype=np.bool_)
    for value in allowed:
        found |= _equals(column, value)
    return found


def _equals(column: pa.StringArray, value: str) -> Mask:
    result = pc.equal(column, value)
    return np.asarray(result.to_numpy(zero_copy_only=False), dtype=np.bool_)


# ---------------------------------------------------------------------------- bytes


def _not_utf8_lines(data: bytes, starts: I64, ends: I64) -> Mask:
    bad = np.zeros(starts.shape[0], dtype=np.bool_)
    try:
        data.decode("utf-8")
        return bad
    except UnicodeDecodeError:
        pass
    for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        try:
            data[a:b].decode("utf-8")
        except UnicodeDecodeError:
            bad[k] = True
    return bad


def _kept_bytes(raw: npt.NDArray[np.uint8], starts: I64, ends: I64, keep: Mask) -> bytes:
    stops = np.minimum(ends + 1, raw.shape[0])
    mask = np.repeat(keep, stops - starts)
    return bytes(raw[: mask.shape[0]][mask].tobytes())


def _joined(columns: list[pa.StringArray]) -> pa.StringArray:
    """Each row's fields joined by commas: the line as written (it has no quotes)."""
    if len(columns) == 1:
        return columns[0]
    joined: pa.StringArray = pc.binary_join_element_wise(*columns, ",")
    return joined


def _clean_edges(column: pa.StringArray) -> Mask:
    """Whether each value has no blank (nor non-ASCII byte) at either end."""
    offsets, data = _offsets_and_data(column)
    lengths = np.diff(offsets)
    if data.shape[0] == 0:
        return np.ones(lengths.shape[0], dtype=np.bool_)
    last = data.shape[0] - 1
    first_bad = _BAD_EDGE[data[np.minimum(offsets[:-1], last)]]
    last_bad = _BAD_EDGE[data[np.clip(offsets[1:] - 1, 0, last)]]
    clean: Mask = (lengths == 0) | ~(first_bad | last_bad)
    return clean


def _line_texts(
    data: bytes, starts: I64, ends: I64, numbers: I64, which: Mask, header: tuple[str, ...]
) -> tuple[list[tuple[int, str]], list[CdrRecord]]:
    """(line, text) of the lines in `which`; an error record for a line that is not UTF-8
    (its fields shown with U+FFFD for the bad bytes)."""
    found = []
    unreadable: list[CdrRecord] = []
    for k in np.flatnonzero(which).tolist():
        text = data[int(starts[k]) : int(ends[k])]
        try:
            found.append((int(numbers[k]), text.decode("utf-8")))
        except UnicodeDecodeError as exc:
            shown = text.decode("utf-8", errors="replace")
            fields = next(csv.reader([shown]), [])
            unreadable.append(
                CdrRowError(int(numbers[k]), f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                            raw={name: fields[i] if i < len(fields) else ""
                                 for i, name in enumerate(header)})
            )  # fmt: skip
    return found, unreadable


def _one_chunk(column: pa.ChunkedArray) -> pa.StringArray:
    if column.num_chunks == 1:
        return column.chunk(0)
    return column.combine_chunks()


def _records_block(records: list[CdrRecord], slow: list[tuple[int, str]] | None = None) -> CdrBlock:
    empty = np.zeros(0, dtype=np.int64)
    return CdrBlock(
        empty, pa.array([], pa.string()), {}, empty, empty, empty, empty, empty, empty, empty,
        np.zeros(0, dtype=np.int8), slow or [], records,
    )  # fmt: skip


def _quoted(name: str) -> str:
    if any(c in name for c in ',"\r\n'):
        return '"' + name.replace('"', '""') + '"'
    return name


def _prefixed(first: str, rest: io.TextIOWrapper) -> Iterator[str]:
    yield first
    yield from rest


def _moved(record: CdrRecord, shift: int) -> CdrRecord:
    if not shift or record.line is None:
        return record
    return dataclasses.replace(record, line=record.line + shift)


__all__ = [
    "CdrBlock",
    "INBOUND",
    "NativeColumnsReader",
    "OUTBOUND",
    "call_times",
    "iso_texts",
    "may_span_lines",
    "parse_numbers",
    "parse_small_ints",
    "parse_times",
    "split_ranges",
]
