"""Interim updates extend a call's hold near its limit; what a session end re-evaluates; the
per-process context cache never serves a plan this process has just replaced."""

from __future__ import annotations

from decimal import Decimal

from charging_support import (  # noqa: F401
    START,
    World,
    add_tariff,
    build_world,
    key,
    paid,
    retail_rows,
    world_fixture,
)
from sqlalchemy import func, select

from telbill.adapters.db.tables import hold_resolutions, holds
from telbill.services import plans, sessions, thresholds, wallets
from telbill.services.events import list_events
from telbill.services.plans import TariffCache
from telbill.services.reconcile import reconcile

UK = "+447700900123"  # 0.60/min in 60/60
US = "+15551234567"  # 0.12/min in 1/1


def authorize(world: World, to: str = UK) -> sessions.Authorization:
    decision = sessions.authorize(
        world.db, TariffCache(world.db), account_id=world.user.id, to_number=to,
        idempotency_key=key("auth"), clock=world.clock,
    )  # fmt: skip
    assert decision.allowed and decision.session_id is not None
    return decision


def update(world: World, session_id: int, elapsed_s: int) -> sessions.SessionView:
    world.clock.advance(seconds=elapsed_s)
    return sessions.update_session(world.db, session_id, elapsed_s=elapsed_s, clock=world.clock)


def end(world: World, session_id: int, duration_s: int) -> sessions.SessionView:
    return sessions.end_session(
        world.db, TariffCache(world.db), session_id, idempotency_key=key("end"),
        clock=world.clock, duration_s=duration_s,
    )  # fmt: skip


def available(world: World) -> Decimal:
    balances = wallets.get_balances(world.db, world.org.id, clock=world.clock)
    return balances.unit("USD").available


def open_holds(world: World) -> int:
    with world.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(holds)
                .where(
                    ~select(hold_resolutions.c.id)
                    .where(hold_resolutions.c.hold_id == holds.c.id)
                    .exists()
                )
            ).scalar_one()
        )


def top_up(world: World, amount: str) -> None:
    wallets.top_up(world.db, world.org.id, amount, idempotency_key=key("top"), clock=world.clock)


def test_update_near_the_limit_extends_the_hold_by_what_the_wallet_now_affords(
    world: World,
) -> None:
    call = authorize(world)  # 10.00: 16 minutes held (9.60), 0.40 left
    assert call.max_seconds == 960 and call.session_id is not None
    top_up(world, "6.00")  # 6.40 spendable: 10 more minutes
    view = update(world, call.session_id, 930)
    assert view.max_seconds == 26 * 60 and not view.disconnect
    assert available(world) == Decimal("0.40")  # 15.60 held for the call now
    assert reconcile(world.db).ok


def test_update_far_from_the_limit_leaves_the_hold_as_it_is(world: World) -> None:
    call = authorize(world)
    assert call.session_id is not None
    top_up(world, "6.00")
    view = update(world, call.session_id, 600)  # 360 s left: not near the limit
    assert view.max_seconds == 960 and not view.disconnect
    assert available(world) == Decimal("6.40")


def test_update_with_nothing_more_affordable_answers_disconnect_under_hard_cut_off(
    world: World,
) -> None:
    call = authorize(world)  # 0.40 left: not one more 60 s increment at 0.60/min
    assert call.session_id is not None
    view = update(world, call.session_id, 930)
    assert view.disconnect and view.max_seconds == 960
    assert available(world) == Decimal("0.40")


def test_an_extension_stops_at_the_maximum_call_length(db_url: str) -> None:
    world = build_world(db_url, balance="1")  # US: 1.00 at 0.12/min = 500 s
    try:
        call = authorize(world, US)
        assert call.max_seconds == 500 and call.session_id is not None
        top_up(world, "100")
        view = update(world, call.session_id, 480)
        assert view.max_seconds == 3600 and not view.disconnect
        assert available(world) == Decimal("101") - Decimal("7.20")  # 60 min at 0.12
    finally:
        world.db.dispose()


