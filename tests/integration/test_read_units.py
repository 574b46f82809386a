"""`Database.read`: a pure read sees committed rows and never queues behind a writer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import select

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.db.tables import accounts
from telbill.services import accounts as accounts_service
from telbill.services.clock import ManualClock


def test_a_read_runs_while_a_writer_holds_the_database(db_url: str) -> None:
    migrate(db_url)
    db = Database(db_url)
    clock = ManualClock(datetime(2026, 3, 2, tzinfo=UTC))
    provider = accounts_service.create_account(
        db, kind="provider", name="Acme", currency="USD", idempotency_key="p", clock=clock
    )
    names: list[str] = []
    try:
        with db.transaction() as writer:  # SQLite: BEGIN IMMEDIATE, the write lock is held
            writer.execute(
                accounts.update().where(accounts.c.id == provider.id).values(name="Renamed")
            )

            def read() -> None:
                with db.read() as conn:
                    names.append(
                        conn.execute(
                            select(accounts.c.name).where(accounts.c.id == provider.id)
                        ).scalar_one()
                    )

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            reader.join(timeout=10)  # a reader behind the write lock would wait 30 s
            assert not reader.is_alive(), "the read waited for the writer"
        assert names == ["Acme"]  # the committed snapshot, not the writer's change
        with db.read() as conn:
            assert conn.execute(
                select(accounts.c.name).where(accounts.c.id == provider.id)
            ).scalar_one() == "Renamed"
    finally:
        db.dispose()
