"""Helpers shared by the ledger integration tests (imported by them, not a conftest)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from telbill.adapters.db import tables
from telbill.adapters.db.engine import Database
from telbill.services import accounts
from telbill.services.clock import ManualClock

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
_keys = itertools.count()


def key(prefix: str = "k") -> str:
    """A fresh idempotency key."""
    return f"{prefix}-{next(_keys)}"


@pytest.fixture(name="db")
def migrated_db(db_url: str) -> Iterator[Database]:
    """A migrated database (SQLite file and PostgreSQL database: `db_url` is migrated)."""
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture(name="clock")
def manual_clock() -> ManualClock:
    return ManualClock(START)


def provider(db: Database, clock: ManualClock, **kwargs: object) -> accounts.Account:
    params: dict[str, object] = {"currency": "USD", "vat_rate": "0.2", "vat_country": "GB"}
    params.update(kwargs)
    return accounts.create_account(
        db,
        kind="provider",
        name="Provider",
        idempotency_key=key("p"),
        clock=clock,
        **params,  # type: ignore[arg-type]
    )


def organisation(
    db: Database, clock: ManualClock, parent: accounts.Account, **kwargs: object
) -> accounts.Account:
    return accounts.create_account(
        db,
        kind="organisation",
        name="Org",
        parent_id=parent.id,
        idempotency_key=key("o"),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def user(
    db: Database, clock: ManualClock, parent: accounts.Account, **kwargs: object
) -> accounts.Account:
    return accounts.create_account(
        db,
        kind="user",
        name="User",
        parent_id=parent.id,
        idempotency_key=key("u"),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def row_counts(db: Database) -> dict[str, int]:
    """Rows per table: to prove that refused input wrote nothing."""
    with db.transaction() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in tables.metadata.sorted_tables
        }


def paid_balance(db: Database, account_id: int) -> Decimal:
    from telbill.services.wallets import get_balances

    balances = get_balances(db, account_id, clock=ManualClock(START))
    for bucket in balances.unit(balances.currency).buckets:
        if bucket.kind == "paid":
            return bucket.balance
    raise AssertionError("no paid bucket")



def alembic(url: str, direction: str, revision: str) -> None:
    """Run Alembic `upgrade` or `downgrade` to `revision` on the database at `url` (tests of
    one migration: down to the revision before it, then up again)."""
    from alembic import command
    from alembic.config import Config

    from telbill.adapters.db.engine import (
        MIGRATIONS_DIR,
        make_engine,
        migration_connection,
        normalise_url,
    )

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = make_engine(normalise_url(url))
    try:
        with migration_connection(engine) as conn:
            config.attributes["connection"] = conn
            {"upgrade": command.upgrade, "downgrade": command.downgrade}[direction](
                config, revision
            )
    finally:
        engine.dispose()
