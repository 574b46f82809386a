"""Real-time sessions: authorise with a hold, end with the exact charge, sweep, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from charging_support import World, build_world, key, paid, world_fixture  # noqa: F401
from sqlalchemy import func, select

from telbill.adapters.db.tables import accounts as accounts_table
from telbill.adapters.db.tables import holds as holds_table
from telbill.services import sessions, wallets
from telbill.services.plans import TariffCache
from telbill.services.reconcile import reconcile

UK = "+447700900123"
US = "+15551234567"


def authorize(world: World, to: str = US, **kwargs: object) -> sessions.Authorization:
    return sessions.authorize(
        world.db, TariffCache(world.db), account_id=world.user.id, to_number=to,
        idempotency_key=key("auth"), clock=world.clock, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def end(world: World, session_id: int, duration_s: int) -> sessions.SessionView:
    return sessions.end_session(
        world.db, TariffCache(world.db), session_id, idempotency_key=key("end"),
        clock=world.clock, duration_s=duration_s,
    )  # fmt: skip


def available(world: World) -> Decimal:
    balances = wallets.get_balances(world.db, world.org.id, clock=world.clock)
    return next(b.available for b in balances.unit("USD").buckets if b.kind == "paid")


def test_max_seconds_is_what_the_balance_affords_at_the_matched_rate(world: World) -> None:
    decision = authorize(world, UK)
    # 10.00 at 0.60/min in 60/60 increments: 16 whole minutes.
    assert decision.allowed and decision.max_seconds == 16 * 60
    assert decision.held == Decimal("9.60")
    assert available(world) == Decimal("0.40")


def test_max_seconds_is_capped_by_the_plans_maximum_call_length(world: World) -> None:
    # 10.00 at 0.12/min would last 83 minutes; the default maximum is one hour.
    assert authorize(world, US).max_seconds == 3600


def test_call_time_package_seconds_count_towards_max_seconds(world: World) -> None:
    wallets.grant_credit(
        world.db, world.org.id, 300, kind="package", unit="s:call", idempotency_key=key(),
        clock=world.clock,
    )  # fmt: skip
    decision = authorize(world, UK)
    assert decision.max_seconds == 300 + 16 * 60 and decision.held_seconds == 300


def test_end_settles_the_exact_charge_and_releases_the_rest(world: World) -> None:
    decision = authorize(world, UK)
    assert decision.session_id is not None
    ended = end(world, decision.session_id, 61)
    assert ended.state == "ended" and ended.charged == Decimal("1.20")
    assert paid(world) == Decimal("8.80") and available(world) == Decimal("8.80")
    assert reconcile(world.db).ok


def test_simultaneous_authorizations_with_one_key_place_one_hold(world: World) -> None:
    # The key is checked before the wallet is locked: the losers of the race must be rolled
    # back (their holds with them) and replay the winner's answer.
    cache = TariffCache(world.db)

    def call(_: int) -> sessions.Authorization:
        return sessions.authorize(
            world.db, cache, account_id=world.user.id, to_number=UK,
            idempotency_key="one-call", clock=world.clock,
        )  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, range(4)))
    assert {a.session_id for a in answers} == {answers[0].session_id}
    assert answers[0].session_id is not None and answers[0].held == Decimal("9.60")
    assert available(world) == Decimal("0.40")  # one hold of 9.60, not four
    with world.db.transaction() as conn:
        assert conn.execute(select(func.count()).select_from(holds_table)).scalar_one() == 1
    assert reconcile(world.db).ok


def test_ending_twice_with_the_same_key_charges_once(world: World) -> None:
    decision = authorize(world, UK)
    assert decision.session_id is not None
    cache = TariffCache(world.db)
    for _ in range(2):
        sessions.end_session(
            world.db, cache, decision.session_id, idempotency_key="same", clock=world.clock,
            duration_s=30,
        )  # fmt: skip
    assert paid(world) == Decimal("9.40")


def test_concurrent_calls_never_spend_the_same_money_twice(world: World) -> None:
    first = authorize(world, UK)  # holds 9.60 of 10.00
    second = authorize(world, US)  # 0.40 left: 200 s at 0.12/min
    third = authorize(world, US)
    assert (first.max_seconds, second.max_seconds) == (960, 200)
    assert not third.allowed and third.reason == "insufficient_balance"


def test_suspended_account_is_refused(world: World) -> None:
    with world.db.transaction() as conn:
        conn.execute(
            accounts_table.update()
            .where(accounts_table.c.id == world.org.id)
            .values(status="closed")
        )
    decision = authorize(world, UK)
    assert not decision.allowed and decision.reason == "suspended"


def test_destination_without_rate_is_refused_with_no_rate(world: World) -> None:
    decision = authorize(world, "+861012345678")
    assert not decision.allowed and decision.reason == "no_rate"


@pytest.fixture
def local_only(db_url: str) -> Iterator[World]:
    built = build_world(db_url, allowed_call_classes=["local_extension", "incoming"])
    yield built
    built.db.dispose()


def test_call_class_not_in_the_plan_is_refused(local_only: World) -> None:
    decision = authorize(local_only, UK)
    assert not decision.allowed and decision.reason == "call_class_not_allowed"
    assert authorize(local_only, "2001").allowed


def test_empty_wallet_is_refused_with_insufficient_balance(db_url: str) -> None:
    empty = build_world(db_url, balance="0")
    decision = authorize(empty, UK)
    assert not decision.allowed and decision.reason == "insufficient_balance"


def test_sweeper_ends_silent_sessions_charging_what_was_reported(world: World) -> None:
    decision = authorize(world, US)
    assert decision.session_id is not None
    world.clock.advance(seconds=50)
    sessions.update_session(world.db, decision.session_id, elapsed_s=45, clock=world.clock)
    world.clock.advance(seconds=60)
    assert sessions.sweep_sessions(world.db, TariffCache(world.db), clock=world.clock,
                                   timeout_s=120) == []  # fmt: skip
    world.clock.advance(seconds=61)
    swept = sessions.sweep_sessions(
        world.db, TariffCache(world.db), clock=world.clock, timeout_s=120
    )
    assert swept == [decision.session_id]
    view = sessions.get_session(world.db, decision.session_id)
    assert view.end_reason == "swept" and view.billed_seconds == 45
    assert paid(world) == Decimal("9.91")  # 45 s at 0.12/min = 0.09
    assert reconcile(world.db).ok


def test_soft_cut_off_lets_a_call_finish_into_negative_balance(db_url: str) -> None:
    soft = build_world(db_url, balance="1", cut_off="soft")
    decision = authorize(soft, UK)
    assert decision.max_seconds == 3600 and decision.held == Decimal("1")
    assert decision.session_id is not None
    end(soft, decision.session_id, 300)  # 5 min at 0.60 = 3.00
    assert paid(soft) == Decimal("-2")
    with soft.db.transaction() as conn:
        status = conn.execute(
            select(accounts_table.c.status).where(accounts_table.c.id == soft.org.id)
        ).scalar_one()
    assert status == "suspended"
    assert reconcile(soft.db).ok


def test_hard_cut_off_never_charges_more_than_was_held(db_url: str) -> None:
    hard = build_world(db_url, balance="1")
    decision = authorize(hard, UK)
    assert decision.max_seconds == 60 and decision.session_id is not None
    end(hard, decision.session_id, 300)
    assert paid(hard) == Decimal("0.40")
