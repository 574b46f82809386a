"""Run every benchmark, one after the other, and print each one's figures (`make bench`).

Each script prints its numbers beside a baseline measured in the same run. By default each
runs in its quick size (`--quick`); `--full` runs the sizes docs/performance.md quotes
(tens of minutes). `--only NAME` runs the named ones. The soak test and the CSV+numpy rating
baseline (run by cdr_pipeline.py itself) are not part of the set.

Run: python benchmarks/run_all.py [--full] [--only cdr_pipeline --only sessions]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Ordered from the hot paths to the rest; each takes --quick.
BENCHMARKS = (
    "rating", "rate_cdr_file", "cdr_pipeline", "charging", "sessions", "switch", "ledger",
    "tariff_import", "invoices", "month_end", "reports", "notifications", "dashboard",
    "year_simulation",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the documented sizes, not --quick")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args(argv)
    failed: list[str] = []
    for name in args.only or BENCHMARKS:
        command = [sys.executable, str(HERE / f"{name}.py")] + ([] if args.full else ["--quick"])
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
