"""The event outbox: written in the caller's transaction, deduplicated by key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telbill.adapters.db.engine import Database, migrate
from telbill.errors import InvalidInput
from telbill.services.events import emit, list_events

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Database:
    migrate(db_url)
    return Database(db_url)


def test_event_emitted_twice_with_same_key_is_stored_once(db: Database) -> None:
    with db.transaction() as conn:
        first = emit(
            conn, "balance.low", account_id=None, payload={"n": 1}, dedupe_key="k1", now=NOW
        )
    with db.transaction() as conn:
        second = emit(
            conn, "balance.low", account_id=None, payload={"n": 2}, dedupe_key="k1", now=NOW
        )
    assert (first, second) == (True, False)
    stored = list_events(db)
    assert [(e.type, e.payload) for e in stored] == [("balance.low", {"n": 1})]


def test_event_of_a_rolled_back_transaction_is_not_kept(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        emit(conn, "balance.zero", account_id=None, payload={}, dedupe_key="k2", now=NOW)
        raise RuntimeError("the change that caused it failed")
    assert list_events(db) == []


def test_unknown_event_type_is_refused(db: Database) -> None:
    with pytest.raises(InvalidInput), db.transaction() as conn:
        emit(conn, "balance.weird", account_id=None, payload={}, dedupe_key="k3", now=NOW)


def test_events_are_filtered_by_type_and_paged_by_id(db: Database) -> None:
    with db.transaction() as conn:
        for n in range(5):
            kind = "number.renewed" if n % 2 else "number.released"
            emit(conn, kind, account_id=None, payload={"n": n}, dedupe_key=f"p{n}", now=NOW)
    renewed = list_events(db, types=["number.renewed"])
    assert [e.payload["n"] for e in renewed] == [1, 3]
    page = list_events(db, after_id=renewed[0].id, limit=2)
    assert [e.payload["n"] for e in page] == [2, 3]
