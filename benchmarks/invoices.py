"""Invoice of a busy month: issuing the March invoice of an account with N calls (SQL
aggregates over `charges` + the month's ledger flows), vs the baseline of fetching every
charge row of the month and summing it in Python (what the aggregates replace).

Charges are inserted straight into `charges` (synthetic: 50 destinations, calls and SMS);
the money of the month is one ledger debit, as a CDR chunk's shared transaction would be.

Run: python benchmarks/invoices.py [--quick] [--rows N] [--pg-url URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sqlalchemy as sa  # noqa: E402

from telbill.adapters.db.charging_tables import charges  # noqa: E402
from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.domain.money import from_micros  # noqa: E402
from telbill.ledger import DrainPolicy  # noqa: E402
from telbill.services import accounts, invoices, wallets  # noqa: E402
from telbill.services.clock import FixedClock  # noqa: E402

PG_DEFAULT = os.environ.get(
    "TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MONTH_START = datetime(2026, 3, 1, tzinfo=UTC)


def setup(url: str, rows: int) -> tuple[Database, int]:
    migrate(url)
    db = Database(url)
    clock = FixedClock(MONTH_START - timedelta(days=1))
    provider = accounts.create_account(
        db, kind="provider", name="Bench", currency="USD", vat_rate="0.2",
        idempotency_key="p", clock=clock,
    )  # fmt: skip
    org = accounts.create_account(
        db, kind="organisation", name="Org", parent_id=provider.id, idempotency_key="o",
        clock=clock,
    )  # fmt: skip
    step = timedelta(days=28) / rows
    batch: list[dict[str, object]] = []
    total = 0
    with db.transaction() as conn:
        for n in range(rows):
            at = MONTH_START + step * n
            sms = n % 10 == 0
            units = 1 + n % 3 if sms else 10 + n % 300
            amount = 50_000 * units if sms else units * (1000 + 100 * (n % 50))
            total += amount
            batch.append({
                "cdr_id": f"c{n}", "leg": "caller", "revision": 0, "account_id": org.id,
                "payer_id": org.id, "service": "sms" if sms else "voice",
                "direction": "outbound", "amount_micros": amount, "currency": "USD",
                "unit": "second", "billed_units": units, "package_units": 0,
                "tariff": "retail", "tariff_version": 1, "prefix": str(30 + n % 50),
                "explanation": {"derived": 1}, "occurred_at": at, "created_at": at,
            })  # fmt: skip
            if len(batch) == 10_000:
                conn.execute(charges.insert(), batch)
                batch = []
        if batch:
            conn.execute(charges.insert(), batch)
    wallets.debit(
        db, org.id, from_micros(total), service="voice", idempotency_key="month",
        clock=FixedClock(MONTH_START + timedelta(days=28)), policy=DrainPolicy.ALLOW_NEGATIVE,
    )  # fmt: skip
    return db, org.id


def timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def baseline(db: Database, org_id: int) -> None:
    """Every row of the month fetched and summed in Python."""
    with db.transaction() as conn:
        total = 0
        for row in conn.execute(
            sa.select(charges.c.amount_micros, charges.c.billed_units, charges.c.prefix).where(
                charges.c.payer_id == org_id, charges.c.created_at >= MONTH_START
            )
        ):
            total += row.amount_micros
    assert total > 0


def run(label: str, url: str, rows: int) -> None:
    started = time.perf_counter()
    db, org_id = setup(url, rows)
    print(f"[{label}] inserted {rows:,} charges in {time.perf_counter() - started:.1f} s")
    after = FixedClock(datetime(2026, 4, 1, 1, tzinfo=UTC))
    base_s = timed(lambda: baseline(db, org_id))
    found: list[invoices.Invoice] = []
    issue_s = timed(lambda: found.append(invoices.issue_invoice(db, org_id, "2026-03",
                                                                 clock=after)))  # fmt: skip
    again_s = timed(lambda: invoices.issue_invoice(db, org_id, "2026-03", clock=after))
    invoice = found[0]
    print(f"[{label}] baseline fetch+sum in Python: {base_s:.2f} s")
    print(f"[{label}] issue the month's invoice ({len(invoice.lines)} lines, total "
          f"{invoice.total} USD): {issue_s:.2f} s ({issue_s / base_s:.2f}x baseline)")  # fmt: skip
    print(f"[{label}] issue again (recomputed, unchanged): {again_s:.2f} s")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=PG_DEFAULT)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", rows)
    if not args.no_pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(args.pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        try:
            options = quote(f"-csearch_path={schema}")
            run("postgresql", f"{args.pg_url}?options={options}", rows)
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()


if __name__ == "__main__":
    main()
