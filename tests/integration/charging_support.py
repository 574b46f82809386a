"""A small charging world for the charging tests: a tariff, a plan, a prepaid wallet.

provider "Acme" -> organisation "alpha" (wallet, prepaid, plan "retail") -> user "alice"
Tariff "retail" (USD): UK (+44) 0.60/min in 60/60, US (+1) 0.12/min in 1/1, inbound
0.01/min, SMS to UK 0.05 per segment.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from telbill.adapters.db.engine import Database, migrate
from telbill.domain.tariffs import (
    Direction,
    Increment,
    RateRow,
    Service,
    TariffSettings,
)
from telbill.services import accounts, plans, wallets
from telbill.services.clock import ManualClock
from telbill.services.tariffs import import_tariff

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_keys = itertools.count()

NATIVE_HEADER = "id,account,user,direction,from,to,start,answer,end,service,segments\n"


def key(prefix: str = "k") -> str:
    return f"{prefix}-{next(_keys)}"


@dataclass
class World:
    db: Database
    clock: ManualClock
    provider: accounts.Account
    org: accounts.Account
    user: accounts.Account


def retail_rows(uk_rate: str = "0.60") -> list[RateRow]:
    return [
        RateRow("44", "United Kingdom", Decimal(uk_rate), increment=Increment(60, 60)),
        RateRow("1", "United States", Decimal("0.12"), increment=Increment(1, 1)),
        RateRow("", "Inbound", Decimal("0.01"), direction=Direction.INBOUND,
                increment=Increment(1, 1)),
        RateRow("44", "UK SMS", Decimal("0.05"), service=Service.SMS),
    ]  # fmt: skip


def add_tariff(db: Database, name: str, rows: list[RateRow], now: datetime) -> None:
    import_tariff(db, name, rows, TariffSettings(currency="USD"), now=now)


def build_world(
    url: str, *, balance: str = "10", cut_off: str = "hard", **plan: object
) -> World:
    migrate(url)
    db = Database(url)
    clock = ManualClock(START)
    provider = accounts.create_account(
        db, kind="provider", name="Acme", currency="USD", idempotency_key=key(), clock=clock
    )
    org = accounts.create_account(
        db, kind="organisation", name="alpha", parent_id=provider.id,
        idempotency_key=key(), clock=clock,
    )  # fmt: skip
    user = accounts.create_account(
        db, kind="user", name="alice", parent_id=org.id, idempotency_key=key(), clock=clock
    )
    add_tariff(db, "retail", retail_rows(), START - timedelta(days=1))
    plans.create_plan(db, "retail", tariff="retail", clock=clock, cut_off=cut_off, **plan)  # type: ignore[arg-type]
    plans.assign_plan(db, org.id, "retail", clock=clock)
    if Decimal(balance) > 0:
        wallets.top_up(db, org.id, balance, idempotency_key=key(), clock=clock)
    return World(db, clock, provider, org, user)


@pytest.fixture(name="world")
def world_fixture(db_url: str) -> Iterator[World]:
    built = build_world(db_url)
    yield built
    built.db.dispose()


def cdr_line(
    cdr_id: str,
    to: str,
    seconds: int | None,
    *,
    account: str = "alpha",
    user: str = "alice",
    direction: str = "outbound",
    at: datetime = START,
    service: str = "voice",
    segments: str = "",
) -> str:
    answer = "" if seconds is None else (at + timedelta(seconds=1)).isoformat()
    end = (at + timedelta(seconds=1 + (seconds or 0))).isoformat()
    if service != "voice":
        answer, end = "", ""
    return (
        f"{cdr_id},{account},{user},{direction},+15550001,{to},{at.isoformat()},"
        f"{answer},{end},{service},{segments}\n"
    )


def write_cdrs(path: Path, lines: list[str]) -> Path:
    path.write_text(NATIVE_HEADER + "".join(lines), encoding="utf-8")
    return path


def paid(world: World) -> Decimal:
    balances = wallets.get_balances(world.db, world.org.id, clock=world.clock)
    return next(b.balance for b in balances.unit("USD").buckets if b.kind == "paid")
