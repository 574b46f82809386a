"""Soak: sessions, CDR posts, top-ups and reports at once against 2 uvicorn workers on
PostgreSQL, with PostgreSQL restarted once in the middle; then prove nothing was lost or
charged twice.

    python benchmarks/soak.py                 # 10 minutes
    python benchmarks/soak.py --minutes 1     # a quick run
    python benchmarks/soak.py --no-restart    # without the database restart

Loopback only (the server listens on 127.0.0.1), bounded in time (--minutes) and in count
(--max-requests). Each client retries a failed mutating request (5xx, connection error, 429)
with the same Idempotency-Key, as a switch or a payment page would, and logs what the server
accepted. At the end the log is compared with the ledger:

* every accepted top-up has exactly one receipt, every posted CDR exactly one charge, every
  ended session exactly one charge of the amount the client was told;
* the wallet's balance is the opening balance + top-ups - CDR charges - session charges;
* `reconcile` is clean and no hold is left open.

It prints the error rate (5xx and connection errors over all attempts), latency percentiles
per kind of request, and the RSS of each server worker sampled every few seconds. Run it as
root (or as the postgres user) for the restart: `--restart-cmd` defaults to
``pg_ctlcluster 15 main restart -m fast`` (fast: open connections are cut, as in a crash).
The schema it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import func, select  # noqa: E402

from telbill.adapters.db.charging_tables import charges  # noqa: E402
from telbill.adapters.db.charging_tables import sessions as sessions_table  # noqa: E402
from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.adapters.db.tables import hold_resolutions, holds, receipts  # noqa: E402
from telbill.domain.money import from_micros  # noqa: E402
from telbill.domain.tariffs import Direction, Increment, RateRow, TariffSettings  # noqa: E402
from telbill.services import accounts, balances, plans, wallets  # noqa: E402
from telbill.services.auth import Role, create_api_key  # noqa: E402
from telbill.services.clock import SystemClock  # noqa: E402
from telbill.services.reconcile import reconcile  # noqa: E402
from telbill.services.tariffs import import_tariff  # noqa: E402

PG_URL = os.environ.get("TELBILL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
OPENING_BALANCE = Decimal("1000")
RETRY_FOR_S = 60.0


@dataclass
class Log:
    """What the clients were told (accepted), and every attempt's latency and outcome."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    attempts: int = 0
    errors: int = 0  # 5xx and connection errors (retried)
    refused: int = 0  # 4xx answers (not retried)
    limited: int = 0  # 429 (retried)
    gave_up: int = 0
    top_ups: list[Decimal] = field(default_factory=list)
    cdrs: set[str] = field(default_factory=set)
    sessions: dict[int, Decimal] = field(default_factory=dict)
    error_times: list[float] = field(default_factory=list)
    attempt_times: list[float] = field(default_factory=list)

    def record(self, kind: str, latency_ms: float, status: int | None) -> None:
        with self.lock:
            self.attempts += 1
            self.attempt_times.append(time.monotonic())
            self.latencies_ms[kind].append(latency_ms)
            if status is None or status >= 500:
                self.errors += 1
                self.error_times.append(time.monotonic())
            elif status == 429:
                self.limited += 1
            elif status >= 400:
                self.refused += 1


class Budget:
    """Stops every client at the deadline or after `max_requests` requests."""

    def __init__(self, seconds: float, max_requests: int) -> None:
        self.deadline = time.monotonic() + seconds
        self.left = max_requests
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() >= self.deadline:
                return False
            self.left -= 1
            return True


def call(
    client: httpx.Client, log: Log, kind: str, method: str, path: str, **kw: Any
) -> httpx.Response | None:
    """One request; a mutating one is retried with its key until answered (or 60 s)."""
    give_up = time.monotonic() + RETRY_FOR_S
    attempt = 0
    while True:
        started = time.perf_counter()
        try:
            response: httpx.Response | None = client.request(method, path, **kw)
        except httpx.TransportError:
            response = None
        status = response.status_code if response is not None else None
        log.record(kind, (time.perf_counter() - started) * 1000, status)
        if status is not None and status < 500 and status != 429:
            return response
        if method == "GET" or time.monotonic() > give_up:
            if method != "GET":
                with log.lock:
                    log.gave_up += 1
            return None
        time.sleep(min(1.0, 0.1 * 2 ** min(attempt, 4)))
        attempt += 1


