"""Accounts: the tree, inherited settings, who pays, status; migrations; timestamps."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from ledger_support import (  # noqa: F401 (fixtures)
    alembic,
    key,
    manual_clock,
    migrated_db,
    organisation,
    provider,
    row_counts,
    user,
)

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.db.tables import metadata
from telbill.errors import IdempotencyConflict, InvalidInput, NotFound
from telbill.services import accounts
from telbill.services.clock import ManualClock


def test_migrations_create_exactly_the_declared_schema_and_rerun_as_no_op(
    db_url: str,
) -> None:
    # Every business area declares its tables on the one `metadata`: load them all, so the
    # comparison does not depend on which test modules ran before in this process.
    import telbill.adapters.db as db_package

    for module in pkgutil.iter_modules(db_package.__path__):
        if module.name.endswith("_tables"):
            importlib.import_module(f"telbill.adapters.db.{module.name}")
    migrate(db_url)
    migrate(db_url)
    database = Database(db_url)
    with database.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    database.dispose()


def test_organisation_inherits_currency_timezone_and_vat_from_its_provider(
    db: Database, clock: ManualClock
) -> None:
    p = provider(db, clock, currency="EUR", timezone="Europe/Berlin", vat_rate="0.19")
    org = organisation(db, clock, p)
    assert (org.currency, org.timezone, org.vat_rate) == ("EUR", "Europe/Berlin", Decimal("0.19"))
    assert org.provider_id == p.id and org.has_wallet


def test_usage_of_a_user_is_charged_to_the_nearest_account_with_a_wallet(
    db: Database, clock: ManualClock
) -> None:
    p = provider(db, clock)
    org = organisation(db, clock, p)
    team = user(db, clock, org)
    extension = user(db, clock, team)
    rich_user = user(db, clock, org, has_wallet=True)
    assert accounts.billing_account_for(db, extension.id).id == org.id
    assert accounts.billing_account_for(db, rich_user.id).id == rich_user.id
    assert accounts.billing_account_for(db, org.id).id == org.id


def test_subtree_and_descendants(db: Database, clock: ManualClock) -> None:
    p = provider(db, clock)
    org_a, org_b = organisation(db, clock, p), organisation(db, clock, p)
    u = user(db, clock, org_a)
    assert [a.id for a in accounts.list_subtree(db, org_a.id)] == [org_a.id, u.id]
    assert {a.id for a in accounts.list_subtree(db, p.id)} == {p.id, org_a.id, org_b.id, u.id}
    assert accounts.is_descendant(db, u.id, p.id)
    assert accounts.is_descendant(db, u.id, u.id)
    assert not accounts.is_descendant(db, u.id, org_b.id)
    assert not accounts.is_descendant(db, p.id, u.id)


@pytest.mark.parametrize(
    ("kind", "parent"),
    [("organisation", None), ("user", "provider"), ("provider", "provider")],
)
def test_accounts_must_follow_the_provider_organisation_user_tree(
    db: Database, clock: ManualClock, kind: str, parent: str | None
) -> None:
    parent_id = provider(db, clock).id if parent else None
    before = row_counts(db)
    with pytest.raises(InvalidInput):
        accounts.create_account(
            db,
            kind=kind,
            name="x",
            parent_id=parent_id,
            currency="USD",
            idempotency_key=key(),
            clock=clock,
        )
    assert row_counts(db) == before


BAD_SETTINGS: list[dict[str, object]] = [
    {"currency": "XYZ"},
    {"timezone": "Mars/Olympus"},
    {"vat_rate": "20"},
    {"vat_rate": 0.2},
    {"vat_rate": "-0.1"},
    {"billing_mode": "sometimes"},
    {"credit_limit": "100"},  # prepaid account with a credit limit
    {"billing_mode": "postpaid", "credit_limit": "-5"},
    {"vat_country": "GBR"},
    {"name": "  "},
    {"kind": "reseller"},
]


def test_bad_account_settings_are_refused_and_write_nothing(
    db: Database, clock: ManualClock
) -> None:
    before = row_counts(db)
    for bad in BAD_SETTINGS:
        params: dict[str, object] = {"kind": "provider", "name": "P", "currency": "USD"}
        params.update(bad)
        with pytest.raises(InvalidInput):
            accounts.create_account(db, idempotency_key=key(), clock=clock, **params)  # type: ignore[arg-type]
    assert row_counts(db) == before


def test_unknown_parent_is_not_found_and_writes_nothing(db: Database, clock: ManualClock) -> None:
    before = row_counts(db)
    with pytest.raises(NotFound):
        accounts.create_account(
            db, kind="organisation", name="o", parent_id=4242, idempotency_key=key(), clock=clock
        )
    assert row_counts(db) == before


def test_user_without_wallet_must_use_the_currency_of_its_payer(
    db: Database, clock: ManualClock
) -> None:
    org = organisation(db, clock, provider(db, clock))
    with pytest.raises(InvalidInput, match="currency"):
        user(db, clock, org, currency="EUR")


def test_creating_an_account_twice_with_one_key_returns_the_first_account(
    db: Database, clock: ManualClock
) -> None:
    first = accounts.create_account(
        db, kind="provider", name="P", currency="USD", idempotency_key="same", clock=clock
    )
    again = accounts.create_account(
        db, kind="provider", name="P", currency="USD", idempotency_key="same", clock=clock
    )
    assert again == first
    with pytest.raises(IdempotencyConflict):
        accounts.create_account(
            db, kind="provider", name="Other", currency="USD", idempotency_key="same", clock=clock
        )


def test_status_can_be_suspended_and_reactivated(db: Database, clock: ManualClock) -> None:
    org = organisation(db, clock, provider(db, clock))
    assert (
        accounts.set_status(db, org.id, "suspended", idempotency_key=key(), clock=clock).status
        == "suspended"
    )
    assert accounts.get_account(db, org.id).status == "suspended"
    assert (
        accounts.set_status(db, org.id, "active", idempotency_key=key(), clock=clock).status
        == "active"
    )
    with pytest.raises(InvalidInput):
        accounts.set_status(db, org.id, "frozen", idempotency_key=key(), clock=clock)


def test_timestamps_come_back_timezone_aware_in_utc(db: Database, clock: ManualClock) -> None:
    p = provider(db, clock)
    stored = accounts.get_account(db, p.id).created_at
    assert stored.tzinfo is not None and stored.utcoffset() == UTC.utcoffset(None)
    assert stored == clock.now()


def test_postpaid_account_keeps_its_credit_limit_exactly(db: Database, clock: ManualClock) -> None:
    p = provider(db, clock, billing_mode="postpaid", credit_limit="1234.567891")
    assert p.credit_limit == Decimal("1234.567891")
    assert p.floor_micros == -1_234_567_891


def test_migration_0016_drops_the_charges_foreign_keys_and_covered_indexes_of_an_older_database(
    db_url: str,
) -> None:
    # A database made before 0016 has them: downgrade recreates them, as they were.
    import sqlalchemy as sa

    covered = {
        "ix_charges_payer_id",
        "ix_charges_account_id_occurred_at",
        "fk_charges_account_id_accounts",
        "fk_charges_payer_id_accounts",
        "fk_charges_transaction_id_transactions",
        "fk_charges_campaign_id_campaigns",
    }
    migrate(db_url)

    def present() -> set[str]:
        database = Database(db_url)
        try:
            with database.engine.connect() as conn:
                inspector = sa.inspect(conn)
                return {str(i["name"]) for i in inspector.get_indexes("charges")} | {
                    str(fk["name"]) for fk in inspector.get_foreign_keys("charges")
                }
        finally:
            database.dispose()

    assert not covered & present()
    alembic(db_url, "downgrade", "0015")
    assert covered <= present()
    alembic(db_url, "upgrade", "head")
    assert not covered & present()
    assert {"ix_charges_payer_id_created_at", "ix_charges_reports"} <= present()
