"""Migration 0017 on a database with data in it (SQLite and PostgreSQL): each tariff and
charging plan goes to the one provider that uses it, or stays the operator's; names become
unique per owner; every customer is still rated with the tariff it was rated with before."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from ledger_support import alembic

from telbill.adapters.db.engine import Database
from telbill.domain.tariffs import RateRow, TariffSettings
from telbill.services import plans
from telbill.services.tariffs import Viewer, import_tariff, list_versions

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _old_charging_plans(conn: sa.Connection) -> None:
    """Give `charging_plans` its shape before 0017 (0004 creates it from the live definition:
    here the owner column and index go, and the name is globally unique again)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE charging_plans DROP COLUMN owner_id"))
        conn.execute(
            sa.text("ALTER TABLE charging_plans ADD CONSTRAINT uq_charging_plans_name UNIQUE(name)")
        )
        return
    # SQLite drops no foreign-key column: the (empty) table is made again, foreign keys off.
    conn.execute(sa.text("DROP TABLE charging_plans"))
    columns = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        *(sa.Column(n, sa.String(200), nullable=False) for n in ("tariff", "pricing")),
        sa.Column("markup_percent", sa.String(40), nullable=False),
        sa.Column("min_margin_micros", sa.BigInteger, nullable=False),
        sa.Column("allowed_call_classes", sa.String(200), nullable=False),
        sa.Column("cut_off", sa.String(8), nullable=False),
        sa.Column("max_call_s", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cost_tariff", sa.String(200), nullable=True),
    ]
    sa.Table("charging_plans", sa.MetaData(), *columns).create(conn)


def _seed(url: str) -> dict[str, int]:
    """Providers P and Q with an organisation each; tariffs and plans as the module says."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    meta = sa.MetaData()
    ids: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            _old_charging_plans(conn)
            meta.reflect(conn, only=["accounts", "tariffs", "charging_plans", "account_plans"])
            accounts, tariffs = meta.tables["accounts"], meta.tables["tariffs"]
            charging_plans = meta.tables["charging_plans"]
            account_plans = meta.tables["account_plans"]

            def account(name: str, kind: str, parent: str | None) -> None:
                values = {
                    "kind": kind, "name": name, "currency": "USD", "timezone": "UTC",
                    "billing_mode": "prepaid", "credit_limit_micros": 0, "status": "active",
                    "vat_rate_ppm": 0, "has_wallet": kind != "provider", "created_at": NOW,
                    "parent_id": ids.get(parent) if parent else None,
                }  # fmt: skip
                new = conn.execute(accounts.insert().values(**values).returning(accounts.c.id))
                ids[name] = int(new.scalar_one())
                provider = ids[name] if kind == "provider" else ids[parent or ""]
                conn.execute(
                    accounts.update()
                    .where(accounts.c.id == ids[name])
                    .values(provider_id=provider)
                )

            account("p", "provider", None)
            account("porg", "organisation", "p")
            account("porg2", "organisation", "p")
            account("q", "provider", None)
            account("qorg", "organisation", "q")
            for name in ("p_retail", "p_carrier", "shared", "orphan"):
                for version in (1, 2):
                    conn.execute(tariffs.insert().values(
                        name=name, version=version, currency="USD", created_at=NOW,
                        settings={"default_increment": "60/60", "timezone": "UTC",
                                  "decimals": 6, "rounding": "ROUND_HALF_UP", "max_call_s": 3600},
                        row_count=0, source_format="native", source_file="", source_sha256="",
                    ))  # fmt: skip
            for name, tariff, cost, users in (
                ("p_plan", "p_retail", "p_carrier", ("porg",)),
                ("both_plan", "shared", None, ("porg2", "qorg")),
                ("unused_plan", "shared", None, ()),
            ):
                plan = conn.execute(charging_plans.insert().values(
                    name=name, tariff=tariff, cost_tariff=cost, pricing="fixed",
                    markup_percent="0", min_margin_micros=0, allowed_call_classes="public_network",
                    cut_off="hard", max_call_s=3600, created_at=NOW,
                ).returning(charging_plans.c.id)).scalar_one()  # fmt: skip
                ids[name] = int(plan)
                for user in users:
                    conn.execute(account_plans.insert().values(
                        account_id=ids[user], plan_id=plan, created_at=NOW))  # fmt: skip
    finally:
        engine.dispose()
    return ids


def _owners(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            tariffs = {
                r.name: (r.owner_id, r.purpose)
                for r in conn.execute(sa.text("SELECT name, owner_id, purpose FROM tariffs"))
            }
            found = conn.execute(sa.text("SELECT name, owner_id FROM charging_plans")).all()
        return tariffs, {r.name: r.owner_id for r in found}
    finally:
        database.dispose()


@pytest.fixture
def seeded(empty_db_url: str) -> tuple[str, dict[str, int]]:
    alembic(empty_db_url, "upgrade", "0016")
    return empty_db_url, _seed(empty_db_url)


def test_migration_0017_gives_each_tariff_and_plan_to_the_one_provider_that_uses_it(seeded):
    url, ids = seeded
    alembic(url, "upgrade", "head")
    tariffs, owners = _owners(url)
    assert owners == {"p_plan": ids["p"], "both_plan": None, "unused_plan": None}
    assert tariffs == {
        "p_retail": (ids["p"], "retail"),
        "p_carrier": (ids["p"], "cost"),  # only ever a plan's cost tariff: a cost deck
        "shared": (None, "retail"),  # used by two providers: the operator's
        "orphan": (None, "retail"),  # used by nobody: the operator's
    }


def test_after_migration_0017_names_are_unique_per_owner_and_customers_keep_their_tariff(
    seeded,
):
    url, ids = seeded
    alembic(url, "upgrade", "head")
    db = Database(url)
    try:
        rows = [RateRow("1", "US", Decimal("9.99"))]
        made = import_tariff(db, "p_retail", rows, TariffSettings(currency="USD"), now=NOW,
                             owner=ids["q"])  # fmt: skip
        assert made.version.version == 1  # Q's own, beside P's two versions
        assert [v.version for v in list_versions(db, "p_retail", Viewer(ids["p"]))] == [1, 2]
        with db.engine.connect() as conn:
            assert plans.plan_for(conn, ids["porg"]).tariff_ref == (ids["p"], "p_retail")
        with pytest.raises(Exception):  # noqa: B017,PT011 (the unique index, on either database)
            with db.engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE tariffs SET owner_id = :p WHERE owner_id = :q"),
                    {"p": ids["p"], "q": ids["q"]},
                )
    finally:
        db.dispose()


def test_migration_0017_downgrades_back_to_global_names(seeded):
    url, _ids = seeded
    alembic(url, "upgrade", "head")
    alembic(url, "downgrade", "0016")
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("tariffs")}
            count = conn.execute(sa.text("SELECT count(*) FROM tariffs")).scalar_one()
    finally:
        database.dispose()
    assert "owner_id" not in columns and "purpose" not in columns and count == 8
    alembic(url, "upgrade", "head")
    assert _owners(url)[1]["unused_plan"] is None