def test_an_extended_call_settles_from_its_extended_hold_and_releases_the_rest(
    world: World,
) -> None:
    call = authorize(world)
    assert call.session_id is not None
    top_up(world, "6.00")
    update(world, call.session_id, 930)
    ended = end(world, call.session_id, 1500)  # 25 minutes: 15.00, more than first held
    assert ended.charged == Decimal("15.00")
    assert paid(world) == Decimal("1.00") and available(world) == Decimal("1.00")
    assert open_holds(world) == 0
    assert reconcile(world.db).ok


def test_repeating_an_update_does_not_extend_twice(world: World) -> None:
    call = authorize(world)
    assert call.session_id is not None
    top_up(world, "20.00")  # 30.00 in all: 50 minutes
    first = update(world, call.session_id, 930)
    again = sessions.update_session(world.db, call.session_id, elapsed_s=930, clock=world.clock)
    assert first.max_seconds == again.max_seconds == 3000
    assert available(world) == Decimal("0")


def test_session_end_that_leaves_the_wallet_below_a_level_emits_balance_low(
    world: World,
) -> None:
    thresholds.set_settings(
        world.db, world.org.id, fixed_levels=["5"], spend_days=None, spend_window_days=None,
        now=START,
    )  # fmt: skip
    first = authorize(world)
    assert first.session_id is not None
    end(world, first.session_id, 61)  # 1.20: 8.80 left, above 5
    assert not list_events(world.db, types=["balance.low"])
    second = authorize(world)
    assert second.session_id is not None
    end(world, second.session_id, 300)  # 3.00: 5.80 left
    third = authorize(world)
    assert third.session_id is not None
    end(world, third.session_id, 60)  # 0.60: 5.20 left
    assert not list_events(world.db, types=["balance.low"])
    fourth = authorize(world)
    assert fourth.session_id is not None
    end(world, fourth.session_id, 60)  # 4.60 left: below 5
    events = list_events(world.db, types=["balance.low"])
    assert [Decimal(e.payload["balance"]) for e in events] == [Decimal("4.60")]


def test_session_ends_fire_again_after_a_rearm_and_evaluate_a_newly_set_level(
    world: World,
) -> None:
    # A session end reads settings and arm states once and writes only when a level crosses
    # (or was never stored): each crossing still fires once, whatever the states were.
    def call(seconds: int) -> None:
        end(world, authorize(world).session_id or 0, seconds)

    def lows() -> list[Decimal]:
        return [Decimal(e.payload["balance"]) for e in list_events(world.db, types=["balance.low"])]

    thresholds.set_settings(
        world.db, world.org.id, fixed_levels=["5"], spend_days=None, spend_window_days=None,
        now=START,
    )  # fmt: skip
    for seconds in (61, 300, 120):  # 1.20, 3.00, 1.20: 4.60 left, below 5
        call(seconds)
    assert lows() == [Decimal("4.60")]
    wallets.top_up(world.db, world.org.id, "10", idempotency_key=key("t"), clock=world.clock)
    world.db.run(lambda conn: thresholds.after_balance_change(conn, world.org.id, START))
    call(60)  # 14.00 left: above 5, re-armed, nothing fires
    assert lows() == [Decimal("4.60")]
    thresholds.set_settings(
        world.db, world.org.id, fixed_levels=["5", "13.50"], spend_days=None,
        spend_window_days=None, now=START,
    )  # fmt: skip
    call(60)  # 13.40 left: below the new level
    call(780)  # 5.60 left: above 5
    assert lows() == [Decimal("4.60"), Decimal("13.40")]
    call(60)  # 5.00 left: at 5 is not below it (issue 17, rule 9)
    assert lows() == [Decimal("4.60"), Decimal("13.40")]
    call(60)  # 4.40 left: below 5, fires again after the re-arm
    assert lows() == [Decimal("4.60"), Decimal("13.40"), Decimal("4.40")]


def test_a_plan_assigned_in_this_process_is_used_by_its_next_authorization(
    world: World,
) -> None:
    assert authorize(world).max_seconds == 960  # UK at 0.60/min
    add_tariff(world.db, "cheap", retail_rows(uk_rate="0.30"), START.replace(day=1))
    plans.create_plan(world.db, "cheap", tariff="cheap", clock=world.clock)
    plans.assign_plan(world.db, world.org.id, "cheap", clock=world.clock)
    # 0.40 left after the first call's hold: one minute at 0.30, none at 0.60.
    assert authorize(world).max_seconds == 60
