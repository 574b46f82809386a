"""A year of a telephony business, day by day, for the year simulation test.

Accounts come in four kinds (account index modulo 4):
0. payers: plenty of money, a subscription with 1-3 seats; every renewal on time (every
   eighth account lives in New York, so its periods start at local midnight there);
1. defaulters: pay the purchase only; suspended on the first anniversary, released when
   the two months of grace end;
2. late payers: pay the purchase only, then top up some days into the grace period; the
   number comes back from the payment date on;
3. random: a subscription, random top-ups and random calls.
Numbers are bought on every day of January 2027 (account i on day i % 31 + 1), then the
year is ticked day by day from 1 February 2027 to 31 January 2028. Ticks can run in
several processes at once: the day's outside events (top-ups, calls) are applied by worker
0 alone, then every worker ticks the same day, with a barrier between the phases.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from telbill.adapters.db.engine import Database, make_engine, migrate
from telbill.adapters.db.lifecycle_tables import job_runs, number_rentals
from telbill.adapters.db.tables import accounts as accounts_table
from telbill.adapters.db.tables import ledger_accounts, postings, transactions
from telbill.adapters.formats.inventory_csv import InventoryRow
from telbill.errors import TelbillError
from telbill.services import accounts, numbers, scheduler, subscriptions, wallets
from telbill.services.clock import FixedClock, ManualClock

FIRST_TICK = date(2027, 2, 1)
LAST_TICK = date(2028, 1, 31)
SEED = 20270101


def kind_of(index: int) -> int:
    return index % 4


def timezone_of(index: int) -> str:
    return "America/New_York" if index % 8 == 0 else "UTC"


def bought_on(index: int) -> date:
    return date(2027, 1, index % 31 + 1)


def number_of(index: int) -> str:
    return f"+1617{2000000 + index:07d}"


def late_payment_day(index: int, suspended_on: date) -> date:
    return suspended_on + timedelta(days=1 + (index * 7) % 50)


def _at(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def set_up(url: str, count: int) -> dict[int, int]:
    """Provider, plan, inventory and `count` customers with their number; {index: account}."""
    migrate(url)
    db = open_database(url)
    clock = ManualClock(_at(date(2027, 1, 1)))
    provider = accounts.create_account(
        db,
        kind="provider",
        name="Provider",
        currency="USD",
        timezone="UTC",
        idempotency_key="provider",
        clock=clock,
    )
    subscriptions.create_plan(
        db,
        provider.id,
        code="pro",
        name="Pro",
        monthly_fee="5.00",
        free_credit_percent=20,
        trial_credit=0,
        trial_number_days=0,
        clock=clock,
    )
    rows = [
        InventoryRow(
            i + 2,
            number_of(i),
            "US",
            "local",
            "MA",
            "Boston",
            "617",
            Decimal("1.00"),
            Decimal("0.50"),
            False,
        )
        for i in range(count)
    ]
    numbers.import_inventory(db, provider.id, rows, clock=clock)
    ids: dict[int, int] = {}
    for day in range(1, 32):
        clock.set(_at(date(2027, 1, day), 9))
        for index in range(day - 1, count, 31):
            account = accounts.create_account(
                db,
                kind="organisation",
                name=f"customer-{index}",
                parent_id=provider.id,
                timezone=timezone_of(index),
                idempotency_key=f"customer-{index}",
                clock=clock,
            )
            ids[index] = account.id
            kind = kind_of(index)
            money = {0: "250", 1: "1.50", 2: "1.50", 3: str(10 + index % 20)}[kind]
            wallets.top_up(db, account.id, money, idempotency_key=f"seed-{index}", clock=clock)
            numbers.buy_number(
                db, account.id, number_of(index), idempotency_key=f"buy-{index}", clock=clock
            )
            if kind in (0, 3):
                subscriptions.subscribe(
                    db,
                    account.id,
                    "pro",
                    seats=1 + index % 3 if kind == 0 else 1,
                    idempotency_key=f"sub-{index}",
                    clock=clock,
                )
    db.dispose()
    return ids


def apply_day_events(
    db: Database, ids: dict[int, int], day: date, first_renewal: dict[int, date]
) -> None:
    """Top-ups and calls of `day` (at noon UTC): late payments, random customers. The
    day's payments are posted like a bank statement, in one database transaction (each its
    own ledger transaction and receipt), then the day's calls in one batch."""
    clock = FixedClock(_at(day, 12))
    rng = random.Random(f"{SEED}-{day.isoformat()}")
    payments: list[tuple[int, str, str]] = []
    calls: list[wallets.DebitRequest] = []
    for index, account_id in ids.items():
        kind = kind_of(index)
        if kind == 2 and late_payment_day(index, first_renewal[index]) == day:
            payments.append((account_id, "30", f"late-{index}"))
        elif kind == 3:
            if rng.random() < 0.04:
                amount = str(rng.randint(1, 20))
                payments.append((account_id, amount, f"rnd-{index}-{day}"))
            if rng.random() < 0.2:
                calls.append(
                    wallets.DebitRequest(
                        account_id=account_id,
                        amount=Decimal(rng.randint(1, 150)) / 100,
                        idempotency_key=f"call-{index}-{day}",
                        service="voice",
                        direction="outbound",
                    )
                )
    if payments:
        db.run(
            lambda conn: [
                wallets.top_up_in(conn, account_id, amount, idempotency_key=key, now=clock.now())
                for account_id, amount, key in payments
            ]
        )
    if calls:
        outcomes = wallets.debit_many(db, calls, clock=clock)
        for outcome in outcomes:  # refusals for want of money are part of the story
            assert not isinstance(outcome, TelbillError) or outcome.code == "insufficient_balance"


