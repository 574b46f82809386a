"""Crash safety: `telbill cdr post` killed (SIGKILL) at random points, then re-run, charges
every CDR exactly once and leaves a ledger that reconciles.

The killed workers are forked processes running the CLI's `cdr post` command (forking keeps
the test fast: no interpreter start-up per kill); the final re-run is the real CLI.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from charging_support import build_world, cdr_line, key, paid, write_cdrs
from sqlalchemy import func, select

from telbill.adapters.db.charging_tables import charges
from telbill.services import wallets
from telbill.services.reconcile import reconcile

KILLS = 50
CDRS_PER_FILE = 30
ROOT = Path(__file__).resolve().parents[2]


def _post(path: str, url: str) -> None:
    from telbill.cli.main import app

    try:
        app(["cdr", "post", path, "--database", url, "--quiet", "--chunk-size", "10"])
    finally:
        os._exit(0)


@pytest.mark.slow
def test_cdr_post_killed_at_random_points_charges_each_cdr_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    world = build_world(db_url, balance="0")
    wallets.top_up(world.db, world.org.id, "1000000", idempotency_key=key(), clock=world.clock)
    world.db.dispose()
    rng = random.Random(4)
    files: list[Path] = []
    every_line: list[str] = []
    seconds_total = 0
    for round_ in range(KILLS):
        durations = [rng.randint(1, 300) for _ in range(CDRS_PER_FILE)]
        seconds_total += sum(durations)
        lines = [cdr_line(f"r{round_}-{n}", "+15551234567", d) for n, d in enumerate(durations)]
        files.append(write_cdrs(tmp_path / f"cdrs-{round_}.csv", lines))
        every_line += lines

    context = multiprocessing.get_context("fork")
    # Kill points are spread over how long one whole post takes on this machine, measured
    # here (a fixed window would let a fast machine finish before every kill).
    calibration = [cdr_line(f"cal-{n}", "+15551234567", 60) for n in range(CDRS_PER_FILE)]
    every_line += calibration
    seconds_total += 60 * CDRS_PER_FILE
    started = time.monotonic()
    worker = context.Process(
        target=_post, args=(str(write_cdrs(tmp_path / "cal.csv", calibration)), db_url)
    )
    worker.start()
    worker.join()
    window_s = max(time.monotonic() - started, 0.05)
    interrupted = 0
    for round_, path in enumerate(files):
        worker = context.Process(target=_post, args=(str(path), db_url))
        worker.start()
        time.sleep(rng.uniform(0.0, window_s))
        if worker.is_alive():
            os.kill(worker.pid or 0, signal.SIGKILL)
            interrupted += 1
        worker.join()
        # Re-post the previous file too: a crash may also hit a re-run.
        if round_ and rng.random() < 0.3:
            again = context.Process(target=_post, args=(str(files[round_ - 1]), db_url))
            again.start()
            time.sleep(rng.uniform(0.0, window_s))
            if again.is_alive():
                os.kill(again.pid or 0, signal.SIGKILL)
            again.join()
    assert interrupted >= KILLS // 4, "kills must land while workers are posting"

    # Re-run everything once, through the real command line, to completion.
    everything = write_cdrs(tmp_path / "all.csv", every_line)
    done = subprocess.run(
        [sys.executable, "-m", "telbill", "cdr", "post", str(everything), "--database", db_url,
         "--quiet"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
        check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    from telbill.adapters.db.engine import Database

    db = Database(db_url)
    world.db = db
    with db.transaction() as conn:
        count = conn.execute(select(func.count()).select_from(charges)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(charges.c.cdr_id)))).scalar_one()
        charged = conn.execute(select(func.sum(charges.c.amount_micros))).scalar_one()
    assert count == distinct == (KILLS + 1) * CDRS_PER_FILE
    expected = Decimal(seconds_total) * Decimal("0.12") / 60
    assert Decimal(charged) / 1_000_000 == expected
    assert paid(world) == Decimal("1000000") - expected
    assert reconcile(db).ok