def session_client(base: str, key: str, user_id: int, log: Log, budget: Budget) -> None:
    rng = random.Random()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        while budget.take():
            call_id = uuid.uuid4().hex
            answer = call(
                c, log, "session.authorize", "POST", "/v1/sessions/authorize",
                json={"account_id": user_id, "to": rng.choice(["+447700900123", "+15551230000"]),
                      "call_id": call_id},
                headers={"Idempotency-Key": f"a-{call_id}"},
            )  # fmt: skip
            if answer is None or answer.status_code != 200 or not answer.json()["allowed"]:
                continue
            session_id = answer.json()["session_id"]
            duration = rng.randint(0, min(300, answer.json()["max_seconds"]))
            ended = call(
                c, log, "session.end", "POST", f"/v1/sessions/{session_id}/end",
                json={"duration_s": duration}, headers={"Idempotency-Key": f"e-{call_id}"},
            )  # fmt: skip
            if ended is not None and ended.status_code == 200:
                with log.lock:
                    log.sessions[session_id] = Decimal(ended.json()["charged"] or "0")


def cdr_client(base: str, key: str, log: Log, budget: Budget, batch: int) -> None:
    rng = random.Random()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        while budget.take():
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
            records = []
            for _ in range(batch):
                seconds = rng.randint(1, 600)
                records.append({
                    "id": uuid.uuid4().hex, "user": "alice",
                    "to": rng.choice(["+447700900123", "+15551230000"]),
                    "start": start.isoformat(), "answer": start.isoformat(),
                    "end": (start + timedelta(seconds=seconds)).isoformat(),
                })  # fmt: skip
            posted = call(
                c, log, "cdrs.post", "POST", "/v1/cdrs", json={"source": "soak", "cdrs": records},
                headers={"Idempotency-Key": f"b-{uuid.uuid4().hex}"},
            )  # fmt: skip
            # A retried batch answers the first run's summary, or (when the first run died
            # before answering) a second run's, in which the CDRs charged by the first count as
            # duplicates: the ledger, not the summary, says what each CDR cost.
            if posted is not None and posted.status_code == 200:
                with log.lock:
                    log.cdrs.update(record["id"] for record in records)


def top_up_client(base: str, key: str, org_id: int, log: Log, budget: Budget) -> None:
    rng = random.Random()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        while budget.take():
            amount = Decimal(rng.randint(100, 5000)) / 100
            done = call(
                c, log, "topup", "POST", f"/v1/accounts/{org_id}/topups",
                json={"amount": f"{amount:f}", "payment_ref": "soak"},
                headers={"Idempotency-Key": f"t-{uuid.uuid4().hex}"},
            )  # fmt: skip
            if done is not None and done.status_code == 201:
                with log.lock:
                    log.top_ups.append(amount)
            time.sleep(0.05)


def report_client(base: str, key: str, org_id: int, log: Log, budget: Budget) -> None:
    paths = [
        ("report.calls", f"/v1/accounts/{org_id}/reports/calls?limit=50"),
        ("report.counters", f"/v1/accounts/{org_id}/counters"),
        ("balances", f"/v1/accounts/{org_id}/balances"),
    ]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        while budget.take():
            kind, path = random.choice(paths)
            call(c, log, kind, "GET", path)


