"""Call-cost reports and period counters: totals equal the ledger's debits, months are cut
in the account's timezone, rows page and stream as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from charging_support import (  # noqa: F401  (fixture)
    START,
    World,
    add_tariff,
    cdr_line,
    paid,
    retail_rows,
    world_fixture,
    write_cdrs,
)

from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.errors import InvalidInput, NotFound
from telbill.services import accounts, counters, reports, rerating
from telbill.services.charging import post_cdrs


def post(world: World, tmp_path: Path, lines: list[str]) -> None:
    path = write_cdrs(tmp_path / f"c{len(list(tmp_path.iterdir()))}.csv", lines)
    events = read_cdr_file(path, "native")
    summary = post_cdrs(world.db, events, clock=world.clock, source=str(path))
    assert summary.quarantined == 0


def test_call_report_totals_equal_the_ledgers_debits_for_the_month(
    world: World, tmp_path: Path
) -> None:
    before = paid(world)
    post(world, tmp_path, [
        cdr_line("c1", "+447700900123", 61),
        cdr_line("c2", "+15551234567", 95, at=START + timedelta(hours=1)),
        cdr_line("c3", "+15551234567", 7, direction="inbound", at=START + timedelta(hours=2)),
    ])  # fmt: skip
    debited = before - paid(world)
    report = reports.call_report(world.db, world.org.id, "2026-03")
    (total,) = report.totals
    assert total.cost == debited and total.currency == "USD"
    assert total.calls == 3 == len(report.rows)
    assert total.billed_s == sum(r.billed_s for r in report.rows)
    uk = report.rows[0]
    assert (uk.number, uk.destination, uk.duration_s, uk.billed_s) == (
        "+447700900123", "United Kingdom", 61, 120,
    )  # fmt: skip
    assert uk.cost == Decimal("1.20")
    user_report = reports.call_report(world.db, world.user.id, "2026-03")
    assert user_report.totals == report.totals


def test_month_boundaries_follow_the_accounts_timezone(world: World, tmp_path: Path) -> None:
    tokyo = accounts.create_account(
        world.db, kind="user", name="kenji", parent_id=world.org.id, timezone="Asia/Tokyo",
        idempotency_key="kenji", clock=world.clock,
    )  # fmt: skip
    # 2026-03-31 16:00 UTC is 2026-04-01 01:00 in Tokyo; 2026-02-28 16:00 UTC is 1 March there.
    late = START.replace(day=31, hour=16)
    early = START.replace(month=2, day=28, hour=16)
    post(world, tmp_path, [
        cdr_line("t1", "+15551234567", 10, user="kenji", at=late),
        cdr_line("t2", "+15551234567", 20, user="kenji", at=early),
    ])  # fmt: skip
    march = reports.call_report(world.db, tokyo.id, "2026-03")
    april = reports.call_report(world.db, tokyo.id, "2026-04")
    assert [r.duration_s for r in march.rows] == [20]
    assert [r.duration_s for r in april.rows] == [10]
    assert march.rows[0].time.utcoffset() == timedelta(hours=9)
    # The organisation is on UTC: there the first call is in February, the second in March.
    org_march = reports.call_report(world.db, world.org.id, "2026-03")
    assert [r.duration_s for r in org_march.rows] == [10]


def test_call_rows_page_with_a_cursor_and_stream_as_csv(world: World, tmp_path: Path) -> None:
    post(world, tmp_path, [
        cdr_line(f"p{n}", "+15551234567", 10 + n, at=START + timedelta(minutes=n))
        for n in range(7)
    ])  # fmt: skip
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = reports.call_report(world.db, world.org.id, "2026-03", limit=3, cursor=cursor)
        seen += [r.duration_s for r in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [10 + n for n in range(7)]
    text = "".join(reports.call_csv_lines(world.db, world.org.id, "2026-03"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["duration_s"]) for r in rows] == seen
    report = reports.call_report(world.db, world.org.id, "2026-03")
    assert sum(Decimal(r["cost"]) for r in rows) == report.totals[0].cost


def test_period_counters_count_minutes_sms_and_unique_users(world: World, tmp_path: Path) -> None:
    accounts.create_account(
        world.db, kind="user", name="bob", parent_id=world.org.id,
        idempotency_key="bob", clock=world.clock,
    )  # fmt: skip
    post(world, tmp_path, [
        cdr_line("v1", "+15551234567", 90),
        cdr_line("v2", "+15551234567", 30, user="bob"),
        cdr_line("s1", "+447700900123", None, service="sms", segments="2"),
        cdr_line("old", "+15551234567", 600, at=START - timedelta(days=40)),
    ])  # fmt: skip
    found = counters.period_counters(world.db, world.org.id, now=START + timedelta(days=3))
    assert (found.period, found.calls, found.voice_s) == ("2026-03", 2, 120)
    assert found.minutes == Decimal("2.00")
    assert (found.sms, found.unique_users) == (2, 2)


def test_report_of_an_unknown_account_or_a_bad_month_is_refused(world: World) -> None:
    with pytest.raises(NotFound):
        reports.call_report(world.db, 999_999, "2026-03")
    with pytest.raises(InvalidInput):
        reports.call_report(world.db, world.org.id, "2026-13")
    with pytest.raises(NotFound):
        reports.call_csv_lines(world.db, 999_999, "2026-03")


def test_a_rerated_call_keeps_its_number_and_the_totals_follow_the_ledger(
    world: World, tmp_path: Path
) -> None:
    before = paid(world)
    post(world, tmp_path, [cdr_line("c1", "+447700900123", 61)])
    add_tariff(world.db, "cheap-uk", retail_rows(uk_rate="0.30"), START - timedelta(days=1))
    period = {"start": START - timedelta(hours=1), "end": START + timedelta(hours=1)}
    rerating.rerate(world.db, world.org.id, clock=world.clock, tariff="cheap-uk", **period)
    report = reports.call_report(world.db, world.org.id, "2026-03")
    (total,) = report.totals
    assert total.calls == 1 and total.cost == before - paid(world) == Decimal("0.60")
    assert total.billed_s == 120  # once: the rerating row repeats the units
    assert [r.number for r in report.rows] == ["+447700900123"] * 2
    assert [r.duration_s for r in report.rows] == [61, 61]


def test_csv_read_in_small_batches_has_the_rows_of_the_pages(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(world, tmp_path, [
        cdr_line(f"b{n}", "+447700900123" if n % 2 else "+15551234567", 10 + n,
                 at=START + timedelta(minutes=n))
        for n in range(5)
    ])  # fmt: skip
    add_tariff(world.db, "cheap-uk", retail_rows(uk_rate="0.30"), START - timedelta(days=1))
    period = {"start": START - timedelta(hours=1), "end": START + timedelta(hours=1)}
    rerating.rerate(world.db, world.org.id, clock=world.clock, tariff="cheap-uk", **period)
    monkeypatch.setattr(reports, "STREAM_BATCH", 2)
    export = reports.call_csv(world.db, world.org.id, "2026-03")
    rows = list(csv.DictReader(io.StringIO("".join(export))))
    paged = reports.call_report(world.db, world.org.id, "2026-03").rows
    assert export.rows == len(rows) == len(paged) == 7  # 5 calls, 2 reratings (UK)
    assert rows == [dict(zip(reports.CSV_HEADER, reports.csv_row(r), strict=True)) for r in paged]
    assert [r["destination"] for r in rows[:2]] == ["United States", "United Kingdom"]


def test_call_rows_are_in_call_time_order_whatever_order_they_were_posted(
    world: World, tmp_path: Path
) -> None:
    # Posted newest first, in two files, with two calls at the same instant: the report
    # (every page of it) and its CSV list them by call time, then by charge.
    times = [START + timedelta(hours=h) for h in (5, 3, 3, 1, 4, 0, 2)]
    post(world, tmp_path, [cdr_line(f"o{n}", "+15551234567", 10 + n, at=at)
                           for n, at in enumerate(times[:4])])  # fmt: skip
    post(world, tmp_path, [cdr_line(f"p{n}", "+15551234567", 30 + n, at=at)
                           for n, at in enumerate(times[4:])])  # fmt: skip
    pages, cursor = [], None
    while True:
        page = reports.call_report(world.db, world.org.id, "2026-03", limit=2, cursor=cursor)
        pages.append(page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    rows = [row for page in pages for row in page]
    assert [row.time for row in rows] == sorted(times)
    same = [row.charge_id for row in rows if row.time == START + timedelta(hours=3)]
    assert same == sorted(same) and len(same) == 2
    exported = list(csv.reader(io.StringIO("".join(reports.call_csv_lines(
        world.db, world.org.id, "2026-03")))))[1:]  # fmt: skip
    assert [int(line[0]) for line in exported] == [row.charge_id for row in rows]
    with pytest.raises(InvalidInput):
        reports.call_report(world.db, world.org.id, "2026-03", cursor="12")
