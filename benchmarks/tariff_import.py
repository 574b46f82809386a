"""Benchmark: import rate decks (parse + store one version) and load them back.

Measures the 36,205-row ASTPP deck and a synthetic deck (1,000,000 rows; 100,000 with
--quick) on SQLite and, when reachable, PostgreSQL, beside a baseline measured in the same
run: the same rows stored with a plain SQLAlchemy Core ``conn.execute(insert(table), dicts)``.

    python benchmarks/tariff_import.py [--quick] [--rows N] [--pg URL]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sqlalchemy import insert  # noqa: E402

from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.adapters.db.tariff_tables import tariff_rates, tariffs  # noqa: E402
from telbill.adapters.formats.tariff_csv import read_tariff_csv  # noqa: E402
from telbill.adapters.formats.tariff_fields import ParsedRow  # noqa: E402
from telbill.domain.tariffs import RateRow, RowError, TariffSettings  # noqa: E402
from telbill.services.tariffs import import_tariff, load_tariff, to_nanos  # noqa: E402

ASTPP = Path("/work/shared/data/astpp-outbound-rates.csv")
ASTPP_MAP = {
    "rate": "rate_per_minute",
    "increment": "increment_seconds",
    "free_seconds": "included_seconds",
}
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic_deck(path: Path, rows: int) -> None:
    rng = random.Random(7)
    with path.open("w") as handle:
        handle.write("prefix,destination,rate,connect_fee,increment\n")
        for i in range(rows):
            rate = rng.randrange(1, 500_000)
            step = rng.choice((1, 6, 60))
            handle.write(f"{10_000_000 + i},Dest {i % 5000},0.{rate:07d},0,{step}\n")


def items(path: Path, mapping: dict[str, str]) -> list[RateRow | RowError]:
    with path.open(newline="") as handle:
        return [
            i.row if isinstance(i, ParsedRow) else i
            for i in read_tariff_csv(handle, column_map=mapping)
        ]


def stream(path: Path, mapping: dict[str, str]):  # type: ignore[no-untyped-def]
    with path.open(newline="") as handle:
        for i in read_tariff_csv(handle, column_map=mapping):
            if isinstance(i, ParsedRow):
                yield i.row if i.values is None else i.values
            else:
                yield i


def baseline_store(db: Database, rows: list[RateRow | RowError]) -> None:
    """The straightforward way: SQLAlchemy Core executemany of dicts."""
    with db.transaction() as conn:
        tariff_id = conn.execute(
            insert(tariffs)
            .values(
                name="baseline", version=1, currency="USD", settings={}, created_at=NOW,
                row_count=0, source_format="native", source_file="", source_sha256="",
            )
            .returning(tariffs.c.id)
        ).scalar_one()
        values = [
            {
                "tariff_id": tariff_id, "prefix": r.prefix, "destination": r.destination,
                "service": r.service.value, "direction": r.direction.value,
                "number_type": r.number_type.value, "rate_nanos": to_nanos(r.rate),
                "connect_fee_nanos": to_nanos(r.connect_fee),
                "increment_first_s": r.increment.first_s if r.increment else None,
                "increment_next_s": r.increment.next_s if r.increment else None,
                "min_seconds": r.min_seconds, "free_seconds": r.free_seconds,
            }
            for r in rows
            if isinstance(r, RateRow)
        ]
        for start in range(0, len(values), 20_000):
            conn.execute(insert(tariff_rates), values[start : start + 20_000])


def measure(label: str, url: str, deck: Path, mapping: dict[str, str]) -> None:
    migrate(url)
    db = Database(url)
    # CPU seconds of this process beside wall seconds: on a shared machine the wall clock
    # mostly measures the neighbours; PostgreSQL's own work shows only in the wall time.
    c0, t0 = time.process_time(), time.perf_counter()
    rows = items(deck, mapping)
    baseline_store(db, rows)
    baseline_cpu, baseline_s = time.process_time() - c0, time.perf_counter() - t0
    del rows
    c0, t0 = time.process_time(), time.perf_counter()
    result = import_tariff(db, "bench", stream(deck, mapping), TariffSettings("USD"), now=NOW)
    import_cpu, import_s = time.process_time() - c0, time.perf_counter() - t0
    c0, t0 = time.process_time(), time.perf_counter()
    tariff = load_tariff(db, "bench")
    load_cpu, load_s = time.process_time() - c0, time.perf_counter() - t0
    n = result.version.row_count
    assert len(tariff.rows) == n
    print(
        f"{label:<34} rows={n:>9,}  import={import_s:6.2f}s wall {import_cpu:6.2f}s cpu "
        f"({n / import_cpu:>7,.0f} rows/cpu-s)  load={load_s:6.2f}s wall {load_cpu:6.2f}s cpu"
        f"  | baseline parse + SQLAlchemy executemany={baseline_s:6.2f}s wall "
        f"{baseline_cpu:6.2f}s cpu -> import is {baseline_cpu / import_cpu:4.1f}x less CPU"
    )
    db.dispose()


def fresh_pg_schema(base: str) -> str | None:
    try:
        import psycopg

        name = f"bench_{int(time.time())}"
        with psycopg.connect(base.replace("+psycopg", ""), autocommit=True, connect_timeout=3) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            c.execute(f'CREATE SCHEMA "{name}"')
        return f"{base}?options=-csearch_path%3D{name}"
    except Exception as exc:  # a missing server only skips the PostgreSQL figures
        print(f"PostgreSQL skipped: {exc}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 synthetic rows")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--pg", default=PG_URL)
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(tmp) / "synthetic.csv"
        synthetic_deck(deck, rows)
        for db_name in ("sqlite", "postgresql"):
            for label, path, mapping in (
                ("ASTPP deck", ASTPP, ASTPP_MAP),
                (f"synthetic {rows:,}-row deck", deck, {}),
            ):
                if not path.exists():
                    print(f"{label}: {path} not found, skipped")
                    continue
                if db_name == "sqlite":
                    url = f"sqlite:///{Path(tmp) / (label.split()[0] + '.db')}"
                else:
                    maybe = fresh_pg_schema(args.pg)
                    if maybe is None:
                        continue
                    url = maybe
                measure(f"{db_name}: {label}", url, path, mapping)


if __name__ == "__main__":
    main()
