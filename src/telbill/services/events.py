"""Emit and read business events through the outbox (`adapters/db/event_tables.py`).

`emit` runs inside the caller's transaction, so an event exists exactly when the change
that caused it committed. Event types are past-tense facts named ``<area>.<what>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from telbill.adapters.db.engine import Database
from telbill.adapters.db.event_tables import events
from telbill.errors import InvalidInput

EVENT_TYPES = frozenset(
    {
        "balance.low",
        "balance.zero",
        "account.suspended",
        "account.resumed",
        "session.disconnect",
        "campaign.paused",
        "number.renewal_failed",
        "number.suspended",
        "number.renewed",
        "number.released",
        "package.exhausted",
        "invoice.issued",
        "invoice.overdue",
        "credit_note.issued",
        "topup.receipt",
        # A customer's top-up request (to its provider) and its rejection (to the customer);
        # a confirmation is a `topup.receipt`.
        "topup.requested",
        "topup.rejected",
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    account_id: int | None
    dedupe_key: str
    payload: dict[str, Any]
    occurred_at: datetime


def emit(
    conn: Connection,
    event_type: str,
    *,
    account_id: int | None,
    payload: Mapping[str, Any],
    dedupe_key: str,
    now: datetime,
) -> bool:
    """Append an event unless one with `dedupe_key` exists. Returns True when written."""
    if event_type not in EVENT_TYPES:
        raise InvalidInput(f"unknown event type {event_type!r}")
    values = {
        "type": event_type,
        "account_id": account_id,
        "dedupe_key": dedupe_key,
        "payload": dict(payload),
        "occurred_at": now,
    }
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(events).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    # RETURNING, not rowcount: drivers report rowcount -1 for some INSERT forms.
    return conn.execute(statement.returning(events.c.id)).first() is not None


def list_events(
    db: Database,
    *,
    account_ids: Sequence[int] | None = None,
    types: Sequence[str] | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[Event]:
    """Events in id order after `after_id`, optionally for some accounts and types."""
    query = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
    if account_ids is not None:
        query = query.where(events.c.account_id.in_(list(account_ids)))
    if types is not None:
        query = query.where(events.c.type.in_(list(types)))
    with db.transaction() as conn:
        rows = conn.execute(query).all()
    return [
        Event(
            id=row.id,
            type=row.type,
            account_id=row.account_id,
            dedupe_key=row.dedupe_key,
            payload=dict(row.payload),
            occurred_at=row.occurred_at,
        )
        for row in rows
    ]
