"""Shared fixtures: an empty database per test, on SQLite and on PostgreSQL.

PostgreSQL is found at TELBILL_TEST_PG_URL (default: 127.0.0.1:5432, database ``test``,
trust auth). Each test gets its own schema, so tests never see each other's rows and
several processes of one test can share a URL. When CI=true an unreachable PostgreSQL
fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

PG_BASE_URL = os.environ.get(
    "TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The suite's webhook receivers listen on 127.0.0.1, which production refuses (SSRF guard,
# adapters/notify/webhooks.py); servers started by tests inherit this. Tests of the guard
# itself pass allow_private=False or clear the variable.
os.environ.setdefault("TELBILL_WEBHOOK_ALLOW_PRIVATE", "1")
# TELBILL_SHARED_DATA, else ../shared/data next to the checkout (/work/main/tests ->
# /work/shared); a worktree (/work/wt/NAME/tests) sits one level deeper.
_SHARED_FROM_ENV = os.environ.get("TELBILL_SHARED_DATA")
SHARED_DATA = Path(_SHARED_FROM_ENV) if _SHARED_FROM_ENV else next(
    (
        base / "shared" / "data"
        for base in Path(__file__).resolve().parents[1:4]
        if (base / "shared" / "data").is_dir()
    ),
    Path(__file__).resolve().parents[1].parent / "shared" / "data",
)
ASTPP_DECK = SHARED_DATA / "astpp-outbound-rates.csv"

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


def _new_pg_schema() -> tuple[str, str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    dsn = PG_BASE_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_BASE_URL else "?"
    url = f"{PG_BASE_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    return schema, url


def _drop_pg_schema(schema: str) -> None:
    import psycopg

    dsn = PG_BASE_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (no tables), once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'telbill.db'}"
        return
    require_postgres()
    schema, url = _new_pg_schema()
    try:
        yield url
    finally:
        _drop_pg_schema(schema)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """URL of an empty PostgreSQL schema only (concurrency tests that need real MVCC)."""
    require_postgres()
    schema, url = _new_pg_schema()
    try:
        yield url
    finally:
        _drop_pg_schema(schema)


@pytest.fixture(scope="session")
def astpp_deck() -> Path:
    if not ASTPP_DECK.exists():
        pytest.skip(f"shared test data not found at {ASTPP_DECK}")
    return ASTPP_DECK
