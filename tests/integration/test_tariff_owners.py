"""Tariffs per provider in the services (SQLite and PostgreSQL): the rating cache finds the
customer's provider's own tariff before the operator's, destination names come from the
provider's own tariffs, and a name keeps its purpose."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from telbill.adapters.db.engine import Database
from telbill.domain.tariffs import RateRow, TariffSettings
from telbill.errors import Conflict, InvalidInput, NotFound
from telbill.services import accounts
from telbill.services.clock import ManualClock
from telbill.services.plans import TariffCache
from telbill.services.tariffs import (
    Viewer,
    destination_names,
    import_tariff,
    list_tariffs,
    load_tariff,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def provider(db: Database, name: str) -> int:
    clock = ManualClock(NOW)
    return accounts.create_account(
        db, kind="provider", name=name, currency="USD", idempotency_key=name, clock=clock
    ).id


def deck(db: Database, name: str, destination: str, rate: str, owner: int | None, **kw) -> None:
    rows = [RateRow("44", destination, Decimal(rate))]
    import_tariff(db, name, rows, TariffSettings(currency="USD"), now=NOW, owner=owner, **kw)


def test_rating_takes_the_customers_providers_own_tariff_else_the_operators(db):
    a, b = provider(db, "a"), provider(db, "b")
    deck(db, "retail", "UK (operator)", "0.10", None)
    deck(db, "retail", "UK (A)", "0.06", a)
    cache = TariffCache(db)
    assert cache.at((a, "retail"), NOW).tariff.rows[0].destination == "UK (A)"
    assert cache.at((b, "retail"), NOW).tariff.rows[0].destination == "UK (operator)"
    assert cache.at("retail", NOW).tariff.rows[0].destination == "UK (operator)"
    deck(db, "a-only", "UK (A only)", "0.01", a)
    with pytest.raises(NotFound):
        cache.at((b, "a-only"), NOW)


def test_destination_names_come_from_the_providers_own_tariffs(db):
    a, b = provider(db, "a"), provider(db, "b")
    deck(db, "retail", "United Kingdom (A)", "0.06", a)
    deck(db, "retail", "United Kingdom (B)", "9.99", b)
    key = ("retail", 1, "44")
    with db.engine.connect() as conn:
        assert destination_names(conn, [key], provider=a) == {key: "United Kingdom (A)"}
        assert destination_names(conn, [key], provider=b) == {key: "United Kingdom (B)"}


def test_a_tariff_name_keeps_its_purpose_and_cost_decks_are_for_provider_admins(db):
    a = provider(db, "a")
    deck(db, "carrier", "UK carrier", "0.004", a, purpose="cost")
    with pytest.raises(Conflict):
        deck(db, "carrier", "UK carrier", "0.005", a)  # a retail version of a cost deck
    assert [t.name for t in list_tariffs(db, Viewer(a, costs=True))] == ["carrier"]
    assert list_tariffs(db, Viewer(a, costs=False)) == []
    with pytest.raises(NotFound):
        load_tariff(db, "carrier", viewer=Viewer(a, costs=False))
    with pytest.raises(NotFound):
        load_tariff(db, "carrier")  # the operator's catalogue has no such tariff


def test_a_customer_is_rated_with_its_providers_own_tariff_once_imported_and_old_charges_explain_as_rated(  # noqa: E501
    tmp_path, db_url
):
    import sqlalchemy as sa
    from charging_support import build_world, cdr_line, retail_rows, write_cdrs

    from telbill.adapters.db.charging_tables import charges
    from telbill.adapters.formats.cdrs import read_cdr_file
    from telbill.services import charging

    world = build_world(db_url, balance="100")  # the operator's "retail": UK 0.60/min
    try:

        def post(cdr_id: str) -> int:
            path = write_cdrs(tmp_path / f"{cdr_id}.csv", [cdr_line(cdr_id, "+447700900123", 60)])
            summary = charging.post_cdrs(
                world.db, read_cdr_file(path, "native"), clock=world.clock, source="t"
            )
            assert summary.posted == 1, summary
            with world.db.engine.connect() as conn:
                charge_id = conn.execute(
                    sa.select(charges.c.id).where(charges.c.cdr_id == cdr_id)
                ).scalar_one()
            return int(charge_id)

        def rate(charge_id: int) -> object:
            return charging.get_charge(world.db, charge_id).explanation["rate"]

        before = post("op-1")
        world.clock.advance(seconds=60)
        import_tariff(world.db, "retail", retail_rows(uk_rate="0.30"),
                      TariffSettings(currency="USD"), now=world.clock.now(),
                      owner=world.provider.id)  # fmt: skip
        world.clock.advance(seconds=60)
        after = post("own-1")
        # The old charge still explains with the operator's tariff it was rated with.
        assert (rate(before), rate(after)) == ("0.6", "0.3")
    finally:
        world.db.dispose()


def test_a_deck_value_too_long_for_postgresql_is_a_clear_error_and_imports_nothing(pg_url):
    db = Database(pg_url)
    try:
        rows = [RateRow("4" * 40, "UK", Decimal("0.1")), RateRow("1", "US", Decimal("0.1"))]
        with pytest.raises(InvalidInput, match="does not fit"):
            import_tariff(db, "long", rows, TariffSettings(currency="USD"), now=NOW)
        with pytest.raises(InvalidInput, match="does not fit"):
            import_tariff(db, "long", [RateRow("44", "x" * 300, Decimal("0.1"))],
                          TariffSettings(currency="USD"), now=NOW)  # fmt: skip
        assert list_tariffs(db) == []
    finally:
        db.dispose()
