"""Notifications: in-app (an account's events with read marks), endpoints (webhook URLs and
email addresses) and the delivery outbox that sends events to them.

Delivery: `deliver_due(db, clock, sender)`

1. fans out: for every active endpoint, a `deliveries` row per matching event not yet
   queued (events of the endpoint's account, its children and, for a provider, its whole
   tree; since the endpoint was created; of the wanted types);
2. claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers share the work),
   pushing their next attempt one lease ahead and counting the attempt, then commits;
3. sends each outside any transaction, then records the outcome: delivered, or retried
   after an exponential backoff (capped), or dead after `max_attempts`.

A sender killed between 2 and 3 leaves its rows pending; they are claimed again once the
lease has passed. So delivery is at least once, never again after an acknowledgement was
recorded; receivers drop repeats by the event id header (``Telbill-Event-Id``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, and_, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from telbill.adapters.db.engine import Database
from telbill.adapters.db.event_tables import events
from telbill.adapters.db.notify_tables import deliveries, notification_endpoints, notification_reads
from telbill.adapters.db.tables import accounts
from telbill.adapters.notify.webhooks import DeliveryFailed, new_secret
from telbill.errors import InvalidInput, NotFound
from telbill.services import idempotency
from telbill.services.accounts import load_account
from telbill.services.clock import Clock
from telbill.services.events import EVENT_TYPES

ENDPOINT_KINDS = ("webhook", "email")
DEFAULT_LEASE_S = 60
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BASE_DELAY_S = 30
DEFAULT_MAX_DELAY_S = 3600
MAX_PAGE = 500


# ---------------------------------------------------------------------------- in-app


@dataclass(frozen=True, slots=True)
class Notification:
    event_id: int
    type: str
    account_id: int
    payload: dict[str, Any]
    occurred_at: datetime
    read_at: datetime | None


def list_notifications(
    db: Database,
    account_id: int,
    *,
    unread_only: bool = False,
    after_id: int = 0,
    limit: int = 100,
) -> list[Notification]:
    """The account's events, oldest first, with when each was marked read."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE}")
    reads = notification_reads
    query = (
        select(events, reads.c.read_at)
        .outerjoin(reads, and_(reads.c.event_id == events.c.id, reads.c.account_id == account_id))
        .where(events.c.account_id == account_id, events.c.id > after_id)
        .order_by(events.c.id)
        .limit(limit)
    )
    if unread_only:
        query = query.where(reads.c.read_at.is_(None))
    with db.transaction() as conn:
        load_account(conn, account_id)
        rows = conn.execute(query).all()
    return [
        Notification(
            event_id=row.id,
            type=row.type,
            account_id=row.account_id,
            payload=dict(row.payload),
            occurred_at=row.occurred_at,
            read_at=row.read_at,
        )
        for row in rows
    ]


def mark_read(
    db: Database, account_id: int, event_ids: Sequence[int] | None, *, now: datetime
) -> int:
    """Mark the account's events read (all of them when `event_ids` is None); returns how
    many were newly marked. An id that is not one of the account's events is an error."""

    def work(conn: Connection) -> int:
        load_account(conn, account_id)
        query = select(events.c.id).where(
            events.c.account_id == account_id,
            ~exists().where(
                notification_reads.c.account_id == account_id,
                notification_reads.c.event_id == events.c.id,
            ),
        )
        if event_ids is not None:
            wanted = sorted(set(int(i) for i in event_ids))
            owned = set(
                conn.scalars(
                    select(events.c.id).where(
                        events.c.account_id == account_id, events.c.id.in_(wanted)
                    )
                )
            )
            missing = [i for i in wanted if i not in owned]
            if missing:
                raise NotFound(f"notification {missing[0]} not found")
            query = query.where(events.c.id.in_(wanted))
        ids = list(conn.scalars(query))
        if not ids:
            return 0
        # Insert-or-ignore: a concurrent mark of the same events is not an error.
        statement = (
            _insert_ignore(conn)(notification_reads)
            .values([{"account_id": account_id, "event_id": i, "read_at": now} for i in ids])
            .on_conflict_do_nothing(index_elements=["account_id", "event_id"])
            .returning(notification_reads.c.event_id)
        )
        return len(conn.execute(statement).all())

    return db.run(work)


