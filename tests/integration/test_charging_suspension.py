"""Zero balance: suspension and resume, hard cut-off disconnects, campaigns paused."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from charging_support import (  # noqa: F401
    World,
    build_world,
    cdr_line,
    key,
    paid,
    world_fixture,
    write_cdrs,
)
from sqlalchemy import select

from telbill.adapters.db import ledger_store
from telbill.adapters.db.tables import accounts as accounts_table
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.domain.money import to_micros
from telbill.errors import InsufficientBalance
from telbill.ledger import BucketKind
from telbill.services import (
    campaigns,
    charging,
    payments,
    sessions,
    suspension,
    thresholds,
    wallets,
)
from telbill.services.balances import balances_in
from telbill.services.events import list_events
from telbill.services.plans import TariffCache
from telbill.services.usage_debits import money_after

UK = "+447700900123"
US = "+15551234567"


def status(world: World) -> str:
    with world.db.transaction() as conn:
        return str(
            conn.execute(
                select(accounts_table.c.status).where(accounts_table.c.id == world.org.id)
            ).scalar_one()
        )


def post_calls(world: World, tmp_path: Path, *lines: str) -> None:
    path = write_cdrs(tmp_path / f"{key('f')}.csv", list(lines))
    charging.post_cdrs(world.db, read_cdr_file(path), clock=world.clock, source=str(path))


def authorize(world: World, to: str = US) -> sessions.Authorization:
    return sessions.authorize(
        world.db, TariffCache(world.db), account_id=world.user.id, to_number=to,
        idempotency_key=key("a"), clock=world.clock,
    )  # fmt: skip


def event_types(world: World) -> list[str]:
    return [e.type for e in list_events(world.db)]


@pytest.fixture
def small(db_url: str) -> World:
    return build_world(db_url, balance="1")


def test_prepaid_account_is_suspended_when_usage_takes_it_to_zero(
    small: World, tmp_path: Path
) -> None:
    post_calls(small, tmp_path, cdr_line("c1", UK, 100))  # 2 minutes = 1.20 of 1.00
    assert paid(small) == Decimal("-0.20")
    assert status(small) == "suspended"
    assert "account.suspended" in event_types(small)
    refused = authorize(small)
    assert not refused.allowed and refused.reason == "suspended"


def test_suspended_account_resumes_by_itself_after_a_top_up(
    small: World, tmp_path: Path
) -> None:
    post_calls(small, tmp_path, cdr_line("c1", UK, 100))
    wallets.top_up(small.db, small.org.id, "0.10", idempotency_key=key(), clock=small.clock)
    assert not authorize(small).allowed  # -0.10: still not above zero (the debt comes first)
    wallets.top_up(small.db, small.org.id, "5", idempotency_key=key(), clock=small.clock)
    assert authorize(small).allowed
    assert status(small) == "active"
    assert event_types(small).count("account.resumed") == 1


def test_top_up_hook_resumes_without_waiting_for_a_call(small: World, tmp_path: Path) -> None:
    post_calls(small, tmp_path, cdr_line("c1", UK, 100))
    wallets.top_up(small.db, small.org.id, "5", idempotency_key=key(), clock=small.clock)
    assert suspension.after_top_up(small.db, small.org.id, clock=small.clock)
    assert status(small) == "active"


def test_hard_cut_off_tells_every_active_call_to_disconnect_at_zero(
    small: World, tmp_path: Path
) -> None:
    call = authorize(small, US)  # holds the whole 1.00
    assert call.allowed
    post_calls(small, tmp_path, cdr_line("c1", UK, 100))  # a late CDR takes the balance below 0
    disconnects = [e for e in list_events(small.db) if e.type == "session.disconnect"]
    assert [e.payload["session_id"] for e in disconnects] == [call.session_id]
    assert call.session_id is not None
    update = sessions.update_session(small.db, call.session_id, elapsed_s=5, clock=small.clock)
    assert update.disconnect


def test_soft_cut_off_lets_active_calls_continue_at_zero(db_url: str, tmp_path: Path) -> None:
    soft = build_world(db_url, balance="1", cut_off="soft")
    call = authorize(soft, US)
    post_calls(soft, tmp_path, cdr_line("c1", UK, 100))
    assert "session.disconnect" not in event_types(soft)
    assert call.session_id is not None
    update = sessions.update_session(soft.db, call.session_id, elapsed_s=5, clock=soft.clock)
    assert not update.disconnect


def test_campaign_starts_only_with_a_positive_balance(db_url: str) -> None:
    empty = build_world(db_url, balance="0")
    with pytest.raises(InsufficientBalance):
        campaigns.start_campaign(empty.db, empty.user.id, "spring", clock=empty.clock)


def test_campaigns_are_paused_at_zero_and_do_not_resume_by_themselves(
    small: World, tmp_path: Path
) -> None:
    campaign = campaigns.start_campaign(small.db, small.user.id, "spring", clock=small.clock)
    post_calls(small, tmp_path, cdr_line("c1", UK, 100))
    paused = campaigns.get_campaign(small.db, campaign.id)
    assert (paused.status, paused.paused_reason) == ("paused", "zero_balance")
    assert "campaign.paused" in event_types(small)
    wallets.top_up(small.db, small.org.id, "5", idempotency_key=key(), clock=small.clock)
    authorize(small)  # the account resumes by itself...
    assert campaigns.get_campaign(small.db, campaign.id).status == "paused"  # ...campaigns not
    resumed = campaigns.resume_campaign(small.db, campaign.id, clock=small.clock)
    assert resumed.status == "running"


def test_payment_through_the_payments_service_resumes_the_account_at_once(
    small: World, tmp_path: Path
) -> None:
    post_calls(small, tmp_path, cdr_line("c1", UK, 100))
    assert status(small) == "suspended"
    payments.record_top_up(small.db, small.org.id, "5", idempotency_key=key(), clock=small.clock)
    assert status(small) == "active"
    assert event_types(small).count("account.resumed") == 1


def _every_payer_evaluated_in_full(
    conn: Any, payers: Any, _locked: Any, _taken: Any, now: datetime
) -> None:
    """CDR posting's hook before the fast path: the full rules for every payer."""
    suspension.enforce_zero_balance(conn, set(payers), now)


