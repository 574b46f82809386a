"""Benchmark: CPU time of short `telbill` commands as processes, beside Python's own startup.

Each command runs `--repeat` times as a fresh process; the figure is the median CPU time
(user + system, from the kernel's accounting of the child), with two baselines from the same
run: `python -c pass` and `python -c "import typer"` (the floor of any Typer command).

    telbill --help                     (target <= 0.2 s CPU)
    telbill sms segments TEXT          (no database)
    telbill quote on a 170,000-row deck, SQLite:
        from the compiled-tariff cache (target <= 0.3 s CPU),
        without it (the deck loaded and compiled: the cost before the cache),
        the first call (loads, compiles and fills the cache; once)

The deck is built from ../shared/data/astpp-outbound-rates.csv (36,205 rows, each prefix
extended by one digit until 170,000 rows).

    python benchmarks/cli_startup.py [--repeat 7] [--rows 170000]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ASTPP = next(
    (
        p / "shared" / "data" / "astpp-outbound-rates.csv"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "astpp-outbound-rates.csv").is_file()
    ),
    Path("/work/shared/data/astpp-outbound-rates.csv"),
)
ASTPP_MAP = "rate=rate_per_minute,increment=increment_seconds,free_seconds=included_seconds"
QUOTE = ["quote", "--tariff", "big", "--to", "+4915112345678", "--duration", "61"]


def telbill() -> list[str]:
    script = Path(sys.executable).with_name("telbill")
    return [str(script)] if script.exists() else [sys.executable, "-m", "telbill"]


def cpu_of(command: list[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system) of one run of `command` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_cpu(command: list[str], env: dict[str, str], repeat: int) -> float:
    return statistics.median(cpu_of(command, env) for _ in range(repeat))


def build_deck(path: Path, rows: int) -> None:
    with ASTPP.open(newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        body = list(reader)
    seen = {row[0] for row in body}
    out = [header, *body]
    for digit in "0123456789":
        for row in body:
            if len(out) > rows:
                break
            prefix = row[0] + digit
            if prefix not in seen:
                seen.add(prefix)
                out.append([prefix, *row[1:]])
    with path.open("w", newline="") as target:
        csv.writer(target).writerows(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rows", type=int, default=170_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="telbill-cli-bench-") as folder:
        root = Path(folder)
        cache, shared = root / "cache", root / "shared-cache"
        cache.mkdir(mode=0o700)
        shared.mkdir()
        shared.chmod(0o777)  # a folder others may write: the cache is not used there
        env = {**os.environ, "TELBILL_DATABASE_URL": f"sqlite:///{root / 'bench.db'}"}
        cached_env = {**env, "TELBILL_CACHE_DIR": str(cache)}
        uncached_env = {**env, "TELBILL_CACHE_DIR": str(shared)}
        deck = root / "deck.csv"
        build_deck(deck, args.rows)
        cpu_of([*telbill(), "init"], env)
        cpu_of([*telbill(), "tariff", "import", str(deck), "--name", "big", "--map", ASTPP_MAP,
                "--increment", "6/6"], env)  # fmt: skip
        print(f"CLI startup, median CPU of {args.repeat} runs each; load {os.getloadavg()}")
        figures = {
            "python -c pass": median_cpu([sys.executable, "-c", "pass"], env, args.repeat),
            "python -c 'import typer'": median_cpu(
                [sys.executable, "-c", "import typer"], env, args.repeat
            ),
            "telbill --help": median_cpu([*telbill(), "--help"], env, args.repeat),
            "telbill sms segments": median_cpu(
                [*telbill(), "sms", "segments", "hello"], env, args.repeat
            ),
        }
        figures["telbill quote, first (fills cache)"] = cpu_of([*telbill(), *QUOTE], cached_env)
        figures["telbill quote, cached"] = median_cpu([*telbill(), *QUOTE], cached_env, args.repeat)
        figures["telbill quote, no cache"] = median_cpu(
            [*telbill(), *QUOTE], uncached_env, max(1, args.repeat // 2)
        )
        typer_floor = figures["python -c 'import typer'"]
        for name, cpu in figures.items():
            print(f"  {name:36s} {cpu:6.3f} s CPU  ({cpu / typer_floor:5.1f}x import typer)")
        print(f"  deck: {args.rows:,} rows; load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
