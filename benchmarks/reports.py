"""Report costs on a busy account: the call-cost report (totals + first page) of the
organisation (its subtree of 20 users) and of one user, a page deep in the month, the
period counters (of the account, by campaign, of one campaign), the dashboard's call report
page and the full CSV stream of a month, vs the baseline of fetching every charge row of the
month and summing it in Python (what the SQL aggregates replace). On PostgreSQL, measured
right after the load, after ANALYZE and after VACUUM (the states autovacuum moves the table
through: migration 0011 has it visit `charges` after every 50,000 new rows).

Rows are inserted straight into `charges` (synthetic, rated-looking) to keep setup short.

Run: python benchmarks/reports.py [--quick] [--rows N] [--pg-url URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from telbill.adapters.db.charging_tables import campaigns, charges  # noqa: E402
from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.api.app import create_app  # noqa: E402
from telbill.services import accounts, counters, reports  # noqa: E402
from telbill.services.auth import Role, create_api_key  # noqa: E402
from telbill.services.clock import FixedClock, SystemClock  # noqa: E402

PG_DEFAULT = os.environ.get(
    "TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MONTH_START = datetime(2026, 3, 1, tzinfo=UTC)


def setup(url: str, rows: int) -> tuple[Database, int]:
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
    users = [
        accounts.create_account(
            db, kind="user", name=f"u{n}", parent_id=org.id, idempotency_key=f"u{n}",
            clock=clock,
        ).id
        for n in range(20)
    ]  # fmt: skip
    with db.transaction() as conn:
        # Three campaigns of the organisation; every fourth call named none.
        dialers = [
            conn.execute(
                campaigns.insert()
                .values(account_id=org.id, name=f"dialer{n}", status="running",
                        created_at=MONTH_START, updated_at=MONTH_START)
                .returning(campaigns.c.id)
            ).scalar_one()
            for n in range(3)
        ]  # fmt: skip
    step = timedelta(days=28) / rows
    batch: list[dict[str, object]] = []
    with db.transaction() as conn:
        for n in range(rows):
            at = MONTH_START + step * n
            seconds = 10 + n % 300
            batch.append({
                "cdr_id": f"c{n}", "leg": "caller", "revision": 0, "account_id": users[n % 20],
                "payer_id": org.id, "service": "voice", "direction": "outbound",
                "amount_micros": seconds * 2000, "currency": "USD", "unit": "second",
                "billed_units": seconds, "package_units": 0, "tariff": "retail",
                "tariff_version": 1, "prefix": "1", "explanation": {"derived": 1},
                "usage": {"id": f"c{n}", "account": "Org", "service": "voice",
                          "direction": "outbound", "to": "+15551234567",
                          "start": at.isoformat(), "answer": at.isoformat(),
                          "end": (at + timedelta(seconds=seconds)).isoformat()},
                "occurred_at": at, "created_at": at,
                "campaign_id": dialers[n % 4] if n % 4 < 3 else None,
            })  # fmt: skip
            if len(batch) == 10_000:
                conn.execute(charges.insert(), batch)
                batch = []
        if batch:
            conn.execute(charges.insert(), batch)
    return db, org.id


def timed(fn: object, repeat: int = 1) -> float:
    """Best of `repeat` runs (the machine is shared; the best is the least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def baseline(db: Database, org_id: int) -> None:
    """Every row of the month fetched and summed in Python."""
    with db.transaction() as conn:
        total = 0
        for row in conn.execute(
            sa.select(charges.c.amount_micros, charges.c.billed_units).where(
                charges.c.payer_id == org_id, charges.c.occurred_at >= MONTH_START
            )
        ):
            total += row.amount_micros
    assert total > 0


@contextmanager
def dashboard(url: str, db: Database, org_id: int) -> Iterator[Callable[[], None]]:
    """A logged-in browser on the dashboard: yields a call that loads the call report page of
    the organisation's month (totals + 50 rows, rendered through the HTTP app)."""
    now = MONTH_START + timedelta(days=10)
    key = create_api_key(db, account_id=org_id, role=Role.ORG_ADMIN, name=f"bench-{uuid.uuid4()}",
                         clock=FixedClock(now)).secret  # fmt: skip
    app = create_app(url, clock=FixedClock(now))
    with TestClient(app) as client:
        form = client.get("/login").text
        token = re.search(r'name="login_token" value="([^"]+)"', form)
        assert token is not None
        client.post("/login", data={"api_key": key, "login_token": token.group(1)})

        def page() -> None:
            response = client.get(f"/accounts/{org_id}/calls?month=2026-03")
            assert response.status_code == 200, response.text[:300]

        yield page
    app.state.db.dispose()


def measure(label: str, db: Database, org_id: int, rows: int, *, csv: bool = True) -> None:
    now = MONTH_START + timedelta(days=10)
    with db.transaction() as conn:
        middle, middle_at = conn.execute(
            sa.select(charges.c.id, charges.c.occurred_at)
            .order_by(charges.c.occurred_at, charges.c.id)
            .offset(rows // 2)
            .limit(1)
        ).one()
        if middle_at.tzinfo is None:
            middle_at = middle_at.replace(tzinfo=UTC)
        cursor = f"{(middle_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)}"
        cursor += f".{middle}"  # the report's cursor: call time (UTC microseconds) and id
        user_id, campaign_id = conn.execute(
            sa.select(charges.c.account_id, charges.c.campaign_id).where(charges.c.id == middle)
        ).one()
    base_s = timed(lambda: baseline(db, org_id))
    print(f"[{label}] baseline fetch+sum in Python: {base_s:.2f} s")
    for name, fn in (
        ("call report of the organisation (totals + first page)",
         lambda: reports.call_report(db, org_id, "2026-03", limit=100)),
        ("call report of one user (totals + first page)",
         lambda: reports.call_report(db, user_id, "2026-03", limit=100)),
        (f"call report page after charge {middle:,} (cursor)",
         lambda: reports.call_report(db, org_id, "2026-03", limit=100, cursor=cursor)),
        ("period counters", lambda: counters.period_counters(db, org_id, now=now)),
        ("counters by campaign", lambda: counters.campaign_breakdown(db, org_id, now=now)),
        ("one campaign's counters", lambda: counters.campaign_counters(db, campaign_id, now=now)),
    ):  # fmt: skip
        seconds = timed(fn, repeat=3)
        print(f"[{label}] {name}: {seconds:.2f} s ({seconds / base_s:.2f}x baseline)")
    with dashboard(str(db.engine.url.render_as_string(hide_password=False)), db, org_id) as page:
        seconds = timed(page, repeat=3)
    print(f"[{label}] dashboard call report page (month totals + 50 rows): {seconds:.2f} s "
          f"({seconds / base_s:.2f}x baseline)")  # fmt: skip
    if csv:
        export = reports.call_csv(db, org_id, "2026-03")
        csv_s = timed(lambda: sum(len(chunk) for chunk in export))
        print(f"[{label}] CSV stream of every row: {csv_s:.2f} s, {export.rows:,} rows "
              f"({export.rows / csv_s:,.0f} rows/s, {csv_s / base_s:.2f}x baseline)")  # fmt: skip


def run(label: str, url: str, rows: int) -> None:
    started = time.perf_counter()
    db, org_id = setup(url, rows)
    print(f"[{label}] inserted {rows:,} charges in {time.perf_counter() - started:.1f} s")
    if db.is_sqlite:
        measure(label, db, org_id, rows)
    else:
        # Right after a bulk load the planner has no statistics and no page is marked
        # all-visible (every index-only scan reads the table too). Autovacuum analyzes, then
        # vacuums, within a minute or two: migration 0011 has it visit `charges` after every
        # 50,000 new rows. Measure the three states.
        measure(f"{label}, fresh: no statistics", db, org_id, rows, csv=False)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE charges")
        measure(f"{label}, analyzed", db, org_id, rows, csv=False)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE charges")
        measure(f"{label}, vacuumed", db, org_id, rows)
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
