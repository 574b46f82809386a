"""Carrier cost per charge (margin): a markup plan stores the cost before its markup, a
fixed-price plan with a cost tariff is rated against that tariff too, any other charge has
an unknown cost (NULL, never 0); CDR batches (numpy batch rater and per event), session
ends and reratings all record it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from charging_support import (
    NATIVE_HEADER,
    START,
    World,
    add_tariff,
    build_world,
    cdr_line,
    key,
    retail_rows,
    write_cdrs,
)

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.domain.tariffs import Direction, Increment, RateRow, Service, TariffSettings
from telbill.errors import InvalidInput, NotFound
from telbill.services import campaigns, charging, plans, rerating, sessions
from telbill.services.plans import TariffCache
from telbill.services.reconcile import reconcile
from telbill.services.tariffs import import_tariff

UK, US, DE = "+447700900123", "+15551234567", "+4930123456"


def carrier_rows(*, with_us: bool = True) -> list[RateRow]:
    """The carrier's cost deck: cheaper than retail, US in 6/6 (retail bills US 1/1)."""
    rows = [
        RateRow("44", "United Kingdom", Decimal("0.40"), increment=Increment(60, 60)),
        RateRow("", "Inbound", Decimal("0.002"), direction=Direction.INBOUND,
                increment=Increment(1, 1)),
        RateRow("44", "UK SMS", Decimal("0.02"), service=Service.SMS),
    ]  # fmt: skip
    if with_us:
        rows.append(RateRow("1", "United States", Decimal("0.05"), increment=Increment(6, 6)))
    return rows


@pytest.fixture(name="fixed")
def fixed_world(db_url: str) -> Iterator[World]:
    """The charging world (fixed-price plan "retail") with the carrier's deck as its cost
    tariff."""
    world = build_world(db_url)
    add_tariff(world.db, "carrier", carrier_rows(), START - timedelta(days=1))
    plans.set_cost_tariff(world.db, "retail", "carrier")
    yield world
    world.db.dispose()


@pytest.fixture(name="markup")
def markup_world(db_url: str) -> Iterator[World]:
    """The charging world with "retail" as a cost tariff marked up by 50 %."""
    world = build_world(db_url, pricing="relative", markup_percent="50")
    yield world
    world.db.dispose()


@pytest.fixture(name="plain")
def plain_world(db_url: str) -> Iterator[World]:
    world = build_world(db_url)
    yield world
    world.db.dispose()


def post(world: World, path: Path) -> charging.PostSummary:
    return charging.post_cdrs(
        world.db, read_cdr_file(path, "native"), clock=world.clock, source=str(path)
    )


def rows_of(world: World) -> dict[tuple[str, str, int], tuple[int, int | None]]:
    """(CDR id, leg, revision) -> (amount, cost) in micro-units, as stored."""
    with world.db.read() as conn:
        found = conn.execute(
            sa.select(
                charges.c.cdr_id, charges.c.leg, charges.c.revision, charges.c.amount_micros,
                charges.c.cost_micros,
            )
        ).all()  # fmt: skip
    return {(r[0], r[1], r[2]): (int(r[3]), r[4]) for r in found}


def micros(text: str) -> int:
    return int(Decimal(text) * 1_000_000)


def test_markup_plan_charge_records_the_cost_before_its_markup(
    markup: World, tmp_path: Path
) -> None:
    post(markup, write_cdrs(tmp_path / "c.csv", [
        cdr_line("uk", UK, 61), cdr_line("us", US, 61),
        cdr_line("sms", UK, None, service="sms", segments="3"),
    ]))  # fmt: skip
    stored = rows_of(markup)
    # UK: 2 min at 0.60 = 1.20 cost, 1.80 price; US: 61 s at 0.12/min = 0.122 -> 0.183.
    assert stored[("uk", "call", 0)] == (micros("1.80"), micros("1.20"))
    assert stored[("us", "call", 0)] == (micros("0.183"), micros("0.122"))
    assert stored[("sms", "message", 0)] == (micros("0.225"), micros("0.15"))
    view = charging.get_charge(markup.db, 1)
    assert view.cost == Decimal("1.2") and view.amount == Decimal("1.8")
    assert reconcile(markup.db).ok


