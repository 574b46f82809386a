"""Issue 17, rule 1, through the API as a provider sets it up: a call that costs nothing (a
free incoming call) is always allowed, even when other calls hold the whole balance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from telbill.domain.tariffs import Direction, Increment, RateRow, TariffSettings
from telbill.services import plans
from telbill.services.tariffs import import_tariff

World = Any  # tests/e2e/conftest.py's World

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def free_incoming_world(world: World) -> World:
    rows = [
        # 1.00 a minute by the second: an hour's call holds 60.00 of alpha's 100.00.
        RateRow("44", "United Kingdom", Decimal("1.00"), increment=Increment(1, 1)),
        RateRow("", "Incoming", Decimal("0"), direction=Direction.INBOUND),
    ]
    import_tariff(world.db, "free-in", rows, TariffSettings(currency="USD"),
                  now=START - timedelta(days=1))  # fmt: skip
    plans.create_plan(world.db, "free-in", tariff="free-in", clock=world.clock)
    plans.assign_plan(world.db, world.ids["acme"], "free-in", clock=world.clock)
    return world


def authorize(w: World, to: str, direction: str = "outbound") -> dict[str, Any]:
    answer = w.client.post(
        "/v1/sessions/authorize",
        json={"account_id": w.ids["alice"], "to": to, "direction": direction},
        headers=w.headers("alpha_switch"),
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_a_zero_priced_call_is_allowed_when_other_calls_hold_the_whole_balance(
    world: World,
) -> None:
    w = free_incoming_world(world)
    first, second = authorize(w, "+447700900123"), authorize(w, "+447700900124")
    assert (first["held"], second["held"]) == ("60.000000", "40.000000")
    refused = authorize(w, "+447700900125")
    assert (refused["allowed"], refused["reason"]) == (False, "insufficient_balance")

    free = authorize(w, "+442079460000", direction="inbound")
    assert free["allowed"] is True and free["reason"] is None
    assert (free["max_seconds"], Decimal(free["held"]), free["held_seconds"]) == (3600, 0, 0)
    ended = w.client.post(
        f"/v1/sessions/{free['session_id']}/end", json={"duration_s": 600},
        headers=w.headers("alpha_switch"),
    )  # fmt: skip
    assert ended.status_code == 200 and Decimal(ended.json()["charged"]) == 0
