"""CDR posting of a call over a band boundary under `split_at_band_change`: the columnar
and the per-event paths both charge the split price."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

from charging_support import START, build_world, cdr_line, paid, write_cdrs

from telbill.domain.tariffs import SPLIT_AT_BAND_CHANGE, Increment, RateRow, TariffSettings
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
