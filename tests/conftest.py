"""Shared fixtures: an empty database per test, on SQLite and on PostgreSQL.

PostgreSQL is found at TELBILL_TEST_PG_URL (default: 127.0.0.1:5432, database ``test``,
trust auth). Each test gets its own database, already migrated (copied from a template:
tests/db_templates.py), so tests never see each other's rows and several processes of one test
can share a URL. When CI=true an unreachable PostgreSQL
fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import db_templates
from db_templates import pg_database, require_postgres, sqlite_database

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

# Generated-input tests (hypothesis, schemathesis):
# - "ci" (selected by CI=true): derandomised, the same examples on every run and machine, no
#   example database; a test's own max_examples is its fixed budget.
# - "fuzz" (`make fuzz`): fresh random seeds and larger budgets (the fuzz suites also read
#   TELBILL_FUZZ_EXAMPLES / TELBILL_SCHEMATHESIS_EXAMPLES). A failure prints its seed
#   (`@seed(...)`) and blob: pin it as an `@example` or a regression test.
# - "dev" (default elsewhere): hypothesis's usual random seeds with its example database.
# TELBILL_HYPOTHESIS_PROFILE names one explicitly (it wins over CI).
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile(
    "fuzz", derandomize=False, database=None, deadline=None, print_blob=True, max_examples=1_000
)
settings.register_profile("dev", deadline=None, print_blob=True)
HYPOTHESIS_PROFILE = os.environ.get("TELBILL_HYPOTHESIS_PROFILE") or (
    "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
)
settings.load_profile(HYPOTHESIS_PROFILE)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database of its own, migrated to the newest revision, once on SQLite and once
    on PostgreSQL (a copy of a migrated template: tests/db_templates.py)."""
    if request.param == "sqlite":
        yield sqlite_database(tmp_path / "telbill.db")
        return
    require_postgres()
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (no tables), once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_database(tmp_path / "telbill.db", empty=True)
        return
    require_postgres()
    with pg_database(empty=True) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a migrated PostgreSQL database only (concurrency tests that need real MVCC)."""
    require_postgres()
    with pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def astpp_deck() -> Path:
    if not ASTPP_DECK.exists():
        pytest.skip(f"shared test data not found at {ASTPP_DECK}")
    return ASTPP_DECK


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop this process's test databases before it exits (xdist workers skip `atexit`)."""
    db_templates.finish_drops()


@pytest.fixture(scope="session", autouse=True)
def private_tariff_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`telbill quote`'s compiled-tariff cache goes to a folder of this run, not ~/.cache."""
    folder = tmp_path_factory.mktemp("tariff-cache")
    folder.chmod(0o700)
    previous = os.environ.get("TELBILL_CACHE_DIR")
    os.environ["TELBILL_CACHE_DIR"] = str(folder)
    yield
    if previous is None:
        os.environ.pop("TELBILL_CACHE_DIR", None)
    else:
        os.environ["TELBILL_CACHE_DIR"] = previous
