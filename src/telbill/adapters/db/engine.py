"""Database engines and the unit of work.

`make_engine` builds a SQLAlchemy engine for the embedded SQLite default (WAL, busy
timeout, foreign keys, writers serialised with ``BEGIN IMMEDIATE``, readers deferred) or for
PostgreSQL through psycopg 3. `Database` wraps an engine; services take it as their unit of
work and run each use case in `Database.run`, which retries the whole transaction when the
database reports a deadlock, a serialization failure or (SQLite) a busy database; pure reads
run in `Database.read`. `migrate` upgrades a database to the newest Alembic revision.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

DEFAULT_DATABASE_URL = "sqlite:///telbill.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_ATTEMPTS = 12

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Execution option of the connections `Database.read` hands out.
READ_ONLY_OPTION = "telbill_read_only"


class RetryTransaction(Exception):
    """Raised inside a unit of work to make `Database.run` start it again.

    Used when a concurrent writer won a race the current transaction cannot recover from
    (for instance the same idempotency key inserted first by another worker).
    """


def database_url() -> str:
    """The URL from TELBILL_DATABASE_URL, or the embedded SQLite file ``telbill.db``."""
    return normalise_url(os.environ.get("TELBILL_DATABASE_URL") or DEFAULT_DATABASE_URL)


def normalise_url(url: str) -> str:
    """Route plain ``postgresql://`` / ``postgres://`` URLs to the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configure_sqlite(engine: Engine) -> None:
    """The SQLAlchemy pysqlite recipe: we emit BEGIN ourselves, as BEGIN IMMEDIATE.

    IMMEDIATE takes the write lock at the start of every transaction, so two writers never
    both read a balance and then both write it; the busy timeout makes the second one wait.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A read-only unit (`Database.read`) starts deferred: in WAL mode it reads a snapshot
        # and never waits for, nor blocks, the writer.
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url` (default: `database_url()`), configured for telbill."""
    url = normalise_url(url or database_url())
    # Bound values never appear in error messages (and so in logs): they may be secrets.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        if ":memory:" in url or url in ("sqlite://", "sqlite:///"):
            raise ValueError("telbill needs a SQLite file, not an in-memory database")
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    # No pre-ping round trip per checkout: a connection found dead raises an error with
    # connection_invalidated set, and Database.run retries the transaction on a fresh one.
    kwargs.setdefault("pool_recycle", 1800)
    return create_engine(url, **kwargs)


def is_retryable(exc: BaseException) -> bool:
    """Deadlock, serialization failure, lock timeout or a busy SQLite database."""
    if isinstance(exc, RetryTransaction):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if sqlstate in {"40001", "40P01", "55P03"}:
            return True
        if isinstance(exc, OperationalError):
            text = str(orig).lower()
            return "database is locked" in text or "database is busy" in text
    return False


class Database:
    """An engine plus the transaction boundary every service uses."""

    def __init__(self, url_or_engine: str | Engine | None = None) -> None:
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
        else:
            self.engine = make_engine(url_or_engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One database transaction: commits on success, rolls back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only unit: one consistent snapshot, rolled back at the end.

        On SQLite it starts deferred (``BEGIN``, not ``BEGIN IMMEDIATE``), so pure reads
        (GET routes, key and session look-ups) run beside the one writer instead of queueing
        behind it. Writing through it is a mistake: nothing is committed.
        """
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY_OPTION: True})
            try:
                yield conn
            finally:
                conn.rollback()

    def run(self, fn: Callable[[Connection], T], *, attempts: int = MAX_ATTEMPTS) -> T:
        """Run `fn` in a transaction, retrying the whole of it on a transient conflict."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as conn:
                    return fn(conn)
            except Exception as exc:
                if attempt >= attempts or not is_retryable(exc):
                    raise
                # Jittered backoff so that colliding workers do not collide again.
                time.sleep(random.uniform(0, 0.005 * attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        self.engine.dispose()


def migrate(url: str | None = None) -> None:
    """Upgrade the database at `url` (default: `database_url()`) to the newest revision."""
    from alembic import command
    from alembic.config import Config

    url = normalise_url(url or database_url())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = make_engine(url)
    try:
        with migration_connection(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engine.dispose()


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for Alembic. On SQLite foreign keys are not enforced
    while it runs (a revision that copies a table others refer to drops and renames it, which
    SQLite's enforcement refuses even when the ids come back: the documented way is to switch
    it off) and every reference is checked before the commit (`PRAGMA foreign_key_check`)."""
    with engine.connect() as conn:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:  # outside any transaction, or SQLite ignores it
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if broken is not None:
                        raise RuntimeError(f"migration left a broken reference: {tuple(broken)}")
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


__all__ = [
    "Database",
    "RetryTransaction",
    "database_url",
    "is_retryable",
    "make_engine",
    "migrate",
    "migration_connection",
    "normalise_url",
]
