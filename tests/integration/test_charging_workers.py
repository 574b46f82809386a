"""Posting one CDR file with several worker processes: the same charges, balances and
quarantine as one process, and exactly once when posted again."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from charging_support import World, build_world, cdr_line, key, write_cdrs
from sqlalchemy import select

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.services import accounts, charging, plans, wallets
from telbill.services.cdr_workers import post_cdr_file
from telbill.services.reconcile import reconcile

DESTINATIONS = ["+15551234567", "+447700900123", "+15557654321"]


@pytest.fixture(name="world")
def world_fixture(db_url: str) -> Iterator[World]:
    built = build_world(db_url, balance="100")
    yield built
    built.db.dispose()


def _second_org(world: World) -> accounts.Account:
    """Organisation "beta" (user "bob"), same plan and top-up as "alpha"."""
    beta = accounts.create_account(
        world.db, kind="organisation", name="beta", parent_id=world.provider.id,
        idempotency_key=key(), clock=world.clock,
    )  # fmt: skip
    accounts.create_account(
        world.db, kind="user", name="bob", parent_id=beta.id, idempotency_key=key(),
        clock=world.clock,
    )  # fmt: skip
    plans.assign_plan(world.db, beta.id, "retail", clock=world.clock)
    wallets.top_up(world.db, beta.id, "100", idempotency_key=key(), clock=world.clock)
    return beta


def _file(tmp_path: Path, name: str, account: str, user: str) -> Path:
    lines = [
        cdr_line(f"c{n}", DESTINATIONS[n % 3], 20 + (n * 37) % 300, account=account, user=user)
        for n in range(230)
    ]
    lines[17] = f"c17,{account},{user},outbound,+1555,+1555,not-a-time,,,voice,\n"
    lines[101] = cdr_line("c101", "+861012345678", 60, account=account, user=user)  # no rate
    return write_cdrs(tmp_path / name, lines)


def _charges_of(world: World, payer_id: int) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Each charge of `payer_id` by (CDR id, leg): what it cost and what was rated."""
    with world.db.engine.connect() as conn:
        rows = conn.execute(select(charges).where(charges.c.payer_id == payer_id)).all()
    found = {}
    for row in rows:
        usage = row.usage if isinstance(row.usage, dict) else json.loads(row.usage or "null")
        if usage is not None:
            usage = {k: v for k, v in usage.items() if k not in {"account", "user"}}
        explanation = row.explanation
        found[(row.cdr_id, row.leg)] = (
            row.amount_micros, row.currency, row.unit, row.billed_units, row.package_units,
            row.tariff, row.tariff_version, row.prefix, explanation, usage, row.occurred_at,
        )  # fmt: skip
    return found


def test_two_workers_post_a_file_as_one_process_would(world: World, tmp_path: Path) -> None:
    beta = _second_org(world)
    one = post_cdr_file(world.db, _file(tmp_path, "beta.csv", "beta", "bob"), workers=1,
                        chunk_size=40)  # fmt: skip
    path = _file(tmp_path, "alpha.csv", "alpha", "alice")
    three = post_cdr_file(world.db, path, workers=3, chunk_size=40)
    assert (three.records, three.posted, three.quarantined) == (230, 228, 2)
    assert (one.posted, one.quarantined, one.charged) == (228, 2, three.charged)
    alpha_charges, beta_charges = _charges_of(world, world.org.id), _charges_of(world, beta.id)
    assert len(alpha_charges) == 228
    assert alpha_charges == beta_charges
    balances = [
        wallets.get_balances(world.db, org_id, clock=world.clock).unit("USD").posted
        for org_id in (world.org.id, beta.id)
    ]
    assert balances[0] == balances[1] < 100
    lines = {q.line: q.reason for q in charging.list_quarantine(world.db, status=None)
             if q.source == str(path)}  # fmt: skip
    assert sorted(lines) == [19, 103]
    assert lines[103].startswith("no_rate")
    again = post_cdr_file(world.db, path, workers=2, chunk_size=64)
    assert (again.posted, again.duplicates) == (0, 228)
    assert wallets.get_balances(world.db, world.org.id, clock=world.clock).unit(
        "USD"
    ).posted == balances[0]
    assert len(charging.list_quarantine(world.db, status=None)) == 4
    assert reconcile(world.db).ok


def test_posting_collects_garbage_less_often_and_restores_the_thresholds(
    world: World, tmp_path: Path
) -> None:
    before = gc.get_threshold()
    during: list[tuple[int, ...]] = []
    path = write_cdrs(tmp_path / "c.csv", [cdr_line(f"c{n}", "+15551234567", 30) for n in range(5)])
    charging.post_cdrs(
        world.db, read_cdr_file(path), clock=world.clock, source=str(path), chunk_size=2,
        on_chunk=lambda _: during.append(gc.get_threshold()),
    )  # fmt: skip
    assert len(during) == 3 and all(t[0] >= 100_000 for t in during)
    assert gc.get_threshold() == before
