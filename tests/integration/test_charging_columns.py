"""A native CDR file posted from columns (`charging_columns`) charges, posts and
quarantines exactly what the per-event path does: every charge row, journal entry, posting
and balance compared, for a file mixing plain calls with every kind of row the fast path
hands to the per-event path; and replaying it charges nothing."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from charging_support import START, World, build_world, cdr_line, key, write_cdrs
from sqlalchemy import select

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.tables import ledger_accounts, postings, transactions
from telbill.services import accounts, charging, plans, wallets
from telbill.services.cdr_workers import post_cdr_file
from telbill.services.reconcile import reconcile


@pytest.fixture(name="world")
def world_fixture(db_url: str) -> Any:
    built = build_world(db_url, balance="3")
    yield built
    built.db.dispose()


def _twin(world: World) -> accounts.Account:
    """Organisation "beta" (user "alice" too), the same plan, credit and top-up as alpha."""
    beta = accounts.create_account(
        world.db, kind="organisation", name="beta", parent_id=world.provider.id,
        idempotency_key=key(), clock=world.clock,
    )  # fmt: skip
    accounts.create_account(
        world.db, kind="user", name="bob", parent_id=beta.id, idempotency_key=key(),
        clock=world.clock,
    )  # fmt: skip
    plans.assign_plan(world.db, beta.id, "retail", clock=world.clock)
    wallets.top_up(world.db, beta.id, "3", idempotency_key=key(), clock=world.clock)
    for org in (world.org.id, beta.id):
        wallets.grant_credit(world.db, org, "0.40", kind="free", idempotency_key=key(),
                             clock=world.clock)  # fmt: skip
    return beta


def _lines(account: str, user: str) -> list[str]:
    rng = random.Random(7)
    found = []
    for n in range(260):
        at = START + timedelta(minutes=n)
        to = rng.choice(["+447700900123", "+15551234567", "+15557654321", "0015551230000"])
        seconds = rng.choice([0, 1, 30, 59, 60, 61, 125, 600, None])
        line = cdr_line(f"c{n}", to, seconds, account=account, user=user, at=at)
        twist = n % 23
        if twist == 3:
            line = cdr_line(f"c{n}", "+447700900123", None, account=account, user=user,
                            at=at, service="sms", segments="2")  # fmt: skip
        elif twist == 5:
            line = cdr_line(f"c{n}", "+15551234567", 42, account=account, user=user, at=at,
                            direction="inbound")  # fmt: skip
        elif twist == 7:
            line = cdr_line(f"c{n}", "+861012345678", 60, account=account, user=user, at=at)
        elif twist == 9:
            line = f"c{n},{account},{user},outbound,+1555,+1555,not-a-time,,,voice,\n"
        elif twist == 11:
            line = cdr_line(f"c{n}", "101", 60, account=account, user=user, at=at)
        elif twist == 13:
            line = cdr_line(f"c{n - 1}", to, 61, account=account, user=user, at=at)  # reused id
        elif twist == 15:
            line = cdr_line(f"c{n}", "+1 555 123 4567", 60, account=account, user=user, at=at)
        elif twist == 17:
            line = cdr_line(f"c{n}", to, 60, account="nobody", user=user, at=at)
        found.append(line)
    return found


def _charges(world: World, payer_id: int) -> dict[tuple[str, str], tuple[Any, ...]]:
    with world.db.engine.connect() as conn:
        rows = conn.execute(select(charges).where(charges.c.payer_id == payer_id)).all()
        entries = {
            row.id: row for row in conn.execute(
                select(transactions).where(transactions.c.account_id == payer_id)
            )
        }  # fmt: skip
    found = {}
    for row in rows:
        usage = row.usage if isinstance(row.usage, dict) else json.loads(row.usage or "null")
        if usage is not None:
            usage = {k: v for k, v in usage.items() if k not in {"account", "user"}}
        entry = entries.get(row.transaction_id)
        found[(row.cdr_id, row.leg)] = (
            row.revision, row.service, row.direction, row.amount_micros, row.currency,
            row.unit, row.billed_units, row.package_units, row.tariff, row.tariff_version,
            row.prefix, row.explanation, usage, row.occurred_at, row.cost_micros,
            row.campaign_id, None if entry is None else entry.memo,
        )  # fmt: skip
    return found


def _ledger(world: World, payer_id: int) -> list[tuple[Any, ...]]:
    """The payer's journal entries in order, each with its postings by bucket kind."""
    with world.db.engine.connect() as conn:
        kinds = {row.id: (row.kind, row.code) for row in conn.execute(select(ledger_accounts))}
        entries = conn.execute(
            select(transactions).where(transactions.c.account_id == payer_id)
            .order_by(transactions.c.id)
        ).all()  # fmt: skip
        result = []
        for entry in entries:
            lines = conn.execute(
                select(postings).where(postings.c.transaction_id == entry.id)
                .order_by(postings.c.id)
            ).all()  # fmt: skip
            details = {
                k: v for k, v in (entry.details or {}).items() if k not in {"bucket_id", "source"}
            }
            result.append((
                entry.kind, entry.memo, details,
                [(kinds[p.ledger_account_id], p.amount, p.unit) for p in lines],
            ))  # fmt: skip
    return result


