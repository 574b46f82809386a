"""A year of daily ticks for N accounts (numbers bought on every day of the month,
subscriptions, defaulters, late payers, random top-ups and calls).

Prints the wall time of the year and the cost per account-year, for the scheduler's
default (several accounts per transaction) against a baseline measured in the same run:
one account per transaction. Default 1,000 accounts on a temporary SQLite file;
``--url`` for another database (an empty PostgreSQL schema), ``--quick`` for 31 accounts.

    python benchmarks/year_simulation.py --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "integration")]

import year_simulation as sim  # noqa: E402
from telbill.services.reconcile import reconcile  # noqa: E402


def measure(url: str, count: int, per_transaction: int) -> float:
    ids = sim.set_up(url, count)
    started = time.perf_counter()
    sim.tick_year(url, ids, accounts_per_transaction=per_transaction)
    elapsed = time.perf_counter() - started
    assert reconcile(sim.open_database(url)).ok
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="31 accounts")
    parser.add_argument("--url", help="two empty databases: URL{0} and URL{1} placeholders")
    args = parser.parse_args()
    count = 31 if args.quick else args.accounts
    with tempfile.TemporaryDirectory() as folder:
        urls = (
            [args.url.format(0), args.url.format(1)]
            if args.url
            else [f"sqlite:///{folder}/baseline.db", f"sqlite:///{folder}/batched.db"]
        )
        baseline = measure(urls[0], count, 1)
        batched = measure(urls[1], count, 25)
    print(f"accounts: {count}, days ticked: 365")
    print(
        f"baseline (1 account per transaction):  {baseline:8.1f} s"
        f"  {baseline / count * 1000:7.1f} ms per account-year"
    )
    print(
        f"default (25 accounts per transaction): {batched:8.1f} s"
        f"  {batched / count * 1000:7.1f} ms per account-year"
    )
    print(f"speed-up vs baseline: {baseline / batched:.2f}x")


if __name__ == "__main__":
    main()
