"""Databases for tests: each test gets its own, already migrated, copied from a template.

Migrating a database costs about 0.6 s on PostgreSQL and 0.1 s on SQLite (Alembic runs every
revision's DDL); copying a migrated template costs about 0.05 s and 1 ms. The template is made
once by the real `migrate()` and named after a hash of the migration files, so a change to a
migration makes a new one:

* PostgreSQL: a template database `tmpl_<hash>`, created under an advisory lock (several
  pytest workers, several checkouts on one server), never connected to afterwards; each test
  gets `CREATE DATABASE t_<random> TEMPLATE tmpl_<hash>` and `DROP DATABASE ... WITH (FORCE)`.
* SQLite: a template file per pytest process, copied to the test's own file.

`empty=True` gives an empty database instead (tests of `telbill init` or of a migration from
the first revision). Calling `migrate()` on a copied database is a no-op, as on any database
already at the newest revision.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PG_BASE_URL = os.environ.get(
    "TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_MIGRATIONS = Path(__file__).resolve().parents[1] / "src/telbill/adapters/db/migrations"
_TEMPLATE_LOCK = 4_262_718_391  # pg_advisory_lock key of the template's creation


_pg_error: str | None = None
_pg_checked = False


def _pg_unavailable_reason() -> str | None:
    global _pg_checked, _pg_error
    if not _pg_checked:
        _pg_checked = True
        try:
            import psycopg

            dsn = PG_BASE_URL.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # any failure means "not reachable" here
            _pg_error = f"PostgreSQL not reachable at {PG_BASE_URL}: {exc}"
    return _pg_error


def require_postgres() -> None:
    """Fail under CI, skip elsewhere, when PostgreSQL cannot be reached."""
    reason = _pg_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)


def migrations_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(_MIGRATIONS.rglob("*.py")):
        digest.update(path.relative_to(_MIGRATIONS).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def pg_dsn(database: str | None = None) -> str:
    """A libpq DSN for the test server (its own database, or `database`)."""
    dsn = PG_BASE_URL.replace("postgresql+psycopg://", "postgresql://")
    if database is None:
        return dsn
    head, _, tail = dsn.partition("?")
    return head.rsplit("/", 1)[0] + f"/{database}" + (f"?{tail}" if tail else "")


def pg_url(database: str) -> str:
    """The SQLAlchemy URL of `database` on the test server."""
    return "postgresql+psycopg://" + pg_dsn(database).removeprefix("postgresql://")


_pg_template: str | None = None


def _ensure_pg_template() -> str:
    """The name of the migrated template database, made on first use (once per server and
    migration hash, whatever the number of processes asking at once)."""
    global _pg_template
    if _pg_template is not None:
        return _pg_template
    import psycopg

    from telbill.adapters.db.engine import migrate

    name = f"tmpl_{migrations_hash()}"
    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            ready = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", (name,)
            ).fetchone()
            _drop_stale(conn)
            if ready is None:
                building = f"{name}_build"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{building}" TEMPLATE template0')
                migrate(pg_url(building))
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
                # Marked a template only once whole: a crash above leaves no half template.
                conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))
    _pg_template = name
    return name


def _drop_stale(conn: Any) -> None:
    """Drop test databases left by runs that died (a killed pytest drops nothing): those of
    this suite's prefixes untouched for a day."""
    import psycopg

    try:
        stale = conn.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '^(t|tw|w)_[0-9a-f]{16}$' AND "
            "(pg_stat_file('base/' || oid)).modification < now() - interval '1 day'"
        ).fetchall()
    except psycopg.errors.InsufficientPrivilege:  # pg_stat_file is for superusers
        return
    for (name,) in stale:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_pg_database(
    *, empty: bool = False, prefix: str = "t", template: str | None = None
) -> tuple[str, str]:
    """A new database on the test server: (name, SQLAlchemy URL), a copy of `template` (a
    database nobody is connected to), else of the migrated template, else empty."""
    import psycopg

    if template is None:
        template = "template0" if empty else _ensure_pg_template()
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name, pg_url(name)


def drop_pg_database(name: str) -> None:
    """Drop `name` in the background: PostgreSQL's DROP DATABASE waits for a checkpoint, which
    takes seconds on a busy server, and no test needs to wait for it. The queue is drained
    before the test process exits (`finish_drops`)."""
    _start_dropper()
    _drops.put(name)


def drop_now(name: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_drops: queue.Queue[str | None] = queue.Queue()
_dropper: threading.Thread | None = None


def _drop_loop() -> None:
    while (name := _drops.get()) is not None:
        try:
            drop_now(name)
        except Exception:  # the server went away: the database goes with the next run's clean-up
            pass
        finally:
            _drops.task_done()
    _drops.task_done()


def _start_dropper() -> None:
    global _dropper
    if _dropper is None:
        _dropper = threading.Thread(target=_drop_loop, name="drop-test-databases", daemon=True)
        _dropper.start()
        atexit.register(finish_drops)


_at_finish: list[str] = []


def drop_at_finish(name: str) -> None:
    """Drop `name` when the test process finishes (a template its tests copy)."""
    _at_finish.append(name)


def finish_drops() -> None:
    """Wait until every database handed to `drop_pg_database` or `drop_at_finish` is
    dropped."""
    global _dropper
    while _at_finish:
        drop_pg_database(_at_finish.pop())
    if _dropper is not None:
        _drops.put(None)
        _dropper.join()
        _dropper = None


@contextmanager
def pg_database(*, empty: bool = False, prefix: str = "t") -> Iterator[str]:
    name, url = new_pg_database(empty=empty, prefix=prefix)
    try:
        yield url
    finally:
        drop_pg_database(name)


_sqlite_template: Path | None = None


def _ensure_sqlite_template() -> Path:
    global _sqlite_template
    if _sqlite_template is None or not _sqlite_template.exists():
        from telbill.adapters.db.engine import migrate

        folder = Path(tempfile.mkdtemp(prefix="telbill-template-"))
        path = folder / f"template-{migrations_hash()}.db"
        migrate(f"sqlite:///{path}")
        import sqlite3

        with sqlite3.connect(path) as conn:  # every page in the file itself, none in a WAL
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _sqlite_template = path
    return _sqlite_template


def sqlite_database(path: Path, *, empty: bool = False) -> str:
    """The URL of a SQLite file at `path`: a copy of the migrated template unless `empty`."""
    if not empty:
        shutil.copyfile(_ensure_sqlite_template(), path)
    return f"sqlite:///{path}"
