"""Charging benchmark: CDRs rated and posted per second (durable, end to end) on SQLite and
PostgreSQL, and authorize+end session pairs per second over HTTP on loopback.

    python benchmarks/charging.py            # 20,000 CDRs, 1,000 session pairs
    python benchmarks/charging.py --quick    # 2,000 CDRs, 200 session pairs
    python benchmarks/charging.py --full     # 1,000,000 CDRs, 5,000 session pairs
    python benchmarks/charging.py --cdrs-only --baseline 6a73e9c --baseline-cdrs 20000
    python benchmarks/charging.py --cdrs-only --quick --profile
    python benchmarks/charging.py --cdrs-only --cost-tariff --repeat 3
    python benchmarks/charging.py --cdrs-only --wallets 1000 --baseline 3f859b7

Baselines measured in the same run show where the time goes: reading the file alone,
reading + rating (no database; on a sample of at most 100,000 CDRs), and `/healthz` over
HTTP at the same concurrency. `--baseline REF` also posts CDRs with the code of git commit
REF (exported with `git archive` to a temporary folder, run in a subprocess; e.g. the commit
before a change), in the same run on the same machine load. `--profile` prints where the
SQLite posting spends its time (cProfile, top functions by own time). `--cost-tariff` posts
the same CDRs again with the plan given a carrier cost tariff (each charge then records its
cost, for margin), alternating with runs without one `--repeat` times, and prints the
median ratio of the two. `--wallets N` spreads the CDRs over N prepaid wallets (a chunk's
per-payer work: bucket locks, zero-balance and threshold hooks, one journal entry each).
PostgreSQL: TELBILL_BENCH_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test),
each run in a fresh schema dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
# TELBILL_BENCH_SRC: run against another checkout's code (set by --baseline).
sys.path.insert(0, os.environ.get("TELBILL_BENCH_SRC") or str(ROOT / "src"))

from sqlalchemy import func, select  # noqa: E402

from telbill.adapters.db.charging_tables import charges  # noqa: E402
from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.adapters.formats.cdrs import read_cdr_file  # noqa: E402
from telbill.domain.batch import CdrColumns, compile_batch  # noqa: E402
from telbill.domain.rating import rate_event  # noqa: E402
from telbill.domain.tariffs import Direction, Increment, RateRow, TariffSettings  # noqa: E402
from telbill.domain.usage import UsageEvent  # noqa: E402
from telbill.services import accounts, charging, plans, wallets  # noqa: E402
from telbill.services.auth import Role, create_api_key  # noqa: E402
from telbill.services.clock import SystemClock  # noqa: E402
from telbill.services.tariffs import import_tariff  # noqa: E402

PG_BASE = os.environ.get("TELBILL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DESTINATIONS = ["+447700900123", "+15551234567", "+4930123456", "+33612345678", "+61212345678"]


def rows() -> list[RateRow]:
    return [
        RateRow("44", "United Kingdom", Decimal("0.60"), increment=Increment(60, 60)),
        RateRow("1", "United States", Decimal("0.012"), increment=Increment(6, 6)),
        RateRow("49", "Germany", Decimal("0.02"), increment=Increment(1, 1)),
        RateRow("33", "France", Decimal("0.03"), increment=Increment(30, 6)),
        RateRow("61", "Australia", Decimal("0.05"), increment=Increment(60, 1)),
        RateRow("", "Inbound", Decimal("0.001"), direction=Direction.INBOUND),
    ]


def carrier_rows() -> list[RateRow]:
    """The carrier's cost deck: cheaper, some destinations in other increments."""
    return [
        RateRow("44", "United Kingdom", Decimal("0.40"), increment=Increment(60, 60)),
        RateRow("1", "United States", Decimal("0.004"), increment=Increment(1, 1)),
        RateRow("49", "Germany", Decimal("0.011"), increment=Increment(60, 60)),
        RateRow("33", "France", Decimal("0.018"), increment=Increment(30, 6)),
        RateRow("61", "Australia", Decimal("0.031"), increment=Increment(1, 1)),
        RateRow("", "Inbound", Decimal("0.0005"), direction=Direction.INBOUND),
    ]


