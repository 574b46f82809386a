"""Many OS processes spend one prepaid wallet at once: nobody spends the same money twice.

8 processes on PostgreSQL (4 on SQLite) each post 500 debits of random sizes, mixed with
top-ups, against one wallet that cannot cover them all. Afterwards: the balance equals the
initial one plus the successful top-ups minus the successful debits, exactly; the running
balance of the wallet, replayed posting by posting, never went below zero; every refused
debit was refused as InsufficientBalance; reconcile passes.
"""

from __future__ import annotations

import multiprocessing
import random
from decimal import Decimal

import pytest
from ledger_support import (  # noqa: F401 (fixtures)
    manual_clock,
    organisation,
    provider,
)
from sqlalchemy import select

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.db.tables import ledger_accounts, postings
from telbill.errors import InsufficientBalance
from telbill.services import wallets
from telbill.services.clock import ManualClock, SystemClock
from telbill.services.reconcile import reconcile

OPS_PER_WORKER = 500
TOP_UP_EVERY = 50
TOP_UP = Decimal(5)
INITIAL = Decimal(20)


def spend_in_a_worker(url: str, account_id: int, worker: int) -> dict[str, object]:
    """One OS process: OPS_PER_WORKER operations; returns what succeeded and what failed."""
    db = Database(url)
    rng = random.Random(worker)
    clock = SystemClock()
    debited = topped_up = Decimal(0)
    refused = 0
    other_errors: list[str] = []
    for i in range(OPS_PER_WORKER):
        op_key = f"w{worker}-op{i}"
        try:
            if i % TOP_UP_EVERY == TOP_UP_EVERY - 1:
                wallets.top_up(db, account_id, TOP_UP, idempotency_key=op_key, clock=clock)
                topped_up += TOP_UP
            else:
                amount = Decimal(rng.randint(1, 1_000_000)).scaleb(-6)  # up to 1.00
                wallets.debit(
                    db,
                    account_id,
                    amount,
                    service="voice",
                    direction="outbound",
                    idempotency_key=op_key,
                    clock=clock,
                )
                debited += amount
        except InsufficientBalance:
            refused += 1
        except Exception as exc:  # every refusal must be InsufficientBalance
            other_errors.append(repr(exc))
    db.dispose()
    return {
        "debited": str(debited),
        "topped_up": str(topped_up),
        "refused": refused,
        "errors": other_errors,
    }


def run_workers(url: str, workers: int) -> None:
    migrate(url)
    db = Database(url)
    clock = ManualClock()
    org = organisation(db, clock, provider(db, clock, vat_rate="0"))
    wallets.top_up(db, org.id, INITIAL, idempotency_key="initial", clock=clock)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        results = pool.starmap(spend_in_a_worker, [(url, org.id, w) for w in range(workers)])

    assert [r["errors"] for r in results] == [[]] * workers
    debited = sum(Decimal(str(r["debited"])) for r in results)
    topped_up = sum(Decimal(str(r["topped_up"])) for r in results)
    refused = sum(int(str(r["refused"])) for r in results)
    assert refused > 0, "the wallet was meant to be unable to cover every debit"
    assert debited > 0

    balances = wallets.get_balances(db, org.id, clock=SystemClock()).unit("USD")
    assert balances.posted == INITIAL + topped_up - debited

    with db.transaction() as conn:
        paid_id = conn.execute(
            select(ledger_accounts.c.id).where(
                ledger_accounts.c.account_id == org.id, ledger_accounts.c.kind == "paid"
            )
        ).scalar_one()
        # Bucket rows are locked before postings are inserted, so id order is commit order.
        amounts = conn.execute(
            select(postings.c.amount)
            .where(postings.c.ledger_account_id == paid_id)
            .order_by(postings.c.id)
        ).scalars()
        running = 0
        for amount in amounts:
            running += amount
            assert running >= 0, "the prepaid floor was crossed"
    report = reconcile(db)
    assert report.ok, report.problems
    db.dispose()


@pytest.mark.slow
@pytest.mark.xdist_group("concurrency")
def test_eight_processes_never_spend_the_same_money_twice_on_postgresql(pg_url: str) -> None:
    run_workers(pg_url, workers=8)


@pytest.mark.slow
@pytest.mark.xdist_group("concurrency")
def test_four_processes_never_spend_the_same_money_twice_on_sqlite(tmp_path: object) -> None:
    run_workers(f"sqlite:///{tmp_path}/concurrency.db", workers=4)


SHARED_KEYS = 20


def replay_in_a_worker(url: str, account_id: int, worker: int) -> list[int]:
    """Post the same SHARED_KEYS debits as every other worker; return the transaction ids."""
    db = Database(url)
    ids = [
        wallets.debit(
            db,
            account_id,
            "0.01",
            service="voice",
            idempotency_key=f"shared-{i}",
            clock=SystemClock(),
        ).id
        for i in (range(SHARED_KEYS) if worker % 2 else reversed(range(SHARED_KEYS)))
    ]
    db.dispose()
    return sorted(ids)


@pytest.mark.slow
@pytest.mark.xdist_group("concurrency")
def test_the_same_keys_from_four_processes_charge_once_on_postgresql(pg_url: str) -> None:
    migrate(pg_url)
    db = Database(pg_url)
    clock = ManualClock()
    org = organisation(db, clock, provider(db, clock, vat_rate="0"))
    wallets.top_up(db, org.id, "10", idempotency_key="initial", clock=clock)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(replay_in_a_worker, [(pg_url, org.id, w) for w in range(4)])
    assert all(ids == results[0] for ids in results)
    assert len(set(results[0])) == SHARED_KEYS
    posted = wallets.get_balances(db, org.id, clock=SystemClock()).unit("USD").posted
    assert posted == Decimal(10) - SHARED_KEYS * Decimal("0.01")
    assert reconcile(db).ok
    db.dispose()