def test_fixed_plan_with_a_cost_tariff_records_what_the_carrier_deck_charges(
    fixed: World, tmp_path: Path
) -> None:
    post(fixed, write_cdrs(tmp_path / "c.csv", [
        cdr_line("uk", UK, 61), cdr_line("us", US, 61), cdr_line("missed", US, None),
        cdr_line("in", US, 42, direction="inbound"),
        cdr_line("sms", UK, None, service="sms", segments="3"),
    ]))  # fmt: skip
    stored = rows_of(fixed)
    # Retail prices, carrier costs with the carrier deck's own increments (US 6/6: 66 s).
    assert stored[("uk", "call", 0)] == (micros("1.20"), micros("0.80"))
    assert stored[("us", "call", 0)] == (micros("0.122"), micros("0.055"))
    assert stored[("missed", "call", 0)] == (0, 0)  # unanswered: known to cost nothing
    assert stored[("in", "call", 0)] == (micros("0.007"), micros("0.0014"))
    assert stored[("sms", "message", 0)] == (micros("0.15"), micros("0.06"))


def test_plan_without_cost_tariff_records_an_unknown_cost_never_zero(
    plain: World, tmp_path: Path
) -> None:
    post(plain, write_cdrs(tmp_path / "c.csv", [cdr_line("uk", UK, 61), cdr_line("m", US, None)]))
    stored = rows_of(plain)
    assert stored[("uk", "call", 0)] == (micros("1.20"), None)
    assert stored[("m", "call", 0)] == (0, None)
    assert charging.get_charge(plain.db, 1).cost is None


def test_destination_the_cost_tariff_does_not_price_has_an_unknown_cost(
    plain: World, tmp_path: Path
) -> None:
    add_tariff(plain.db, "carrier-uk", carrier_rows(with_us=False), START - timedelta(days=1))
    plans.set_cost_tariff(plain.db, "retail", "carrier-uk")
    post(plain, write_cdrs(tmp_path / "c.csv", [cdr_line("uk", UK, 61), cdr_line("us", US, 61)]))
    stored = rows_of(plain)
    assert stored[("uk", "call", 0)] == (micros("1.20"), micros("0.80"))
    assert stored[("us", "call", 0)] == (micros("0.122"), None)  # charged all the same


def test_cost_tariff_must_exist_and_be_in_the_currency_of_the_plans_tariff(
    plain: World,
) -> None:
    with pytest.raises(NotFound):
        plans.set_cost_tariff(plain.db, "retail", "nowhere")
    import_tariff(plain.db, "euro-carrier", carrier_rows(), TariffSettings(currency="EUR"),
                  now=START)  # fmt: skip
    with pytest.raises(InvalidInput, match="EUR"):
        plans.set_cost_tariff(plain.db, "retail", "euro-carrier")
    add_tariff(plain.db, "carrier", carrier_rows(), START)
    record = plans.create_plan(plain.db, "wholesale", tariff="retail", clock=plain.clock,
                               cost_tariff="carrier")  # fmt: skip
    assert record.plan.cost_tariff == "carrier"
    assert plans.set_cost_tariff(plain.db, "wholesale", None).plan.cost_tariff is None
    with plain.db.read() as conn:
        assert plans.get_plan(conn, "wholesale").plan.cost_tariff is None
        assert plans.get_plan(conn, "retail").plan.cost_tariff is None


def test_markup_plan_takes_no_separate_cost_tariff(markup: World) -> None:
    with pytest.raises(InvalidInput, match="markup"):
        plans.set_cost_tariff(markup.db, "retail", "retail")


