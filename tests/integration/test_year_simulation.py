"""A year of renewals, day by day: right dates, clean ledger, same ledger with two workers.

Scaled down from the issue's 1,000 accounts to fit the suite's budget: the test runs
TELBILL_SIM_ACCOUNTS accounts (default 62: a number bought on every day of the month twice,
29th-31st included, the four behaviours of `year_simulation` spread over them). With 124
(31 days x 4 behaviours, coprime) every behaviour meets every day of the month; it passes
too but costs about twice the CPU. `benchmarks/year_simulation.py --accounts 1000` runs the
full size and prints where the time goes.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

import year_simulation as sim
from telbill.services import scheduler
from telbill.services.reconcile import reconcile

ACCOUNTS = int(os.environ.get("TELBILL_SIM_ACCOUNTS", "62"))

pytestmark = pytest.mark.slow


def test_year_of_daily_ticks_renews_suspends_and_releases_on_the_right_dates_and_two_workers_write_the_same_ledger_as_one(  # noqa: E501
    pg_url: str, tmp_path: Path
) -> None:
    baseline_url = f"sqlite:///{tmp_path / 'one-worker.db'}"
    two_workers_url = pg_url + "%20-csynchronous_commit%3Doff"
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
