"""A compiled-tariff cache on disk, keyed by tariff version, for one-shot processes.

`telbill quote` is a process of its own: loading and compiling a 170,000-row deck costs
seconds, and importing SQLAlchemy alone costs more CPU than a quote may take. This cache keeps
each tariff version's rows *sliced by prefix* in a small SQLite file, so a quote reads only
the rows whose prefix starts the number it prices (a dozen rows), and finds which version is
in force with one read-only query through the standard library's `sqlite3`.

Keys: the database file, the tariff's row id, version and creation time: an imported version
is immutable, and a re-created database (same path, "version 1" again) gets a new creation
time, so a stale entry is never read. Only SQLite databases whose `tariffs` table has exactly
the columns below use it; anything else (PostgreSQL, another schema) reports a miss and the
caller takes the ordinary path. The cache folder (TELBILL_CACHE_DIR, else
$XDG_CACHE_HOME/telbill, else ~/.cache/telbill) is private to its owner (0700): entries are
pickles and are read only from a folder nobody else can write.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CACHE_DIR_ENV = "TELBILL_CACHE_DIR"
KEPT_ENTRIES = 16  # the most recently written entries stay; older ones are removed
FORMAT = "telbill-tariff-slices-1"
# The columns of `tariffs` this reader understands; any other schema is a miss.
TARIFF_COLUMNS = frozenset(
    {
        "id", "name", "version", "currency", "settings", "created_at", "effective_from",
        "row_count", "source_format", "source_file", "source_sha256", "owner_id", "purpose",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class VersionStamp:
    """What identifies one stored tariff version (its cache key)."""

    database: str
    tariff_id: int
    name: str
    version: int
    created_at: str

    def key(self) -> str:
        text = "\0".join(
            [FORMAT, self.database, str(self.tariff_id), self.name, str(self.version),
             self.created_at]
        )  # fmt: skip
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class TariffSlices:
    """What a cache entry gives back: the tariff's header and the rows of some prefixes,
    each with its position in the whole tariff."""

    header: dict[str, Any]
    rows: list[tuple[int, Any]]


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "telbill"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases or in-memory ones)."""
    for scheme in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(scheme):
            rest = url[len(scheme) :].split("?", 1)[0]
            if not rest or rest == ":memory:":
                return None
            return Path(rest).resolve()
    return None


def stamp_in_force(url: str, name: str, at: datetime) -> VersionStamp | None:
    """The stamp of the version of the operator's tariff `name` in force `at` (the newest
    whose effective_from is not after `at`: as `services.tariffs` reads the operator's
    catalogue), read without SQLAlchemy; None when this database
    cannot be read that way or has no such version (the caller then takes the ordinary path,
    which also reports a missing tariff)."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    try:
        stored_at = (
            at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )
        with _read_only(path) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(tariffs)")}
            if columns != TARIFF_COLUMNS:
                return None
            found = conn.execute(
                "SELECT id, version, created_at FROM tariffs WHERE name = ? AND owner_id IS NULL"
                " AND (effective_from IS NULL OR effective_from <= ?)"
                " ORDER BY version DESC LIMIT 1",
                (name, stored_at),
            ).fetchone()
    except (sqlite3.Error, OverflowError, ValueError, UnicodeError):
        return None
    if found is None:
        return None
    return VersionStamp(str(path), int(found[0]), name, int(found[1]), str(found[2]))


def read_slices(stamp: VersionStamp, prefixes: Iterable[str]) -> TariffSlices | None:
    """The cached header and the rows of `prefixes` of a version, or None (not cached)."""
    entry = _entry_path(stamp)
    if entry is None or not entry.is_file():
        return None
    wanted = sorted(set(prefixes))
    try:
        with _read_only(entry) as conn:
            header = pickle.loads(conn.execute("SELECT value FROM meta").fetchone()[0])
            rows = []
            for prefix in wanted:
                found = conn.execute("SELECT rows FROM slices WHERE prefix = ?", (prefix,))
                for (blob,) in found:
                    rows.extend(pickle.loads(blob))
    except (sqlite3.Error, pickle.UnpicklingError, EOFError, TypeError, AttributeError):
        return None
    rows.sort(key=lambda item: item[0])
    return TariffSlices(header, rows)


def write_slices(stamp: VersionStamp, header: dict[str, Any], rows: Iterable[Any]) -> None:
    """Store a version's header and rows (objects with a `prefix`) sliced by prefix.
    Best effort: a cache that cannot be written is skipped."""
    entry = _entry_path(stamp, create=True)
    if entry is None:
        return
    by_prefix: dict[str, list[tuple[int, Any]]] = {}
    for position, row in enumerate(rows):
        by_prefix.setdefault(row.prefix, []).append((position, row))
    import tempfile

    handle, temporary = tempfile.mkstemp(prefix=".slices-", dir=entry.parent)
    os.close(handle)
    try:
        with sqlite3.connect(temporary) as conn:
            conn.execute("CREATE TABLE meta (value BLOB NOT NULL)")
            conn.execute("CREATE TABLE slices (prefix TEXT PRIMARY KEY, rows BLOB NOT NULL)")
            conn.execute("INSERT INTO meta VALUES (?)", (pickle.dumps(header),))
            conn.executemany(
                "INSERT INTO slices VALUES (?, ?)",
                ((prefix, pickle.dumps(items)) for prefix, items in by_prefix.items()),
            )
        conn.close()
        os.replace(temporary, entry)
    except (sqlite3.Error, OSError, pickle.PicklingError):
        Path(temporary).unlink(missing_ok=True)
        return
    _prune(entry.parent)


def _prune(folder: Path) -> None:
    """Keep the `KEPT_ENTRIES` newest entries (old versions are rarely quoted again)."""
    try:
        entries = sorted(folder.glob("*.sqlite"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEPT_ENTRIES:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def _entry_path(stamp: VersionStamp, *, create: bool = False) -> Path | None:
    folder = cache_dir()
    try:
        if create:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError:
        return None
    private = stat.S_IMODE(info.st_mode) & 0o077 == 0 and info.st_uid == os.getuid()
    return folder / f"{stamp.key()}.sqlite" if private else None


class _read_only:
    """A read-only sqlite3 connection as a context manager (closed on exit)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)

    def __enter__(self) -> sqlite3.Connection:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        self._conn.close()