class _NothingBatched:
    """Stands in for `CdrColumns`: every event goes to the per-event path."""

    @staticmethod
    def from_events(events: list[Any], **_: Any) -> tuple[None, list[int], list[int]]:
        return None, [], list(range(len(events)))


def _batch_lines(prefix: str) -> list[str]:
    destinations = [UK, US, DE, "1001", "+15550000"]
    lines = [
        cdr_line(f"{prefix}{n}", destinations[n % 5], [0, 1, 5, 59, 60, 61, 599, None][n % 8])
        for n in range(40)
    ]
    lines.append(cdr_line(f"{prefix}in", US, 42, direction="inbound"))
    return lines


def _costs(world: World, prefix: str) -> dict[str, tuple[int, int | None]]:
    return {
        f"{cdr[len(prefix):]}:{leg}": values
        for (cdr, leg, _), values in rows_of(world).items()
        if cdr.startswith(prefix)
    }


@pytest.mark.parametrize("pricing", ["fixed", "relative"])
def test_batch_costs_are_exactly_the_per_event_costs(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pricing: str
) -> None:
    plan: dict[str, object] = {"pricing": pricing}
    if pricing == "relative":
        plan["markup_percent"] = "37.5"
    world = build_world(db_url, balance="1000", **plan)
    try:
        if pricing == "fixed":
            add_tariff(world.db, "carrier", carrier_rows(), START - timedelta(days=1))
            plans.set_cost_tariff(world.db, "retail", "carrier")
        cost_raters: list[str] = []
        real = TariffCache.batch_rater

        def spy(self: TariffCache, name: str, version: int, plan: Any, *args: Any) -> Any:
            if plan is None:
                cost_raters.append(name)
            return real(self, name, version, plan, *args)

        monkeypatch.setattr(TariffCache, "batch_rater", spy)
        post(world, write_cdrs(tmp_path / "a.csv", _batch_lines("a")))
        assert cost_raters  # the costs went through the numpy batch rater
        with monkeypatch.context() as patch:
            patch.setattr(charging, "CdrColumns", _NothingBatched)
            post(world, write_cdrs(tmp_path / "b.csv", _batch_lines("b")))
        by_batch, by_event = _costs(world, "a"), _costs(world, "b")
        assert by_batch and by_batch == by_event
        assert any(cost for _, cost in by_batch.values())
        assert reconcile(world.db).ok
    finally:
        world.db.dispose()


