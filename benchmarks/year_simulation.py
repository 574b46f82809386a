"""A year of daily ticks for N accounts (numbers bought on every day of the month,
subscriptions, defaulters, late payers, random top-ups and calls), on one process.

Prints where the time goes: set-up, the outside events of each day (top-ups, calls), and
inside the ticks the due-job queries (`collect_due`), the jobs themselves (per job kind:
count and mean cost), and the tasks run at every tick (threshold check, session sweep).
With ``--compare-job-by-job`` it ticks the same year again with every renewal run on its
own (the path before set-based renewals) and prints the ratio. With
``--compare-thresholds`` it also times, at the end of the year, the set-based threshold
check against the per-wallet reference on the same database (a ratio from one run, less
sensitive to the load of the machine). With ``--compare-invoices``, December's invoices
of every account are built one by one (the reference builder) and set-based (the month-end
run's) on the same database, and compared.

    python benchmarks/year_simulation.py --accounts 1000
    python benchmarks/year_simulation.py --quick            # 31 accounts
    python benchmarks/year_simulation.py --url postgresql+psycopg://postgres@127.0.0.1/test
    python benchmarks/year_simulation.py --quick --compare-invoices
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "integration")]

import year_simulation as sim  # noqa: E402
from telbill.services import renewal_batches, scheduler, thresholds  # noqa: E402
from telbill.services.reconcile import reconcile  # noqa: E402

BATCHED = tuple(f"{name}:" for name in renewal_batches.BATCHED_JOBS)
seconds: Counter[str] = Counter()
jobs: Counter[str] = Counter()


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - started

    return wrapper


def instrument() -> None:
    """Wrap the scheduler's phases with timers (only in this process)."""
    scheduler.collect_due = timed("collect_due", scheduler.collect_due)
    for name, task in list(scheduler.TASKS.items()):
        scheduler.TASKS[name] = timed(f"task {name}", task)
    sim.apply_day_events = timed("outside events (top-ups, calls)", sim.apply_day_events)
    original_tick = scheduler.tick

    def tick(*args: Any, **kwargs: Any) -> scheduler.TickReport:
        report = original_tick(*args, **kwargs)
        jobs.update(report.outcomes)
        return report

    scheduler.tick = timed("tick (all)", tick)
    scheduler._run_renewals = timed("renewals (set-based)", scheduler._run_renewals)
    for kind in scheduler.JOBS:
        timed_run = timed(f"job {kind.name}", kind.run)
        scheduler._BY_NAME[kind.name] = scheduler.JobKind(
            kind.name, kind.order, timed_run, kind.at_until
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="31 accounts")
    parser.add_argument("--url", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--compare-thresholds", action="store_true")
    parser.add_argument(
        "--compare-invoices",
        action="store_true",
        help="also build December's invoices one by one and set-based, on the same database",
    )
    parser.add_argument(
        "--compare-job-by-job",
        action="store_true",
        help="also tick the year with every renewal run on its own (the baseline)",
    )
    args = parser.parse_args()
    count = 31 if args.quick else args.accounts
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{folder}/year.db"
        started, cpu = time.perf_counter(), time.process_time()
        ids = sim.set_up(url, count)
        set_up_s, set_up_cpu = time.perf_counter() - started, time.process_time() - cpu
        instrument()
        started, cpu = time.perf_counter(), time.process_time()
        sim.tick_year(url, ids)
        year_s, year_cpu = time.perf_counter() - started, time.process_time() - cpu
        db = sim.open_database(url)
        assert reconcile(db).ok
        checked = sim.check_dates(url, ids)
        days = (sim.LAST_TICK - sim.FIRST_TICK).days + 1
        print(f"accounts: {count}, daily ticks: {days}, load: {os.getloadavg()[0]:.2f}")
        print(f"dates checked: {checked}")
        print(f"set-up: {set_up_s:.1f} s ({set_up_cpu:.1f} s CPU of this process); ", end="")
        print(f"year: {year_s:.1f} s ({year_cpu:.1f} s CPU)", end=" ")
        print(f"({year_s / count * 1000:.1f} ms per account-year)")
        for name, spent in sorted(seconds.items(), key=lambda item: -item[1]):
            if name.startswith("job ") or name.startswith("renewals "):
                prefixes = (name[4:] + ":",) if name.startswith("job ") else BATCHED
                runs = sum(n for key, n in jobs.items() if key.startswith(prefixes))
                per = f"  {runs:6d} runs, {spent / max(runs, 1) * 1000:6.1f} ms each"
            else:
                per = f"  {spent / days * 1000:6.1f} ms per tick"
            print(f"  {name:38s} {spent:8.1f} s{per}")
        if args.compare_thresholds:
            now = sim._at(sim.LAST_TICK)
            started = time.perf_counter()
            thresholds.check_all(db, now)
            batched = time.perf_counter() - started
            started = time.perf_counter()
            thresholds.check_all_one_by_one(db, now)
            one_by_one = time.perf_counter() - started
            print(
                f"threshold check of every wallet: set-based {batched * 1000:.0f} ms, "
                f"one by one {one_by_one * 1000:.0f} ms ({one_by_one / batched:.0f}x)"
            )
        if args.compare_invoices:
            compare_invoices(db)
        db.dispose()
        if args.compare_job_by_job:
            compare_job_by_job(folder, count, year_s, checked)


def compare_invoices(db: Any) -> None:
    """December's drafts of every wallet built one by one (`build_draft`, the reference)
    and set-based (`build_drafts`, 50 accounts per call like the month-end run), in one
    read transaction each: the ratio, and whether they are the same."""
    from sqlalchemy import select

    from telbill.adapters.db.tables import accounts
    from telbill.services.accounts import load_accounts
    from telbill.services.invoice_builder import build_draft, build_drafts
    from telbill.services.invoice_runs import ACCOUNTS_PER_TRANSACTION
    from telbill.services.reports import month_bounds

    with db.read() as conn:
        ids = conn.scalars(select(accounts.c.id).where(accounts.c.has_wallet)).all()
        members = sorted(load_accounts(conn, ids).values(), key=lambda a: (a.timezone, a.id))
    cpu, wall = time.process_time(), time.perf_counter()
    with db.read() as conn:
        one = {}
        for account in members:
            start, end = month_bounds("2027-12", account.timezone)
            one[account.id] = build_draft(conn, account, start, end)
    one_cpu, one_wall = time.process_time() - cpu, time.perf_counter() - wall
    cpu, wall = time.process_time(), time.perf_counter()
    with db.read() as conn:
        many: dict[int, Any] = {}
        for first in range(0, len(members), ACCOUNTS_PER_TRANSACTION):
            batch = members[first : first + ACCOUNTS_PER_TRANSACTION]
            for zone in sorted({a.timezone for a in batch}):
                start, end = month_bounds("2027-12", zone)
                group = [a for a in batch if a.timezone == zone]
                many.update(build_drafts(conn, group, start, end))
    many_cpu, many_wall = time.process_time() - cpu, time.perf_counter() - wall
    lines = sum(len(d.lines) for d in one.values())
    print(
        f"December's {len(one)} drafts ({lines} lines): one by one {one_wall:.2f} s wall "
        f"{one_cpu:.2f} s CPU, set-based {many_wall:.2f} s wall {many_cpu:.2f} s CPU "
        f"({one_wall / many_wall:.1f}x wall, {one_cpu / max(many_cpu, 1e-9):.1f}x CPU); "
        f"same drafts: {many == one}"
    )


def compare_job_by_job(folder: str, count: int, year_s: float, checked: Any) -> None:
    """The same year with every renewal run job by job (the path before set-based renewals),
    on a fresh SQLite file: the ratio of the two years, and whether they wrote the same."""
    url = f"sqlite:///{folder}/job-by-job.db"
    set_based = sum(t for name, t in seconds.items() if name == "renewals (set-based)")
    ids = sim.set_up(url, count)
    seconds.clear()
    scheduler.BATCHED_JOBS = frozenset()
    started = time.perf_counter()
    sim.tick_year(url, ids)
    job_by_job_s = time.perf_counter() - started
    one_by_one = sum(seconds[f"job {name}"] for name in renewal_batches.BATCHED_JOBS)
    same = sim.check_dates(url, ids) == checked
    print(
        f"job by job: year {job_by_job_s:.1f} s ({job_by_job_s / year_s:.2f}x set-based), "
        f"on-time renewals {one_by_one:.1f} s ({one_by_one / max(set_based, 1e-9):.1f}x); "
        f"same dates: {same}"
    )


if __name__ == "__main__":
    main()
