"""Switches told when telbill ends a running call.

A switch is registered for an account's tree (`register_switch`): its control endpoint
(Kamailio's JSON-RPC URL). When a prepaid wallet reaches zero under a hard cut-off, the
charge that emptied it emits ``session.disconnect`` for each running call
(`services.suspension`); `push_disconnects` sends each of those events to the switches
registered for the call's account (its own, its organisation's or its provider's), which
hang the call up (Kamailio: ``dlg.end_dlg``, BYE to both legs). The switch then reports the
end as for any call, with the real duration.

Delivery is at least once: a switch's cursor (`last_event_id`) moves past an event once the
switch acknowledged it (or no longer knew the call) and the event is old enough that no
earlier one can still commit; an unreachable switch keeps its cursor and is tried again at
the next push. `telbill serve` pushes every second; `telbill switch
push` does one round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import Connection, func, or_, select, update

from telbill.adapters.db.engine import Database
from telbill.adapters.db.event_tables import events
from telbill.adapters.db.switch_tables import SWITCH_KINDS, switch_endpoints
from telbill.adapters.db.tables import accounts
from telbill.errors import InvalidInput
from telbill.services.accounts import load_account

DISCONNECT = "session.disconnect"
MAX_EVENTS_PER_PUSH = 500
# A transaction commits within this long of its events' time (their `occurred_at`).
SETTLE_S = 30
# Per switch: events this process pushed that its cursor has not passed yet.
_pushed: dict[int, set[int]] = {}


@dataclass(frozen=True, slots=True)
class SwitchEndpoint:
    id: int
    account_id: int
    kind: str
    rpc_url: str
    active: bool
    last_event_id: int
    last_error: str | None
    created_at: datetime


class SwitchControl(Protocol):
    def end_call(self, call_id: str) -> int:
        """Hang up both legs of the call; returns how many dialogs were ended."""
        ...


def _endpoint(row: Any) -> SwitchEndpoint:
    return SwitchEndpoint(
        id=row.id, account_id=row.account_id, kind=row.kind, rpc_url=row.rpc_url,
        active=row.active, last_event_id=row.last_event_id, last_error=row.last_error,
        created_at=row.created_at,
    )  # fmt: skip


def _check_url(rpc_url: str) -> str:
    url = (rpc_url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 500:
        raise InvalidInput(f"the switch's RPC URL must be http(s)://host:port/RPC, got {url!r}")
    return url


def register_switch(
    db: Database, account_id: int, *, rpc_url: str, now: datetime, kind: str = "kamailio"
) -> SwitchEndpoint:
    """Register a switch for the calls of `account_id`'s tree, from now on."""
    if kind not in SWITCH_KINDS:
        raise InvalidInput(f"switch kind must be one of {', '.join(SWITCH_KINDS)}")
    url = _check_url(rpc_url)

    def work(conn: Connection) -> SwitchEndpoint:
        load_account(conn, account_id)
        start = conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()
        new_id = conn.execute(
            switch_endpoints.insert()
            .values(
                account_id=account_id,
                kind=kind,
                rpc_url=url,
                active=True,
                last_event_id=start,
                created_at=now,
            )  # fmt: skip
            .returning(switch_endpoints.c.id)
        ).scalar_one()
        row = conn.execute(select(switch_endpoints).where(switch_endpoints.c.id == new_id)).one()
        return _endpoint(row)

    return db.run(work)


def list_switches(db: Database, account_id: int | None = None) -> list[SwitchEndpoint]:
    query = select(switch_endpoints).order_by(switch_endpoints.c.id)
    if account_id is not None:
        query = query.where(switch_endpoints.c.account_id == account_id)
    with db.read() as conn:
        return [_endpoint(row) for row in conn.execute(query)]


@dataclass
class PushReport:
    pushed: int = 0
    calls_ended: int = 0
    errors: list[str] = field(default_factory=list)


