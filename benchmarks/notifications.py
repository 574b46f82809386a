"""Notification costs: the threshold hook per balance change, and outbox delivery rate.

Measures, on SQLite and on PostgreSQL in the same run:
* hook: `thresholds.after_balance_change` inside a transaction of its own, N times on a
  wallet with N earlier debits, vs the baseline `balances_in` (the balance read a charging
  path already does) in the same kind of transaction; and vs one `wallets.debit`.
* delivery: events/s through `deliver_due` (fan-out, claim, record) with a sender that
  does nothing, vs inserting the same number of events (`events.emit`) as the baseline.

Run: python benchmarks/notifications.py [--quick] [--pg-url URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.services import accounts, notifications, thresholds, wallets  # noqa: E402
from telbill.services.balances import balances_in  # noqa: E402
from telbill.services.clock import SystemClock  # noqa: E402
from telbill.services.events import emit  # noqa: E402

PG_DEFAULT = os.environ.get(
    "TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def setup(url: str) -> tuple[Database, int]:
    migrate(url)
    db = Database(url)
    clock = SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="Bench", currency="USD", idempotency_key="p", clock=clock
    )
    org = accounts.create_account(
        db, kind="organisation", name="Org", parent_id=provider.id, idempotency_key="o",
        clock=clock,
    )  # fmt: skip
    wallets.top_up(db, org.id, "1000000", idempotency_key="t", clock=clock)
    return db, org.id


def bench_debits(db: Database, account_id: int, n: int) -> float:
    clock = SystemClock()
    started = time.perf_counter()
    for i in range(n):
        wallets.debit(db, account_id, "0.01", service="voice", idempotency_key=f"d{i}", clock=clock)
    return (time.perf_counter() - started) / n * 1000


def bench_reads(db: Database, account_id: int, n: int, hook: bool) -> float:
    """Milliseconds per call, each in its own transaction."""
    now = SystemClock().now()
    started = time.perf_counter()
    for _ in range(n):
        with db.transaction() as conn:
            if hook:
                thresholds.after_balance_change(conn, account_id, now)
            else:
                balances_in(conn, account_id, now=now)
    return (time.perf_counter() - started) / n * 1000


def bench_delivery(db: Database, account_id: int, n: int) -> tuple[float, float]:
    clock = SystemClock()
    notifications.add_endpoint(
        db, account_id, kind="webhook", target="https://example.com/h", now=clock.now()
    )
    started = time.perf_counter()
    for start in range(0, n, 100):
        with db.transaction() as conn:
            for i in range(start, min(n, start + 100)):
                emit(conn, "number.released", account_id=account_id, payload={"i": i},
                     dedupe_key=f"bench-{i}", now=clock.now())  # fmt: skip
    emit_rate = n / (time.perf_counter() - started)
    started = time.perf_counter()
    report = notifications.deliver_due(db, clock, lambda out: None, batch=100)
    assert report.delivered == n, report
    return emit_rate, n / (time.perf_counter() - started)


def run(name: str, url: str, quick: bool) -> None:
    db, account_id = setup(url)
    n = 100 if quick else 1000
    debit_ms = bench_debits(db, account_id, n)
    read_ms = bench_reads(db, account_id, n, hook=False)
    hook_ms = bench_reads(db, account_id, n, hook=True)
    print(f"{name}: threshold hook {hook_ms:.2f} ms vs balance read {read_ms:.2f} ms "
          f"({hook_ms / read_ms:.1f}x); one debit {debit_ms:.2f} ms")  # fmt: skip
    events = 500 if quick else 5000
    emit_rate, deliver_rate = bench_delivery(db, account_id, events)
    print(f"{name}: emit {emit_rate:,.0f} events/s; deliver_due {deliver_rate:,.0f} events/s "
          f"({deliver_rate / emit_rate:.2f}x emit)")  # fmt: skip
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pg-url", default=PG_DEFAULT)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args.quick)
    if not args.no_pg:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        dsn = args.pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            sep = "&" if "?" in args.pg_url else "?"
            run("postgresql", f"{args.pg_url}{sep}options={quote(f'-csearch_path={schema}')}",
                args.quick)  # fmt: skip
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
