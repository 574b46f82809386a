"""Campaigns (auto-dialer / voice-bot runs): start, pause, resume, stop.

A campaign starts (or resumes) only while its wallet is not suspended and has a positive
balance: money above zero, or call-time package seconds left (a voice-bot customer may run
on package minutes with no money at all; issue 17, rule 5). When the wallet reaches zero
every running campaign of its accounts is paused (``campaign.paused``, see
`services.suspension`); a paused campaign stays paused until a user resumes it after
topping up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from telbill.adapters.db import ledger_store
from telbill.adapters.db.charging_tables import campaigns
from telbill.adapters.db.engine import Database
from telbill.errors import AccountSuspended, Conflict, InsufficientBalance, InvalidInput, NotFound
from telbill.ledger import BucketKind
from telbill.services.accounts import AccountStatus, billing_account, load_account
from telbill.services.clock import Clock
from telbill.services.events import emit

RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"
CALL_TIME = "s:call"  # the unit of call-time packages


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    account_id: int
    name: str
    status: str
    paused_reason: str | None
    created_at: datetime
    updated_at: datetime


def _load(conn: Connection, campaign_id: int) -> Campaign:
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found", campaign_id=campaign_id)
    return Campaign(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        status=row.status,
        paused_reason=row.paused_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_funded(conn: Connection, account_id: int, now: datetime) -> None:
    payer = billing_account(conn, account_id)
    leaf = load_account(conn, account_id)
    if AccountStatus.SUSPENDED in (payer.status, leaf.status):
        raise AccountSuspended(f"account {account_id} is suspended: top up first")
    buckets = ledger_store.load_buckets(conn, [payer.id], unit=payer.currency)
    money = sum(
        b.balance
        for b in buckets
        if b.kind is BucketKind.PAID or (not b.is_expired(now) and b.balance > 0)
    )
    if money > 0:
        return
    minutes = ledger_store.load_buckets(conn, [payer.id], unit=CALL_TIME)
    if any(b.kind is BucketKind.PACKAGE and not b.is_expired(now) and b.available > 0
           for b in minutes):  # fmt: skip
        return
    raise InsufficientBalance(
        f"a campaign needs a positive balance (money or call-time package seconds); "
        f"account {payer.id} has neither"
    )


def start_campaign(db: Database, account_id: int, name: str, *, clock: Clock) -> Campaign:
    """Create a running campaign (InsufficientBalance without money, AccountSuspended)."""
    if not name or not name.strip():
        raise InvalidInput("a campaign needs a name")

    def work(conn: Connection) -> Campaign:
        now = clock.now()
        _check_funded(conn, account_id, now)
        campaign_id = conn.execute(
            campaigns.insert()
            .values(
                account_id=account_id,
                name=name.strip(),
                status=RUNNING,
                created_at=now,
                updated_at=now,
            )
            .returning(campaigns.c.id)
        ).scalar_one()
        return _load(conn, int(campaign_id))

    return db.run(work)


def _set_status(
    db: Database, campaign_id: int, status: str, *, clock: Clock, reason: str | None
) -> Campaign:
    def work(conn: Connection) -> Campaign:
        now = clock.now()
        current = _load(conn, campaign_id)
        if current.status == status:
            return current
        if current.status == STOPPED:
            raise Conflict(f"campaign {campaign_id} is stopped", campaign_id=campaign_id)
        if status == RUNNING:
            _check_funded(conn, current.account_id, now)
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(status=status, paused_reason=reason, updated_at=now)
        )
        return _load(conn, campaign_id)

    return db.run(work)


def pause_campaign(db: Database, campaign_id: int, *, clock: Clock) -> Campaign:
    return _set_status(db, campaign_id, PAUSED, clock=clock, reason="by_user")


def resume_campaign(db: Database, campaign_id: int, *, clock: Clock) -> Campaign:
    """Run a paused campaign again (its wallet must have money above zero)."""
    return _set_status(db, campaign_id, RUNNING, clock=clock, reason=None)


def stop_campaign(db: Database, campaign_id: int, *, clock: Clock) -> Campaign:
    return _set_status(db, campaign_id, STOPPED, clock=clock, reason="by_user")


def get_campaign(db: Database, campaign_id: int) -> Campaign:
    with db.transaction() as conn:
        return _load(conn, campaign_id)


def pause_running(conn: Connection, payer_id: int, now: datetime, *, reason: str) -> list[int]:
    """Pause every running campaign paid by wallet `payer_id`; one event each."""
    rows = conn.execute(
        select(campaigns.c.id, campaigns.c.account_id).where(campaigns.c.status == RUNNING)
    ).all()
    paused = []
    for row in rows:
        if billing_account(conn, row.account_id).id != payer_id:
            continue
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == row.id)
            .values(status=PAUSED, paused_reason=reason, updated_at=now)
        )
        emit(
            conn,
            "campaign.paused",
            account_id=row.account_id,
            payload={"campaign_id": row.id, "reason": reason},
            dedupe_key=f"campaign.paused:{row.id}:{uuid.uuid4().hex}",
            now=now,
        )
        paused.append(int(row.id))
    return paused


__all__ = [
    "Campaign",
    "get_campaign",
    "pause_campaign",
    "pause_running",
    "resume_campaign",
    "start_campaign",
    "stop_campaign",
]