# ---------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    account_id: int
    kind: str
    target: str
    secret: str | None
    event_types: tuple[str, ...] | None
    active: bool
    created_at: datetime


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        account_id=row.account_id,
        kind=row.kind,
        target=row.target,
        secret=row.secret,
        event_types=tuple(row.event_types) if row.event_types is not None else None,
        active=row.active,
        created_at=row.created_at,
    )


def _check_target(kind: str, target: str) -> str:
    target = (target or "").strip()
    if kind == "webhook":
        if not target.startswith(("https://", "http://")) or len(target) > 500:
            raise InvalidInput("a webhook URL must start with https:// (or http://)")
        from telbill.adapters.notify.webhooks import ALLOW_PRIVATE_ENV, target_problem

        try:
            # The rule of every delivery (`webhooks.public_target`), so what is accepted
            # here is what the sender will reach.
            problem = target_problem(target)
        except Exception as exc:  # httpx.InvalidURL and friends: any unparsable URL
            raise InvalidInput(f"not a valid webhook URL: {exc}") from exc
        if problem is not None:
            raise InvalidInput(
                f"a webhook must reach a public address: {problem} "
                f"(the operator may set {ALLOW_PRIVATE_ENV}=1)"
            )
    elif kind == "email":
        local, at, domain = target.rpartition("@")
        if not at or not local or "." not in domain or any(c.isspace() for c in target):
            raise InvalidInput(f"not an email address: {target!r}")
    else:
        raise InvalidInput(f"endpoint kind must be one of {', '.join(ENDPOINT_KINDS)}")
    return target


def add_endpoint(
    db: Database,
    account_id: int,
    *,
    kind: str,
    target: str,
    event_types: Sequence[str] | None = None,
    secret: str | None = None,
    now: datetime,
    idempotency_key: str | None = None,
) -> Endpoint:
    """Register a webhook URL or an email address for the account's events from now on.

    A webhook gets a generated signing secret unless one is given (at least 16 characters).
    With `idempotency_key`, a retry returns the endpoint created first.
    """
    request = {"kind": kind, "target": target, "event_types": event_types, "secret": secret}
    target = _check_target(kind, target)
    types = None if event_types is None else sorted(set(event_types))
    for name in types or ():
        if name not in EVENT_TYPES:
            raise InvalidInput(f"unknown event type {name!r}")
    if kind == "webhook":
        secret = secret or new_secret()
        if len(secret) < 16:
            raise InvalidInput("a webhook secret needs at least 16 characters")
    else:
        secret = None

    def load(conn: Connection, endpoint_id: int) -> Endpoint:
        row = conn.execute(
            select(notification_endpoints).where(notification_endpoints.c.id == endpoint_id)
        ).one()
        return _endpoint(row)

    def insert(conn: Connection) -> int:
        start = conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()
        return conn.execute(
            notification_endpoints.insert()
            .values(
                account_id=account_id,
                kind=kind,
                target=target,
                secret=secret,
                event_types=types,
                active=True,
                last_event_id=start,
                created_at=now,
            )
            .returning(notification_endpoints.c.id)
        ).scalar_one()

    def work(conn: Connection) -> Endpoint:
        load_account(conn, account_id)
        if idempotency_key is None:
            return load(conn, insert(conn))
        return idempotency.once(
            conn,
            scope=f"notify.endpoint:{account_id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=lambda: {"endpoint_id": insert(conn)},
            load=lambda response: load(conn, int(response["endpoint_id"])),
        )

    return db.run(work)


def list_endpoints(db: Database, account_id: int) -> list[Endpoint]:
    with db.transaction() as conn:
        rows = conn.execute(
            select(notification_endpoints)
            .where(notification_endpoints.c.account_id == account_id)
            .order_by(notification_endpoints.c.id)
        ).all()
    return [_endpoint(row) for row in rows]


def get_endpoint(db: Database, endpoint_id: int) -> Endpoint:
    with db.transaction() as conn:
        row = conn.execute(
            select(notification_endpoints).where(notification_endpoints.c.id == endpoint_id)
        ).first()
    if row is None:
        raise NotFound(f"endpoint {endpoint_id} not found")
    return _endpoint(row)


