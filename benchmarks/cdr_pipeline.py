"""Benchmark of the columnar CDR pipeline (issue 14): `telbill rate` and `telbill cdr post`
of a million CDRs, each beside a baseline measured in the same run.

    python benchmarks/cdr_pipeline.py                    # 1,000,000 CDRs, everything
    python benchmarks/cdr_pipeline.py --quick            # 100,000 CDRs, 1,000 wallets
    python benchmarks/cdr_pipeline.py --only rate        # or: post
    python benchmarks/cdr_pipeline.py --only post --databases sqlite --wallets 0
    python benchmarks/cdr_pipeline.py --only post --cdrs 100000 --per-event  # both paths

Rate: a native CDR file on the ASTPP deck (36,205 prefixes, ../shared/data) rated by
`telbill rate` as a process (1 and 2 workers) and by the plain csv-module + numpy script
`rate_baseline_csv_numpy.py` (the baseline), each its own process: wall time, CPU time
(user + system of the process and its workers) and peak RSS.

Post: the file of `charging.py` posted by `cdr_workers.post_cdr_file` (the path of
`telbill cdr post`) into one prepaid wallet and spread over N wallets, on SQLite and
PostgreSQL; beside it, the raw bulk insert of as many charge-sized rows into a scratch
table (SQLite executemany, PostgreSQL COPY) in the same run. Client CPU is this process's
(and its workers'); PostgreSQL's own CPU is not counted.

Every figure is printed with the load average: the machine is shared.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import charging as charging_bench  # noqa: E402
import rate_cdr_file  # noqa: E402
from telbill.adapters.db.engine import Database  # noqa: E402
from telbill.services.cdr_workers import post_cdr_file  # noqa: E402

PYTHON = sys.executable
TELBILL = str(Path(PYTHON).with_name("telbill"))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Run `command`; its wall seconds, CPU seconds (with its children) and peak RSS (MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{command[:3]} failed: {process.stderr.read().decode()[-2000:]}")
    process.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


# ---------------------------------------------------------------------------- rate


def bench_rate(count: int, folder: Path) -> None:
    deck = rate_cdr_file.find_deck()
    with deck.open(newline="") as handle:
        prefixes = [row["prefix"] for row in csv.DictReader(handle)]
    cdrs = folder / "cdrs.csv"
    rate_cdr_file.write_cdrs(cdrs, count, prefixes)
    url = f"sqlite:///{folder / 'rate.db'}"
    env = {**os.environ, "TELBILL_DATABASE_URL": url}
    subprocess.run([TELBILL, "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        [TELBILL, "tariff", "import", str(deck), "--name", "astpp", "--increment", "6/6",
         "--map", "rate=rate_per_minute,increment=increment_seconds,free_seconds=included_seconds",
         "--effective-from", "2025-01-01"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    size_mb = cdrs.stat().st_size / 1e6
    print(f"rate: {count:,} native CDRs ({size_mb:.0f} MB), ASTPP deck of {len(prefixes):,} "
          f"prefixes; {load()}")  # fmt: skip
    runs = {
        "baseline (csv + numpy)": [PYTHON, str(ROOT / "benchmarks" / "rate_baseline_csv_numpy.py"),
                                   str(deck), str(cdrs), str(folder / "baseline.csv")],
        "telbill rate": [TELBILL, "rate", str(cdrs), "--tariff", "astpp", "--out",
                         str(folder / "rated1.csv")],
        "telbill rate --workers 2": [TELBILL, "rate", str(cdrs), "--tariff", "astpp", "--out",
                                     str(folder / "rated2.csv"), "--workers", "2"],
    }  # fmt: skip
    figures = {}
    for name, command in runs.items():
        wall, cpu, rss = run_measured(command, env)
        figures[name] = (wall, cpu)
        print(f"  {name:26s} {count / wall:10,.0f} CDRs/s wall ({wall:6.1f} s), "
              f"{count / cpu:10,.0f} per CPU-s ({cpu:6.1f} s), peak RSS {rss} MB; {load()}",
              flush=True)
    same = (folder / "rated1.csv").read_bytes() == (folder / "rated2.csv").read_bytes()
    base_wall, base_cpu = figures["baseline (csv + numpy)"]
    one_wall, one_cpu = figures["telbill rate"]
    print(f"  ratio to the baseline: {base_wall / one_wall:.1f}x wall, "
          f"{base_cpu / one_cpu:.1f}x CPU; 2 workers wrote the same file: {same}")


# ---------------------------------------------------------------------------- post


def raw_insert_rate(url: str, count: int) -> tuple[float, float]:
    """Rows/s (wall, client CPU) of a bare bulk insert of `count` charge-sized rows into a
    scratch table."""
    db = Database(url)
    row = ("b123456", "call", 0, 3, 2, "voice", "outbound", 123456, "USD", "s:call", 60, 0,
           "retail", 1, "44", '{"derived":1,"plan_id":1}', '{"id":"b123456","to":"+44"}',
           "0" * 64, 7, "bench.csv")  # fmt: skip
    columns = ", ".join(f"c{i} {'text' if isinstance(v, str) else 'bigint'}"
                        for i, v in enumerate(row))  # fmt: skip
    with db.engine.begin() as conn:
        raw = conn.connection.driver_connection
        cursor = raw.cursor()
        cursor.execute(f"CREATE TABLE scratch_insert ({columns})")
        started, cpu = time.perf_counter(), time.process_time()
        if db.engine.dialect.name == "sqlite":
            marks = ", ".join("?" * len(row))
            for start in range(0, count, 5_000):
                cursor.executemany(f"INSERT INTO scratch_insert VALUES ({marks})",  # noqa: S608
                                   [row] * min(5_000, count - start))  # fmt: skip
        else:
            with cursor.copy("COPY scratch_insert FROM STDIN") as copy:
                for _ in range(count):
                    copy.write_row(row)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        cursor.execute("DROP TABLE scratch_insert")
    db.dispose()
    return count / seconds, count / cpu


def bench_post(
    name: str, url: str, path: Path, count: int, wallets: int, workers: int,
    columnar: bool = True,
) -> None:  # fmt: skip
    db, _, _ = charging_bench.setup(url, balance="100000000", wallet_count=max(wallets, 1))
    started, cpu = time.perf_counter(), time.process_time()
    child = charging_bench.children_cpu_s()
    summary = post_cdr_file(db, path, workers=workers, chunk_size=5_000, columnar=columnar)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu + charging_bench.children_cpu_s() - child
    assert summary.posted == count, summary
    replayed = ""
    if workers == 1:  # posting the file again charges nothing
        started = time.perf_counter()
        replay = post_cdr_file(db, path, workers=1, chunk_size=5_000)
        replayed = f"; replay {count / (time.perf_counter() - started):9,.0f}/s wall"
        assert replay.posted == 0 and replay.duplicates == count
    db.dispose()
    how = "" if columnar else " per event"
    print(f"  {name + how:20s} {max(wallets, 1):>6,} wallet(s), {workers} worker(s): "
          f"{count / wall:9,.0f} CDRs/s wall ({wall:6.1f} s), {count / cpu:9,.0f} per client "
          f"CPU-s{replayed}; {load()}", flush=True)


def bench_posting(count: int, wallets: int, databases: list[str], folder: Path,
                  workers: list[int], per_event: bool) -> None:  # fmt: skip
    for wallet_count in sorted({1, wallets} - {0}):
        path = folder / f"post-{wallet_count}.csv"
        charging_bench.write_cdrs(path, count, wallet_count)
        print(f"post: {count:,} CDRs over {wallet_count:,} wallet(s); {load()}", flush=True)
        for database in databases:
            for worker_count in workers:
                for columnar in ([False, True] if per_event else [True]):
                    if database == "sqlite":
                        name = f"post-{wallet_count}-{worker_count}-{columnar}.db"
                        url = f"sqlite:///{folder / name}"
                        raw = raw_insert_rate(f"sqlite:///{folder / f'raw-{name}'}", count)
                        bench_post("SQLite", url, path, count, wallet_count, worker_count,
                                   columnar)  # fmt: skip
                        continue
                    schema, url = charging_bench.pg_schema()
                    try:
                        raw = raw_insert_rate(url, count)
                        bench_post("PostgreSQL", url, path, count, wallet_count, worker_count,
                                   columnar)  # fmt: skip
                    finally:
                        charging_bench.drop_schema(schema)
                print(f"  {'':10s} raw bulk insert in the same run: {raw[0]:9,.0f} rows/s wall, "
                      f"{raw[1]:9,.0f} per client CPU-s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 CDRs, 1,000 wallets")
    parser.add_argument("--only", choices=["rate", "post"])
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1", help="comma list of worker counts (post)")
    parser.add_argument("--per-event", action="store_true",
                        help="post: also the per-event path (the reference), same run")
    args = parser.parse_args()
    count = 100_000 if args.quick else args.cdrs
    wallets = 1_000 if args.quick and args.wallets == 10_000 else args.wallets
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if args.only in (None, "rate"):
            bench_rate(count, folder)
        if args.only in (None, "post"):
            bench_posting(count, wallets, args.databases.split(","), folder,
                          [int(w) for w in args.workers.split(",")], args.per_event)  # fmt: skip


if __name__ == "__main__":
    main()
