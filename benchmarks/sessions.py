"""Real-time sessions benchmark: authorize+end pairs per second over HTTP on loopback, with
p50/p99 latency, server CPU per pair, and the SQL statements one authorize and one end cost.

    python benchmarks/sessions.py                 # 1,000 pairs, 50 clients, 1 and 2 workers
    python benchmarks/sessions.py --quick         # 200 pairs
    python benchmarks/sessions.py --count-only    # statements per request (+ --profile)
    git archive a9afb6e src | tar -x -C /tmp/old  # the per-request path (before batches)
    python benchmarks/sessions.py --baseline-src /tmp/old/src   # same run, older code too
    python benchmarks/sessions.py --wallets 1 10  # clients spread over 1, then 10 wallets

Each database (SQLite file, PostgreSQL schema) gets one prepaid organisation with a large
balance and one user; `--clients` concurrent clients each authorize a call and end it at
30 s, over keep-alive connections. The load is driven by `--client-procs` processes (httpx
AsyncClient, one shared pool each) so the client is not the bottleneck of one core.

Beside telbill, in the same run and on the same uvicorn (same workers, same clients, the same
two POSTs per pair): `benchmarks/trivial_asgi.py`, an app answering at once (the cost of
HTTP alone), and with `--baseline-src` another source tree (for instance the commit before
the batch engine), so the ratios mean something on a loaded machine. After telbill's run, as
many pairs again are started at half the rate it reached (open loop): the authorize p50/p99
at that rate. Server CPU is user + system time of the uvicorn processes during the run.
PostgreSQL: TELBILL_BENCH_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test),
each run in a fresh schema.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing
import os
import pstats
import signal
import socket
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
SRC = Path(os.environ.get("TELBILL_BENCH_SRC", str(ROOT / "src")))
sys.path.insert(0, str(SRC))

PG_BASE = os.environ.get("TELBILL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DESTINATIONS = ["+447700900123", "+15551234567", "+4930123456", "+33612345678", "+61212345678"]


def setup(
    url: str, *, balance: str = "100000000", wallets: int = 1
) -> tuple[int, list[int], str]:
    """A migrated database: `wallets` prepaid organisations (each a wallet on plan "retail")
    with one user each, and a switch key (of the organisation when there is one, else of the
    provider). Returns (provider id, the users' ids, key)."""
    from telbill.adapters.db.engine import Database, migrate
    from telbill.domain.tariffs import Direction, Increment, RateRow, TariffSettings
    from telbill.services import accounts, plans
    from telbill.services import wallets as wallets_service
    from telbill.services.auth import Role, create_api_key
    from telbill.services.clock import SystemClock
    from telbill.services.tariffs import import_tariff

    migrate(url)
    db = Database(url)
    clock = SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="Acme", currency="USD", idempotency_key="p", clock=clock
    )
    orgs, users = [], []
    for n in range(wallets):
        org = accounts.create_account(
            db, kind="organisation", name=f"org{n}", parent_id=provider.id,
            idempotency_key=f"o{n}", clock=clock,
        )  # fmt: skip
        orgs.append(org.id)
        users.append(
            accounts.create_account(
                db, kind="user", name=f"user{n}", parent_id=org.id, idempotency_key=f"u{n}",
                clock=clock,
            ).id
        )  # fmt: skip
    rows = [
        RateRow("44", "United Kingdom", Decimal("0.60"), increment=Increment(60, 60)),
        RateRow("1", "United States", Decimal("0.012"), increment=Increment(6, 6)),
        RateRow("49", "Germany", Decimal("0.02"), increment=Increment(1, 1)),
        RateRow("33", "France", Decimal("0.03"), increment=Increment(30, 6)),
        RateRow("61", "Australia", Decimal("0.05"), increment=Increment(60, 1)),
        RateRow("", "Inbound", Decimal("0.001"), direction=Direction.INBOUND),
    ]
    import_tariff(db, "retail", rows, TariffSettings(currency="USD"),
                  now=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    plans.create_plan(db, "retail", tariff="retail", clock=clock)
    for n, org_id in enumerate(orgs):
        plans.assign_plan(db, org_id, "retail", clock=clock)
        wallets_service.top_up(db, org_id, balance, idempotency_key=f"t{n}", clock=clock)
    holder = orgs[0] if len(orgs) == 1 else provider.id
    switch = create_api_key(db, account_id=holder, role=Role.SWITCH, name="sw", clock=clock)
    db.dispose()
    assert switch.secret is not None
    return provider.id, users, switch.secret


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


# ---------------------------------------------------------------------------- statements


def count_statements(url: str, *, profile: bool = False, pairs: int = 20) -> dict[str, float]:
    """SQL statements per authorize and per end through the API in this process (after a
    warm-up pair, so per-process caches are as they are in a running server)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from telbill.api.app import create_app

    _, (user_id,), secret = setup(url)
    app = create_app(url)
    engine = app.state.db.engine
    counted: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counted.append(statement)

    headers = {"Authorization": f"Bearer {secret}"}
    client = TestClient(app)

    def pair(n: int) -> tuple[int, int]:
        before = len(counted)
        answer = client.post(
            "/v1/sessions/authorize", json={"account_id": user_id, "to": DESTINATIONS[n % 5]},
            headers={**headers, "Idempotency-Key": f"a{n}"},
        ).json()  # fmt: skip
        middle = len(counted)
        ended = client.post(
            f"/v1/sessions/{answer['session_id']}/end", json={"duration_s": 30},
            headers={**headers, "Idempotency-Key": f"e{n}"},
        )  # fmt: skip
        assert ended.status_code == 200, ended.text
        return middle - before, len(counted) - middle

    pair(0)
    counts = [pair(n) for n in range(1, pairs + 1)]
    if profile:
        last = len(counted)
        pair(pairs + 1)
        print("\n".join(" ".join(s.split())[:160] for s in counted[last:]))
        profile_services(app, user_id, pairs * 10)
    app.state.db.dispose()
    return {
        "authorize": sum(a for a, _ in counts) / len(counts),
        "end": sum(e for _, e in counts) / len(counts),
    }


def profile_services(app: Any, user_id: int, pairs: int) -> None:
    """cProfile of the service calls behind one authorize and one end (no HTTP), in this
    thread (TestClient runs the app in another one, which cProfile would not see)."""
    from telbill.services import sessions
    from telbill.services.plans import TariffCache

    db, clock = app.state.db, app.state.clock
    cache = getattr(app.state, "tariff_cache", None) or TariffCache(db)
    profiler = cProfile.Profile()
    profiler.enable()
    for n in range(pairs):
        answer = sessions.authorize(
            db, cache, account_id=user_id, to_number=DESTINATIONS[n % 5],
            idempotency_key=f"profile-a{n}", clock=clock,
        )  # fmt: skip
        assert answer.session_id is not None
        sessions.end_session(
            db, cache, answer.session_id, idempotency_key=f"profile-e{n}", clock=clock,
            duration_s=30,
        )  # fmt: skip
    profiler.disable()
    print(f"cProfile of {pairs} authorize+end pairs (service calls, no HTTP):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def service_cpu(url: str, pairs: int = 300, threads: int = 1) -> dict[str, float]:
    """CPU milliseconds per authorize+end pair of the service calls alone (no HTTP), in this
    process: `time.process_time`, so a loaded machine changes it little. `threads` callers
    at once (the batch engine decides what arrives together in one transaction)."""
    from telbill.adapters.db.engine import Database
    from telbill.services import sessions
    from telbill.services.clock import SystemClock
    from telbill.services.plans import TariffCache

    _, (user_id,), _ = setup(url)
    db, clock = Database(url), SystemClock()
    cache = TariffCache(db)

    def pair(n: int) -> None:
        answer = sessions.authorize(
            db, cache, account_id=user_id, to_number=DESTINATIONS[n % 5],
            idempotency_key=f"cpu-a{n}", clock=clock,
        )  # fmt: skip
        assert answer.session_id is not None
        sessions.end_session(
            db, cache, answer.session_id, idempotency_key=f"cpu-e{n}", clock=clock,
            duration_s=30,
        )  # fmt: skip

    for n in range(20):  # warm-up: caches as in a running server
        pair(n)
    started, cpu = time.perf_counter(), time.process_time()
    if threads == 1:
        for n in range(20, 20 + pairs):
            pair(n)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(pair, range(20, 20 + pairs)))
    result = {
        "cpu_ms_per_pair": (time.process_time() - cpu) * 1000 / pairs,
        "wall_ms_per_pair": (time.perf_counter() - started) * 1000 / pairs,
    }
    db.dispose()
    return result


def _service_cpu_in(src: Path, url: str, threads: int) -> dict[str, float]:
    """`service_cpu` with the code of `src`, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--service-cpu-json", url, "--service-threads", str(threads)],
        env={**os.environ, "TELBILL_BENCH_SRC": str(src), "PYTHONPATH": str(src)},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------- HTTP load


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _drive(
    base: str, key: str, account_ids: list[int], numbers: range, clients: int, tag: str,
    first_client: int = 0, rate: float | None = None,
) -> dict[str, Any]:
    """Drive the pairs `numbers` with `clients` concurrent clients; client k (counted from
    `first_client` across client processes) calls for the user of wallet k mod N.

    `rate`: start the pairs at this many per second (open loop: pair n starts at n / rate
    seconds, or as soon as a client is free after that), instead of as fast as answered."""
    import httpx

    latencies: list[float] = []
    authorize_latencies: list[float] = []
    health: list[float] = []
    errors: list[str] = []  # a failed request counts in the latencies, never as a pair done
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in numbers:
        queue.put_nowait(n)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120,
                                 headers={"Authorization": f"Bearer {key}"}) as client:  # fmt: skip

        async def worker(client_no: int) -> None:
            account_id = account_ids[client_no % len(account_ids)]
            while not queue.empty():
                n = queue.get_nowait()
                if rate:
                    await asyncio.sleep(max(0.0, started + (n - numbers[0]) / rate
                                            - time.perf_counter()))  # fmt: skip
                t0 = time.perf_counter()
                answer = await client.post(
                    "/v1/sessions/authorize",
                    json={"account_id": account_id, "to": DESTINATIONS[n % 5]},
                    headers={"Idempotency-Key": f"{tag}a{n}"},
                )  # fmt: skip
                t1 = time.perf_counter()
                latencies.append(t1 - t0)
                authorize_latencies.append(t1 - t0)
                if answer.status_code != 200:
                    errors.append(answer.text)
                    continue
                ended = await client.post(
                    f"/v1/sessions/{answer.json()['session_id']}/end", json={"duration_s": 30},
                    headers={"Idempotency-Key": f"{tag}e{n}"},
                )  # fmt: skip
                latencies.append(time.perf_counter() - t1)
                if ended.status_code != 200:
                    errors.append(ended.text)

        started = time.perf_counter()
        await asyncio.gather(*(worker(first_client + k) for k in range(clients)))
        elapsed = time.perf_counter() - started

        async def ping() -> None:
            for _ in range(max(len(numbers) // clients, 5)):
                t0 = time.perf_counter()
                await client.get("/healthz")
                health.append(time.perf_counter() - t0)

        await asyncio.gather(*(ping() for _ in range(clients)))
    return {"elapsed": elapsed, "latencies": latencies, "health": health, "errors": errors,
            "authorize_latencies": authorize_latencies}  # fmt: skip


def _client_process(
    args: tuple[str, str, list[int], int, int, int, int, str],
) -> dict[str, Any]:
    base, key, account_ids, first, last, clients, first_client, tag = args
    return asyncio.run(
        _drive(base, key, account_ids, range(first, last), clients, tag, first_client)
    )


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its live children (Linux /proc): the
    server's own cost, steadier than wall time on a loaded machine."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            pids += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    total = 0.0
    for each in pids:
        try:
            with open(f"/proc/{each}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


TELBILL_APP = ["telbill.api.app:app_from_env", "--factory"]
TRIVIAL_APP = ["trivial_asgi:app"]  # benchmarks/trivial_asgi.py: HTTP alone


def serve(
    url: str, src: Path, workers: int, server_args: list[str], app: list[str] = TELBILL_APP
) -> tuple[Any, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *app,
         "--workers", str(workers), "--port", str(port), "--log-level", "warning",
         "--no-access-log", *server_args],
        env={**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{Path(__file__).parent}",
             "TELBILL_DATABASE_URL": url},
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return server, base


def load(
    url: str, src: Path, *, pairs: int, clients: int, workers: int, procs: int,
    server_args: list[str], wallets: int = 1, trivial: bool = False, half_rate: bool = False,
) -> dict[str, Any]:
    """Serve `url` from `src` and drive `pairs` authorize+end pairs at `clients` concurrency,
    the clients spread over `wallets` wallets. `trivial`: serve `trivial_asgi` instead (the
    same requests, answered at once). `half_rate`: then drive as many pairs again at half
    the rate reached, and report the authorize latencies of that run."""
    _, user_ids, secret = setup(url, wallets=wallets)
    app = TRIVIAL_APP if trivial else TELBILL_APP
    server, base = serve(url, src, workers, server_args, app)
    try:
        # Warm-up: each worker compiles the tariff and fills its caches once.
        asyncio.run(_drive(base, secret, user_ids, range(40), 8, "w"))
        procs = max(1, min(procs, clients))
        per_proc = [clients // procs + (1 if p < clients % procs else 0) for p in range(procs)]
        bounds = [pairs * p // procs for p in range(procs + 1)]
        jobs = [
            (base, secret, user_ids, bounds[p], bounds[p + 1], per_proc[p],
             sum(per_proc[:p]), "r")  # fmt: skip
            for p in range(procs)
        ]
        started, cpu = time.perf_counter(), tree_cpu_s(server.pid)
        if procs == 1:
            results = [_client_process(jobs[0])]
        else:
            with multiprocessing.get_context("fork").Pool(procs) as pool:
                results = pool.map(_client_process, jobs)
        wall = time.perf_counter() - started
        # Includes the /healthz baseline requests (pairs / clients each) after the pairs.
        server_cpu = tree_cpu_s(server.pid) - cpu
        paced: dict[str, Any] = {}
        if half_rate:
            reached = (pairs - sum(len(r["errors"]) for r in results)) / max(
                r["elapsed"] for r in results
            )
            paced = asyncio.run(_drive(base, secret, user_ids, range(pairs, 2 * pairs),
                                       clients, "h", rate=reached / 2))  # fmt: skip
            paced["rate"] = reached / 2
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    latencies = [x for r in results for x in r["latencies"]]
    health = [x for r in results for x in r["health"]]
    elapsed = max(r["elapsed"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    return {
        "pairs_per_s": (pairs - len(errors)) / elapsed,
        "errors": len(errors),
        "first_error": errors[0][:200] if errors else "",
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "health_p50_ms": pct(health, 0.5),
        "health_p99_ms": pct(health, 0.99),
        "wall_s": wall,
        "server_cpu_ms_per_pair": server_cpu * 1000 / pairs,
        "half_rate": paced.get("rate", 0.0),
        "half_rate_authorize_p50_ms": pct(paced.get("authorize_latencies") or [0.0], 0.5),
        "half_rate_authorize_p99_ms": pct(paced.get("authorize_latencies") or [0.0], 0.99),
        "half_rate_errors": len(paced.get("errors", [])),
    }


def _count_in(src: Path, url: str, profile: bool) -> dict[str, float]:
    """`count_statements` with the code of `src` (a subprocess when it is another tree)."""
    if src == SRC:
        return count_statements(url, profile=profile)
    out = subprocess.run(
        [sys.executable, __file__, "--count-json", url],
        env={**os.environ, "TELBILL_BENCH_SRC": str(src), "PYTHONPATH": str(src)},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    counts: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return counts


def _databases(tmp: str, no_pg: bool) -> list[tuple[str, Any]]:
    names: list[tuple[str, Any]] = [("sqlite", lambda tag: (None, f"sqlite:///{tmp}/{tag}.db"))]
    if not no_pg:
        names.append(("postgresql", lambda tag: pg_schema()))
    return names


def _load_line(
    db_name: str, make_url: Any, label: str, src: Path, args: Any, *, pairs: int,
    workers: int, wallets: int, server_args: list[str],
) -> float:
    """One load run, printed as one line; returns its pairs/s."""
    schema, url = make_url(f"load-{label.replace(' ', '-')}-{wallets}-{workers}")
    try:
        # SQLite serialises writers on one file: a second worker adds contention only, but
        # the figure is reported with the same worker count for comparison.
        r = load(url, src, pairs=pairs, clients=args.clients, workers=workers,
                 procs=args.client_procs, server_args=server_args, wallets=wallets,
                 trivial=label == "trivial",
                 half_rate=label == "this tree" and not args.no_half_rate)  # fmt: skip
    finally:
        if schema:
            drop_schema(schema)
    print(
        f"  {db_name:10} {label:9}: {pairs:,} pairs, {args.clients} clients on "
        f"{wallets} wallet{'s' if wallets > 1 else ''}, "
        f"{workers} worker{'s' if workers > 1 else ''}: {r['pairs_per_s']:7,.0f} pairs/s | "
        f"request p50 {r['p50_ms']:7.1f} ms, p99 {r['p99_ms']:7.1f} ms | "
        f"server CPU {r['server_cpu_ms_per_pair']:5.2f} ms/pair | "
        f"{r['errors']} failed requests | load {os.getloadavg()[0]:.2f}"
        + (f"\n      first failure: {r['first_error']}" if r["errors"] else "")
        + (f"\n      at half that rate ({r['half_rate']:,.0f} pairs/s): authorize p50 "
           f"{r['half_rate_authorize_p50_ms']:.1f} ms, p99 {r['half_rate_authorize_p99_ms']:.1f}"
           f" ms, {r['half_rate_errors']} failed" if r["half_rate"] else ""),
        flush=True,
    )  # fmt: skip
    rate: float = r["pairs_per_s"]
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 pairs.")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-trivial", action="store_true",
                        help="Skip the trivial ASGI app (benchmarks/trivial_asgi.py).")
    parser.add_argument("--no-half-rate", action="store_true",
                        help="Skip the run at half the rate reached (authorize p99).")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--wallets", type=int, nargs="+", default=[1],
        help="Spread the clients over N wallets (one organisation each); several values run "
        "the load once per value: lock contention on one wallet apart from per-request cost.",
    )  # fmt: skip
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--count-only", action="store_true", help="Statements per request.")
    parser.add_argument("--profile", action="store_true", help="cProfile the counted pairs.")
    parser.add_argument("--count-json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--service-cpu-json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--service-threads", type=int, default=1,
                        help="--service-cpu: this many threads calling at once.")  # fmt: skip
    parser.add_argument(
        "--service-cpu", action="store_true",
        help="Only the CPU per pair of the service calls (no HTTP), each tree in turn.",
    )  # fmt: skip
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="Also serve the load from this source tree, alternating.")  # fmt: skip
    parser.add_argument(
        "--plain-http", action="store_true",
        help="uvicorn with asyncio + h11 (default: uvloop + httptools when installed)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.count_json:
        print(json.dumps(count_statements(args.count_json)))
        return
    if args.service_cpu_json:
        print(json.dumps(service_cpu(args.service_cpu_json, threads=args.service_threads)))
        return
    pairs = args.pairs or (200 if args.quick else 1_000)
    server_args = ["--loop", "asyncio", "--http", "h11"] if args.plain_http else []
    trees = [("this tree", SRC)]
    if args.baseline_src:
        trees.insert(0, ("baseline", args.baseline_src.resolve()))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for db_name, make_url in _databases(tmp, args.no_pg):
            for label, src in trees:
                schema, url = make_url(f"count-{label.replace(' ', '-')}")
                try:
                    counts = _count_in(src, url, args.profile)
                finally:
                    if schema:
                        drop_schema(schema)
                print(f"  {db_name:10} {label:9}: {counts['authorize']:.1f} statements per "
                      f"authorize, {counts['end']:.1f} per end")  # fmt: skip
            if args.count_only:
                continue
            if args.service_cpu:
                # Alternating trees, twice each: the machine's load drifts between runs.
                for label, src in trees * 2:
                    schema, url = make_url(f"cpu-{label.replace(' ', '-')}-{uuid.uuid4().hex[:6]}")
                    try:
                        cpu_r = _service_cpu_in(src, url, args.service_threads)
                    finally:
                        if schema:
                            drop_schema(schema)
                    print(f"  {db_name:10} {label:9}: service calls {cpu_r['cpu_ms_per_pair']:.2f} "
                          f"ms CPU per pair, {1000 / cpu_r['wall_ms_per_pair']:,.0f} pairs/s "
                          f"({args.service_threads} thread(s), no HTTP) | load "
                          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
                continue
            runs = [("trivial", SRC)] if not args.no_trivial else []
            runs += trees
            for wallets in args.wallets:
                for workers in args.workers:
                    rates: dict[str, float] = {}
                    for label, src in runs:
                        rates[label] = _load_line(
                            db_name, make_url, label, src, args, pairs=pairs, workers=workers,
                            wallets=wallets, server_args=server_args,
                        )  # fmt: skip
                    if "baseline" in rates and rates["baseline"]:
                        print(f"  {db_name:10} this tree / baseline: "
                              f"{rates['this tree'] / rates['baseline']:.1f}x pairs/s")  # fmt: skip
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
