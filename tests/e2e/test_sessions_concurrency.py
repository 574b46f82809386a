"""50 simultaneous calls on one wallet through the HTTP API, served by 2 uvicorn worker
processes on PostgreSQL: the wallet is never over-spent and no hold is left behind."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.db.tables import hold_resolutions, holds
from telbill.domain.tariffs import TariffSettings
from telbill.services import accounts, plans, wallets
from telbill.services.auth import Role, create_api_key
from telbill.services.clock import SystemClock
from telbill.services.reconcile import reconcile
from telbill.services.tariffs import import_tariff

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from charging_support import retail_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CALLS = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.postgres
def test_fifty_simultaneous_calls_on_one_wallet_never_overspend_it(pg_url: str) -> None:
    migrate(pg_url)
    db = Database(pg_url)
    clock = SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="Acme", currency="USD", idempotency_key="p", clock=clock
    )
    org = accounts.create_account(
        db, kind="organisation", name="alpha", parent_id=provider.id, idempotency_key="o",
        clock=clock,
    )  # fmt: skip
    import_tariff(db, "retail", retail_rows(), TariffSettings(currency="USD"),
                  now=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    plans.create_plan(db, "retail", tariff="retail", clock=clock)
    plans.assign_plan(db, org.id, "retail", clock=clock)
    wallets.top_up(db, org.id, "10", idempotency_key="t", clock=clock)
    switch = create_api_key(db, account_id=org.id, role=Role.SWITCH, name="sw", clock=clock)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "telbill.api.app:app_from_env", "--factory",
         "--workers", "2", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "TELBILL_DATABASE_URL": pg_url},
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {switch.secret}"}

        def call(n: int) -> tuple[bool, Decimal]:
            rng = random.Random(n)
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                answer = client.post(
                    "/v1/sessions/authorize", json={"account_id": org.id, "to": "+447700900123"},
                    headers={"Idempotency-Key": f"a{n}"},
                ).json()  # fmt: skip
                if not answer["allowed"]:
                    return False, Decimal(0)
                # Some switches report a little more than they were allowed.
                duration = rng.randint(1, answer["max_seconds"] + 30)
                ended = client.post(
                    f"/v1/sessions/{answer['session_id']}/end", json={"duration_s": duration},
                    headers={"Idempotency-Key": f"e{n}"},
                ).json()  # fmt: skip
                return True, Decimal(ended["charged"])

        with ThreadPoolExecutor(CALLS) as pool:
            results = list(pool.map(call, range(CALLS)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    allowed = [charged for ok, charged in results if ok]
    assert allowed, "some calls must have been allowed"
    assert sum(allowed) <= Decimal("10")
    balances = wallets.get_balances(db, org.id, clock=clock)
    paid = next(b for b in balances.unit("USD").buckets if b.kind == "paid")
    assert paid.balance == Decimal("10") - sum(allowed) and paid.balance >= 0
    assert paid.available == paid.balance  # nothing held any more
    with db.transaction() as conn:
        open_holds = conn.execute(
            select(func.count()).select_from(holds).where(
                ~select(hold_resolutions.c.id)
                .where(hold_resolutions.c.hold_id == holds.c.id)
                .exists()
            )
        ).scalar_one()
    assert open_holds == 0
    assert reconcile(db).ok
    db.dispose()