def setup(
    url: str, *, balance: str, cost_tariff: bool = False, wallet_count: int = 1
) -> tuple[Database, int, int]:
    """A migrated database with one prepaid organisation (wallet) and one user; with
    `cost_tariff`, the plan's charges record the carrier cost of the "carrier" deck; with
    `wallet_count` > 1, as many organisations more ("w1"...), each its own prepaid wallet."""
    migrate(url)
    db = Database(url)
    clock = SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="Acme", currency="USD", idempotency_key="p", clock=clock
    )
    org = accounts.create_account(
        db, kind="organisation", name="alpha", parent_id=provider.id, idempotency_key="o",
        clock=clock,
    )  # fmt: skip
    user = accounts.create_account(
        db, kind="user", name="alice", parent_id=org.id, idempotency_key="u", clock=clock
    )
    import_tariff(db, "retail", rows(), TariffSettings(currency="USD"),
                  now=START - timedelta(days=1))  # fmt: skip
    plans.create_plan(db, "retail", tariff="retail", clock=clock)
    if cost_tariff:
        import_tariff(db, "carrier", carrier_rows(), TariffSettings(currency="USD"),
                      now=START - timedelta(days=1))  # fmt: skip
        plans.set_cost_tariff(db, "retail", "carrier")
    plans.assign_plan(db, org.id, "retail", clock=clock)
    wallets.top_up(db, org.id, balance, idempotency_key="t", clock=clock)
    for n in range(1, wallet_count):
        other = accounts.create_account(
            db, kind="organisation", name=f"w{n}", parent_id=provider.id,
            idempotency_key=f"o{n}", clock=clock,
        )  # fmt: skip
        plans.assign_plan(db, other.id, "retail", clock=clock)
        wallets.top_up(db, other.id, balance, idempotency_key=f"t{n}", clock=clock)
    return db, org.id, user.id


def write_cdrs(path: Path, count: int, wallet_count: int = 1) -> None:
    """CDRs of user "alice" of "alpha", or spread round-robin over "alpha" and the
    organisations "w1"... of `setup` (`wallet_count`)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id,account,user,direction,to,start,answer,end\n")
        for n in range(count):
            start = START + timedelta(seconds=n % 86_400)
            answer = start + timedelta(seconds=2)
            end = answer + timedelta(seconds=(n * 7919) % 600 + 1)
            wallet = n % wallet_count
            who = "alpha,alice" if wallet == 0 else f"w{wallet},"
            handle.write(
                f"b{n},{who},outbound,{DESTINATIONS[n % 5]},{start.isoformat()},"
                f"{answer.isoformat()},{end.isoformat()}\n"
            )


def pg_schema() -> tuple[str, str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:  # fmt: skip
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_BASE else "?"
    return schema, f"{PG_BASE}{sep}options={quote(f'-csearch_path={schema}')}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_BASE.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:  # fmt: skip
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# ---------------------------------------------------------------------------- CDRs


BASELINE_SAMPLE = 100_000


def baselines(path: Path, count: int, db: Database) -> tuple[float, float, float]:
    """Per second: reading the file; reading + `rate_event` per CDR; reading + batch rating
    (on the first `BASELINE_SAMPLE` CDRs at most)."""
    count = min(count, BASELINE_SAMPLE)
    started = time.perf_counter()
    records = itertools.islice(read_cdr_file(path), count)
    events = [r for r in records if isinstance(r, UsageEvent)]
    read_s = time.perf_counter() - started
    cache = plans.TariffCache(db)
    index = cache.at("retail", START)
    with db.engine.connect() as conn:
        plan = plans.plan_for(conn, 1 + 2)  # the user (third account created)
    started = time.perf_counter()
    for event in events:
        rate_event(event, index, plan.plan, labels=False)
    rate_s = time.perf_counter() - started
    started = time.perf_counter()
    columns, _, _ = CdrColumns.from_events(events)
    compile_batch(index, plan=plan.plan).rate(columns)
    batch_s = time.perf_counter() - started
    return count / read_s, count / (read_s + rate_s), count / (read_s + batch_s)


def children_cpu_s() -> float:
    """CPU seconds of this process's finished (waited-for) child processes."""
    usage = os.times()
    return usage.children_user + usage.children_system