def _disconnects_for(conn: Connection, switch: Any, up_to: int) -> list[Any]:
    """The switch's session.disconnect events after its cursor, up to event `up_to`."""
    query = (
        select(events.c.id, events.c.payload)
        .select_from(events.join(accounts, accounts.c.id == events.c.account_id))
        .where(
            events.c.type == DISCONNECT,
            events.c.id > switch.last_event_id,
            events.c.id <= up_to,
            or_(
                events.c.account_id == switch.account_id,
                accounts.c.parent_id == switch.account_id,
                accounts.c.provider_id == switch.account_id,
            ),
        )
        .order_by(events.c.id)
        .limit(MAX_EVENTS_PER_PUSH)
    )
    return list(conn.execute(query))


def _move_cursor(db: Database, switch_id: int, event_id: int, error: str | None) -> None:
    def work(conn: Connection) -> None:
        conn.execute(
            update(switch_endpoints)
            .where(
                switch_endpoints.c.id == switch_id,
                switch_endpoints.c.last_event_id < event_id,
            )
            .values(last_event_id=event_id)
        )
        conn.execute(
            update(switch_endpoints)
            .where(switch_endpoints.c.id == switch_id)
            .values(last_error=error)
        )

    db.run(work)


def kamailio_control(switch: SwitchEndpoint) -> SwitchControl:
    """The production control of a registered switch: Kamailio's JSON-RPC."""
    from telbill.adapters.switch.kamailio import KamailioRpc

    return KamailioRpc(switch.rpc_url)


def push_disconnects(
    db: Database,
    control_for: Callable[[SwitchEndpoint], SwitchControl] = kamailio_control,
    *,
    now: datetime | None = None,
) -> PushReport:
    """Send every pending session.disconnect event to the registered switches (one round).

    A switch's cursor only moves past events older than `SETTLE_S` (`now`: the real time by
    default): on PostgreSQL an event may commit after one with a higher id was read, and must
    not be stepped over. Events pushed but not yet behind the cursor are remembered by this
    process, so each is pushed once (another process may push it again: harmless).
    """
    report = PushReport()
    now = now or datetime.now(UTC)
    with db.read() as conn:
        up_to = conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()
        settled = conn.execute(
            select(func.coalesce(func.max(events.c.id), 0)).where(
                events.c.occurred_at < now - timedelta(seconds=SETTLE_S)
            )
        ).scalar_one()
        switches = list(
            conn.execute(select(switch_endpoints).where(switch_endpoints.c.active.is_(True)))
        )
        pending = {row.id: _disconnects_for(conn, row, up_to) for row in switches}
    for row in switches:
        if row.last_event_id >= up_to:
            continue
        switch = _endpoint(row)
        control = control_for(switch)
        pushed = _pushed.setdefault(switch.id, set())
        reached = min(up_to, settled)
        error: str | None = None
        for event in pending[row.id]:
            call_id = (event.payload or {}).get("call_id")
            if not call_id or event.id in pushed:
                continue
            try:
                report.calls_ended += control.end_call(str(call_id))
            except Exception as exc:  # the switch is down or refuses: retry from this event
                error = f"{type(exc).__name__}: {exc}"
                report.errors.append(f"switch {switch.id}: {error}")
                reached = min(reached, event.id - 1)
                break
            report.pushed += 1
            pushed.add(event.id)
        if len(pending[row.id]) == MAX_EVENTS_PER_PUSH and error is None:
            reached = min(reached, pending[row.id][-1].id)
        if reached > row.last_event_id or error != row.last_error:
            _move_cursor(db, switch.id, reached, error)
        pushed.difference_update({event_id for event_id in pushed if event_id <= reached})
    return report


__all__ = [
    "PushReport",
    "SwitchControl",
    "SwitchEndpoint",
    "kamailio_control",
    "list_switches",
    "push_disconnects",
    "register_switch",
]
