"""CGRateS MaxCost in real time: *disconnect ends the authorised call where its cost reaches
the cap; *free lets it run (the rest is free) and the end settles at most the cap."""

from __future__ import annotations

from decimal import Decimal

import pytest
from charging_support import World, build_world, key, paid  # noqa: F401

from telbill.domain.tariffs import Increment, RateRow, TariffSettings
from telbill.services import sessions
from telbill.services.plans import TariffCache
from telbill.services.tariffs import import_tariff

UK = "+447700900123"


def capped_world(db_url: str, strategy: str) -> World:
    world = build_world(db_url)
    row = RateRow(
        "44", "United Kingdom", Decimal("0.60"), increment=Increment(60, 60),
        max_cost=Decimal("1"), max_cost_strategy=strategy,
    )  # fmt: skip
    import_tariff(world.db, "retail", [row], TariffSettings("USD"), now=world.clock.now())
    return world


def authorize(world: World) -> sessions.Authorization:
    return sessions.authorize(
        world.db, TariffCache(world.db), account_id=world.user.id, to_number=UK,
        idempotency_key=key("auth"), clock=world.clock,
    )  # fmt: skip


def test_disconnect_max_cost_ends_the_authorised_call_at_the_cap(db_url: str) -> None:
    world = capped_world(db_url, "*disconnect")
    # 0.60 for the first minute, 1.20 (capped to 1) for the second: it runs, no third.
    decision = authorize(world)
    assert decision.allowed and decision.max_seconds == 120
    world.db.dispose()


@pytest.mark.parametrize("strategy", ["*free", "*disconnect"])
def test_a_capped_call_settles_at_most_the_max_cost(db_url: str, strategy: str) -> None:
    world = capped_world(db_url, strategy)
    decision = authorize(world)
    assert decision.session_id is not None
    if strategy == "*free":
        assert decision.max_seconds == 3600  # the cap keeps every length affordable
    ended = sessions.end_session(
        world.db, TariffCache(world.db), decision.session_id, idempotency_key=key("end"),
        clock=world.clock, duration_s=100,
    )  # fmt: skip
    assert ended.charged == Decimal("1")
    assert paid(world) == Decimal("9")
    world.db.dispose()
