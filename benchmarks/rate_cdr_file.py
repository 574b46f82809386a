"""Benchmark: `telbill rate` end to end (read a native CDR CSV, rate, write the rated CSV).

Rates a synthetic native CDR file against the ASTPP deck (36,205 prefixes) twice, each in
its own process so peak memory is its own: through the batch rater (the default path of
`telbill rate`) and through `rate_event` one record at a time (the baseline). Prints
records/s, peak RSS and the ratio. Peak RSS must not grow with the file size (streaming).

    python benchmarks/rate_cdr_file.py            # 1,000,000 CDRs (baseline on 100,000)
    python benchmarks/rate_cdr_file.py --quick    # 50,000 CDRs
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from telbill.adapters.formats.cdrs import read_cdr_file  # noqa: E402
from telbill.domain.lookup import compile_tariff  # noqa: E402
from telbill.domain.tariffs import Increment, RateRow, Tariff, TariffSettings  # noqa: E402
from telbill.services.cdr_rating import (  # noqa: E402
    OfflineRater,
    output_columns,
    output_row,
    rate_records,
)

DECK_NAME = "astpp-outbound-rates.csv"


def find_deck() -> Path:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / DECK_NAME
        if candidate.exists():
            return candidate
    raise SystemExit(f"{DECK_NAME} not found in a shared/data folder above this checkout")


def load_deck(path: Path) -> Tariff:
    rows = []
    with path.open(newline="") as handle:
        for line in csv.DictReader(handle):
            step = int(line["increment_seconds"] or 6)
            rows.append(
                RateRow(
                    prefix=line["prefix"],
                    destination=line["destination"],
                    rate=Decimal(line["rate_per_minute"]),
                    connect_fee=Decimal(line["connect_fee"] or "0"),
                    free_seconds=int(line["included_seconds"] or 0),
                    increment=Increment(step, step),
                )
            )
    return Tariff("astpp", TariffSettings(currency="USD"), tuple(rows))


def write_cdrs(path: Path, count: int, prefixes: list[str]) -> None:
    rng = random.Random(42)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "account", "user", "direction", "from", "to", "start", "answer",
                      "end"])  # fmt: skip
        for n in range(count):
            prefix = rng.choice(prefixes)
            number = "+" + prefix + "".join(rng.choices("0123456789", k=12 - len(prefix)))
            begin = start + timedelta(seconds=n)
            answered = rng.random() > 0.15
            answer = begin + timedelta(seconds=3)
            end = answer + timedelta(seconds=rng.randint(0, 1800))
            out.writerow([f"c{n}", "acme", "alice", "outbound", "+3314", number,
                          begin.isoformat(), answer.isoformat() if answered else "",
                          end.isoformat()])  # fmt: skip


def worker(mode: str, cdr_file: Path, limit: int) -> None:
    index = compile_tariff(load_deck(find_deck()))
    rater = OfflineRater(index, use_batch=mode == "batch")
    began = time.perf_counter()
    count = 0
    with tempfile.TemporaryFile("w", newline="") as sink:
        writer = csv.writer(sink)
        columns: list[str] | None = None
        records = read_cdr_file(cdr_file, "native")
        for record in rate_records(records, index, rater=rater):
            if columns is None:
                columns = output_columns(list(record.raw))
                writer.writerow(columns)
            writer.writerow(output_row(record, columns, len(record.raw)))
            count += 1
            if count >= limit:
                break
    seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": count, "seconds": seconds, "peak_mb": peak_mb,
                      "fast_path": rater.fast_path}))  # fmt: skip


def run(mode: str, cdr_file: Path, limit: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", mode, str(cdr_file), str(limit)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 CDRs")
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), int(args.worker[2]))
        return
    count = 50_000 if args.quick else args.cdrs
    baseline_count = min(count, 100_000)
    with find_deck().open(newline="") as handle:
        prefixes = [row["prefix"] for row in csv.DictReader(handle)]
    with tempfile.TemporaryDirectory() as folder:
        cdr_file = Path(folder) / "cdrs.csv"
        write_cdrs(cdr_file, count, prefixes)
        size_mb = cdr_file.stat().st_size / 1e6
        print(f"{count:,} synthetic CDRs ({size_mb:.0f} MB) against {len(prefixes):,} prefixes")
        batch = run("batch", cdr_file, count)
        single = run("single", cdr_file, baseline_count)
    batch_rate = batch["records"] / batch["seconds"]
    single_rate = single["records"] / single["seconds"]
    print(f"batch path : {batch_rate:12,.0f} CDRs/s  ({batch['records']:,} in "
          f"{batch['seconds']:.1f} s, {batch['fast_path']:,} vectorised), "
          f"peak RSS {batch['peak_mb']:.0f} MB")  # fmt: skip
    print(f"per event  : {single_rate:12,.0f} CDRs/s  ({single['records']:,} in "
          f"{single['seconds']:.1f} s), peak RSS {single['peak_mb']:.0f} MB")  # fmt: skip
    print(f"ratio      : {batch_rate / single_rate:.1f}x (read + rate + write, one core)")

if __name__ == "__main__":
    main()