def set_endpoint_active(db: Database, endpoint_id: int, active: bool) -> Endpoint:
    """Pause or resume an endpoint (rows are kept: deliveries refer to them)."""
    with db.transaction() as conn:
        conn.execute(
            update(notification_endpoints)
            .where(notification_endpoints.c.id == endpoint_id)
            .values(active=active)
        )
    return get_endpoint(db, endpoint_id)


# ---------------------------------------------------------------------------- delivery


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """What a channel sends: the endpoint and the event as a JSON-ready dict."""

    delivery_id: int
    endpoint: Endpoint
    event: Mapping[str, Any]


class Sender(Protocol):
    def __call__(self, outgoing: OutgoingEvent) -> None:
        """Send; raise DeliveryFailed (or any exception) when not acknowledged."""
        ...


class ChannelSender:
    """The production sender: webhooks through httpx, email through SMTP."""

    def __init__(self, webhook: Any = None, email: Any = None) -> None:
        from telbill.adapters.notify.email import SmtpEmailSender
        from telbill.adapters.notify.webhooks import HttpWebhookSender

        self.webhook = webhook or HttpWebhookSender()
        self.email = email or SmtpEmailSender()

    def __call__(self, outgoing: OutgoingEvent) -> None:
        endpoint = outgoing.endpoint
        if endpoint.kind == "webhook":
            # Signed with the real time: receivers check it against their own clock.
            self.webhook.send(
                endpoint.target, endpoint.secret or "", outgoing.event, timestamp=int(time.time())
            )
        else:
            self.email.send(endpoint.target, outgoing.event)


def backoff_delay_s(
    attempts: int, base_s: int = DEFAULT_BASE_DELAY_S, cap_s: int = DEFAULT_MAX_DELAY_S
) -> int:
    """Seconds before the next try after `attempts` failed ones: base * 2^(n-1), capped."""
    return int(min(cap_s, base_s * 2 ** max(0, min(attempts - 1, 30))))


def _insert_ignore(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def fan_out(conn: Connection, now: datetime, limit: int = 1000) -> int:
    """Queue a delivery for every (active endpoint, matching event) not yet queued."""
    endpoint_rows = conn.execute(
        select(notification_endpoints).where(notification_endpoints.c.active.is_(True))
    ).all()
    queued = 0
    for ep in endpoint_rows:
        query = (
            select(events.c.id)
            .select_from(events.join(accounts, accounts.c.id == events.c.account_id))
            .where(
                events.c.id > ep.last_event_id,
                or_(
                    events.c.account_id == ep.account_id,
                    accounts.c.parent_id == ep.account_id,
                    accounts.c.provider_id == ep.account_id,
                ),
                ~exists().where(
                    deliveries.c.event_id == events.c.id, deliveries.c.endpoint_id == ep.id
                ),
            )
            .order_by(events.c.id)
            .limit(limit)
        )
        if ep.event_types is not None:
            query = query.where(events.c.type.in_(list(ep.event_types)))
        ids = list(conn.scalars(query))
        if not ids:
            continue
        statement = (
            _insert_ignore(conn)(deliveries)
            .values(
                [
                    {
                        "event_id": event_id,
                        "endpoint_id": ep.id,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for event_id in ids
                ]
            )
            .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
        )
        conn.execute(statement)
        queued += len(ids)
    return queued


def claim_due(conn: Connection, now: datetime, *, batch: int, lease_s: int) -> list[OutgoingEvent]:
    """Claim up to `batch` due deliveries: their next attempt moves a lease ahead."""
    query = (
        select(deliveries.c.id, deliveries.c.event_id, deliveries.c.endpoint_id)
        .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(batch)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    due = conn.execute(query).all()
    if not due:
        return []
    ids = [row.id for row in due]
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids))
        .values(
            attempts=deliveries.c.attempts + 1,
            next_attempt_at=now + timedelta(seconds=lease_s),
        )
    )
    event_rows = {
        row.id: row
        for row in conn.execute(
            select(events).where(events.c.id.in_([row.event_id for row in due]))
        )
    }
    endpoint_rows = {
        row.id: _endpoint(row)
        for row in conn.execute(
            select(notification_endpoints).where(
                notification_endpoints.c.id.in_([row.endpoint_id for row in due])
            )
        )
    }
    claimed = []
    for row in due:
        event = event_rows[row.event_id]
        claimed.append(
            OutgoingEvent(
                delivery_id=row.id,
                endpoint=endpoint_rows[row.endpoint_id],
                event={
                    "id": event.id,
                    "type": event.type,
                    "account_id": event.account_id,
                    "occurred_at": event.occurred_at.isoformat(),
                    "payload": dict(event.payload),
                },
            )
        )
    return claimed


