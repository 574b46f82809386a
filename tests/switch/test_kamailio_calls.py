"""Real calls through Kamailio into telbill (issue 13): authorise, cut, settle, refuse."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from switch_world import PER_SECOND, Switch

from telbill.adapters.db.charging_tables import sessions

CALLED = "15550001234"
# one worker runs this module (make test: --dist loadgroup): two stacks at a time, not four
pytestmark = pytest.mark.xdist_group("switch")


def session_of(switch: Switch, call_id: str) -> Any:
    with switch.catalogue.db.engine.connect() as conn:
        return conn.execute(sa.select(sessions).where(sessions.c.call_id == call_id)).one()


def test_a_prepaid_call_is_cut_at_max_seconds_on_both_legs_and_charged_the_tariff_price(
    switch: Switch,
) -> None:
    customer = switch.catalogue.new_customer("0.03")  # 3 seconds at 0.01
    (call,) = switch.stack.place_calls(customer.user_id, CALLED, hang_up_after_ms=15_000)
    assert call.final_status == 200
    answered, caller_bye, callee_bye = (
        call.answered_at,
        call.bye_to("caller"),
        call.bye_to("callee"),
    )
    assert answered is not None and caller_bye is not None and callee_bye is not None
    assert call.bye_from("caller") is None, "the caller never hung up: Kamailio did"
    # Kamailio's dialog timer ticks once a second, and the BYEs follow telbill's answer to the
    # end report (a loaded machine: a few hundred ms)
    assert 3 - 1 < caller_bye - answered < 3 + 1.5
    assert abs(callee_bye - caller_bye) < 1
    row = session_of(switch, call.call_id)
    assert row.state == "ended" and row.max_seconds == 3
    assert row.billed_seconds in (2, 3)
    assert Decimal(row.charged_micros) / 1_000_000 == PER_SECOND * row.billed_seconds
    assert (
        switch.catalogue.paid_balance(customer) == Decimal("0.03") - PER_SECOND * row.billed_seconds
    )
    assert switch.catalogue.held(customer) == 0


def charges_of(switch: Switch, account_id: int) -> int:
    from telbill.adapters.db.charging_tables import charges

    with switch.catalogue.db.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(charges)
        return int(conn.execute(query.where(charges.c.account_id == account_id)).scalar_one())


def test_a_caller_hang_up_before_max_seconds_is_charged_its_real_duration_and_the_hold_released(
    switch: Switch,
) -> None:
    customer = switch.catalogue.new_customer("1.00")  # 100 seconds
    (call,) = switch.stack.place_calls(customer.user_id, CALLED, hang_up_after_ms=2_000)
    assert call.final_status == 200 and call.bye_from("caller") is not None
    assert call.bye_to("callee") is not None, "the caller's BYE reached the callee"
    row = session_of(switch, call.call_id)
    assert row.state == "ended" and row.max_seconds == 100
    assert row.billed_seconds in (2, 3)
    charged = PER_SECOND * row.billed_seconds
    assert Decimal(row.charged_micros) / 1_000_000 == charged
    assert switch.catalogue.paid_balance(customer) == Decimal("1.00") - charged
    assert switch.catalogue.held(customer) == 0


def test_insufficient_balance_is_refused_with_402_before_the_callee_rings_and_nothing_charged(
    switch: Switch,
) -> None:
    customer = switch.catalogue.new_customer("0.001")  # less than one second
    (call,) = switch.stack.place_calls(customer.user_id, CALLED)
    assert call.final_status == 402
    assert call.messages is not None
    assert "X-Telbill-Reason: insufficient_balance" in call.messages.read_text("latin-1")
    assert not call.callee_rang
    assert switch.catalogue.paid_balance(customer) == Decimal("0.001")
    assert switch.catalogue.held(customer) == 0
    assert charges_of(switch, customer.user_id) == 0


def test_a_suspended_account_is_refused_with_403_before_the_callee_rings_and_nothing_charged(
    switch: Switch,
) -> None:
    import uuid

    from telbill.services import accounts
    from telbill.services.clock import SystemClock

    customer = switch.catalogue.new_customer("1.00")
    # the caller's own account (a wallet suspended with money in it resumes at the next call:
    # services.suspension)
    accounts.set_status(
        switch.catalogue.db, customer.user_id, "suspended", idempotency_key=uuid.uuid4().hex,
        clock=SystemClock(),
    )  # fmt: skip
    (call,) = switch.stack.place_calls(customer.user_id, CALLED)
    assert call.final_status == 403
    assert call.messages is not None
    assert "X-Telbill-Reason: suspended" in call.messages.read_text("latin-1")
    assert not call.callee_rang
    assert switch.catalogue.paid_balance(customer) == Decimal("1.00")
    assert charges_of(switch, customer.user_id) == 0


def test_two_concurrent_calls_share_one_wallet_the_second_is_offered_what_is_left(
    switch: Switch,
) -> None:
    customer = switch.catalogue.new_customer("0.08", plan="prepaid-5s")  # 5 s, then 3 s
    calls = switch.stack.place_calls(
        customer.user_id, CALLED, calls=2, rate_per_s=5, hang_up_after_ms=15_000
    )
    assert [c.final_status for c in calls] == [200, 200]
    rows = sorted((session_of(switch, c.call_id) for c in calls), key=lambda r: r.id)
    assert [r.max_seconds for r in rows] == [5, 3]
    for call, row in zip(sorted(calls, key=lambda c: c.answered_at or 0), rows, strict=True):
        assert call.bye_to("caller") is not None and call.bye_to("callee") is not None
        assert call.bye_from("caller") is None
        assert row.state == "ended" and row.billed_seconds <= row.max_seconds
        assert Decimal(row.charged_micros) / 1_000_000 == PER_SECOND * row.billed_seconds
    spent = PER_SECOND * sum(r.billed_seconds for r in rows)
    assert switch.catalogue.paid_balance(customer) == Decimal("0.08") - spent >= 0
    assert switch.catalogue.held(customer) == 0


def test_a_wallet_emptied_by_a_cdr_disconnects_a_running_hard_cut_off_call_through_kamailio(
    switch: Switch,
) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    import httpx

    stack = switch.stack
    customer = switch.catalogue.new_customer("1.00")  # 100 seconds
    caller = stack.place_calls(customer.user_id, CALLED, hang_up_after_ms=30_000, background=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with switch.catalogue.db.engine.connect() as conn:
            active = conn.execute(
                sa.select(sessions.c.call_id).where(sessions.c.account_id == customer.user_id)
            ).first()
        if active is not None:
            break
        time.sleep(0.2)
    assert active is not None, "the call was authorised"
    time.sleep(1.5)  # answered and running
    start = datetime.now(UTC) - timedelta(minutes=10)
    cdr = {
        "id": f"cdr-{customer.user_id}", "account": str(customer.user_id), "to": "+15550009999",
        "start": start.isoformat(), "answer": start.isoformat(),
        "end": (start + timedelta(seconds=200)).isoformat(),
    }  # fmt: skip
    posted = httpx.post(
        f"{stack.telbill_url}/v1/cdrs",
        json={"source": "other-switch", "cdrs": [cdr]},
        headers={
            "Authorization": f"Bearer {stack.env['TELBILL_SWITCH_API_KEY']}",
            "Idempotency-Key": cdr["id"],
        },
        timeout=10,
    )
    assert posted.status_code == 200 and posted.json()["posted"] == 1, posted.text
    posted_at = time.time()
    (call,) = stack.collect(caller)  # type: ignore[arg-type]
    caller_bye, callee_bye = call.bye_to("caller"), call.bye_to("callee")
    assert caller_bye is not None and callee_bye is not None, "Kamailio hung up both legs"
    assert call.bye_from("caller") is None
    assert caller_bye - posted_at < 5, "pushed within a few seconds (telbill serve: every 1 s)"
    row = session_of(switch, call.call_id)
    answered = call.answered_at
    assert answered is not None and row.state == "ended"
    # whole seconds, rounded down, from Kamailio's view of the answer (a loaded machine may
    # see it a little after the caller did)
    lasted = caller_bye - answered
    assert lasted - 1.5 < row.billed_seconds <= lasted
    assert Decimal(row.charged_micros) / 1_000_000 == PER_SECOND * row.billed_seconds
    assert switch.catalogue.held(customer) == 0


def test_kamailio_fails_closed_with_503_when_telbill_is_unreachable(
    switch: Switch, tmp_path: Path
) -> None:
    from switch_stack import running_stack

    customer = switch.catalogue.new_customer("1.00")
    with running_stack(
        tmp_path, switch.stack.database_url, switch.catalogue.provider_id,
        telbill=False, register=False,
    ) as alone:  # fmt: skip
        (call,) = alone.place_calls(customer.user_id, CALLED)
    assert call.final_status == 503
    assert not call.callee_rang
    assert switch.catalogue.paid_balance(customer) == Decimal("1.00")


def test_a_top_up_during_a_call_extends_it_through_kamailios_interim_update(
    switch: Switch,
) -> None:
    import time
    import uuid

    from telbill.services import wallets
    from telbill.services.clock import SystemClock

    customer = switch.catalogue.new_customer("0.05")  # 5 seconds
    caller = switch.stack.place_calls(
        customer.user_id, CALLED, hang_up_after_ms=8_000, background=True
    )
    deadline, row = time.monotonic() + 15, None
    while row is None and time.monotonic() < deadline:
        with switch.catalogue.db.engine.connect() as conn:
            row = conn.execute(
                sa.select(sessions).where(sessions.c.account_id == customer.user_id)
            ).first()
        time.sleep(0.1)
    assert row is not None and row.max_seconds == 5
    wallets.top_up(
        switch.catalogue.db, customer.org_id, "1.00", idempotency_key=uuid.uuid4().hex,
        clock=SystemClock(),
    )  # fmt: skip
    reported = 0
    while time.monotonic() < deadline and reported < 2:  # UPDATE_EVERY=2 in the tests
        time.sleep(0.3)
        reported = session_of(switch, row.call_id).reported_seconds
    assert reported >= 2, "Kamailio reported the seconds of the running call"
    (call,) = switch.stack.collect(caller)  # type: ignore[arg-type]
    assert call.bye_from("caller") is not None and call.bye_to("caller") is None
    ended = session_of(switch, call.call_id)
    assert ended.max_seconds > 5 and ended.billed_seconds >= 7
    assert Decimal(ended.charged_micros) / 1_000_000 == PER_SECOND * ended.billed_seconds
    assert switch.catalogue.held(customer) == 0


def test_a_call_id_longer_than_telbills_idempotency_keys_is_authorised_and_settled(
    switch: Switch,
) -> None:
    customer = switch.catalogue.new_customer("1.00")
    long_id = "%u-%p-" + "c" * 150 + "@%s"  # telbill's keys: at most 120 characters
    (call,) = switch.stack.place_calls(
        customer.user_id, CALLED, hang_up_after_ms=1_000, call_id_format=long_id
    )
    assert len(call.call_id) > 150 and call.final_status == 200
    row = session_of(switch, call.call_id)
    assert row.state == "ended" and row.billed_seconds in (1, 2)
    assert Decimal(row.charged_micros) / 1_000_000 == PER_SECOND * row.billed_seconds