def first_renewals(ids: dict[int, int]) -> dict[int, date]:
    from telbill.domain.calendar import next_anniversary

    return {i: next_anniversary(bought_on(i).day, bought_on(i)) for i in ids}


def open_database(url: str) -> Database:
    """A Database without the pool's liveness ping: one round trip less per transaction."""
    return Database(make_engine(url, pool_pre_ping=False) if "postgresql" in url else url)


def tick_year(
    url: str,
    ids: dict[int, int],
    worker: int = 0,
    barrier: Any = None,
    accounts_per_transaction: int = scheduler.DEFAULT_ACCOUNTS_PER_TRANSACTION,
) -> None:
    """Tick every day of the year; worker 0 also applies the outside events."""
    db = open_database(url)
    renewals = first_renewals(ids)
    day = FIRST_TICK
    try:
        while day <= LAST_TICK:
            if barrier is not None:
                barrier.wait()
            scheduler.tick(
                db,
                clock=FixedClock(_at(day)),
                accounts_per_transaction=accounts_per_transaction,
            )
            if barrier is not None:
                barrier.wait()
            if worker == 0:
                apply_day_events(db, ids, day, renewals)
            day += timedelta(days=1)
    finally:
        db.dispose()


def _worker(url: str, ids: dict[int, int], worker: int, barrier: Any) -> None:
    tick_year(url, ids, worker, barrier)


def run_year(url: str, count: int, workers: int = 1) -> dict[int, int]:
    ids = set_up(url, count)
    if workers == 1:
        tick_year(url, ids)
        return ids
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=_worker, args=(url, ids, worker, barrier))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    codes = [p.exitcode for p in processes]
    if any(code != 0 for code in codes):
        raise RuntimeError(f"a tick worker failed: exit codes {codes}")
    return ids


