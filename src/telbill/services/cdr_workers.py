"""Post one CDR file with several worker processes (more cores for rating and posting).

The file's records are dealt out in chunks, round robin: worker ``k`` of ``n`` posts the
chunks ``k, k + n, k + 2n, ...`` (each `chunk_size` records, as a single process would cut
them) through the one idempotent path (`charging.post_chunk`); a native file is read as
columns by every worker (`charging_columns`), which posts only its chunks; other formats
skip the other workers' rows. Nothing else is shared: no protocol
between the workers, each chunk is its own transaction, the CDR id stays the idempotency
key, so a crash of any worker is repaired by posting the file again (with any number of
workers). Chunks of one wallet wait for each other on its bucket lock, so drains still
follow the ledger's order; only chunks, not calls, may post out of file order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from telbill.adapters.db.engine import Database
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.errors import InvalidInput
from telbill.services.charging import DEFAULT_CHUNK_SIZE, PostSummary, post_cdrs
from telbill.services.charging_columns import post_cdr_file_columns
from telbill.services.clock import SystemClock


@dataclass(frozen=True, slots=True)
class _Share:
    """What one worker posts: every `workers`-th chunk of the file from chunk `worker`."""

    url: str
    path: str
    fmt: str
    timezone: str | None
    chunk_size: int
    worker: int
    workers: int
    within: int | None
    poster: int | None
    columnar: bool = True

    def keeps(self, ordinal: int) -> bool:
        return (ordinal // self.chunk_size) % self.workers == self.worker


    def keeps_chunk(self, index: int) -> bool:
        return index % self.workers == self.worker


def _post_share(
    share: _Share, db: Database | None = None, progress: Callable[[int], None] | None = None
) -> PostSummary:
    """Post `share` (with `db`, else with a Database of its own, as a worker process).

    A native file is read as columns (`charging_columns`), other formats per row."""
    own = db is None
    database = Database(share.url) if db is None else db
    try:
        path = Path(share.path)
        if share.fmt == "native" and path.is_file() and share.columnar:
            posted = post_cdr_file_columns(
                database, path, clock=SystemClock(), source=share.path,
                chunk_size=share.chunk_size, timezone=share.timezone, within=share.within,
                poster=share.poster, progress=progress,
                keep_chunk=share.keeps_chunk if share.workers > 1 else None,
            )  # fmt: skip
            if posted is not None:
                return posted  # type: ignore[no-any-return]
        keep = share.keeps if share.workers > 1 else None
        records = read_cdr_file(
            path, share.fmt, timezone=share.timezone, keep=keep, progress=progress
        )
        return post_cdrs(
            database, records, clock=SystemClock(), source=share.path,
            chunk_size=share.chunk_size, within=share.within, poster=share.poster,
        )  # fmt: skip
    finally:
        if own:
            database.dispose()


def post_cdr_file(
    db: Database,
    path: Path,
    *,
    workers: int,
    fmt: str = "native",
    timezone: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    within: int | None = None,
    poster: int | None = None,
    progress: Callable[[int], None] | None = None,
    columnar: bool = True,
) -> PostSummary:
    """Post the CDR file at `path` with `workers` processes; the summed `PostSummary`.

    This process is one of the workers (with one worker, it is `post_cdrs` here). The
    source of quarantined rows is `path` as given, as with `post_cdrs(source=str(path))`.
    """
    if workers < 1:
        raise InvalidInput("workers must be at least 1")
    if chunk_size < 1:
        raise InvalidInput("chunk_size must be at least 1")
    url = db.engine.url.render_as_string(hide_password=False)
    shares = [
        _Share(url, str(path), fmt, timezone, chunk_size, worker, workers, within, poster,
               columnar)
        for worker in range(workers)
    ]  # fmt: skip
    if workers == 1:
        return _post_share(shares[0], db, progress)
    total = PostSummary()
    # This process posts the first share itself; spawn: a fresh interpreter per other
    # worker, no connection inherited from this process.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
        others = pool.map(_post_share, shares[1:])
        total.add(_post_share(shares[0], db, progress))
        for summary in others:
            total.add(summary)
    return total


__all__ = ["post_cdr_file"]
