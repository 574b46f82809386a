"""Tariff storage on SQLite and PostgreSQL: exact round trip, immutable versions, diffs."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telbill.adapters.db.engine import Database, migrate
from telbill.domain.tariffs import (
    Direction,
    Increment,
    NumberType,
    RateRow,
    RateTier,
    RowError,
    Service,
    TariffSettings,
)
from telbill.errors import Conflict, InvalidInput, NotFound
from telbill.services.tariffs import (
    BadTariffRows,
    TariffSource,
    diff_versions,
    from_nanos,
    get_version,
    import_tariff,
    list_tariffs,
    list_versions,
    load_tariff,
    to_nanos,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
USD = TariffSettings("USD")

FULL_ROW = RateRow(
    prefix="4915",
    destination="Germany Mobile",
    rate=Decimal("0.123456789"),
    service=Service.VOICE,
    direction=Direction.OUTBOUND,
    number_type=NumberType.MOBILE,
    connect_fee=Decimal("0.000000001"),
    increment=Increment(30, 6),
    min_seconds=60,
    free_seconds=5,
    effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    effective_to=datetime(2027, 1, 1, tzinfo=UTC),
    weekdays=frozenset({1, 2, 3, 4, 5}),
    hours=(time(22), time(6)),
    tiers=(RateTier(60, Decimal("0.05"), Increment(1, 1)),),
    decimals=4,
    rounding="ROUND_UP",
)


@pytest.fixture
def db(db_url: str) -> Database:
    migrate(db_url)
    return Database(db_url)


def plain(prefix: str, rate: str, **kw: object) -> RateRow:
    return RateRow(prefix=prefix, destination=f"dest {prefix}", rate=Decimal(rate), **kw)  # type: ignore[arg-type]


def test_every_field_of_a_rate_row_round_trips_exactly(db: Database) -> None:
    rows = [FULL_ROW, plain("1", "0.0079"), plain("44", "0", service=Service.SMS)]
    settings = TariffSettings("EUR", Increment(1, 1), "Europe/Berlin", 4, "ROUND_HALF_EVEN", 7200)
    result = import_tariff(
        db, "retail", rows, settings, TariffSource("deck.csv", "ab" * 32, "native"), now=NOW
    )
    assert result.version.version == 1 and result.version.row_count == 3
    tariff = load_tariff(db, "retail")
    assert tariff.rows == tuple(rows)
    assert tariff.settings == settings
    stored = get_version(db, "retail")
    assert stored.source == TariffSource("deck.csv", "ab" * 32, "native")
    assert stored.created_at == NOW


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.decimals(min_value=0, max_value=10**9, places=9, allow_nan=False, allow_infinity=False))
def test_nano_unit_storage_keeps_every_rate_with_up_to_nine_decimals(rate: Decimal) -> None:
    assert from_nanos(to_nanos(rate)) == rate


def test_rate_with_ten_decimals_cannot_be_stored_silently() -> None:
    with pytest.raises(InvalidInput, match="9 decimals"):
        to_nanos(Decimal("0.0000000001"))


def test_reimporting_creates_a_new_version_and_keeps_the_old_one(db: Database) -> None:
    import_tariff(db, "retail", [plain("1", "0.01"), plain("44", "0.02")], USD, now=NOW)
    second = import_tariff(db, "retail", [plain("1", "0.015"), plain("33", "0.03")], USD, now=NOW)
    assert second.version.version == 2
    assert [v.version for v in list_versions(db, "retail")] == [1, 2]
    assert {r.prefix: r.rate for r in load_tariff(db, "retail", 1).rows} == {
        "1": Decimal("0.01"),
        "44": Decimal("0.02"),
    }
    assert load_tariff(db, "retail").version == 2


def test_a_new_version_cannot_change_the_tariffs_currency(db: Database) -> None:
    import_tariff(db, "retail", [plain("1", "0.01")], USD, now=NOW)
    with pytest.raises(Conflict, match="USD"):
        import_tariff(db, "retail", [plain("1", "0.01")], TariffSettings("EUR"), now=NOW)
    assert [v.version for v in list_versions(db, "retail")] == [1]


def test_diff_lists_added_removed_and_changed_rates(db: Database) -> None:
    import_tariff(db, "retail", [plain("1", "0.01"), plain("44", "0.02")], USD, now=NOW)
    import_tariff(db, "retail", [plain("1", "0.015"), plain("33", "0.03")], USD, now=NOW)
    diff = diff_versions(db, "retail", 1, 2)
    assert [r.prefix for r in diff.added] == ["33"]
    assert [r.prefix for r in diff.removed] == ["44"]
    [change] = diff.changed
    assert (change.before.rate, change.after.rate) == (Decimal("0.01"), Decimal("0.015"))


def test_the_version_in_force_is_chosen_by_its_effective_from(db: Database) -> None:
    import_tariff(db, "retail", [plain("1", "0.01")], USD, now=NOW)
    switch = datetime(2027, 1, 1, tzinfo=UTC)
    import_tariff(db, "retail", [plain("1", "0.02")], USD, now=NOW, effective_from=switch)
    assert load_tariff(db, "retail", at=datetime(2026, 12, 31, tzinfo=UTC)).version == 1
    assert load_tariff(db, "retail", at=switch).version == 2


def test_a_bad_row_imports_nothing_and_reports_every_bad_row(db: Database) -> None:
    stream: list[RateRow | RowError] = [
        plain("1", "0.01"),
        RowError(3, "rate is empty"),
        plain("44", "0.02"),
        RowError(5, "prefix must be digits"),
    ]
    with pytest.raises(BadTariffRows) as caught:
        import_tariff(db, "retail", stream, USD, now=NOW)
    assert [e.line for e in caught.value.errors] == [3, 5]
    assert list_tariffs(db) == []
    with pytest.raises(NotFound):
        load_tariff(db, "retail")


def test_skip_bad_imports_the_good_rows_and_returns_the_skipped(db: Database) -> None:
    stream: list[RateRow | RowError] = [plain("1", "0.01"), RowError(3, "rate is empty")]
    result = import_tariff(db, "retail", stream, USD, now=NOW, skip_bad=True)
    assert result.version.row_count == 1 and [e.line for e in result.skipped] == [3]


def test_list_shows_the_newest_version_of_each_tariff(db: Database) -> None:
    import_tariff(db, "b", [plain("1", "0.01")], USD, now=NOW)
    import_tariff(db, "a", [plain("1", "0.01")], USD, now=NOW)
    import_tariff(db, "a", [plain("1", "0.02")], USD, now=NOW)
    assert [(v.name, v.version) for v in list_tariffs(db)] == [("a", 2), ("b", 1)]


def test_invalid_settings_are_refused_before_anything_is_written(db: Database) -> None:
    for bad in (
        TariffSettings("XXX"),
        TariffSettings("USD", timezone="Mars/Olympus"),
        TariffSettings("USD", decimals=7),
        TariffSettings("USD", rounding="ROUND_SOMETIMES"),
    ):
        with pytest.raises(InvalidInput):
            import_tariff(db, "retail", [plain("1", "0.01")], bad, now=NOW)
    assert list_tariffs(db) == []


def test_a_large_deck_is_stored_in_chunks_and_read_back_in_order(db: Database) -> None:
    rows = [plain(str(10_000 + i), f"0.{i:05d}") for i in range(25_000)]
    result = import_tariff(db, "big", rows, USD, now=NOW)
    assert result.version.row_count == len(rows)
    assert load_tariff(db, "big").rows == tuple(rows)


def test_migration_0002_creates_the_tariff_tables_as_declared(db: Database) -> None:
    from sqlalchemy import inspect

    from telbill.adapters.db.tariff_tables import tariff_rates, tariffs

    inspector = inspect(db.engine)
    for table in (tariffs, tariff_rates):
        assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.c.keys())


def test_destination_names_are_found_per_prefix_version_and_rate_column_past_one_batch(
    db: Database,
) -> None:
    from telbill.services.tariffs import destination_names

    prefixes = [str(1000 + n) for n in range(1_200)]  # more than one query's 500 prefixes
    import_tariff(db, "retail", [plain(p, "0.01") for p in prefixes], USD, now=NOW)
    second = [plain("44", "0.02"), RateRow(prefix="44", destination="UK SMS",
                                           rate=Decimal("0.03"), service=Service.SMS)]  # fmt: skip
    import_tariff(db, "retail", second, USD, now=NOW)
    with db.engine.connect() as conn:
        names = destination_names(
            conn,
            [("retail", 1, p, "voice") for p in prefixes]
            + [("retail", 2, "44", "voice"), ("retail", 2, "44", "sms"),
               ("retail", 1, "44", "voice"), (None, 1, "1", "voice")],  # fmt: skip
            by=("service",),
        )
        assert len(names) == 1_200 + 2
        assert names[("retail", 1, "1999", "voice")] == "dest 1999"
        assert names[("retail", 2, "44", "voice")] == "dest 44"
        assert names[("retail", 2, "44", "sms")] == "UK SMS"
        assert ("retail", 1, "44", "voice") not in names  # not a prefix of version 1
        by_prefix = destination_names(conn, [("retail", 2, "44")])
        assert by_prefix == {("retail", 2, "44"): "UK SMS"}  # the smallest name of the prefix
