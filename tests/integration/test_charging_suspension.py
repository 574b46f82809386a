"""Zero balance: suspension and resume, hard cut-off disconnects, campaigns paused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from charging_support import (  # noqa: F401
    World,
    build_world,
    cdr_line,
    key,
    paid,
    write_cdrs,
)
from sqlalchemy import select

from telbill.adapters.db.tables import accounts as accounts_table
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.errors import InsufficientBalance
from telbill.services import campaigns, charging, payments, sessions, suspension, wallets
from telbill.services.events import list_events
from telbill.services.plans import TariffCache

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