def _balances(world: World, org_id: int) -> list[tuple[str, Any]]:
    found = wallets.get_balances(world.db, org_id, clock=world.clock).unit("USD")
    return [(b.kind, b.balance) for b in found.buckets]


def _quarantine(world: World, path: Path) -> list[tuple[Any, ...]]:
    return sorted(
        (q.line, q.cdr_id, q.reason.replace("beta", "alpha").replace("bob", "alice"))
        for q in charging.list_quarantine(world.db, status=None, limit=1000)
        if q.source == str(path)
    )


def test_file_posted_from_columns_equals_the_per_event_path_row_for_row(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beta = _twin(world)
    from_columns: list[int] = []
    real_write = charging.write_fast_charges

    def write(conn: Any, fast: Any, *args: Any, **kwargs: Any) -> None:
        from_columns.append(len(fast))
        real_write(conn, fast, *args, **kwargs)

    monkeypatch.setattr(charging, "write_fast_charges", write)
    by_events = write_cdrs(tmp_path / "events.csv", _lines("beta", "bob"))
    by_columns = write_cdrs(tmp_path / "columns.csv", _lines("alpha", "alice"))
    events = post_cdr_file(world.db, by_events, workers=1, chunk_size=40, columnar=False)
    columns = post_cdr_file(world.db, by_columns, workers=1, chunk_size=40)
    assert (columns.records, columns.posted, columns.duplicates, columns.quarantined,
            columns.refused, columns.charged) == (
        events.records, events.posted, events.duplicates, events.quarantined,
        events.refused, events.charged)  # fmt: skip
    assert columns.posted > 200 and columns.quarantined >= 30 and columns.refused > 5
    assert sum(from_columns) > 150  # most calls were written from columns
    alpha_charges, beta_charges = _charges(world, world.org.id), _charges(world, beta.id)
    assert len(alpha_charges) == columns.posted
    assert alpha_charges == beta_charges
    assert _ledger(world, world.org.id) == _ledger(world, beta.id)
    assert _balances(world, world.org.id) == _balances(world, beta.id)
    assert _quarantine(world, by_columns) == _quarantine(world, by_events)
    again = post_cdr_file(world.db, by_columns, workers=1, chunk_size=64)
    assert (again.posted, again.duplicates) == (0, columns.posted)
    assert _balances(world, world.org.id) == _balances(world, beta.id)
    assert reconcile(world.db).ok


def test_columns_post_the_chunks_of_a_file_cut_as_the_per_event_path_cuts_them(
    world: World, tmp_path: Path
) -> None:
    """Entries (one per payer and user per chunk) land on the same chunks both ways."""
    beta = _twin(world)
    lines = [cdr_line(f"c{n}", "+15551234567", 30 + n) for n in range(95)]
    other = [line.replace(",alpha,alice,", ",beta,bob,") for line in lines]
    post_cdr_file(world.db, write_cdrs(tmp_path / "b.csv", other), workers=1, chunk_size=20,
                  columnar=False)  # fmt: skip
    post_cdr_file(world.db, write_cdrs(tmp_path / "a.csv", lines), workers=1, chunk_size=20)
    alpha, beta_ledger = _ledger(world, world.org.id), _ledger(world, beta.id)
    assert [entry[1] for entry in alpha if entry[0] == "usage_batch"] == [
        "usage of 20 CDRs"] * 4 + ["usage of 15 CDRs"]  # fmt: skip
    assert alpha == beta_ledger