# ---------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TELBILL_DATABASE_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "telbill.api.app:app_from_env", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning"],
        env=env, start_new_session=True, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit("the server did not start")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_pids(master: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{master}\n" in status:
                found.append(int(entry.name))
    return sorted(found)


def sample_rss(master: int, stop: threading.Event, samples: dict[int, list[int]]) -> None:
    while not stop.wait(5):
        for pid in worker_pids(master):
            samples.setdefault(pid, []).append(rss_kib(pid))


# ---------------------------------------------------------------------------- setup and checks


def new_schema() -> tuple[str, str]:
    import psycopg

    schema = f"soak_{uuid.uuid4().hex[:12]}"
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    return schema, f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"


def drop_schema(schema: str) -> None:
    import psycopg

    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def seed(url: str) -> dict[str, Any]:
    migrate(url)
    db = Database(url)
    clock = SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="Soak Telecom", currency="USD", idempotency_key="p", clock=clock
    )
    org = accounts.create_account(
        db, kind="organisation", name="soak-org", parent_id=provider.id, idempotency_key="o",
        clock=clock,
    )  # fmt: skip
    user = accounts.create_account(
        db, kind="user", name="alice", parent_id=org.id, idempotency_key="u", clock=clock
    )
    rows = [
        RateRow("44", "United Kingdom", Decimal("0.06"), increment=Increment(60, 60)),
        RateRow("1", "United States", Decimal("0.012"), increment=Increment(1, 1)),
        RateRow("", "Inbound", Decimal("0.001"), direction=Direction.INBOUND,
                increment=Increment(1, 1)),
    ]  # fmt: skip
    import_tariff(db, "soak", rows, TariffSettings(currency="USD"),
                  now=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    plans.create_plan(db, "soak", tariff="soak", clock=clock)
    plans.assign_plan(db, org.id, "soak", clock=clock)
    wallets.top_up(db, org.id, OPENING_BALANCE, idempotency_key="opening", clock=clock)
    admin = create_api_key(db, account_id=provider.id, role=Role.PROVIDER_ADMIN, name="a",
                           clock=clock)  # fmt: skip
    switch = create_api_key(db, account_id=org.id, role=Role.SWITCH, name="s", clock=clock)
    db.dispose()
    return {"org": org.id, "user": user.id, "admin": admin.secret, "switch": switch.secret}


def verify(url: str, world: dict[str, Any], log: Log) -> list[str]:
    """Compare what the clients were told with the ledger; the list of problems found."""
    db = Database(url)
    problems: list[str] = []
    org = world["org"]
    with db.transaction() as conn:
        receipt_rows = (
            conn.execute(select(receipts.c.gross_micros).where(receipts.c.account_id == org))
            .scalars()
            .all()
        )
        cdr_rows = conn.execute(
            select(charges.c.cdr_id, func.count(), func.sum(charges.c.amount_micros))
            .where(charges.c.source != "session")
            .group_by(charges.c.cdr_id)
        ).all()
        cdr_counts = {row[0]: row[1] for row in cdr_rows}
        cdr_charged = sum((from_micros(int(row[2])) for row in cdr_rows), Decimal(0))
        session_rows = {
            row.id: row
            for row in conn.execute(
                select(
                    sessions_table.c.id, sessions_table.c.state, sessions_table.c.charged_micros
                )  # fmt: skip
            )
        }
        session_charges = dict(
            conn.execute(
                select(charges.c.cdr_id, func.count())
                .where(charges.c.source == "session")
                .group_by(charges.c.cdr_id)
            ).all()
        )
        open_holds = conn.execute(
            select(func.count()).select_from(holds).where(
                ~select(hold_resolutions.c.id)
                .where(hold_resolutions.c.hold_id == holds.c.id).exists()
            )
        ).scalar_one()  # fmt: skip
    # Top-ups: one receipt each, the opening balance's included.
    client_top_ups = sorted([OPENING_BALANCE, *log.top_ups])
    ledger_top_ups = sorted(from_micros(m) for m in receipt_rows)
    if client_top_ups != ledger_top_ups:
        problems.append(
            f"top-ups: client {len(client_top_ups)} ({sum(client_top_ups)}), "
            f"receipts {len(ledger_top_ups)} ({sum(ledger_top_ups)})"
        )
    doubled = [cdr for cdr, n in cdr_counts.items() if n != 1]
    lost = [cdr for cdr in log.cdrs if cdr not in cdr_counts]
    unknown = [cdr for cdr in cdr_counts if cdr not in log.cdrs]
    if doubled or lost or unknown:
        problems.append(f"CDRs: {len(doubled)} doubled, {len(lost)} lost, {len(unknown)} unknown")
    for session_id, charged in log.sessions.items():
        row = session_rows.get(session_id)
        if row is None or row.state != "ended" or from_micros(row.charged_micros) != charged:
            problems.append(f"session {session_id}: client charged {charged}, ledger {row}")
    if len(session_charges) != len(log.sessions) or any(n != 1 for n in session_charges.values()):
        problems.append(
            f"session charges: {len(session_charges)} charged calls for {len(log.sessions)} "
            f"ended sessions, {sum(n != 1 for n in session_charges.values())} doubled"
        )
    if open_holds:
        problems.append(f"{open_holds} holds left open")
    expected = (
        OPENING_BALANCE + sum(log.top_ups, Decimal(0)) - cdr_charged
        - sum(log.sessions.values(), Decimal(0))
    )  # fmt: skip
    paid = balances.get_balances(db, org, clock=SystemClock()).units[0].posted
    if paid != expected:
        problems.append(f"balance {paid}, expected from the client log {expected}")
    report = reconcile(db)
    if not report.ok:
        problems.append(f"reconcile: {report.problems[:3]}")
    db.dispose()
    return problems


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else []
    q = q or ordered * 99

    def pick(p: int) -> float:
        return q[p - 1]

    return (
        f"n={len(ordered):6d}  p50 {pick(50):7.1f}  p95 {pick(95):7.1f}  "
        f"p99 {pick(99):7.1f}  max {ordered[-1]:7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--session-clients", type=int, default=3)
    parser.add_argument("--cdr-clients", type=int, default=2)
    parser.add_argument("--cdr-batch", type=int, default=20)
    parser.add_argument("--max-requests", type=int, default=500_000, help="bound in count")
    parser.add_argument("--restart-cmd", default="pg_ctlcluster 15 main restart -m fast")
    parser.add_argument("--no-restart", action="store_true")
    args = parser.parse_args()
    if not 0 < args.minutes <= 60:
        parser.error("--minutes must be in (0, 60]")

    schema, url = new_schema()
    try:
        world = seed(url)
        server_log = Path(f"/tmp/telbill-soak-{schema}.log")
        server, base = start_server(url, args.workers, server_log)
        log = Log()
        budget = Budget(args.minutes * 60, args.max_requests)
        stop_rss = threading.Event()
        rss: dict[int, list[int]] = {}
        threads = [
            threading.Thread(target=sample_rss, args=(server.pid, stop_rss, rss), daemon=True)
        ]
        threads += [
            threading.Thread(target=session_client,
                             args=(base, world["switch"], world["user"], log, budget))
            for _ in range(args.session_clients)
        ]  # fmt: skip
        threads += [
            threading.Thread(target=cdr_client,
                             args=(base, world["switch"], log, budget, args.cdr_batch))
            for _ in range(args.cdr_clients)
        ]  # fmt: skip
        threads += [
            threading.Thread(target=top_up_client,
                             args=(base, world["admin"], world["org"], log, budget)),
            threading.Thread(target=report_client,
                             args=(base, world["admin"], world["org"], log, budget)),
        ]  # fmt: skip
        started = time.monotonic()
        for thread in threads:
            thread.start()
        restart_note = "no restart"
        window = (0.0, 0.0)
        if not args.no_restart:
            time.sleep(args.minutes * 60 / 2)
            at = time.monotonic() - started
            t0 = time.monotonic()
            done = subprocess.run(args.restart_cmd.split(), capture_output=True, text=True)
            window = (t0, time.monotonic())
            restart_note = (
                f"PostgreSQL restarted at {at:.0f} s in {time.monotonic() - t0:.1f} s "
                f"(exit {done.returncode}{': ' + done.stderr.strip() if done.returncode else ''})"
            )
            print(restart_note, flush=True)
        for thread in threads[1:]:
            thread.join()
        elapsed = time.monotonic() - started
        stop_rss.set()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        problems = verify(url, world, log)
    finally:
        drop_schema(schema)

    print(f"\nsoak: {elapsed:.0f} s, {args.workers} workers on PostgreSQL; {restart_note}")
    print(f"load average: {os.getloadavg()[0]:.2f} (2 cores, shared)")
    rate = log.errors / log.attempts if log.attempts else 0.0
    print(
        f"requests: {log.attempts} attempts ({log.attempts / elapsed:.0f}/s), "
        f"{log.errors} errors (5xx or connection) = {rate:.3%}, {log.limited} rate-limited, "
        f"{log.refused} refused (4xx), {log.gave_up} given up after {RETRY_FOR_S:.0f} s"
    )
    if log.error_times:
        # Failures while PostgreSQL is down are expected (retried); after it is back (allow 5 s
        # for the pools to reconnect) there should be none.
        late = [t for t in log.error_times if not window[0] <= t <= window[1] + 5]
        calm = [t for t in log.attempt_times if not window[0] <= t <= window[1] + 5]
        first, last = min(log.error_times) - started, max(log.error_times) - started
        print(f"outside the restart window (+5 s): {len(late)} errors in {len(calm)} attempts "
              f"({len(late) / max(1, len(calm)):.3%}); first error at {first:.1f} s, last at "
              f"{last:.1f} s; server log: {server_log}")  # fmt: skip
    print(
        f"accepted: {len(log.top_ups)} top-ups, {len(log.cdrs)} CDRs, "
        f"{len(log.sessions)} ended sessions"
    )
    print("latency per kind (all attempts):")
    for kind in sorted(log.latencies_ms):
        print(f"  {kind:16s} {percentiles(log.latencies_ms[kind])}")
    print("server worker RSS (MiB), first -> max -> last sample:")
    for pid, values in sorted(rss.items()):
        if values:
            print(f"  pid {pid}: {values[0] / 1024:.0f} -> {max(values) / 1024:.0f} -> "
                  f"{values[-1] / 1024:.0f}  ({len(values)} samples)")  # fmt: skip
    if problems:
        print("LEDGER CHECK FAILED:")
        for problem in problems:
            print("  " + problem)
        return 1
    print("ledger check: every accepted top-up, CDR and session end charged exactly once; "
          "balance matches the client log; reconcile clean; no hold left open")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
