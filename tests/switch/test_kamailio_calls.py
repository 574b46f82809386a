"""Real calls through Kamailio into telbill (issue 13): authorise, cut, settle, refuse."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from conftest import PER_SECOND, Switch
from telbill.adapters.db.charging_tables import sessions

CALLED = "15550001234"


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
    # Kamailio's dialog timer ticks once a second
    assert 3 - 1 < caller_bye - answered < 3 + 1
    assert abs(callee_bye - caller_bye) < 1
    row = session_of(switch, call.call_id)
    assert row.state == "ended" and row.max_seconds == 3
    assert row.billed_seconds in (2, 3)
    assert Decimal(row.charged_micros) / 1_000_000 == PER_SECOND * row.billed_seconds
    assert (
        switch.catalogue.paid_balance(customer) == Decimal("0.03") - PER_SECOND * row.billed_seconds
    )
    assert switch.catalogue.held(customer) == 0
