"""CGRateS imports stored and loaded back on SQLite and PostgreSQL: calendar timings, MaxCost
and the matching settings survive storage exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from telbill.adapters.db.engine import Database
from telbill.adapters.formats.cgrates import read_cgrates_folder
from telbill.domain.tariffs import TariffSettings
from telbill.services.tariffs import import_tariff, load_tariff

DATA = Path(__file__).resolve().parents[1] / "data" / "cgrates"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("folder", ["caps_calendar", "constructs", "units"])
def test_cgrates_rows_and_settings_round_trip_through_storage(db_url: str, folder: str) -> None:
    db = Database(db_url)
    plan = read_cgrates_folder(DATA / folder)
    assert plan.errors == []
    for name, rows in plan.tariffs.items():
        settings = plan.settings_for(name, TariffSettings("EUR"))
        import_tariff(db, name, rows, settings, now=NOW)
        stored = load_tariff(db, name)
        assert stored.settings == settings
        assert list(stored.rows) == rows
