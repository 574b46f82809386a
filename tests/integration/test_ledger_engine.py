"""The storage layer: URLs, SQLite settings, retries of transient conflicts, no stale ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_support import (  # noqa: F401 (fixtures)
    START,
    migrated_db,
)
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError

from telbill.adapters.db import ledger_store
from telbill.adapters.db.engine import (
    Database,
    RetryTransaction,
    database_url,
    is_retryable,
    normalise_url,
)
from telbill.adapters.db.tables import ledger_accounts


def test_database_url_defaults_to_the_embedded_sqlite_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TELBILL_DATABASE_URL", raising=False)
    assert database_url() == "sqlite:///telbill.db"
    monkeypatch.setenv("TELBILL_DATABASE_URL", "postgresql://u@h/db")
    assert database_url() == "postgresql+psycopg://u@h/db"


def test_plain_postgres_urls_use_psycopg_3() -> None:
    assert normalise_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalise_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_immediate_transactions(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.transaction() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
    db.dispose()


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="file"):
        Database("sqlite://")


def test_a_transient_conflict_retries_the_whole_transaction(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    attempts: list[int] = []

    def work(conn: object) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RetryTransaction("lost a race")
        return "done"

    assert db.run(work) == "done"
    assert len(attempts) == 3
    db.dispose()


def test_busy_sqlite_is_retryable_but_other_errors_are_not() -> None:
    busy = OperationalError("BEGIN", {}, Exception("database is locked"))
    assert is_retryable(busy)
    assert not is_retryable(OperationalError("x", {}, Exception("no such table: t")))
    assert not is_retryable(ValueError("x"))


def test_a_rolled_back_system_account_is_not_remembered(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        ledger_store.system_account(conn, "cash:EUR", "EUR", START)
        raise RuntimeError("abort")
    with db.transaction() as conn:
        created = ledger_store.system_account(conn, "cash:EUR", "EUR", START)
        found = conn.execute(
            select(ledger_accounts.c.id).where(ledger_accounts.c.code == "cash:EUR")
        ).scalar_one()
    assert created == found
    with db.transaction() as conn:
        assert ledger_store.system_account(conn, "cash:EUR", "EUR", START) == found
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_system_account_ids_are_remembered_without_transaction_listeners(db: Database) -> None:
    # A commit or rollback listener on the engine would run on every transaction of the
    # process; created ids stay with their transaction instead, and are read again after.
    with db.transaction() as conn:
        created = ledger_store.system_account(conn, "revenue:sms:EUR", "EUR", START)
        assert ledger_store.system_account(conn, "revenue:sms:EUR", "EUR", START) == created
    assert not db.engine.dispatch.commit and not db.engine.dispatch.rollback
    with db.transaction() as conn:
        assert ledger_store.system_account(conn, "revenue:sms:EUR", "EUR", START) == created
    with db.transaction() as conn:  # now remembered: no statement at all
        executed: list[str] = []
        event.listen(conn, "before_cursor_execute", lambda *args: executed.append(args[2]))
        assert ledger_store.system_account(conn, "revenue:sms:EUR", "EUR", START) == created
        assert executed == []
