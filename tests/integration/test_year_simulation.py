"""A year of renewals, day by day: right dates, clean ledger, same ledger with two workers.

The issue's size: TELBILL_SIM_ACCOUNTS accounts, default 1,000 (any count from 124 = 31 days
x 4 behaviours of `year_simulation` up lets every behaviour meet every day of the month,
29th-31st included; `TELBILL_SIM_ACCOUNTS=124` for a quick run). Three processes tick the
year: a SQLite baseline and two PostgreSQL workers. Its cost is mostly per account
(outside events, renewals, thresholds, invoices) on top of a fixed cost per tick. Measured
on 2 cores shared with other work (6 Dec 2026): 210 s wall, 130 s CPU of the test's own
processes, the cores busy throughout; side by side in one run, 164 s CPU against 244 s
before the set-based month-end invoice run, per-day payment transactions and batched
debit look-ups. `benchmarks/year_simulation.py --accounts 1000` prints where the time goes.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

import year_simulation as sim
from telbill.services import scheduler
from telbill.services.reconcile import reconcile

ACCOUNTS = int(os.environ.get("TELBILL_SIM_ACCOUNTS", "1000"))

pytestmark = pytest.mark.slow


def test_year_of_daily_ticks_renews_suspends_and_releases_on_the_right_dates_and_two_workers_write_the_same_ledger_as_one(  # noqa: E501
    pg_url: str, tmp_path: Path
) -> None:
    baseline_url = f"sqlite:///{tmp_path / 'one-worker.db'}"
    sep = "&" if "?" in pg_url else "?"
    two_workers_url = f"{pg_url}{sep}options=-csynchronous_commit%3Doff"
    baseline = multiprocessing.get_context("spawn").Process(
        target=sim.run_year_in_child, args=(baseline_url, ACCOUNTS)
    )
    baseline.start()
    ids = sim.run_year(two_workers_url, ACCOUNTS, workers=2)
    baseline.join()
    assert baseline.exitcode == 0

    checked = sim.check_dates(two_workers_url, ids)
    assert checked["payers"] and checked["defaulters"] and checked["late_payers"]
    assert sim.check_dates(baseline_url, ids) == checked
    for url in (baseline_url, two_workers_url):
        report = reconcile(sim.open_database(url))
        assert report.ok, report
    assert sim.ledger_fingerprint(two_workers_url) == sim.ledger_fingerprint(baseline_url)


def test_set_based_renewals_write_the_same_dates_and_ledger_as_renewals_run_job_by_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_based = f"sqlite:///{tmp_path / 'set-based.db'}"
    job_by_job = f"sqlite:///{tmp_path / 'job-by-job.db'}"
    ids = sim.run_year(set_based, 31)
    monkeypatch.setattr(scheduler, "BATCHED_JOBS", frozenset())  # every job on its own
    assert sim.run_year(job_by_job, 31) == ids

    checked = sim.check_dates(job_by_job, ids)
    assert checked["payers"] and checked["defaulters"] and checked["late_payers"]
    assert sim.check_dates(set_based, ids) == checked
    assert sim.ledger_fingerprint(set_based) == sim.ledger_fingerprint(job_by_job)
