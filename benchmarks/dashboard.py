"""Dashboard pages on a busy wallet (default 1,000,000 charges): the usage page (first page
and a page deep in the history, keyset-paged), the balance page, its spend chart image (a
30-day aggregate over every charge of the month), the call report page, each rendered
through the HTTP app, vs the baseline of fetching every charge row of the wallet once.

Rows are inserted straight into `charges` by benchmarks/reports.py's setup.

Run: python benchmarks/dashboard.py [--quick] [--rows N] [--pg-url URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from telbill.adapters.db.charging_tables import charges  # noqa: E402
from telbill.api.app import create_app  # noqa: E402
from telbill.services.auth import Role, create_api_key  # noqa: E402
from telbill.services.clock import FixedClock  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_reports", HERE / "reports.py")
assert _spec and _spec.loader
bench_reports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_reports)

PG_DEFAULT = os.environ.get(
    "TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)


def timed(fn: object, repeat: int = 3) -> float:
    """Best of `repeat` runs (the machine is shared; the best is the least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def run(label: str, url: str, rows: int) -> None:
    started = time.perf_counter()
    db, org_id = bench_reports.setup(url, rows)
    print(f"[{label}] inserted {rows:,} charges in {time.perf_counter() - started:.1f} s")
    key = create_api_key(db, account_id=org_id, role=Role.ORG_ADMIN, name="bench",
                         clock=FixedClock(NOW)).secret  # fmt: skip
    app = create_app(url, clock=FixedClock(NOW))
    with TestClient(app) as client:
        form = client.get("/login").text
        token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        client.post("/login", data={"api_key": key, "login_token": token})
        with db.engine.connect() as conn:
            middle = conn.execute(
                sa.select(charges.c.occurred_at, charges.c.id)
                .where(charges.c.payer_id == org_id)
                .order_by(charges.c.occurred_at, charges.c.id)
                .offset(rows // 2).limit(1)
            ).one()  # fmt: skip
        deep = f"{middle.occurred_at.astimezone(UTC).isoformat()}~{middle.id}"

        def page(path: str) -> None:
            response = client.get(path)
            assert response.status_code == 200, response.text[:500]

        base_s = timed(lambda: bench_reports.baseline(db, org_id), repeat=1)
        first_s = timed(lambda: page(f"/accounts/{org_id}/usage"))
        deep_s = timed(lambda: page(f"/accounts/{org_id}/usage?cursor={quote(deep)}"))
        filtered_s = timed(lambda: page(f"/accounts/{org_id}/usage?from=2026-03-20&to=2026-03-20"))
        balance_s = timed(lambda: page(f"/accounts/{org_id}/balance"))
        chart_s = timed(lambda: page(f"/accounts/{org_id}/spend.svg"))
        report_s = timed(lambda: page(f"/accounts/{org_id}/calls?month=2026-03"))
    app.state.db.dispose()
    db.dispose()
    print(f"[{label}] baseline: fetch every charge of the wallet once: {base_s:.2f} s")
    for name, seconds in (
        ("usage page 1", first_s),
        (f"usage page at row {rows // 2:,} (keyset)", deep_s),
        ("usage page, one day filtered", filtered_s),
        ("balance page", balance_s),
        ("spend chart image (30-day aggregate)", chart_s),
        ("call report page (month totals + 50 rows)", report_s),
    ):
        print(f"[{label}] {name}: {seconds * 1000:.0f} ms ({seconds / base_s:.3f}x baseline)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=PG_DEFAULT)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    print(f"load: {os.getloadavg()[0]:.1f} (1 min)")
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", rows)
    if not args.no_pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(args.pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        try:
            run("postgresql", f"{args.pg_url}?options={quote(f'-csearch_path={schema}')}", rows)
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()


if __name__ == "__main__":
    main()