def ledger_fingerprint(url: str) -> tuple[str, dict[str, int]]:
    """A digest of everything the year wrote, independent of row ids and commit order."""
    db = Database(url)
    try:
        with db.transaction() as conn:
            names = {
                r.id: r.name
                for r in conn.execute(select(accounts_table.c.id, accounts_table.c.name))
            }
            buckets = sorted(
                (
                    names.get(r.account_id, "system"),
                    r.code or "",
                    r.kind,
                    r.unit,
                    r.label or "",
                    r.balance,
                )
                for r in conn.execute(select(ledger_accounts))
            )
            bucket_names = {
                r.id: f"{names.get(r.account_id, 'system')}/{r.code or r.label}"
                for r in conn.execute(select(ledger_accounts))
            }
            lines: dict[int, list[tuple[str, int]]] = {}
            for row in conn.execute(select(postings)):
                lines.setdefault(row.transaction_id, []).append(
                    (bucket_names[row.ledger_account_id], row.amount)
                )
            journal = sorted(
                (
                    r.kind,
                    names.get(r.account_id, ""),
                    r.created_at.isoformat(),
                    r.idempotency_key or "",
                    tuple(sorted(lines[r.id])),
                )
                for r in conn.execute(select(transactions))
            )
            jobs = sorted(
                (r.job, r.entity, r.period, r.outcome, r.ran_at.isoformat())
                for r in conn.execute(select(job_runs))
            )
            rentals = sorted(
                (r.number, r.status, r.anchor_day, str(r.paid_until), str(r.released_at))
                for r in conn.execute(select(number_rentals))
            )
        text = json.dumps([buckets, journal, jobs, rentals], default=str)
        counts = {
            "buckets": len(buckets),
            "transactions": len(journal),
            "job_runs": len(jobs),
        }
        return hashlib.sha256(text.encode()).hexdigest(), counts
    finally:
        db.dispose()


def _expected_chain(anchor_day: int, start: date, timezone: str, end: datetime) -> list[datetime]:
    """Anniversaries of `anchor_day` after local date `start`, as instants up to `end`."""
    from telbill.domain.calendar import local_midnight, next_anniversary

    chain, current = [], start
    while True:
        current = next_anniversary(anchor_day, current)
        moment = local_midnight(current, timezone)
        if moment > end:
            return chain
        chain.append(moment)


def check_dates(url: str, ids: dict[int, int]) -> dict[str, int]:
    """Every renewal, suspension, release and late renewal happened on its date; counts."""
    from telbill.domain.calendar import grace_end, local_midnight

    end = _at(LAST_TICK)
    db = open_database(url)
    checked = {"payers": 0, "defaulters": 0, "late_payers": 0, "renewals": 0}
    try:
        with db.transaction() as conn:
            rentals = {r.number: r for r in conn.execute(select(number_rentals))}
            runs: dict[tuple[str, str], list[Any]] = {}
            for run in conn.execute(select(job_runs).order_by(job_runs.c.period)):
                runs.setdefault((run.job, run.entity), []).append(run)
        for index in ids:
            rental = rentals[number_of(index)]
            zone_name = timezone_of(index)
            bought = bought_on(index)
            renewals = runs.get(("number.renewal", str(rental.id)), [])
            kind = kind_of(index)
            if kind == 0:
                expected = _expected_chain(bought.day, bought, zone_name, end)
                assert [r.period for r in renewals] == [m.isoformat() for m in expected], index
                assert all(r.outcome == "renewed" for r in renewals), index
                assert all(r.ran_at == datetime.fromisoformat(r.period) for r in renewals)
                checked["payers"] += 1
                checked["renewals"] += len(renewals)
                continue
            if kind not in (1, 2):
                continue
            first = _expected_chain(bought.day, bought, zone_name, end)[0]
            assert (renewals[0].period, renewals[0].outcome) == (first.isoformat(), "suspended")
            assert renewals[0].ran_at == first
            first_day = first.date()
            if kind == 1:
                released_at = grace_end(first_day, zone_name)
                assert (rental.status, rental.released_at) == ("released", released_at), index
                assert len(renewals) == 1
                checked["defaulters"] += 1
                continue
            paid_on = late_payment_day(index, first_day)
            late = runs[("number.late_renewal", str(rental.id))]
            assert [(r.outcome, r.ran_at) for r in late] == [
                ("renewed_late", local_midnight(paid_on + timedelta(days=1), zone_name))
            ], index
            assert (rental.status, rental.anchor_day) == ("active", paid_on.day), index
            expected = _expected_chain(paid_on.day, paid_on, zone_name, end)
            assert [r.period for r in renewals[1:]] == [m.isoformat() for m in expected], index
            checked["late_payers"] += 1
            checked["renewals"] += len(renewals) - 1
    finally:
        db.dispose()
    return checked


def run_year_in_child(url: str, count: int) -> None:
    """Entry point of a child process running the single-process baseline."""
    run_year(url, count, workers=1)