def post_file(db: Database, path: Path, chunk: int, workers: int,
              chunk_times: list[float]) -> charging.PostSummary:  # fmt: skip
    """Post the file with `workers` processes (`cdr_workers`, imported only then: a
    baseline commit may predate it); one process records each chunk's wall time."""
    if workers > 1:
        from telbill.services.cdr_workers import post_cdr_file

        return post_cdr_file(db, path, workers=workers, chunk_size=chunk)
    last = [time.perf_counter()]

    def timed(_: charging.PostSummary) -> None:
        now = time.perf_counter()
        chunk_times.append(now - last[0])
        last[0] = now

    return charging.post_cdrs(db, read_cdr_file(path), clock=SystemClock(), source=str(path),
                              chunk_size=chunk, on_chunk=timed)  # fmt: skip


def chunk_trend(times: list[float]) -> str:
    """Mean wall time of the first and the last tenth of the chunks (a growing table must
    not make a chunk slower)."""
    if len(times) < 10:
        return ""
    tenth = len(times) // 10
    first, last = statistics.mean(times[:tenth]), statistics.mean(times[-tenth:])
    return (f" | chunk wall: first tenth {first * 1000:,.0f} ms, last tenth "
            f"{last * 1000:,.0f} ms ({last / first:.2f}x)")  # fmt: skip


def bench_cdrs(
    name: str, url: str, path: Path, count: int, chunk: int, *, profile: bool = False,
    cost_tariff: bool = False, workers: int = 1, wallet_count: int = 1,
) -> dict[str, float]:  # fmt: skip
    db, _, _ = setup(url, balance="100000000", cost_tariff=cost_tariff,
                     wallet_count=wallet_count)  # fmt: skip
    read_per_s, rated_per_s, batch_per_s = baselines(path, count, db)
    profiler = cProfile.Profile() if profile and workers == 1 else None
    chunk_times: list[float] = []
    started, cpu, child_cpu = time.perf_counter(), time.process_time(), children_cpu_s()
    if profiler is not None:
        profiler.enable()
    summary = post_file(db, path, chunk, workers, chunk_times)
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu + children_cpu_s() - child_cpu
    assert summary.posted == count, summary
    started = time.perf_counter()
    replay = charging.post_cdrs(
        db, read_cdr_file(path), clock=SystemClock(), source=str(path), chunk_size=chunk
    )
    replay_s = time.perf_counter() - started
    assert replay.duplicates == count and replay.posted == 0
    if cost_tariff:  # every charge recorded its carrier cost (the work being measured)
        with db.read() as conn:
            unknown = conn.execute(
                select(func.count()).select_from(charges).where(charges.c.cost_micros.is_(None))
            ).scalar_one()
        assert unknown == 0, f"{unknown} charges without a cost"
    db.dispose()
    posted_per_s = count / elapsed
    # CPU time of this process only (the database server's is not counted): on a shared,
    # loaded machine it is the steadier figure.
    print(
        f"  {name:10} {workers} worker{'s' if workers > 1 else ' '}"
        f" posted {count:>9,} CDRs in {elapsed:7.2f} s = {posted_per_s:9,.0f} CDRs/s"
        f" (client CPU {cpu:6.2f} s = {count / cpu:9,.0f} CDRs per CPU-s)"
        f" | read only {read_per_s:9,.0f}/s, read+rate {rated_per_s:9,.0f}/s,"
        f" read+batch rate {batch_per_s:9,.0f}/s"
        f" (posting = {posted_per_s / rated_per_s:.2f}x of read+rate)"
        f" | replay {count / replay_s:9,.0f}/s"
        + chunk_trend(chunk_times)
        + (" (profiled: slower)" if profiler else ""),
        flush=True,
    )
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
        print("\n".join(line for line in text.getvalue().splitlines()[6:] if line.strip()))
    return {"posted_per_s": posted_per_s, "cpu_per_s": count / cpu}


