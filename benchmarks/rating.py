"""Rating speed: the numpy batch rater against a per-CDR Python loop, on the ASTPP deck.

Run from a checkout:  python benchmarks/rating.py [--quick] [--cdrs N] [--stream N]

* batch: 1,000,000 synthetic CDRs (random prefixes of the 36,205-row ASTPP deck, 12-digit
  numbers, 20% unanswered, durations up to an hour) rated by `telbill.domain.batch`;
  CDRs/s and peak memory (Python allocations via tracemalloc, and the process's peak RSS).
* baseline: a straightforward per-CDR loop (dict of prefixes, Decimal arithmetic) on a
  sample, measured in the same run; the ratio batch/baseline is printed. The sample's costs
  are checked equal to the batch's, and a smaller sample is rated with `rate_event` too.
* tiered: the same deck with CGRateS-style rate groups and per-row rounding (every row gets
  a second group from 60 s at half its rate by the second; every other row rounds up to 4
  decimals), rated in batch and checked equal to `rate_event` on a sample.
* --stream N: N CDRs generated and rated in chunks (constant memory), reporting peak RSS.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

from telbill.domain.batch import CdrColumns, compile_batch  # noqa: E402
from telbill.domain.lookup import compile_tariff  # noqa: E402
from telbill.domain.money import to_micros  # noqa: E402
from telbill.domain.rating import rate_event  # noqa: E402
from telbill.domain.tariffs import (  # noqa: E402
    Increment,
    RateRow,
    RateTier,
    Tariff,
    TariffSettings,
)
from telbill.domain.usage import UsageEvent  # noqa: E402

DECK = next(
    (p / "shared" / "data" / "astpp-outbound-rates.csv" for p in Path(__file__).resolve().parents
     if (p / "shared" / "data" / "astpp-outbound-rates.csv").is_file()),
    Path("/work/shared/data/astpp-outbound-rates.csv"),
)
NUMBER_DIGITS = 12
START_S = int(datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp())


def read_deck(path: Path) -> Tariff:
    """ASTPP columns: prefix,destination,connect_fee,included_seconds,rate_per_minute,..."""
    with path.open(newline="") as handle:
        rows = tuple(
            RateRow(
                prefix=r["prefix"],
                destination=r["destination"],
                rate=Decimal(r["rate_per_minute"]),
                connect_fee=Decimal(r["connect_fee"]),
                free_seconds=int(r["included_seconds"]),
                increment=Increment(6, 6),
            )
            for r in csv.DictReader(handle)
        )
    return Tariff("astpp", TariffSettings("USD"), rows)


def with_tiers(tariff: Tariff) -> Tariff:
    """The deck with a second rate group (half price by the second from 60 s) on every row
    and its own rounding (up, 4 decimals) on every other row."""
    rows = tuple(
        replace(
            row,
            tiers=(RateTier(60, row.rate / 2, Increment(1, 1)),),
            decimals=4 if position % 2 else None,
            rounding="ROUND_UP" if position % 2 else None,
        )
        for position, row in enumerate(tariff.rows)
    )
    return replace(tariff, name="astpp-tiered", rows=rows)


def synthetic_cdrs(tariff: Tariff, count: int, seed: int) -> CdrColumns:
    rng = np.random.default_rng(seed)
    prefixes = [row.prefix for row in tariff.rows]
    prefix_int = np.array([int(p) for p in prefixes], dtype=np.int64)
    room = np.array([10 ** (NUMBER_DIGITS - len(p)) for p in prefixes], dtype=np.int64)
    pick = rng.integers(0, len(prefixes), size=count)
    tail = (rng.random(count) * room[pick]).astype(np.int64)
    number = prefix_int[pick] * room[pick] + tail
    answered = rng.random(count) >= 0.2
    duration = np.where(answered, rng.integers(1, 3600, size=count), 0).astype(np.int64)
    return CdrColumns(
        number=number,
        ndigits=np.full(count, NUMBER_DIGITS, dtype=np.int64),
        duration_s=duration,
        start_s=START_S + rng.integers(0, 86_400, size=count, dtype=np.int64),
    )


def baseline_loop(tariff: Tariff, cdrs: CdrColumns, count: int) -> tuple[list[int], float]:
    """The straightforward way: dict of prefixes, longest match by slicing, Decimal cost."""
    by_prefix = {row.prefix: row for row in tariff.rows}
    lengths = sorted({len(p) for p in by_prefix}, reverse=True)
    six = Decimal("0.000001")
    costs: list[int] = []
    numbers = [cdrs.digits(i) for i in range(count)]
    durations = cdrs.duration_s[:count].tolist()
    began = time.perf_counter()
    for number, duration in zip(numbers, durations, strict=True):
        row = None
        for length in lengths:
            row = by_prefix.get(number[:length])
            if row is not None:
                break
        if row is None or duration <= 0:
            costs.append(0)
            continue
        capped = min(duration, 3600) - row.free_seconds
        billed = 0 if capped <= 0 else 6 * -(-capped // 6)
        cost = (row.rate * billed / 60 + row.connect_fee).quantize(six, ROUND_HALF_UP)
        costs.append(int(cost * 1_000_000))
    return costs, time.perf_counter() - began


def rate_event_loop(index: object, cdrs: CdrColumns, count: int) -> tuple[list[int], float]:
    began = time.perf_counter()
    costs = []
    for i in range(count):
        event = UsageEvent(str(i), "bench", cdrs.digits(i),
                           datetime.fromtimestamp(int(cdrs.start_s[i]), UTC),
                           duration_s=int(cdrs.duration_s[i]))
        costs.append(to_micros(rate_event(event, index, labels=False).total))  # type: ignore[arg-type]
    return costs, time.perf_counter() - began


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_batch(count: int, sample: int, event_sample: int) -> None:
    began = time.perf_counter()
    tariff = read_deck(DECK)
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    index = compile_tariff(tariff)
    rater = compile_batch(index)
    compile_s = time.perf_counter() - began
    print(f"deck: {len(tariff.rows):,} rows read in {read_s:.2f} s, compiled in {compile_s:.2f} s")

    cdrs = synthetic_cdrs(tariff, count, seed=1)
    rater.rate(synthetic_cdrs(tariff, 1000, seed=2))  # warm-up
    began = time.perf_counter()
    result = rater.rate(cdrs)
    batch_s = time.perf_counter() - began
    batch_rate = count / batch_s
    began = time.perf_counter()
    threaded = rater.rate(cdrs, threads=2)
    threaded_s = time.perf_counter() - began
    same_threaded = bool(np.array_equal(threaded.cost_micros, result.cost_micros))

    tracemalloc.start()
    rater.rate(cdrs)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    baseline, baseline_s = baseline_loop(tariff, cdrs, sample)
    baseline_rate = sample / baseline_s
    same = baseline == result.cost_micros[:sample].tolist()
    events, events_s = rate_event_loop(index, cdrs, event_sample)
    same_events = events == result.cost_micros[:event_sample].tolist()

    total = int(result.cost_micros.sum())
    print(f"batch:    {count:>10,} CDRs in {batch_s:.3f} s = {batch_rate:>12,.0f} CDRs/s "
          f"(single process; {result.fallbacks} fell back to rate_event), "
          f"rating allocations peak {traced_peak / 2**20:.0f} MiB, total {total / 1e6:,.2f} USD")
    print(f"batch x2: {count:>10,} CDRs in {threaded_s:.3f} s = {count / threaded_s:>12,.0f} "
          f"CDRs/s (2 threads); same costs: {same_threaded}")
    print(f"baseline: {sample:>10,} CDRs in {baseline_s:.3f} s = {baseline_rate:>12,.0f} CDRs/s "
          f"(per-CDR Python loop, dict of prefixes, Decimal); costs equal batch: {same}")
    print(f"rate_event:{event_sample:>9,} CDRs in {events_s:.3f} s = "
          f"{event_sample / events_s:>12,.0f} CDRs/s (per-event path, labels off); "
          f"costs equal batch: {same_events}")
    print(f"ratio batch / baseline: {batch_rate / baseline_rate:,.0f}x; "
          f"peak RSS of this process {peak_rss_mb():.0f} MiB")
    tiered_index = compile_tariff(with_tiers(tariff))
    tiered_rater = compile_batch(tiered_index)
    began = time.perf_counter()
    tiered = tiered_rater.rate(cdrs)
    tiered_s = time.perf_counter() - began
    tiered_events, _ = rate_event_loop(tiered_index, cdrs, event_sample)
    same_tiered = tiered_events == tiered.cost_micros[:event_sample].tolist()
    print(f"tiered:   {count:>10,} CDRs in {tiered_s:.3f} s = {count / tiered_s:>12,.0f} CDRs/s "
          f"(two rate groups per row, per-row rounding; {tiered.fallbacks} fell back); "
          f"{tiered_s / batch_s:.2f}x the untiered time; costs equal rate_event: {same_tiered}")
    if not (same and same_events and same_threaded and same_tiered):
        raise SystemExit("batch costs differ from the per-CDR paths")


def run_stream(count: int, chunk: int, threads: int) -> None:
    tariff = read_deck(DECK)
    rater = compile_batch(compile_tariff(tariff))
    done, total_micros, billed_s = 0, 0, 0
    began = time.perf_counter()
    rating_s = 0.0
    seed = 10
    while done < count:
        size = min(chunk, count - done)
        cdrs = synthetic_cdrs(tariff, size, seed=seed)
        seed += 1
        t0 = time.perf_counter()
        result = rater.rate(cdrs, threads=threads)
        rating_s += time.perf_counter() - t0
        total_micros += int(result.cost_micros.sum())
        billed_s += int(result.billed_s.sum())
        done += size
        del cdrs, result
    wall = time.perf_counter() - began
    print(f"stream: {count:,} CDRs in chunks of {chunk:,}, {threads} thread(s): "
          f"rating {rating_s:.2f} s "
          f"({count / rating_s:,.0f} CDRs/s), wall incl. generation {wall:.2f} s; "
          f"total {total_micros / 1e6:,.2f} USD for {billed_s:,} billed s; "
          f"peak RSS {peak_rss_mb():.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (100,000 CDRs)")
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=100_000, help="baseline loop sample")
    parser.add_argument("--stream", type=int, default=0, help="stream N CDRs in chunks")
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2, help="threads in --stream mode")
    args = parser.parse_args()
    if args.stream:
        run_stream(args.stream, args.chunk, args.threads)
        return
    if args.quick:
        run_batch(100_000, 10_000, 1_000)
    else:
        run_batch(args.cdrs, min(args.sample, args.cdrs), min(10_000, args.cdrs))


if __name__ == "__main__":
    main()