def test_a_chunk_reads_its_calls_into_batch_columns_once_for_price_and_cost(
    fixed: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[int] = []
    real = charging.CdrColumns

    class Counted:
        @staticmethod
        def from_events(events: list[Any], **options: Any) -> Any:
            passes.append(len(events))
            return real.from_events(events, **options)

    monkeypatch.setattr(charging, "CdrColumns", Counted)
    summary = post(fixed, write_cdrs(tmp_path / "a.csv", _batch_lines("a")))
    assert (summary.posted, summary.quarantined) == (35, 6)  # answered to DE: no rate
    assert passes == [40]  # the 40 outbound calls, once (not again for their costs)
    costs = _costs(fixed, "a")
    assert sum(1 for _, cost in costs.values() if cost is not None) >= 30


def _end_call(world: World, to: str, seconds: int) -> int:
    cache = TariffCache(world.db)
    decision = sessions.authorize(
        world.db, cache, account_id=world.user.id, to_number=to,
        idempotency_key=key("auth"), clock=world.clock,
    )  # fmt: skip
    assert decision.session_id is not None
    ended = sessions.end_session(
        world.db, cache, decision.session_id, idempotency_key=key("end"), clock=world.clock,
        duration_s=seconds,
    )  # fmt: skip
    assert ended.charge_id is not None
    return ended.charge_id


def test_session_end_records_the_cost_tariffs_price_of_the_call(fixed: World) -> None:
    charge = charging.get_charge(fixed.db, _end_call(fixed, UK, 61))
    assert (charge.amount, charge.cost) == (Decimal("1.2"), Decimal("0.8"))


def test_session_end_of_a_markup_plan_records_the_cost_before_markup(markup: World) -> None:
    marked = charging.get_charge(markup.db, _end_call(markup, US, 61))
    assert (marked.amount, marked.cost) == (Decimal("0.183"), Decimal("0.122"))


def test_session_end_without_cost_tariff_records_an_unknown_cost(plain: World) -> None:
    assert charging.get_charge(plain.db, _end_call(plain, UK, 61)).cost is None


def _campaign_lines(cdr_id: str, to: str, seconds: int) -> str:
    header = NATIVE_HEADER.rstrip("\n") + ",speech_seconds,campaign\n"
    return header + cdr_line(cdr_id, to, seconds).rstrip("\n") + ",,spring\n"


def test_rerating_keeps_the_campaign_and_posts_the_cost_difference(
    markup: World, tmp_path: Path
) -> None:
    campaign = campaigns.start_campaign(markup.db, markup.user.id, "spring", clock=markup.clock)
    path = tmp_path / "c.csv"
    path.write_text(_campaign_lines("c1", UK, 61), encoding="utf-8")
    assert post(markup, path).posted == 1
    add_tariff(markup.db, "cheaper", retail_rows(uk_rate="0.30"), START - timedelta(days=1))
    period = {"start": START - timedelta(hours=1), "end": START + timedelta(hours=1)}
    summary = rerating.rerate(
        markup.db, markup.org.id, clock=markup.clock, tariff="cheaper", **period
    )
    assert summary.changed == 1
    stored = rows_of(markup)
    # Was 1.20 cost, 1.80 price; now 0.60 cost, 0.90 price: the revision holds both
    # differences, so each sums to its new value over the revisions.
    assert stored[("c1", "call", 1)] == (micros("-0.90"), micros("-0.60"))
    revision = charging.get_charge(markup.db, summary.charge_ids[0])
    assert revision.campaign_id == campaign.id
    assert charging.get_charge(markup.db, 1).campaign_id == campaign.id
    assert reconcile(markup.db).ok


def test_rerating_a_charge_of_unknown_cost_keeps_the_cost_unknown(
    plain: World, tmp_path: Path
) -> None:
    post(plain, write_cdrs(tmp_path / "c.csv", [cdr_line("c1", UK, 61)]))
    add_tariff(plain.db, "carrier", carrier_rows(), START - timedelta(days=1))
    plans.set_cost_tariff(plain.db, "retail", "carrier")
    add_tariff(plain.db, "cheaper", retail_rows(uk_rate="0.30"), START - timedelta(days=1))
    period = {"start": START - timedelta(hours=1), "end": START + timedelta(hours=1)}
    assert rerating.rerate(
        plain.db, plain.org.id, clock=plain.clock, tariff="cheaper", **period
    ).changed == 1
    # Revision 0 had no cost: a difference against it would be a guess.
    assert rows_of(plain)[("c1", "call", 1)] == (micros("-0.60"), None)


def test_migration_0015_adds_the_cost_columns_and_removes_them_on_downgrade(
    db_url: str,
) -> None:
    from ledger_support import alembic

    from telbill.adapters.db.engine import Database, migrate

    migrate(db_url)

    def columns() -> set[str]:
        database = Database(db_url)
        try:
            with database.engine.connect() as conn:
                inspector = sa.inspect(conn)
                return {c["name"] for c in inspector.get_columns("charges")} | {
                    f"plan.{c['name']}" for c in inspector.get_columns("charging_plans")
                }
        finally:
            database.dispose()

    assert {"cost_micros", "plan.cost_tariff"} <= columns()
    alembic(db_url, "downgrade", "0014")
    assert not {"cost_micros", "plan.cost_tariff"} & columns()
    alembic(db_url, "upgrade", "head")
    assert {"cost_micros", "plan.cost_tariff"} <= columns()
