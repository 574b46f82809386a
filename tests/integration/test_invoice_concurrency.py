"""Gap-free invoice numbers under concurrency, on PostgreSQL (real row locks and MVCC)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from invoice_support import APRIL, build_world, key

from telbill.adapters.db.engine import Database
from telbill.adapters.db.invoice_tables import invoices
from telbill.services import accounts, wallets
from telbill.services import invoices as invoice_service
from telbill.services.clock import FixedClock

ACCOUNTS = 12


def test_two_concurrent_issuers_number_invoices_1_to_n_without_gap_or_duplicate(
    pg_url: str, tmp_path: Path
):
    world = build_world(pg_url, tmp_path)
    db, clock = world.db, world.clock
    orgs = [world.alpha.id, world.bravo.id]
    for n in range(ACCOUNTS - len(orgs)):
        org = accounts.create_account(
            db, kind="organisation", name=f"Org {n}", parent_id=world.provider.id,
            idempotency_key=key(), clock=clock,
        )  # fmt: skip
        wallets.top_up(db, org.id, "5", idempotency_key=key(), clock=clock)
        orgs.append(org.id)
    for org_id in orgs:
        wallets.debit(db, org_id, "1.00", service="voice", idempotency_key=key(), clock=clock)
    after = FixedClock(APRIL + timedelta(hours=1))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def issuer(order: list[int]) -> None:
        own = Database(pg_url)  # its own connection pool, like another worker process
        try:
            barrier.wait()
            for org_id in order:
                invoice_service.issue_invoice(own, org_id, "2026-03", clock=after)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [
        threading.Thread(target=issuer, args=(orgs,)),
        threading.Thread(target=issuer, args=(list(reversed(orgs)),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with db.transaction() as conn:
        rows = conn.execute(sa.select(invoices.c.account_id, invoices.c.number)).all()
    assert sorted(number for _, number in rows) == list(range(1, ACCOUNTS + 1))
    assert sorted(account for account, _ in rows) == sorted(orgs)
    db.dispose()
