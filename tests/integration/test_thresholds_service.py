"""Low-balance thresholds on a real database: events, dedupe keys, settings, spend-based."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from ledger_support import manual_clock, migrated_db  # noqa: F401 (fixtures)
from notify_support import funded_org, spend, top_up
from sqlalchemy import event, select

from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import accounts
from telbill.errors import InvalidInput
from telbill.services import holds, thresholds, wallets
from telbill.services.clock import ManualClock
from telbill.services.events import list_events


def fixed_only(db: Database, clock: ManualClock, account_id: int) -> None:
    """The default fixed levels without the spend-based threshold."""
    thresholds.set_settings(
        db,
        account_id,
        fixed_levels=["0.50", "0"],
        spend_days=None,
        spend_window_days=None,
        now=clock.now(),
    )


def types_of(db: Database, account_id: int) -> list[str]:
    return [e.type for e in list_events(db, account_ids=[account_id])]


def test_spending_below_half_a_unit_emits_one_balance_low(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "1.00")
    spend(db, clock, org.id, "0.60")
    spend(db, clock, org.id, "0.10")
    events = list_events(db, account_ids=[org.id])
    assert [e.type for e in events] == ["balance.low"]
    assert Decimal(events[0].payload["level"]) == Decimal("0.5")
    assert Decimal(events[0].payload["balance"]) == Decimal("0.40")


def test_reaching_zero_emits_balance_zero(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "1.00")
    spend(db, clock, org.id, "1.00")
    events = {e.payload["threshold"]: e.type for e in list_events(db, account_ids=[org.id])}
    assert events == {"fixed:0.5": "balance.low", "fixed:0": "balance.zero"}
    # The scheduler's check adds the spend-based warning: nothing lasts two days of spend.
    thresholds.check_all(db, clock.now())
    events = {e.payload["threshold"]: e.type for e in list_events(db, account_ids=[org.id])}
    assert events["spend:2:10"] == "balance.low"


def test_top_up_above_threshold_rearms_it_and_next_crossing_fires_again(
    db: Database, clock: ManualClock
):
    org = funded_org(db, clock, "1.00")
    fixed_only(db, clock, org.id)
    spend(db, clock, org.id, "0.70")
    top_up(db, clock, org.id, "0.10")  # 0.40: still below, no re-arm
    spend(db, clock, org.id, "0.05")
    top_up(db, clock, org.id, "5.00")  # 5.35: re-armed
    spend(db, clock, org.id, "5.00")  # 0.35: fires again
    events = list_events(db, account_ids=[org.id])
    assert [e.type for e in events] == ["balance.low", "balance.low"]
    assert [e.dedupe_key for e in events] == [
        f"threshold:{org.id}:fixed:0.5:0",
        f"threshold:{org.id}:fixed:0.5:1",
    ]


def test_evaluating_again_without_a_balance_change_emits_nothing(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "1.00")
    fixed_only(db, clock, org.id)
    spend(db, clock, org.id, "0.70")
    for _ in range(3):
        assert db.run(lambda c: thresholds.evaluate_thresholds(c, org.id, clock.now())) == []
    assert types_of(db, org.id) == ["balance.low"]


def test_usage_of_a_user_is_checked_against_its_payers_thresholds(db: Database, clock: ManualClock):
    from ledger_support import user

    org = funded_org(db, clock, "1.00")
    alice = user(db, clock, org)
    spend(db, clock, alice.id, "0.60")
    assert types_of(db, org.id) == ["balance.low"]


def test_custom_fixed_thresholds_replace_the_defaults(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "20.00")
    settings = thresholds.set_settings(
        db,
        org.id,
        fixed_levels=["10", "5.00"],
        spend_days=None,
        spend_window_days=None,
        now=clock.now(),
    )
    assert settings.fixed_levels == (Decimal("10"), Decimal("5"))
    spend(db, clock, org.id, "11.00")
    spend(db, clock, org.id, "5.00")
    events = list_events(db, account_ids=[org.id])
    assert [Decimal(e.payload["level"]) for e in events] == [10, 5]
    assert thresholds.get_settings(db, org.id).is_default is False


def test_bad_threshold_settings_are_refused_and_change_nothing(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "1.00")
    for kwargs in (
        {"fixed_levels": [0.5], "spend_days": None, "spend_window_days": None},
        {"fixed_levels": ["x"], "spend_days": None, "spend_window_days": None},
        {"fixed_levels": [], "spend_days": 2, "spend_window_days": None},
        {"fixed_levels": [], "spend_days": 0, "spend_window_days": 10},
    ):
        with pytest.raises(InvalidInput):
            thresholds.set_settings(db, org.id, now=clock.now(), **kwargs)
    assert thresholds.get_settings(db, org.id).is_default


def test_spend_based_threshold_warns_when_balance_lasts_less_than_two_days(
    db: Database, clock: ManualClock
):
    org = funded_org(db, clock, "100.00")
    thresholds.set_settings(
        db, org.id, fixed_levels=[], spend_days=2, spend_window_days=10, now=clock.now()
    )
    # 30.00 a day: after 2 days 60.00 spent, 6.00/day on average; 40.00 lasts longer.
    spend(db, clock, org.id, "30.00")
    clock.advance(days=1)
    spend(db, clock, org.id, "30.00")
    thresholds.check_all(db, clock.now())
    assert types_of(db, org.id) == []  # 40.00 left
    spend(db, clock, org.id, "29.00")  # 11.00 left: less than 2 days at 8.90/day
    assert types_of(db, org.id) == []  # the hook checks fixed levels only
    thresholds.check_all(db, clock.now())
    events = list_events(db, account_ids=[org.id])
    assert [e.type for e in events] == ["balance.low"]
    assert events[0].payload["threshold"] == "spend:2:10"


def test_scheduler_check_fires_spend_threshold_once_as_spend_and_time_move(
    db: Database, clock: ManualClock
):
    org = funded_org(db, clock, "10.00")
    thresholds.set_settings(
        db, org.id, fixed_levels=[], spend_days=2, spend_window_days=2, now=clock.now()
    )
    spend(db, clock, org.id, "4.00")  # 6.00 left, average 2.00/day over 2 days: lasts 3 days
    thresholds.check_all(db, clock.now())
    assert types_of(db, org.id) == []
    clock.advance(timedelta(days=3))  # the spend left the window: no answer, no event
    thresholds.check_all(db, clock.now())  # (the empty provider wallet gets its own events)
    spend(db, clock, org.id, "3.00")  # 3.00 left at 1.50/day: lasts 2 days, not less
    assert thresholds.check_all(db, clock.now()) == 0
    assert types_of(db, org.id) == []
    clock.advance(timedelta(hours=1))
    spend(db, clock, org.id, "0.10")
    assert thresholds.check_all(db, clock.now()) == 1
    assert types_of(db, org.id) == ["balance.low"]
    assert thresholds.check_all(db, clock.now()) == 0
    assert types_of(db, org.id) == ["balance.low"]


def _population(db: Database, clock: ManualClock) -> list[int]:
    """Wallets in every situation the check meets: rich, poor, empty, already fired,
    custom levels, spend-only, no thresholds, a user without a wallet, free credit that
    expires, money on hold, a postpaid wallet below zero."""
    from ledger_support import organisation, provider, user

    p = provider(db, clock, vat_rate="0")
    orgs = [organisation(db, clock, p) for _ in range(11)]
    user(db, clock, orgs[0])
    amounts = ["50", "0.45", "0", "2", "8", "1", "3", "0.2", "20", "0.6", "9"]
    for org, amount in zip(orgs, amounts, strict=True):
        if amount != "0":
            top_up(db, clock, org.id, amount)
    spend(db, clock, orgs[3].id, "1.60")  # 0.40 left: fired by the hook already
    thresholds.set_settings(
        db, orgs[4].id, fixed_levels=["5", "1"], spend_days=None, spend_window_days=None,
        now=clock.now(),
    )  # fmt: skip
    thresholds.set_settings(
        db, orgs[5].id, fixed_levels=[], spend_days=3, spend_window_days=3, now=clock.now()
    )
    thresholds.set_settings(
        db, orgs[6].id, fixed_levels=[], spend_days=None, spend_window_days=None, now=clock.now()
    )
    wallets.grant_credit(
        db, orgs[7].id, "3", kind="free", idempotency_key="free-7", clock=clock,
        expires_at=clock.now() + timedelta(days=2),
    )  # fmt: skip
    return [org.id for org in orgs]


def _spend_more(db: Database, clock: ManualClock, orgs: list[int]) -> None:
    for org in orgs[5], orgs[9], orgs[10]:
        spend(db, clock, org, "0.50")


def _hold(db: Database, clock: ManualClock, org: int) -> int:
    return holds.hold(
        db, org, "19.70", service="voice", idempotency_key="hold-8", clock=clock,
        expires_at=clock.now() + timedelta(days=30),
    ).id  # fmt: skip


def _observed(conn: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    from telbill.adapters.db.event_tables import events
    from telbill.adapters.db.notify_tables import threshold_states

    found = sorted(
        (e.type, e.account_id, e.dedupe_key, json.dumps(e.payload, sort_keys=True))
        for e in conn.execute(select(events).where(events.c.dedupe_key.like("threshold:%")))
    )
    states = sorted(
        (s.account_id, s.threshold_key, s.armed, s.generation)
        for s in conn.execute(select(threshold_states))
    )
    return found, states


def _one_by_one_then_rolled_back(db: Database, now: Any) -> tuple[int, Any]:
    """What the per-wallet check would write now (its transaction is rolled back)."""
    with db.engine.connect() as conn:
        outer = conn.begin()
        ids = conn.scalars(
            select(accounts.c.id)
            .where(accounts.c.has_wallet.is_(True), accounts.c.status != "closed")
            .order_by(accounts.c.id)
        ).all()
        written = sum(len(thresholds.evaluate_thresholds(conn, a, now)) for a in ids)
        observed = _observed(conn)
        outer.rollback()
    return written, observed


def test_batched_check_writes_the_same_states_and_events_as_checking_each_wallet_alone(
    db: Database, clock: ManualClock
):
    orgs = _population(db, clock)
    hold_id = _hold(db, clock, orgs[8])
    _spend_more(db, clock, orgs)
    rounds, total = 0, 0
    for step in range(5):
        expected_written, expected = _one_by_one_then_rolled_back(db, clock.now())
        written = thresholds.check_all(db, clock.now())
        with db.transaction() as conn:
            assert (written, _observed(conn)) == (expected_written, expected), step
        rounds, total = rounds + bool(written), total + written
        if step == 4:
            break
        # Time and money move: credit expires, spend ages, a hold goes, money comes and goes.
        clock.advance(timedelta(days=1, hours=6))
        if step == 1:
            holds.void(db, hold_id, idempotency_key="void-8", clock=clock)
        top_up(db, clock, orgs[3], "5")
        spend(db, clock, orgs[10], "2.00")
        spend(db, clock, orgs[4], "1.50")
    assert rounds >= 2 and total >= 4  # the batch itself fired, not only the hooks
    assert thresholds.check_all(db, clock.now()) == 0


def test_batched_check_reads_every_wallet_in_a_constant_number_of_queries(
    db: Database, clock: ManualClock
):
    orgs = _population(db, clock)
    _hold(db, clock, orgs[8])
    statements: list[str] = []
    with db.transaction() as conn:
        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        thresholds.wallets_to_update(conn, clock.now())
    few = len(statements)
    for _ in range(5):
        funded_org(db, clock, "3")
    statements.clear()
    with db.transaction() as conn:
        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        thresholds.wallets_to_update(conn, clock.now())
    assert len(statements) == few <= 6
