"""CDR posting of CGRateS constructs: a call over a band boundary under
`split_at_band_change` (the columnar and the per-event paths both charge the split price),
and data records charged by the byte."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

from charging_support import START, build_world, cdr_line, paid, retail_rows, write_cdrs
from sqlalchemy import select

from telbill.adapters.db.charging_tables import charges
from telbill.domain.tariffs import (
    SPLIT_AT_BAND_CHANGE,
    Increment,
    RateRow,
    Service,
    TariffSettings,
)
from telbill.services.cdr_workers import post_cdr_file
from telbill.services.tariffs import import_tariff

FRIDAY_BEFORE_SIX = datetime(2026, 2, 27, 17, 59, 29, tzinfo=UTC)  # answered 17:59:30


def test_a_call_over_six_pm_is_posted_at_the_split_price_on_both_paths(
    db_url: str, tmp_path: Path
) -> None:
    world = build_world(db_url)
    rows = [
        RateRow("44", "UK peak", Decimal("0.12"), increment=Increment(60, 60),
                weekdays=frozenset({1, 2, 3, 4, 5}), hours=(time(8), time(18))),
        RateRow("44", "UK off-peak", Decimal("0.06"), increment=Increment(60, 60)),
    ]  # fmt: skip
    settings = TariffSettings("USD", band_rule=SPLIT_AT_BAND_CHANGE)
    import_tariff(world.db, "retail", rows, settings, now=START)
    # 90 s from the start: the peak block (0.12) runs to 18:00:29, then off-peak 0.06
    line = cdr_line("c1", "+447700900123", 89, at=FRIDAY_BEFORE_SIX)
    columns = post_cdr_file(world.db, write_cdrs(tmp_path / "a.csv", [line]), workers=1)
    assert (columns.posted, columns.charged) == (1, {"USD": Decimal("0.18")})
    line = cdr_line("c2", "+447700900123", 89, at=FRIDAY_BEFORE_SIX)
    events = post_cdr_file(
        world.db, write_cdrs(tmp_path / "b.csv", [line]), workers=1, columnar=False
    )
    assert (events.posted, events.charged) == (1, {"USD": Decimal("0.18")})
    assert paid(world) == Decimal("10") - Decimal("0.36")
    world.db.dispose()


def test_data_cdrs_are_charged_by_the_byte_on_the_data_counter(db_url: str, tmp_path: Path) -> None:
    world = build_world(db_url)
    data = RateRow(
        "", "Data", Decimal("0.1"), service=Service.DATA, increment=Increment(10240, 10240),
        rate_unit=1_048_576,
    )  # fmt: skip
    import_tariff(world.db, "retail", [*retail_rows(), data], TariffSettings("USD"), now=START)
    at = START.isoformat()
    cdrs = tmp_path / "data.csv"
    cdrs.write_text(
        "id,account,user,direction,from,to,start,service,units\n"
        f"d1,alpha,alice,outbound,+15550001,+447700900123,{at},data,1000000\n"
        f"d2,alpha,alice,outbound,+15550001,+447700900123,{at},data,\n"
    )
    summary = post_cdr_file(world.db, cdrs, workers=1)
    # 98 x 10240 bytes at 0.1 per 1048576 bytes = 0.095703125, rounded half up: 0.095703;
    # the record without its bytes is quarantined
    assert (summary.posted, summary.quarantined) == (1, 1)
    assert summary.charged == {"USD": Decimal("0.095703")}
    with world.db.transaction() as conn:
        unit, billed = conn.execute(select(charges.c.unit, charges.c.billed_units)).one()
    assert (unit, billed) == ("B:data", 1_003_520)
    world.db.dispose()
