"""Catalogue ownership: every tariff and charging plan belongs to a provider (or the operator).

`tariffs.owner_id` and `charging_plans.owner_id` name the provider account whose catalogue
holds the row (NULL: the operator's own, global catalogue); names are unique per owner (a
unique index on ``COALESCE(owner_id, 0)`` and the name, which replaces the global unique
name). `tariffs.purpose` tells a retail price list from a carrier cost deck.

Existing rows are given to the provider that uses them: a plan whose assigned accounts are
all under one provider becomes that provider's; a tariff all of whose plans (as price or as
cost tariff) became one provider's becomes that provider's too. Everything else (used by
several providers, or by none) stays the operator's, so every plan still finds the same
tariff. A tariff only ever named as a plan's cost tariff becomes a `cost` deck.

On SQLite dropping a unique constraint copies the table (batch mode): `migrate` runs with
foreign keys unenforced and checks them all before the commit (`migration_connection`).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TARIFF_INDEX = "uq_tariffs_owner_name_version"
PLAN_INDEX = "uq_charging_plans_owner_name"


def _tariffs_without_unique(metadata: sa.MetaData) -> sa.Table:
    """`tariffs` as 0002 made it, but without its unique (name, version)."""
    return sa.Table(
        "tariffs",
        metadata,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("source_format", sa.String(16), nullable=False),
        sa.Column("source_file", sa.String(500), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.CheckConstraint("version >= 1", name="ck_tariffs_version"),
    )


def _plans_without_unique(metadata: sa.MetaData) -> sa.Table:
    """`charging_plans` as 0004 and 0015 made it, but without its unique name."""
    return sa.Table(
        "charging_plans",
        metadata,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tariff", sa.String(200), nullable=False),
        sa.Column("pricing", sa.String(16), nullable=False),
        sa.Column("markup_percent", sa.String(40), nullable=False),
        sa.Column("min_margin_micros", sa.BigInteger, nullable=False),
        sa.Column("allowed_call_classes", sa.String(200), nullable=False),
        sa.Column("cut_off", sa.String(8), nullable=False),
        sa.Column("max_call_s", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cost_tariff", sa.String(200), nullable=True),
        sa.CheckConstraint("pricing IN ('fixed', 'relative')", name="ck_charging_plans_pricing"),
        sa.CheckConstraint("cut_off IN ('hard', 'soft')", name="ck_charging_plans_cut_off"),
        sa.CheckConstraint("max_call_s > 0", name="ck_charging_plans_max_call_s"),
    )


def _owner_column(table: str) -> sa.Column[int]:
    reference = sa.ForeignKey("accounts.id", name=f"fk_{table}_owner_id_accounts")
    return sa.Column("owner_id", Id, reference, nullable=True)


def _drop_unique_and_add(table: str, columns: list[str], copy_from: sa.Table) -> sa.Inspector:
    """Drop the unique constraint on `columns` of `table` and add its `owner_id` column."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if bind.dialect.name == "sqlite":
        batch = op.batch_alter_table(table, recreate="always", copy_from=copy_from)
    else:
        for unique in inspector.get_unique_constraints(table):
            if unique["column_names"] == columns and unique["name"]:
                op.drop_constraint(unique["name"], table, type_="unique")
        batch = op.batch_alter_table(table)
    with batch as alter:
        alter.add_column(_owner_column(table))
        if table == "tariffs":
            alter.add_column(
                sa.Column("purpose", sa.String(8), nullable=False, server_default="retail")
            )
            alter.create_check_constraint("ck_tariffs_purpose", "purpose IN ('retail', 'cost')")
    return inspector


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    # 0004 creates `charging_plans` from the live definition: on a database created by it
    # after this change, the column and the index already exist.
    if "owner_id" not in {c["name"] for c in inspector.get_columns("charging_plans")}:
        _drop_unique_and_add("charging_plans", ["name"], _plans_without_unique(sa.MetaData()))
    # Expression indexes are not reflected on SQLite: IF NOT EXISTS instead of a look.
    op.create_index(
        PLAN_INDEX,
        "charging_plans",
        [sa.text("coalesce(owner_id, 0)"), "name"],
        unique=True,
        if_not_exists=True,
    )
    if "owner_id" not in {c["name"] for c in sa.inspect(bind).get_columns("tariffs")}:
        _drop_unique_and_add("tariffs", ["name", "version"], _tariffs_without_unique(sa.MetaData()))
    op.create_index(
        TARIFF_INDEX,
        "tariffs",
        [sa.text("coalesce(owner_id, 0)"), "name", "version"],
        unique=True,
        if_not_exists=True,
    )
    _assign_owners(bind)


def _assign_owners(bind: sa.Connection) -> None:
    """Give each plan and tariff to the one provider that uses it (see the module's doc)."""
    meta = sa.MetaData()
    accounts = sa.Table("accounts", meta, sa.Column("id", Id), sa.Column("provider_id", Id))
    plans = sa.Table(
        "charging_plans",
        meta,
        sa.Column("id", Id),
        sa.Column("tariff", sa.String(200)),
        sa.Column("cost_tariff", sa.String(200)),
        sa.Column("owner_id", Id),
    )
    assigned = sa.Table(
        "account_plans", meta, sa.Column("account_id", Id), sa.Column("plan_id", Id)
    )
    tariffs = sa.Table(
        "tariffs",
        meta,
        sa.Column("name", sa.String(200)),
        sa.Column("owner_id", Id),
        sa.Column("purpose", sa.String(8)),
    )
    users: dict[int, set[int | None]] = defaultdict(set)
    for plan_id, provider_id in bind.execute(
        sa.select(assigned.c.plan_id, accounts.c.provider_id).join(
            accounts, accounts.c.id == assigned.c.account_id
        )
    ):
        users[int(plan_id)].add(None if provider_id is None else int(provider_id))
    owners: dict[str, set[int | None]] = defaultdict(set)
    as_price: set[str] = set()
    for plan in bind.execute(sa.select(plans.c.id, plans.c.tariff, plans.c.cost_tariff)):
        found = users.get(int(plan.id), set())
        owner = next(iter(found)) if len(found) == 1 else None
        if owner is not None:
            bind.execute(sa.update(plans).where(plans.c.id == plan.id).values(owner_id=owner))
        as_price.add(plan.tariff)
        owners[plan.tariff].add(owner)
        if plan.cost_tariff is not None:
            owners[plan.cost_tariff].add(owner)
    for name, found in owners.items():
        owner = next(iter(found))
        if len(found) == 1 and owner is not None:
            bind.execute(sa.update(tariffs).where(tariffs.c.name == name).values(owner_id=owner))
        if name not in as_price:
            bind.execute(sa.update(tariffs).where(tariffs.c.name == name).values(purpose="cost"))


def downgrade() -> None:
    """Back to global names (fails if two owners now share a tariff or plan name)."""
    op.drop_index(TARIFF_INDEX, table_name="tariffs")
    with op.batch_alter_table("tariffs", recreate="auto") as batch:
        batch.drop_constraint("ck_tariffs_purpose", type_="check")
        batch.drop_column("purpose")
        batch.drop_column("owner_id")
        batch.create_unique_constraint("uq_tariffs_name", ["name", "version"])
    op.drop_index(PLAN_INDEX, table_name="charging_plans")
    with op.batch_alter_table("charging_plans", recreate="auto") as batch:
        batch.drop_column("owner_id")
        batch.create_unique_constraint("uq_charging_plans_name", ["name"])