@dataclass
class DeliveryReport:
    queued: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def _record(
    db: Database,
    delivery_id: int,
    error: str | None,
    now: datetime,
    *,
    max_attempts: int,
    base_delay_s: int,
    max_delay_s: int,
) -> str:
    def work(conn: Connection) -> str:
        row = conn.execute(
            select(deliveries.c.attempts, deliveries.c.status).where(deliveries.c.id == delivery_id)
        ).one()
        if row.status != "pending":
            return str(row.status)
        if error is None:
            values: dict[str, Any] = {
                "status": "delivered",
                "delivered_at": now,
                "last_error": None,
            }
        elif row.attempts >= max_attempts:
            values = {"status": "dead", "last_error": error[:2000]}
        else:
            delay = backoff_delay_s(row.attempts, base_delay_s, max_delay_s)
            values = {"next_attempt_at": now + timedelta(seconds=delay), "last_error": error[:2000]}
        conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))
        return str(values.get("status", "retry"))

    return db.run(work)


def deliver_due(
    db: Database,
    clock: Clock,
    sender: Sender,
    *,
    batch: int = 50,
    max_batches: int | None = None,
    lease_s: int = DEFAULT_LEASE_S,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    base_delay_s: int = DEFAULT_BASE_DELAY_S,
    max_delay_s: int = DEFAULT_MAX_DELAY_S,
) -> DeliveryReport:
    """Queue new events, then send every delivery due now, `batch` rows per claim."""
    if batch < 1 or max_attempts < 1 or lease_s < 1:
        raise InvalidInput("batch, max_attempts and lease_s must be positive")
    report = DeliveryReport()
    rounds = 0
    while max_batches is None or rounds < max_batches:
        rounds += 1
        # Queue new events each round: a big backlog is fanned out a page at a time.
        report.queued += db.run(lambda conn: fan_out(conn, clock.now()))
        claimed = db.run(lambda conn: claim_due(conn, clock.now(), batch=batch, lease_s=lease_s))
        if not claimed:
            break
        for outgoing in claimed:
            error: str | None = None
            try:
                sender(outgoing)
            except DeliveryFailed as exc:
                error = str(exc) or type(exc).__name__
            except Exception as exc:  # a channel bug must not stop the others
                error = f"{type(exc).__name__}: {exc}"
            outcome = _record(
                db,
                outgoing.delivery_id,
                error,
                clock.now(),
                max_attempts=max_attempts,
                base_delay_s=base_delay_s,
                max_delay_s=max_delay_s,
            )
            if outcome == "delivered":
                report.delivered += 1
            elif outcome == "dead":
                report.dead += 1
            else:
                report.retried += 1
            if error:
                report.errors.append(f"delivery {outgoing.delivery_id}: {error}")
    return report


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: int
    endpoint_id: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


def list_deliveries(db: Database, *, endpoint_id: int | None = None) -> list[Delivery]:
    query = select(deliveries).order_by(deliveries.c.id)
    if endpoint_id is not None:
        query = query.where(deliveries.c.endpoint_id == endpoint_id)
    with db.transaction() as conn:
        rows = conn.execute(query).all()
    return [
        Delivery(
            id=r.id,
            event_id=r.event_id,
            endpoint_id=r.endpoint_id,
            status=r.status,
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at,
            last_error=r.last_error,
            delivered_at=r.delivered_at,
        )
        for r in rows
    ]


__all__ = [
    "ChannelSender",
    "Delivery",
    "DeliveryReport",
    "Endpoint",
    "Notification",
    "OutgoingEvent",
    "Sender",
    "add_endpoint",
    "backoff_delay_s",
    "claim_due",
    "deliver_due",
    "fan_out",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "list_notifications",
    "mark_read",
    "set_endpoint_active",
]
