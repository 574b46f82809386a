"""Calls per second through a real switch: SIPp -> Kamailio (telbill.cfg) -> billing API.

    python benchmarks/switch.py                      # rates 25 50 100 200, 5 s each
    python benchmarks/switch.py --rates 50 100 --seconds 10
    python benchmarks/switch.py --targets stub sqlite
    python benchmarks/switch.py --quick              # make bench: 25 50 100, stub and SQLite

For each target the same ramp of call rates: a SIPp caller places `rate * seconds` calls at
`rate` calls a second (each hangs up after `--hold-ms`), through Kamailio, to a SIPp callee.
Targets, in one run: ``stub`` (a trivial ASGI app on the same uvicorn that answers authorize
and end at once: the switch loop's own limit), ``sqlite`` and ``postgresql`` (`telbill serve`,
one worker, calls spread over `--wallets` prepaid wallets). Per rate: calls failed (no 200,
or not ended cleanly), p50/p99 of INVITE-to-200 seen by the caller, and the load average.
Also the API process's CPU time per call (authorize + end: /proc, so it holds on a loaded
machine). A target's ramp stops at its first rate with a failed call (`--full-ramp`: not).
Then, per target: the highest rate with no failed call, beside the stub's, and the p99 that
telbill adds at `--compare-rate` over the stub's at that rate.

Starts everything on 127.0.0.1 with free ports (tests/switch/switch_stack.py, which runs the
commands of docs/switch.md) and stops every process by PID. PostgreSQL: the tests' server
(TELBILL_TEST_PG_URL), in a database of its own dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "switch"))

from switch_stack import Call, SwitchStack, free_port, missing_tools  # noqa: E402

import db_templates  # noqa: E402

CALLED = "15550001234"


# ---------------------------------------------------------------------------- the stub API


async def stub_app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def,type-arg]
    """Answers authorize (allowed, an hour) and end at once; nothing stored."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    path = scope["path"]
    if path.endswith("/authorize"):
        stub_app.sessions = getattr(stub_app, "sessions", 0) + 1  # type: ignore[attr-defined]
        body = {"allowed": True, "reason": None, "session_id": stub_app.sessions,  # type: ignore[attr-defined]
                "max_seconds": 3600}  # fmt: skip
    elif path == "/healthz":
        body = {"status": "ok"}
    else:
        body = {"state": "ended"}
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def serve_stub(port: int) -> None:
    import uvicorn

    uvicorn.run(stub_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------------------- targets


def telbill_database(url: str, wallets: int) -> tuple[int, list[int]]:
    """A provider, the tariff (+1 at 0.60/min per second), and `wallets` funded organisations
    with one user each: (provider id, the users' ids)."""
    from telbill.adapters.db.engine import Database
    from telbill.domain.tariffs import Increment, RateRow, TariffSettings
    from telbill.services import accounts, plans
    from telbill.services import wallets as wallet_service
    from telbill.services.clock import SystemClock
    from telbill.services.tariffs import import_tariff

    db, clock = Database(url), SystemClock()
    provider = accounts.create_account(
        db, kind="provider", name="bench", currency="USD", vat_rate="0",
        idempotency_key=uuid.uuid4().hex, clock=clock,
    )  # fmt: skip
    rows = [RateRow("1", "US", Decimal("0.60"), increment=Increment(1, 1))]
    import_tariff(db, "voice", rows, TariffSettings(currency="USD"),
                  now=clock.now() - timedelta(days=1))  # fmt: skip
    plans.create_plan(db, "prepaid", tariff="voice", clock=clock, cut_off="hard")
    users = []
    for n in range(wallets):
        org = accounts.create_account(
            db, kind="organisation", name=f"org{n}", parent_id=provider.id,
            idempotency_key=uuid.uuid4().hex, clock=clock,
        )  # fmt: skip
        user = accounts.create_account(
            db, kind="user", name=f"user{n}", parent_id=org.id,
            idempotency_key=uuid.uuid4().hex, clock=clock,
        )  # fmt: skip
        plans.assign_plan(db, org.id, "prepaid", clock=clock)
        wallet_service.top_up(db, org.id, "100000", idempotency_key=uuid.uuid4().hex, clock=clock)
        users.append(user.id)
    db.dispose()
    return provider.id, users


@dataclass
class Step:
    rate: int
    calls: int
    failed: int
    p50_ms: float
    p99_ms: float
    load: float
    api_cpu_ms_per_call: float


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid` and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    stack: SwitchStack, users: list[int], rate: int, seconds: int, hold_ms: int, api_pid: int
) -> Step:
    total = rate * seconds
    cpu_before = cpu_seconds(api_pid)
    calls = stack.place_calls(
        users, CALLED, calls=total, rate_per_s=rate, hang_up_after_ms=hold_ms,
        timeout_s=seconds + 60,
    )  # fmt: skip
    assert isinstance(calls, list)
    ok = [c for c in calls if _clean(c)]
    delays = sorted(
        (c.answered_at - c.first("caller", "S", "INVITE ")) * 1000  # type: ignore[operator]
        for c in ok
    )
    p50 = statistics.median(delays) if delays else float("nan")
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else float("nan")
    cpu_ms = (cpu_seconds(api_pid) - cpu_before) * 1000 / max(total, 1)
    return Step(rate, total, total - len(ok), p50, p99, os.getloadavg()[0], cpu_ms)


def _clean(call: Call) -> bool:
    """Answered, and hung up by the caller with a 200 OK to its BYE."""
    return (
        call.final_status == 200
        and call.bye_from("caller") is not None
        and call.first("caller", "R", "SIP/2.0 200", "BYE") is not None
    )


def run_target(target: str, args: argparse.Namespace, work: Path) -> list[Step]:
    run_dir = work / target
    run_dir.mkdir()
    pg_name = None
    stub = None
    if target == "postgresql":
        db_templates.require_postgres()
        pg_name, url = db_templates.new_pg_database()
    else:
        url = db_templates.sqlite_database(run_dir / "telbill.db")
    provider_id, users = telbill_database(url, args.wallets)
    stack = SwitchStack(run_dir, url, provider_id)
    try:
        if target == "stub":
            port = free_port()
            stub = subprocess.Popen([sys.executable, __file__, "--serve-stub", str(port)])
            stack.env["TELBILL_PORT"] = str(port)
            stack.start(telbill=False, register=False)
            _wait_http(f"http://127.0.0.1:{port}/healthz")
        else:
            stack.start(register=False)
        api_pid = (stub or stack.processes["serve"]).pid
        steps = []
        for rate in args.rates:
            step = measure(stack, users, rate, args.seconds, args.hold_ms, api_pid)
            steps.append(step)
            print(
                f"{target:10s} {rate:5d} calls/s: {step.calls:5d} calls, {step.failed:4d} failed, "
                f"INVITE-to-200 p50 {step.p50_ms:7.1f} ms p99 {step.p99_ms:7.1f} ms, "
                f"API CPU {step.api_cpu_ms_per_call:.2f} ms/call (load {step.load:.1f})",
                flush=True,
            )
            if step.failed and not args.full_ramp:
                break  # past this target's limit
            time.sleep(2)  # let the previous step's calls drain
        return steps
    finally:
        left = stack.stop()
        if stub is not None:
            stub.terminate()
            stub.wait(timeout=10)
        if pg_name is not None:
            db_templates.drop_pg_database(pg_name)
            db_templates.finish_drops()
        if left:
            print(f"WARNING: processes still alive: {left}")


def _wait_http(url: str) -> None:
    import httpx

    for _ in range(100):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def best_rate(steps: list[Step]) -> int:
    clean = [s.rate for s in steps if s.failed == 0]
    return max(clean) if clean else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--hold-ms", type=int, default=1000)
    parser.add_argument("--wallets", type=int, default=20)
    parser.add_argument("--compare-rate", type=int, default=100)
    parser.add_argument("--targets", nargs="+", default=["stub", "sqlite", "postgresql"])
    parser.add_argument(
        "--full-ramp", action="store_true", help="Go on after a rate with failed calls."
    )
    parser.add_argument("--keep", type=Path, help="Keep the logs in this (new) folder.")
    parser.add_argument(
        "--quick", action="store_true", help="rates 25 50 100, 3 s each, stub and SQLite"
    )
    parser.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rates, args.seconds, args.targets = [25, 50, 100], 3, ["stub", "sqlite"]
    if args.serve_stub:
        serve_stub(args.serve_stub)
        return
    missing = missing_tools()
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (make switch-tools)")
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    if args.keep:
        args.keep.mkdir(parents=True)
        results = {target: run_target(target, args, args.keep) for target in args.targets}
    else:
        with tempfile.TemporaryDirectory(prefix="telbill-switch-bench-") as folder:
            results = {target: run_target(target, args, Path(folder)) for target in args.targets}
    stub_best = best_rate(results.get("stub", []))
    stub_at = {s.rate: s for s in results.get("stub", [])}
    print("\nhighest rate with no failed call (calls/s):")
    for target, steps in results.items():
        best = best_rate(steps)
        ratio = f", {best / stub_best:.0%} of the stub's" if stub_best and target != "stub" else ""
        print(f"  {target:10s} {best:5d}{ratio}")
        here = next((s for s in steps if s.rate == args.compare_rate), None)
        base = stub_at.get(args.compare_rate)
        if target != "stub" and here and base:
            print(
                f"  {'':10s} p99 INVITE-to-200 at {args.compare_rate}/s: {here.p99_ms:.1f} ms, "
                f"{here.p99_ms - base.p99_ms:+.1f} ms over the stub's {base.p99_ms:.1f} ms"
            )


if __name__ == "__main__":
    main()
