"""Ledger throughput: postings/s for single and batched debits vs raw INSERTs.

Measures, on SQLite and on PostgreSQL in the same run:
* raw: plain multi-row INSERTs into a table shaped like ``postings`` (same columns and
  indexes), committed every BATCH rows: the ceiling for this database and driver;
* single: one `wallets.debit` per database transaction (2 postings each);
* batched: `wallets.debit_many` of BATCH debits per transaction (what a CDR batch does).
Each debit is a full ledger operation: idempotency check and record, bucket lock, drain plan,
a transaction row, its postings, balance update. The figure is batched / raw.

Run: python benchmarks/ledger.py [--quick] [--pg-url URL] [--no-pg]
Before/after a change: TELBILL_BENCH_SRC=<exported old src> python benchmarks/ledger.py ...
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

# TELBILL_BENCH_SRC: measure another checkout's code (e.g. a `git archive` of main).
SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, os.environ.get("TELBILL_BENCH_SRC") or str(SRC))

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table  # noqa: E402

from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.services import accounts, wallets  # noqa: E402
from telbill.services.clock import SystemClock  # noqa: E402

PG_DEFAULT = os.environ.get(
    "TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def raw_table(metadata: MetaData) -> Table:
    """A plain table of the same shape as ``postings`` (columns and indexes)."""
    table = Table(
        "bench_raw_postings",
        metadata,
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
        Column("transaction_id", BigInteger, nullable=False),
        Column("ledger_account_id", BigInteger, nullable=False),
        Column("amount", BigInteger, nullable=False),
        Column("unit", String(40), nullable=False),
    )
    Index("ix_bench_raw_tx", table.c.transaction_id)
    Index("ix_bench_raw_la_id", table.c.ledger_account_id, table.c.id)
    return table


def bench_raw(db: Database, rows: int, batch: int) -> float:
    table = raw_table(MetaData())
    table.create(db.engine)
    started = time.perf_counter()
    for start in range(0, rows, batch):
        with db.transaction() as conn:
            conn.execute(
                table.insert(),
                [
                    {
                        "transaction_id": i // 2,
                        "ledger_account_id": i % 2,
                        "amount": 1,
                        "unit": "USD",
                    }
                    for i in range(start, min(start + batch, rows))
                ],
            )
    return rows / (time.perf_counter() - started)


def funded_account(db: Database, run: str) -> int:
    clock = SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="bench", currency="USD", idempotency_key=f"{run}-p", clock=clock
    )
    org = accounts.create_account(
        db,
        kind="organisation",
        name="bench org",
        parent_id=provider.id,
        idempotency_key=f"{run}-o",
        clock=clock,
    )
    wallets.top_up(db, org.id, "1000000", idempotency_key=f"{run}-t", clock=clock)
    return org.id


def bench_single(db: Database, account_id: int, debits: int, run: str) -> float:
    clock = SystemClock()
    started = time.perf_counter()
    for i in range(debits):
        wallets.debit(
            db,
            account_id,
            Decimal("0.0125"),
            service="voice",
            direction="outbound",
            idempotency_key=f"{run}-s{i}",
            clock=clock,
        )
    return 2 * debits / (time.perf_counter() - started)


def bench_batched(db: Database, account_id: int, debits: int, batch: int, run: str) -> float:
    clock = SystemClock()
    started = time.perf_counter()
    for start in range(0, debits, batch):
        requests = [
            wallets.DebitRequest(
                account_id=account_id,
                amount=Decimal("0.0125"),
                idempotency_key=f"{run}-b{i}",
                service="voice",
                direction="outbound",
            )
            for i in range(start, min(start + batch, debits))
        ]
        outcomes = wallets.debit_many(db, requests, clock=clock)
        failed = [o for o in outcomes if not isinstance(o, wallets.Transaction)]
        if failed:
            raise SystemExit(f"batched debit failed: {failed[0]!r}")
    return 2 * debits / (time.perf_counter() - started)


def run_on(label: str, url: str, *, single: int, batched: int, batch: int) -> None:
    migrate(url)
    db = Database(url)
    run = uuid.uuid4().hex[:8]
    account_id = funded_account(db, run)
    bench_single(db, account_id, 20, run + "w")  # warm up caches and connections
    raw = bench_raw(db, 2 * batched, batch)
    single_rate = bench_single(db, account_id, single, run)
    batched_rate = bench_batched(db, account_id, batched, batch, run)
    print(f"{label}:")
    print(f"  raw INSERT (postings-shaped, {batch}/commit)  {raw:12,.0f} rows/s")
    print(
        f"  single debits (1 per transaction)      {single_rate:12,.0f} postings/s"
        f"   {single_rate / raw:6.1%} of raw"
    )
    print(
        f"  batched debits ({batch} per transaction)  {batched_rate:12,.0f} postings/s"
        f"   {batched_rate / raw:6.1%} of raw"
    )
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (seconds)")
    parser.add_argument("--pg-url", default=PG_DEFAULT)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    single, batched, batch = (200, 5_000, 500) if args.quick else (2_000, 50_000, 1_000)
    print(
        f"ledger benchmark: {single} single debits, {batched} batched debits, "
        f"batch {batch}; 2 postings per debit"
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_on(
            "SQLite (file, WAL)",
            f"sqlite:///{tmp}/bench.db",
            single=single,
            batched=batched,
            batch=batch,
        )
    if args.no_pg:
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    dsn = args.pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in args.pg_url else "?"
        url = f"{args.pg_url}{sep}options={quote(f'-csearch_path={schema}')}"
        run_on("PostgreSQL", url, single=single, batched=batched, batch=batch)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
