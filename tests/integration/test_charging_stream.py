"""CDRs from a NATS JetStream shared by 3 worker processes, one killed mid-stream: every CDR
is charged exactly once (at-least-once delivery, idempotent posting)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from charging_support import START, build_world, paid
from sqlalchemy import func, select

from telbill.adapters.db.charging_tables import charges
from telbill.services.reconcile import reconcile

NATS_URL = os.environ.get("TELBILL_TEST_NATS_URL", "nats://127.0.0.1:4222")
ROOT = Path(__file__).resolve().parents[2]
CDRS = 1000


def _nats_reachable() -> bool:
    host, port = NATS_URL.removeprefix("nats://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _charged_count(url: str) -> int:
    from telbill.adapters.db.engine import Database

    db = Database(url)
    try:
        with db.transaction() as conn:
            return int(conn.execute(select(func.count()).select_from(charges)).scalar_one())
    finally:
        db.dispose()


@pytest.mark.slow
def test_three_stream_workers_one_killed_charge_every_cdr_exactly_once(db_url: str) -> None:
    if not _nats_reachable():
        pytest.skip(f"NATS not reachable at {NATS_URL}")
    from telbill.adapters.streams.nats_consumer import publish_cdrs

    world = build_world(db_url, balance="100000")
    world.db.dispose()
    subject = f"test.cdrs.{uuid.uuid4().hex[:10]}"
    seconds = [(n % 300) + 1 for n in range(CDRS)]
    records = [
        {
            "id": f"s{n}", "account": "alpha", "user": "alice", "to": "+15551234567",
            "start": START.isoformat(), "duration": str(s),
            "answer": (START + timedelta(seconds=1)).isoformat(),
        }  # fmt: skip
        for n, s in enumerate(seconds)
    ]
    # One duplicate delivery from the producer and one bad message for the quarantine.
    records.append(dict(records[0]))
    records.append({"id": "bad", "to": "", "start": "yesterday"})
    assert publish_cdrs(NATS_URL, records, subject=subject) == CDRS + 2

    command = [
        sys.executable, "-m", "telbill", "cdr", "post", "--stream", NATS_URL,
        "--subject", subject, "--durable", "workers", "--idle-exit", "5", "--ack-wait", "3",
        "--chunk-size", "50", "--database", db_url, "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    deadline = time.monotonic() + 60
    while _charged_count(db_url) < CDRS // 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(workers[0].pid, signal.SIGKILL)
    for worker in workers[1:]:
        _, stderr = worker.communicate(timeout=180)
        assert worker.returncode == 0, stderr
    workers[0].wait()

    from telbill.adapters.db.engine import Database

    db = Database(db_url)
    with db.transaction() as conn:
        count = conn.execute(select(func.count()).select_from(charges)).scalar_one()
        total = conn.execute(select(func.sum(charges.c.amount_micros))).scalar_one()
    assert count == CDRS
    expected = Decimal(sum(seconds)) * Decimal("0.12") / 60
    assert Decimal(total) / 1_000_000 == expected
    world.db = db
    assert paid(world) == Decimal("100000") - expected
    assert reconcile(db).ok
    db.dispose()