def bench_cost_tariff(
    name: str, new_url: Any, path: Path, count: int, chunk: int, repeat: int, wallet_count: int
) -> None:
    """Posting without and with a cost tariff, alternated `repeat` times on fresh databases
    (`new_url()` gives one and a cleanup), and the median ratios (with / without)."""
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(repeat):
        for with_cost in (False, True):
            url, cleanup = new_url()
            try:
                label = f"{name}+cost" if with_cost else name
                runs[with_cost].append(
                    bench_cdrs(label, url, path, count, chunk, cost_tariff=with_cost,
                               wallet_count=wallet_count)  # fmt: skip
                )
            finally:
                cleanup()
    for measure in ("posted_per_s", "cpu_per_s"):
        without = statistics.median(r[measure] for r in runs[False])
        with_cost = statistics.median(r[measure] for r in runs[True])
        print(
            f"  {name:10} {measure:13} median without cost tariff {without:9,.0f}, with "
            f"{with_cost:9,.0f}: ratio {with_cost / without:.3f} ({repeat} runs each)"
        )


def bench_baseline(ref: str, count: int, chunk: int, no_pg: bool, wallet_count: int) -> None:
    """The CDR benchmark with the code of git commit `ref`, in a subprocess (same machine,
    same run)."""
    print(f"Baseline: code of {ref} ({count:,} CDRs, committed every {chunk}):", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"],
                                 check=True, capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        command = [sys.executable, __file__, "--cdrs-only", "--cdrs", str(count), "--chunk",
                   str(chunk), "--cdr-workers", "1", "--wallets", str(wallet_count),
                   *(["--no-pg"] if no_pg else [])]  # fmt: skip
        env = {**os.environ, "TELBILL_BENCH_SRC": str(Path(tmp) / "src")}
        subprocess.run(command, env=env, check=True)


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its live children (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            pids += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    for each in pids:
        try:
            with open(f"/proc/{each}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


# ---------------------------------------------------------------------------- sessions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def drive(
    base: str, key: str, account_id: int, pairs: int, clients: int,
    cpu_probe: Any = lambda: 0.0,
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    health: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(pairs):
        queue.put_nowait(n)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as client:  # fmt: skip

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                t0 = time.perf_counter()
                answer = (await client.post(
                    "/v1/sessions/authorize", json={"account_id": account_id,
                                                    "to": DESTINATIONS[n % 5]},
                    headers={"Idempotency-Key": f"a{n}"})).json()  # fmt: skip
                t1 = time.perf_counter()
                await client.post(f"/v1/sessions/{answer['session_id']}/end",
                                  json={"duration_s": 30}, headers={"Idempotency-Key": f"e{n}"})
                t2 = time.perf_counter()
                latencies.extend([t1 - t0, t2 - t1])

        started, cpu = time.perf_counter(), cpu_probe()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed, cpu = time.perf_counter() - started, cpu_probe() - cpu

        async def ping() -> None:
            for _ in range(max(pairs // clients, 5)):
                t0 = time.perf_counter()
                await client.get("/healthz")
                health.append(time.perf_counter() - t0)

        await asyncio.gather(*(ping() for _ in range(clients)))
    return {"elapsed": elapsed, "latencies": latencies, "health": health, "server_cpu": cpu}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def bench_sessions(
    name: str, url: str, pairs: int, clients: int, workers: int, server_args: list[str]
) -> None:
    db, org_id, user_id = setup(url, balance="100000000")
    switch = create_api_key(db, account_id=org_id, role=Role.SWITCH, name="sw",
                            clock=SystemClock())  # fmt: skip
    db.dispose()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "telbill.api.app:app_from_env", "--factory",
         "--workers", str(workers), "--port", str(port), "--log-level", "warning",
         "--no-access-log", *server_args],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "TELBILL_DATABASE_URL": url},
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert switch.secret is not None
        # Warm-up: each worker compiles the tariff once.
        asyncio.run(drive(base, switch.secret, user_id, 20, 4))
        result = asyncio.run(drive(base, switch.secret, user_id, pairs, clients,
                                   lambda: tree_cpu_s(server.pid)))  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    latencies, health, server_cpu = result["latencies"], result["health"], result["server_cpu"]
    per_s = pairs / result["elapsed"]
    print(
        f"  {name:10} {pairs:,} authorize+end pairs, {clients} clients, {workers} workers: "
        f"{per_s:7,.0f} pairs/s | request p50 {pct(latencies, 0.5):6.1f} ms, "
        f"p99 {pct(latencies, 0.99):6.1f} ms | /healthz p50 {pct(health, 0.5):5.1f} ms, "
        f"p99 {pct(health, 0.99):5.1f} ms (baseline) | "
        f"mean {statistics.mean(latencies) * 1000:.1f} ms | server CPU {server_cpu:.2f} s "
        f"= {pairs / max(server_cpu, 1e-9):,.0f} pairs per server CPU-s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small run.")
    parser.add_argument("--full", action="store_true", help="1,000,000 CDRs.")
    parser.add_argument("--cdrs", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=charging.DEFAULT_CHUNK_SIZE)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (sessions).")
    parser.add_argument("--wallets", type=int, default=1,
                        help="CDRs spread over this many prepaid wallets (CDR posting).")
    parser.add_argument("--cdr-workers", default="1",
                        help="Processes posting the CDR file, e.g. 1,2 (one run each).")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--cdrs-only", action="store_true", help="No session benchmark.")
    parser.add_argument("--profile", action="store_true", help="cProfile the SQLite posting.")
    parser.add_argument("--baseline", default=None,
                        help="Also post CDRs with the code of this git commit or branch.")
    parser.add_argument("--baseline-cdrs", type=int, default=None,
                        help="CDRs for the baseline run (default: as many as this run).")
    parser.add_argument("--baseline-chunk", type=int, default=1_000)
    parser.add_argument("--cost-tariff", action="store_true",
                        help="Posting with a carrier cost tariff vs without (same run).")
    parser.add_argument("--repeat", type=int, default=3,
                        help="Alternated runs of each for --cost-tariff.")
    parser.add_argument(
        "--plain-http", action="store_true",
        help="uvicorn with asyncio + h11 (default: uvloop + httptools when installed)",
    )  # fmt: skip
    args = parser.parse_args()
    count = args.cdrs or (2_000 if args.quick else 1_000_000 if args.full else 20_000)
    pairs = args.pairs or (200 if args.quick else 5_000 if args.full else 1_000)
    server_args = ["--loop", "asyncio", "--http", "h11"] if args.plain_http else []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cdrs.csv"
        write_cdrs(path, count, args.wallets)
        print(f"CDR posting (rated + posted, committed every {args.chunk} CDRs):", flush=True)
        if args.cost_tariff:
            databases = itertools.count()

            def sqlite_url() -> tuple[str, Any]:
                return f"sqlite:///{tmp}/cost-{next(databases)}.db", lambda: None

            def pg_url() -> tuple[str, Any]:
                schema, url = pg_schema()
                return url, lambda: drop_schema(schema)

            bench_cost_tariff("sqlite", sqlite_url, path, count, args.chunk, args.repeat,
                              args.wallets)  # fmt: skip
            if not args.no_pg:
                bench_cost_tariff("postgresql", pg_url, path, count, args.chunk, args.repeat,
                                  args.wallets)  # fmt: skip
            return
        for workers in [int(n) for n in args.cdr_workers.split(",")]:
            bench_cdrs("sqlite", f"sqlite:///{tmp}/bench{workers}.db", path, count, args.chunk,
                       profile=args.profile, workers=workers,
                       wallet_count=args.wallets)  # fmt: skip
            if not args.no_pg:
                schema, url = pg_schema()
                try:
                    bench_cdrs("postgresql", url, path, count, args.chunk, workers=workers,
                               wallet_count=args.wallets)  # fmt: skip
                finally:
                    drop_schema(schema)
        if args.baseline is not None:
            bench_baseline(args.baseline, args.baseline_cdrs or count, args.baseline_chunk,
                           args.no_pg, args.wallets)  # fmt: skip
        if args.cdrs_only:
            return
        print("Sessions over HTTP on loopback:")
        bench_sessions("sqlite", f"sqlite:///{tmp}/sessions.db", pairs, args.clients, 1,
                       server_args)  # fmt: skip
        if not args.no_pg:
            schema, url = pg_schema()
            try:
                bench_sessions("postgresql", url, pairs, args.clients, args.workers,
                               server_args)  # fmt: skip
            finally:
                drop_schema(schema)


if __name__ == "__main__":
    main()
