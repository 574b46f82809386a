"""A small business for the dashboard tests, seeded through the services only.

provider "acme" (USD) -> organisation "alpha" (100.00 paid, calls in March 2026) -> "alice"
                      -> organisation "bravo" (50.00 paid)                     -> "bob"
provider "zeta" (EUR): a competitor on the same database.
Every account has a key of its role; "alpha" also has a switch key. Acme sells two Boston
numbers and a SMS package; a "retail" tariff (US 0.12/min, per second) is alpha's plan.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import db_templates
from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.domain.tariffs import Increment, RateRow, TariffSettings
from telbill.services import accounts, campaigns, numbers, plans, subscriptions, wallets
from telbill.services.auth import Role, create_api_key
from telbill.services.charging import post_cdrs
from telbill.services.clock import ManualClock
from telbill.services.tariffs import import_tariff

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
CALLS_START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CDR_HEADER = "id,account,user,direction,from,to,start,answer,end,service,segments\n"
_keys = itertools.count(1)


def new_key() -> str:
    return f"web-test-{next(_keys)}"


@dataclass
class WebWorld:
    url: str
    db: Database
    clock: ManualClock
    ids: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def build_web_world(url: str, tmp_dir: Path, *, calls: int = 6) -> WebWorld:
    """Migrate `url` and seed the business above; `calls` calls of alice in March."""
    migrate(url)
    clock = ManualClock(NOW - timedelta(days=30))
    world = WebWorld(url=url, db=Database(url), clock=clock)
    db = world.db

    def account(name: str, kind: str, parent: str | None, **settings: object) -> None:
        created = accounts.create_account(
            db, kind=kind, name=name, parent_id=world.ids[parent] if parent else None,
            idempotency_key=new_key(), clock=clock, **settings,  # type: ignore[arg-type]
        )  # fmt: skip
        world.ids[name] = created.id

    account("acme", "provider", None, currency="USD", vat_rate="0.2", vat_country="GB")
    account("alpha", "organisation", "acme")
    account("alice", "user", "alpha")
    account("bravo", "organisation", "acme")
    account("bob", "user", "bravo")
    account("zeta", "provider", None, currency="EUR")
    roles = [
        ("acme", Role.PROVIDER_ADMIN),
        ("alpha", Role.ORG_ADMIN),
        ("alice", Role.USER),
        ("bravo", Role.ORG_ADMIN),
        ("bob", Role.USER),
        ("zeta", Role.PROVIDER_ADMIN),
    ]
    for who, role in roles:
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
    inventory, _ = read_inventory_text(
        "number,country,type,locality,area_code,monthly_price,setup_price\n"
        "+16175550100,US,local,Boston,617,1.00,0.50\n"
        "+16175550101,US,local,Boston,617,1.00,0.50\n"
    )
    numbers.import_inventory(db, world.ids["acme"], inventory, clock=clock)
    subscriptions.create_package(
        db, world.ids["acme"], code="sms100", name="SMS 100", unit="msg:sms", amount=100,
        price="2", clock=clock,
    )  # fmt: skip
    import_tariff(
        db, "retail",
        [RateRow("1", "United States", Decimal("0.12"), increment=Increment(1, 1)),
         RateRow("44", "United Kingdom", Decimal("0.30"), increment=Increment(1, 1))],
        TariffSettings(currency="USD"), now=clock.now(),
    )  # fmt: skip
    plans.create_plan(db, "retail", tariff="retail", clock=clock)
    plans.assign_plan(db, world.ids["acme"], "retail", clock=clock)
    clock.set(NOW)
    post_calls(world, tmp_dir, "alpha", "alice", calls)
    campaigns.start_campaign(db, world.ids["alice"], "Spring outreach", clock=clock)
    return world


def post_calls(world: WebWorld, tmp_dir: Path, org: str, user: str, count: int) -> None:
    """`count` calls of `user` to the US, 60 + n seconds each, one per day from 2 March."""
    lines = []
    for n in range(count):
        start = CALLS_START + timedelta(days=n)
        answer, end = start + timedelta(seconds=1), start + timedelta(seconds=61 + n)
        lines.append(
            f"{org}-{user}-{n},{org},{user},outbound,+15550001,+1555123{n:04d},"
            f"{start.isoformat()},{answer.isoformat()},{end.isoformat()},voice,\n"
        )
    path = tmp_dir / f"cdrs-{org}-{user}.csv"
    path.write_text(CDR_HEADER + "".join(lines), encoding="utf-8")
    summary = post_cdrs(world.db, read_cdr_file(path, "native"), clock=world.clock, source="t")
    assert summary.posted == count, summary


# ------------------------------------------------------------------- databases and clients

PG_BASE_URL = db_templates.PG_BASE_URL
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def new_pg_database() -> tuple[str, str]:
    """A fresh, migrated PostgreSQL database and its URL (skip, or fail under CI, when the
    server cannot be reached)."""
    import psycopg

    try:
        return db_templates.new_pg_database(prefix="w")
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {PG_BASE_URL}: {exc}"
        if IN_CI:
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)


drop_pg_database = db_templates.drop_pg_database


LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def log_in(client: TestClient, key: str) -> str:
    """Log `client` in with `key`; returns the session's CSRF token."""
    client.cookies.clear()
    form = client.get("/login")
    match = LOGIN_TOKEN.search(form.text)
    assert match, form.text
    response = client.post(
        "/login", data={"api_key": key, "login_token": match.group(1)}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    assert page.status_code == 200, page.text
    csrf = CSRF_TOKEN.search(page.text)
    assert csrf, page.text
    return csrf.group(1)
