"""Open a CDR file in one of the supported switch formats and stream its records.

`read_cdr_file` is the one entry point the services and the CLI use: it picks the reader by
format name, opens the file (or folder, for FreeSWITCH JSON) and yields `UsageEvent`s and
`RowError`s one at a time, closing the file when the stream is exhausted or closed.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path

from telbill.adapters.formats.cdr_asterisk import read_asterisk_csv
from telbill.adapters.formats.cdr_common import CDR_FORMATS, CdrStream
from telbill.adapters.formats.cdr_freeswitch import read_freeswitch_csv, read_freeswitch_json
from telbill.adapters.formats.cdr_native import read_native_cdrs
from telbill.errors import InvalidInput


def detect_freeswitch_json(path: Path) -> bool:
    """A folder, a ``.json``/``.jsonl`` file, or a file starting with ``{``/``[`` is JSON."""
    if path.is_dir() or path.suffix.lower() in {".json", ".jsonl", ".ndjson"}:
        return True
    with path.open(encoding="utf-8-sig") as handle:
        head = handle.read(64).lstrip()
    return head[:1] in {"{", "["}


def read_cdr_file(
    path: Path,
    fmt: str = "native",
    *,
    timezone: str | tzinfo | None = None,
    default_account: str = "",
) -> CdrStream:
    """Stream the records of the CDR file at `path` in format `fmt`.

    Args:
        fmt: ``native``, ``freeswitch`` (mod_cdr_csv CSV or mod_json_cdr JSON, detected) or
            ``asterisk`` (Master.csv).
        timezone: zone of naive/local stamps (switches log local time); default UTC.
        default_account: account for records that name none.

    Raises:
        InvalidInput: unknown format, missing file, or a file-level problem (bad header).
    """
    if fmt not in CDR_FORMATS:
        raise InvalidInput(f"unknown CDR format {fmt!r} (expected {', '.join(CDR_FORMATS)})")
    if not path.exists():
        raise InvalidInput(f"CDR file not found: {path}")
    if fmt == "freeswitch" and detect_freeswitch_json(path):
        return read_freeswitch_json(path, timezone=timezone, default_account=default_account)
    return _read_csv(path, fmt, timezone, default_account)


def _read_csv(
    path: Path, fmt: str, timezone: str | tzinfo | None, account: str
) -> CdrStream:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if fmt == "native":
            yield from read_native_cdrs(handle, timezone=timezone, default_account=account)
        elif fmt == "freeswitch":
            yield from read_freeswitch_csv(handle, timezone=timezone, default_account=account)
        else:
            yield from read_asterisk_csv(handle, timezone=timezone, default_account=account)
