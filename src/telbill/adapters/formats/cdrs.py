"""Open a CDR file in one of the supported switch formats and stream its records.

`read_cdr_file` is the one entry point the services and the CLI use: it picks the reader by
format name, opens the file (or folder, for FreeSWITCH JSON) and yields `UsageEvent`s and
`RowError`s one at a time, closing the file when the stream is exhausted or closed. An
optional `progress` callback receives the number of bytes read as reading goes (for a
progress bar), without holding anything of the file in memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path

from telbill.adapters.formats.cdr_asterisk import read_asterisk_csv
from telbill.adapters.formats.cdr_common import CDR_FORMATS, CdrStream
from telbill.adapters.formats.cdr_freeswitch import read_freeswitch_csv, read_freeswitch_json
from telbill.adapters.formats.cdr_native import read_native_cdrs
from telbill.errors import InvalidInput

Progress = Callable[[int], None]


def cdr_input_size(path: Path) -> int:
    """Bytes a progress bar should expect for `path` (a file or a folder of JSON files)."""
    if path.is_dir():
        return sum(item.stat().st_size for item in path.glob("*.json"))
    return path.stat().st_size


def detect_freeswitch_json(path: Path) -> bool:
    """A folder, a ``.json``/``.jsonl`` file, or a file starting with ``{``/``[`` is JSON."""
    if path.is_dir() or path.suffix.lower() in {".json", ".jsonl", ".ndjson"}:
        return True
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        head = handle.read(64).lstrip()
    return head[:1] in {"{", "["}


def read_cdr_file(
    path: Path,
    fmt: str = "native",
    *,
    timezone: str | tzinfo | None = None,
    default_account: str = "",
    progress: Progress | None = None,
    keep: Callable[[int], bool] | None = None,
) -> CdrStream:
    """Stream the records of the CDR file at `path` in format `fmt`.

    Args:
        fmt: ``native``, ``freeswitch`` (mod_cdr_csv CSV or mod_json_cdr JSON, detected) or
            ``asterisk`` (Master.csv).
        timezone: zone of naive/local stamps (switches log local time); default UTC.
        default_account: account for records that name none.
        progress: called with the count of bytes newly read.
        keep: given a record's 0-based ordinal in the file, whether to yield it (the share
            of one of several workers); the native reader skips the others unparsed.

    Raises:
        InvalidInput: unknown format, missing file, or a file-level problem (bad header).
    """
    if fmt not in CDR_FORMATS:
        raise InvalidInput(f"unknown CDR format {fmt!r} (expected {', '.join(CDR_FORMATS)})")
    if not path.exists():
        raise InvalidInput(f"CDR file not found: {path}")
    if fmt == "freeswitch" and detect_freeswitch_json(path):
        return _kept(_read_json(path, timezone, default_account, progress), keep)
    if fmt == "native":
        return _read_csv(path, fmt, timezone, default_account, progress, keep)
    return _kept(_read_csv(path, fmt, timezone, default_account, progress), keep)


def _kept(records: CdrStream, keep: Callable[[int], bool] | None) -> CdrStream:
    if keep is None:
        yield from records
        return
    for ordinal, record in enumerate(records):
        if keep(ordinal):
            yield record


def _read_json(
    path: Path, timezone: str | tzinfo | None, account: str, progress: Progress | None
) -> CdrStream:
    yield from read_freeswitch_json(path, timezone=timezone, default_account=account)
    if progress is not None:
        progress(cdr_input_size(path))


def _read_csv(
    path: Path,
    fmt: str,
    timezone: str | tzinfo | None,
    account: str,
    progress: Progress | None,
    keep: Callable[[int], bool] | None = None,
) -> CdrStream:
    raw = _CountingReader(path.open("rb", buffering=0), progress)
    # Read as bytes, decoded line by line: a byte that is not UTF-8 becomes a lone surrogate
    # (surrogateescape) that the reader's `check_columns` refuses, with its line; the other
    # lines post (issue 15 finding 3: one latin-1 byte stopped a whole file).
    wrapper = io.TextIOWrapper(
        io.BufferedReader(raw), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    with wrapper as handle:
        if fmt == "native":
            yield from read_native_cdrs(
                handle, timezone=timezone, default_account=account, keep=keep
            )
        elif fmt == "freeswitch":
            yield from read_freeswitch_csv(handle, timezone=timezone, default_account=account)
        else:
            yield from read_asterisk_csv(handle, timezone=timezone, default_account=account)


class _CountingReader(io.RawIOBase):
    """A raw binary stream that reports how many bytes were read through it."""

    def __init__(self, raw: io.RawIOBase | io.FileIO, progress: Progress | None) -> None:
        super().__init__()
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer) or 0
        if count and self._progress is not None:
            self._progress(count)
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()
