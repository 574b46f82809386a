"""Disconnects pushed to registered switches (`services.switches`): each switch gets the
calls of its own tree, once acknowledged, and an unreachable switch gets them later."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from telbill.adapters.db.engine import Database
from telbill.adapters.switch.kamailio import SwitchUnreachable
from telbill.errors import InvalidInput
from telbill.services import accounts, switches
from telbill.services.clock import ManualClock
from telbill.services.events import emit

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class RecordingSwitch:
    """A switch control that records the calls it is told to end (or is down)."""

    def __init__(self) -> None:
        self.ended: list[str] = []
        self.down = False

    def end_call(self, call_id: str) -> int:
        if self.down:
            raise SwitchUnreachable("connection refused")
        self.ended.append(call_id)
        return 1


@pytest.fixture(name="db")
def db_fixture(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.dispose()


def _tree(db: Database, name: str) -> tuple[int, int]:
    clock = ManualClock(NOW)
    provider = accounts.create_account(
        db, kind="provider", name=name, currency="USD", idempotency_key=uuid.uuid4().hex,
        clock=clock,
    )  # fmt: skip
    org = accounts.create_account(
        db, kind="organisation", name=f"{name}-org", parent_id=provider.id,
        idempotency_key=uuid.uuid4().hex, clock=clock,
    )  # fmt: skip
    return provider.id, org.id


def _disconnect(db: Database, account_id: int, call_id: str) -> None:
    db.run(
        lambda conn: emit(
            conn,
            "session.disconnect",
            account_id=account_id,
            payload={"session_id": 1, "call_id": call_id, "reason": "zero_balance"},
            dedupe_key=f"session.disconnect:{call_id}",
            now=NOW,
        )  # fmt: skip
    )


def test_a_switch_is_told_to_end_the_calls_of_its_own_tree_only(db: Database) -> None:
    mine, my_org = _tree(db, "acme")
    _, their_org = _tree(db, "zeta")
    switches.register_switch(db, mine, rpc_url="http://127.0.0.1:5071/RPC", now=NOW)
    recording = RecordingSwitch()
    _disconnect(db, my_org, "call-a")
    _disconnect(db, their_org, "call-z")
    report = switches.push_disconnects(db, lambda switch: recording)
    assert recording.ended == ["call-a"] and report.pushed == 1
    again = switches.push_disconnects(db, lambda switch: recording)
    assert recording.ended == ["call-a"] and again.pushed == 0


def test_an_unreachable_switch_gets_the_disconnect_at_the_next_push(db: Database) -> None:
    provider, org = _tree(db, "acme")
    switches.register_switch(db, provider, rpc_url="http://127.0.0.1:5071/RPC", now=NOW)
    recording = RecordingSwitch()
    recording.down = True
    _disconnect(db, org, "call-1")
    failed = switches.push_disconnects(db, lambda switch: recording)
    assert failed.pushed == 0 and failed.errors
    (listed,) = switches.list_switches(db, provider)
    assert listed.last_error is not None and "connection refused" in listed.last_error
    recording.down = False
    _disconnect(db, org, "call-2")
    switches.push_disconnects(db, lambda switch: recording)
    assert recording.ended == ["call-1", "call-2"]
    (listed,) = switches.list_switches(db, provider)
    assert listed.last_error is None


def test_a_switch_registered_now_is_not_told_about_earlier_disconnects(db: Database) -> None:
    provider, org = _tree(db, "acme")
    _disconnect(db, org, "before")
    switches.register_switch(db, provider, rpc_url="http://127.0.0.1:5071/RPC", now=NOW)
    recording = RecordingSwitch()
    switches.push_disconnects(db, lambda switch: recording)
    assert recording.ended == []


def test_a_switch_needs_an_http_rpc_url(db: Database) -> None:
    provider, _ = _tree(db, "acme")
    with pytest.raises(InvalidInput):
        switches.register_switch(db, provider, rpc_url="udp:127.0.0.1:5071", now=NOW)
    assert switches.list_switches(db, provider) == []


def test_a_fresh_disconnect_is_pushed_once_and_the_cursor_waits_until_it_settles(
    db: Database,
) -> None:
    provider, org = _tree(db, "acme")
    switches.register_switch(db, provider, rpc_url="http://127.0.0.1:5071/RPC", now=NOW)
    (registered,) = switches.list_switches(db, provider)
    recording = RecordingSwitch()
    _disconnect(db, org, "fresh")
    switches.push_disconnects(db, lambda switch: recording, now=NOW)
    switches.push_disconnects(db, lambda switch: recording, now=NOW)
    assert recording.ended == ["fresh"]
    (waiting,) = switches.list_switches(db, provider)
    assert waiting.last_event_id == registered.last_event_id, "an earlier id may still commit"
    later = NOW + timedelta(seconds=switches.SETTLE_S + 1)
    switches.push_disconnects(db, lambda switch: recording, now=later)
    (settled,) = switches.list_switches(db, provider)
    assert settled.last_event_id > registered.last_event_id and recording.ended == ["fresh"]
