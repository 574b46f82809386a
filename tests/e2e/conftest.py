"""A small multi-tenant world for the API tests, on SQLite and PostgreSQL.

provider "Acme Telecom" -> organisation "Alpha" -> user "alice"
                        -> organisation "Bravo" -> user "bob"
A second top-level provider "Zeta" stands for a competitor on the same database.
Each has an API key; Alpha's wallet holds 100.00 USD, Bravo's 50.00 USD.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

import db_templates
from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.db.tables import metadata
from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.api.app import create_app
from telbill.services import accounts, numbers, subscriptions, wallets
from telbill.services.auth import Role, create_api_key
from telbill.services.clock import ManualClock

_keys = itertools.count(1)


def new_key() -> str:
    return f"test-{next(_keys)}"


@dataclass
class World:
    client: TestClient
    db: Database
    clock: ManualClock
    url: str
    ids: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str, *, idempotency_key: str | None = "auto") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        if idempotency_key == "auto":
            headers["Idempotency-Key"] = new_key()
        elif idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def snapshot(self) -> dict[str, Any]:
        """Row count of every table and every bucket's balance: what a request could change."""
        with self.db.engine.connect() as conn:
            counts = {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in metadata.sorted_tables
            }
            balances = conn.execute(
                sa.text("SELECT id, balance, held FROM ledger_accounts ORDER BY id")
            ).all()
        return {"counts": counts, "balances": [tuple(row) for row in balances]}


def open_world(url: str) -> World:
    """A client and a database handle on an (already migrated) database."""
    clock = ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    return World(
        client=TestClient(create_app(url, clock=clock)), db=Database(url), clock=clock, url=url
    )


def build_world(url: str) -> World:
    migrate(url)
    world = open_world(url)
    db, clock = world.db, world.clock

    def account(name: str, kind: str, parent: str | None, **kw: object) -> int:
        created = accounts.create_account(
            db,
            kind=kind,
            name=name,
            parent_id=world.ids[parent] if parent else None,
            idempotency_key=new_key(),
            clock=clock,
            **kw,  # type: ignore[arg-type]
        )
        world.ids[name] = created.id
        return created.id

    account("acme", "provider", None, currency="USD", vat_rate="0.2", vat_country="GB")
    account("alpha", "organisation", "acme")
    account("alice", "user", "alpha")
    account("bravo", "organisation", "acme")
    account("bob", "user", "bravo")
    account("zeta", "provider", None, currency="EUR")
    for who, role in [
        ("acme", Role.PROVIDER_ADMIN),
        ("alpha", Role.ORG_ADMIN),
        ("alice", Role.USER),
        ("bravo", Role.ORG_ADMIN),
        ("bob", Role.USER),
        ("zeta", Role.PROVIDER_ADMIN),
    ]:
        created = create_api_key(db, account_id=world.ids[who], role=role, name=who, clock=clock)
        assert created.secret is not None
        world.keys[who] = created.secret
    switch = create_api_key(
        db, account_id=world.ids["alpha"], role=Role.SWITCH, name="alpha-switch", clock=clock
    )
    assert switch.secret is not None
    world.keys["alpha_switch"] = switch.secret
    wallets.top_up(db, world.ids["alpha"], "100.00", idempotency_key=new_key(), clock=clock)
    wallets.top_up(db, world.ids["bravo"], "50.00", idempotency_key=new_key(), clock=clock)
    add_lifecycle_catalogue(db, world.ids["acme"], clock)
    return world


def add_lifecycle_catalogue(db: Database, provider_id: int, clock: ManualClock) -> None:
    """Acme sells two Boston numbers, a "team" plan and an "sms100" package."""
    rows, _ = read_inventory_text(
        "number,country,type,locality,area_code,monthly_price,setup_price\n"
        "+16175550100,US,local,Boston,617,1.00,0.50\n"
        "+16175550101,US,local,Boston,617,1.00,0.50\n"
    )
    numbers.import_inventory(db, provider_id, rows, clock=clock)
    subscriptions.create_plan(
        db,
        provider_id,
        code="team",
        name="Team",
        monthly_fee="10",
        free_credit_percent=20,
        trial_number_days=0,
        clock=clock,
    )
    subscriptions.create_package(
        db,
        provider_id,
        code="sms100",
        name="SMS 100",
        unit="msg:sms",
        amount=100,
        price="2",
        clock=clock,
    )


def close_world(world: World) -> None:
    world.db.dispose()
    world.client.app.state.db.dispose()  # type: ignore[attr-defined]


# SQLite: the world is built once per test process and its file copied for each test.
_sqlite_template: dict[str, tuple[Path, dict[str, int], dict[str, str]]] = {}


def sqlite_world(url: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    if "template" not in _sqlite_template:
        path = tmp_path_factory.mktemp("world") / "template.db"
        template = build_world(f"sqlite:///{path}")
        close_world(template)  # the last connection closing checkpoints the WAL into the file
        _sqlite_template["template"] = (path, template.ids, template.keys)
    path, ids, keys = _sqlite_template["template"]
    shutil.copyfile(path, url.removeprefix("sqlite:///"))
    world = open_world(url)
    world.ids, world.keys = dict(ids), dict(keys)
    return world


# PostgreSQL: the world is built once per test process into a database that each test's
# database is then copied from (CREATE DATABASE ... TEMPLATE).
_pg_world_template: dict[str, tuple[str, dict[str, int], dict[str, str]]] = {}


def pg_world() -> tuple[World, str]:
    """A world in a database of its own: (world, the database's name)."""
    if "template" not in _pg_world_template:
        name, url = db_templates.new_pg_database(prefix="tw")
        template = build_world(url)
        close_world(template)
        _pg_world_template["template"] = (name, template.ids, template.keys)
        db_templates.drop_at_finish(name)
    template_name, ids, keys = _pg_world_template["template"]
    name, url = db_templates.new_pg_database(template=template_name)
    world = open_world(url)
    world.ids, world.keys = dict(ids), dict(keys)
    return world, name


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The world above in a database of its own, on SQLite and on PostgreSQL."""
    database = None
    if request.param == "sqlite":
        built = sqlite_world(f"sqlite:///{tmp_path / 'telbill.db'}", tmp_path_factory)
    else:
        db_templates.require_postgres()
        built, database = pg_world()
    try:
        with built.client:
            yield built
    finally:
        close_world(built)
        if database is not None:
            db_templates.drop_pg_database(database)