@pytest.mark.parametrize("hook", ["fast", "full"])
def test_cdr_chunks_crossing_or_not_a_level_emit_the_same_events_as_the_full_check(
    small: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: str
) -> None:
    if hook == "full":
        monkeypatch.setattr(charging, "_after_charges", _every_payer_evaluated_in_full)
    locked_checks: list[int] = []
    real_settings_in = thresholds.settings_in

    def settings_in(conn: Any, account_id: int) -> Any:
        locked_checks.append(account_id)  # read only by the full, locked evaluation
        return real_settings_in(conn, account_id)

    monkeypatch.setattr(thresholds, "settings_in", settings_in)
    checks = []
    for line in (
        cdr_line("c1", UK, 30),  # 0.60 of 1.00: 0.40 crosses the 0.5 level
        cdr_line("c2", US, 1),  # 0.002: 0.398, no level moves
        cdr_line("c3", UK, 60),  # 0.60: -0.202 crosses 0
    ):
        locked_checks.clear()
        post_calls(small, tmp_path, line)
        checks.append(len(locked_checks))
    org = small.org.id
    events = [
        (e.type, e.account_id, {k: v for k, v in e.payload.items() if k != "session_id"})
        for e in list_events(small.db)
        if e.type not in {"account.created", "wallet.topped_up"}
    ]
    low = {"currency": "USD", "account_name": "alpha"}
    assert events == [
        ("balance.low", org, {**low, "threshold": "fixed:0.5", "balance": "0.400000",
                              "level": "0.500000", "mode": "below"}),
        ("balance.zero", org, {**low, "threshold": "fixed:0", "balance": "-0.202000",
                               "level": "0.000000", "mode": "at_or_below"}),
        ("account.suspended", org, {"reason": "zero_balance", "balance_micros": -202_000}),
    ]  # fmt: skip
    assert [e.dedupe_key for e in list_events(small.db) if e.type.startswith("balance.")] == [
        f"threshold:{org}:fixed:0.5:0",
        f"threshold:{org}:fixed:0:0",
    ]
    # The chunk that moves no level reads the states once, without the locked evaluation.
    assert checks == ([1, 0, 1] if hook == "fast" else [1, 1, 1])


def test_money_after_a_chunk_is_what_the_balance_readers_read(
    world: World, tmp_path: Path
) -> None:
    call = authorize(world, US)  # a hold: counted in the balance, not in what is available
    assert call.allowed
    post_calls(world, tmp_path, cdr_line("c1", UK, 100), cdr_line("c2", US, 7))
    org, now = world.org.id, world.clock.now()
    with world.db.transaction() as conn:
        buckets = ledger_store.load_buckets(conn, [org])
        paid_bucket = next(b for b in buckets if b.kind is BucketKind.PAID and b.unit == "USD")
        balance = suspension.money_balance(conn, org, now)
        available = to_micros(balances_in(conn, org, now=now).unit("USD").available)
        assert balance - available > 0  # the hold
        assert money_after(buckets, {}, "USD", now) == (balance, available)
        taken = {paid_bucket.id: 1_500_000}
        assert money_after(buckets, taken, "USD", now) == (balance - 1_500_000,
                                                           available - 1_500_000)  # fmt: skip
