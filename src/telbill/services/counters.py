"""Period counters read from the `charges` table: minutes, SMS, speech seconds and unique
users used in a month (the account's timezone), for an account's subtree, broken down by
the campaign that made the usage, and for one campaign.

Every counter comes from one aggregate query over the month's charges, grouped by
(campaign, service, account): one row per such triple, whatever the number of calls.
The covering index `ix_charges_reports` (account, time, then the counted columns) and
`ix_charges_campaign_reports` (campaign, time, ...) answer it without reading the rows.

A call counts once: its revision-0 row (a rerating adds rows with the difference in money
and the re-rated units again), and so do its billed units, as on the invoice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from telbill.adapters.db.charging_tables import campaigns, charges
from telbill.adapters.db.engine import Database
from telbill.adapters.db.report_tables import campaign_reports_index  # noqa: F401  (declares it)
from telbill.adapters.db.tables import accounts
from telbill.domain.tariffs import Service
from telbill.errors import NotFound
from telbill.services.accounts import load_account
from telbill.services.reports import (
    CALLS_COUNTED,
    UNITS_COUNTED,
    month_bounds,
    month_of,
    subtree,
)


@dataclass(frozen=True, slots=True)
class Counters:
    account_id: int
    period: str
    timezone: str
    calls: int
    voice_s: int  # billed voice seconds
    minutes: Decimal  # voice_s / 60, to 2 decimals
    sms: int  # billed SMS segments
    speech_s: int
    unique_users: int


@dataclass(frozen=True, slots=True)
class CampaignCounters:
    """The counters of one campaign in a period. `campaign_id` None: usage that named no
    campaign (so that the rows of a breakdown add up to the account's counters)."""

    campaign_id: int | None
    name: str | None
    owner_id: int | None  # the account that runs the campaign
    status: str | None
    period: str
    timezone: str
    calls: int
    voice_s: int
    minutes: Decimal
    sms: int
    speech_s: int
    unique_users: int


@dataclass(frozen=True, slots=True)
class CampaignBreakdown:
    account_id: int
    period: str
    timezone: str
    items: tuple[CampaignCounters, ...]


@dataclass(slots=True)
class _Tally:
    calls: int = 0
    voice_s: int = 0
    sms: int = 0
    speech_s: int = 0
    users: set[int] = field(default_factory=set)

    def add(self, service: str, account_id: int, count: int, units: int, is_user: bool) -> None:
        if service == Service.VOICE.value:
            self.calls += count
            self.voice_s += units
        elif service == Service.SMS.value:
            self.sms += units
        elif service == Service.SPEECH.value:
            self.speech_s += units
        if is_user:
            self.users.add(account_id)

    @property
    def counted(self) -> bool:
        return bool(self.calls or self.voice_s or self.sms or self.speech_s)

    @property
    def minutes(self) -> Decimal:
        return (Decimal(self.voice_s) / 60).quantize(Decimal("0.01"))

    @property
    def unique_users(self) -> int:
        return len(self.users)


def _groups(conn: Connection, *where: Any) -> list[tuple[int | None, str, int, int, int]]:
    """(campaign, service, account, calls, billed units) of the charges matching `where`."""
    query = (
        select(
            charges.c.campaign_id, charges.c.service, charges.c.account_id, CALLS_COUNTED,
            UNITS_COUNTED,
        )
        .where(*where)
        .group_by(charges.c.campaign_id, charges.c.service, charges.c.account_id)
    )  # fmt: skip
    return [
        (None if c is None else int(c), str(s), int(a), int(n), int(u))
        for c, s, a, n, u in conn.execute(query)
    ]


def _users(conn: Connection, account_ids: Iterable[int]) -> set[int]:
    ids = set(account_ids)
    if not ids:
        return set()
    query = select(accounts.c.id).where(accounts.c.id.in_(ids), accounts.c.kind == "user")
    return {int(i) for i in conn.execute(query).scalars()}


def _tallies(
    conn: Connection, groups: list[tuple[int | None, str, int, int, int]]
) -> dict[int | None, _Tally]:
    users = _users(conn, {g[2] for g in groups})
    tallies: dict[int | None, _Tally] = defaultdict(_Tally)
    for campaign_id, service, account_id, count, units in groups:
        tallies[campaign_id].add(service, account_id, count, units, account_id in users)
    return tallies


def _period(now: datetime, zone: str, month: str | None) -> tuple[str, datetime, datetime]:
    period = month if month is not None else month_of(now, zone)
    start, end = month_bounds(period, zone)
    return period, start, end


def period_counters(
    db: Database, account_id: int, *, now: datetime, month: str | None = None
) -> Counters:
    """Usage of `account_id`'s subtree in `month` ("YYYY-MM", default: the month containing
    `now`), in the account's timezone."""
    with db.read() as conn:
        account = load_account(conn, account_id)
        period, start, end = _period(now, account.timezone, month)
        tree = subtree(account_id)
        groups = _groups(
            conn, charges.c.account_id.in_(select(tree.c.id)),
            charges.c.occurred_at >= start, charges.c.occurred_at < end,
        )  # fmt: skip
        total = _tallies(conn, [(None, *g[1:]) for g in groups]).get(None, _Tally())
    return Counters(
        account_id=account_id, period=period, timezone=account.timezone, calls=total.calls,
        voice_s=total.voice_s, minutes=total.minutes, sms=total.sms,
        speech_s=total.speech_s, unique_users=total.unique_users,
    )  # fmt: skip


def _campaign_counters(campaign: Any, period: str, zone: str, tally: _Tally) -> CampaignCounters:
    return CampaignCounters(
        campaign_id=None if campaign is None else int(campaign.id),
        name=None if campaign is None else str(campaign.name),
        owner_id=None if campaign is None else int(campaign.account_id),
        status=None if campaign is None else str(campaign.status),
        period=period, timezone=zone, calls=tally.calls, voice_s=tally.voice_s,
        minutes=tally.minutes, sms=tally.sms, speech_s=tally.speech_s,
        unique_users=tally.unique_users,
    )  # fmt: skip


def campaign_breakdown(
    db: Database, account_id: int, *, now: datetime, month: str | None = None
) -> CampaignBreakdown:
    """The counters of `account_id`'s subtree in a month, one item per campaign: every
    campaign run by an account of the subtree (zero when idle), every campaign its usage
    named, and last (`campaign_id` None) the usage that named none, when there is some.
    Calls, seconds, SMS and speech of the items add up to `period_counters`."""
    with db.read() as conn:
        account = load_account(conn, account_id)
        period, start, end = _period(now, account.timezone, month)
        tree = subtree(account_id)
        groups = _groups(
            conn, charges.c.account_id.in_(select(tree.c.id)),
            charges.c.occurred_at >= start, charges.c.occurred_at < end,
        )  # fmt: skip
        tallies = _tallies(conn, groups)
        named = {c for c in tallies if c is not None}
        rows = conn.execute(
            select(campaigns)
            .where(campaigns.c.account_id.in_(select(subtree(account_id).c.id))
                   | campaigns.c.id.in_(named))
            .order_by(campaigns.c.id)
        ).all()  # fmt: skip
    items = [_campaign_counters(r, period, account.timezone, tallies.get(r.id, _Tally()))
             for r in rows]  # fmt: skip
    if None in tallies and tallies[None].counted:
        items.append(_campaign_counters(None, period, account.timezone, tallies[None]))
    return CampaignBreakdown(account_id, period, account.timezone, tuple(items))


def campaign_owner(db: Database, campaign_id: int) -> int:
    """The account that runs campaign `campaign_id` (NotFound if there is none)."""
    with db.read() as conn:
        owner = conn.execute(
            select(campaigns.c.account_id).where(campaigns.c.id == campaign_id)
        ).scalar_one_or_none()
    if owner is None:
        raise NotFound(f"campaign {campaign_id} not found", campaign_id=campaign_id)
    return int(owner)


def campaign_counters(
    db: Database, campaign_id: int, *, now: datetime, month: str | None = None
) -> CampaignCounters:
    """A campaign's own counters in a month of its account's timezone: every charge that
    names it, whichever account of the subtree made it."""
    with db.read() as conn:
        row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
        if row is None:
            raise NotFound(f"campaign {campaign_id} not found", campaign_id=campaign_id)
        zone = load_account(conn, int(row.account_id)).timezone
        period, start, end = _period(now, zone, month)
        groups = _groups(
            conn, charges.c.campaign_id == campaign_id,
            charges.c.occurred_at >= start, charges.c.occurred_at < end,
        )  # fmt: skip
        tally = _tallies(conn, groups).get(campaign_id, _Tally())
    return _campaign_counters(row, period, zone, tally)


def counters_by_campaign(
    db: Database, campaign_ids: Iterable[int], *, start: datetime | None = None,
    end: datetime | None = None,
) -> dict[int, CampaignCounters]:  # fmt: skip
    """Counters of several campaigns over [start, end) (default: their whole life), in one
    query, for a page of campaigns as the dashboard lists them. Period and timezone of the
    items are "" (a span, not a month)."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    with db.read() as conn:
        rows = conn.execute(select(campaigns).where(campaigns.c.id.in_(ids))).all()
        where: list[Any] = [charges.c.campaign_id.in_(ids)]
        if start is not None:
            where.append(charges.c.occurred_at >= start)
        if end is not None:
            where.append(charges.c.occurred_at < end)
        tallies = _tallies(conn, _groups(conn, *where))
    return {int(r.id): _campaign_counters(r, "", "", tallies.get(r.id, _Tally())) for r in rows}


__all__ = [
    "CampaignBreakdown",
    "CampaignCounters",
    "Counters",
    "campaign_breakdown",
    "campaign_counters",
    "campaign_owner",
    "counters_by_campaign",
    "period_counters",
]
