"""Month end at two sizes: is it linear? The month-end invoice run (`telbill invoice run
--all`: every account's March invoice) and the renewal tick (every number rental's April
anniversary) over N and 10 x N accounts, in one run. The figure that matters is the CPU per
account at 10 x N over the CPU per account at N (1.0 = linear; issue 14 asks <= 1.1).

Each account is a prepaid organisation of one provider that, in March, was topped up, bought
one number and made one call (a debit): set up through the services, as customers would.
The run measures this process's CPU (all of the work on SQLite; the client's share on
PostgreSQL, where the wall time is printed too).

Run: python benchmarks/month_end.py [--quick] [--accounts N] [--pg-url URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sqlalchemy as sa  # noqa: E402
from rich.progress import track  # noqa: E402

from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.adapters.formats.inventory_csv import InventoryRow  # noqa: E402
from telbill.services import accounts, invoice_runs, numbers, scheduler, wallets  # noqa: E402
from telbill.services.clock import FixedClock  # noqa: E402

PG_DEFAULT = os.environ.get(
    "TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARCH = datetime(2026, 3, 10, 9, tzinfo=UTC)


def setup(url: str, n: int) -> Database:
    migrate(url)
    db = Database(url)
    clock = FixedClock(MARCH)
    provider = accounts.create_account(
        db, kind="provider", name="Bench", currency="USD", vat_rate="0.2",
        idempotency_key="p", clock=clock,
    )  # fmt: skip
    inventory = [
        InventoryRow(line=i + 2, number=f"+1617{2000000 + i:07d}", country="US",
                     number_type="local", region="MA", locality="Boston", area_code="617",
                     monthly_price=Decimal("1.15"), setup_price=Decimal(0),
                     verification_required=False)
        for i in range(n)
    ]  # fmt: skip
    numbers.import_inventory(db, provider.id, inventory, clock=clock)
    for i in track(range(n), description=f"{n:,} accounts", transient=True):
        org = accounts.create_account(
            db, kind="organisation", name=f"org-{i}", parent_id=provider.id,
            idempotency_key=f"o{i}", clock=clock,
        )  # fmt: skip
        wallets.top_up(db, org.id, "20.00", payment_ref=f"card-{i}", idempotency_key=f"t{i}",
                       clock=clock)  # fmt: skip
        numbers.buy_number(db, org.id, inventory[i].number, idempotency_key=f"b{i}",
                           clock=clock)  # fmt: skip
        call = FixedClock(MARCH + timedelta(days=5))
        wallets.debit(db, org.id, "0.42", service="voice", direction="outbound",
                      idempotency_key=f"d{i}", clock=call)  # fmt: skip
    return db


def measured(fn: Callable[[], object]) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def run_size(url: str, n: int) -> dict[str, tuple[float, float]]:
    started = time.perf_counter()
    db = setup(url, n)
    print(f"  {n:,} accounts set up in {time.perf_counter() - started:.0f} s")
    after_march = datetime(2026, 4, 1, 1, tzinfo=UTC)
    cpu_i, wall_i, issued = measured(lambda: invoice_runs.issue_month_end(db, after_march))
    assert issued == n, f"issued {issued} invoices for {n} accounts"
    anniversary = datetime(2026, 4, 10, 12, tzinfo=UTC)
    cpu_r, wall_r, report = measured(
        lambda: scheduler.tick(db, anniversary, clock=FixedClock(anniversary))
    )
    db.dispose()
    print(f"  invoices: {issued:,} in {wall_i:.2f} s wall, {cpu_i:.2f} CPU-s "
          f"({cpu_i / n * 1000:.3f} ms CPU per account)")  # fmt: skip
    print(f"  renewal tick: {wall_r:.2f} s wall, {cpu_r:.2f} CPU-s "
          f"({cpu_r / n * 1000:.3f} ms CPU per account); {dict(report.outcomes)}")  # fmt: skip
    return {"invoices": (cpu_i / n, wall_i / n), "renewals": (cpu_r / n, wall_r / n)}


def run(label: str, url_for: Callable[[str], str], small: int) -> None:
    print(f"[{label}]")
    figures = {size: run_size(url_for(f"s{size}"), size) for size in (small, small * 10)}
    for job in ("invoices", "renewals"):
        (cpu_s, wall_s), (cpu_l, wall_l) = figures[small][job], figures[small * 10][job]
        print(f"[{label}] {job}: CPU per account at {small * 10:,} / at {small:,} = "
              f"{cpu_l / cpu_s:.2f} (wall {wall_l / wall_s:.2f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 accounts")
    parser.add_argument("--accounts", type=int, default=1_000, help="the small size")
    parser.add_argument("--pg-url", default=PG_DEFAULT)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    small = 100 if args.quick else args.accounts
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", lambda name: f"sqlite:///{tmp}/{name}.db", small)
    if not args.no_pg:
        engine = sa.create_engine(args.pg_url)
        schemas: list[str] = []

        def pg_url(name: str) -> str:
            schema = f"bench_{name}_{uuid.uuid4().hex[:6]}"
            with engine.begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            schemas.append(schema)
            return f"{args.pg_url}?options={quote(f'-csearch_path={schema}')}"

        try:
            run("postgresql", pg_url, small)
        finally:
            with engine.begin() as conn:
                for schema in schemas:
                    conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
