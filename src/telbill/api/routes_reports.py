"""Report endpoints: the call-cost report of an account (a user, or an organisation with its
subtree) for a month in the account's timezone, as JSON pages or a streamed CSV, and the
period counters of a month (default: the current one): the account's, broken down by
campaign (JSON, CSV), and a campaign's own. Anyone who may read the account may read them;
a campaign is read through the account that runs it (another organisation's is a 404).

The margin report (revenue, carrier cost, margin per destination, `services.margin`) is the
provider's business: only its admins (`Action.GRANT_CREDIT`, as the dashboard's provider
pages) read it, for their provider or an account below it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from telbill.api.deps import ClockDep, DbDep, PrincipalDep
from telbill.api.schemas import AmountOut
from telbill.api.types import Month
from telbill.errors import NotFound
from telbill.services import counters as counters_service
from telbill.services import margin, reports
from telbill.services.auth import Action, authorize

router = APIRouter(tags=["reports"])

MonthQuery = Annotated[
    Month | None,
    Query(description="YYYY-MM in the account's timezone; "
          "default: the current month"),
]  # fmt: skip


class CallRowOut(BaseModel):
    charge_id: int
    time: datetime = Field(description="When the call started, in the account's timezone")
    account_id: int = Field(description="The user (extension) who made or took the call")
    number: str
    destination: str | None
    direction: str
    duration_s: int
    billed_s: int
    cost: AmountOut
    currency: str


class CallTotalOut(BaseModel):
    currency: str
    calls: int
    billed_s: int
    cost: AmountOut


class CallReportOut(BaseModel):
    account_id: int
    month: str
    timezone: str
    start: datetime
    end: datetime
    totals: list[CallTotalOut]
    items: list[CallRowOut]
    next_cursor: str | None


class CountersOut(BaseModel):
    account_id: int
    period: str
    timezone: str
    calls: int
    voice_s: int
    minutes: str
    sms: int
    speech_s: int
    unique_users: int


class CampaignCountersOut(BaseModel):
    campaign_id: int | None = Field(description="null: usage that named no campaign")
    name: str | None
    owner_id: int | None = Field(description="The account that runs the campaign")
    status: str | None
    period: str
    timezone: str
    calls: int
    voice_s: int
    minutes: str
    sms: int
    speech_s: int
    unique_users: int


class CampaignBreakdownOut(BaseModel):
    account_id: int
    period: str
    timezone: str
    items: list[CampaignCountersOut]


CAMPAIGN_CSV_HEADER = (
    "campaign_id", "name", "owner_id", "status", "period", "calls", "voice_s", "minutes",
    "sms", "speech_s", "unique_users",
)  # fmt: skip


class MarginFiguresOut(BaseModel):
    currency: str
    charges: int = Field(description="First postings (a rerating adds no charge)")
    billed_units: int
    revenue: AmountOut
    costed_revenue: AmountOut = Field(description="Revenue of the charges of known cost")
    cost: AmountOut | None = Field(description="Carrier cost of those; null: none known")
    margin: AmountOut | None
    margin_percent: str | None = Field(description="Margin over costed revenue, in %")
    unknown_cost_charges: int
    unknown_cost_revenue: AmountOut


class MarginRowOut(MarginFiguresOut):
    destination: str | None
    prefix: str | None
    service: str
    tariff: str | None


class MarginReportOut(BaseModel):
    account_id: int
    month: str
    timezone: str
    start: datetime
    end: datetime
    totals: list[MarginFiguresOut]
    items: list[MarginRowOut]


def _campaign_out(item: counters_service.CampaignCounters) -> CampaignCountersOut:
    return CampaignCountersOut(
        campaign_id=item.campaign_id, name=item.name, owner_id=item.owner_id,
        status=item.status, period=item.period, timezone=item.timezone, calls=item.calls,
        voice_s=item.voice_s, minutes=f"{item.minutes:f}", sms=item.sms,
        speech_s=item.speech_s, unique_users=item.unique_users,
    )  # fmt: skip


def _month(db: DbDep, clock: ClockDep, account_id: int, month: str | None) -> str:
    if month is not None:
        return month
    return reports.current_month(db, account_id, now=clock.now())


def _csv_download(lines: Iterable[str], filename: str) -> StreamingResponse:
    """A CSV streamed as it is produced, offered as a file download."""
    return StreamingResponse(
        iter(lines),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/accounts/{account_id}/reports/calls",
    response_model=CallReportOut,
    summary="Call-cost report of the account (and its subtree) for a month, paged",
)
def get_call_report(
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    month: MonthQuery = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=reports.MAX_PAGE)] = 100,
) -> CallReportOut:
    authorize(db, principal, account_id, Action.READ)
    report = reports.call_report(
        db, account_id, _month(db, clock, account_id, month), limit=limit, cursor=cursor
    )
    return CallReportOut(
        account_id=report.account_id, month=report.month, timezone=report.timezone,
        start=report.start, end=report.end,
        totals=[CallTotalOut(currency=t.currency, calls=t.calls, billed_s=t.billed_s,
                             cost=t.cost) for t in report.totals],
        items=[CallRowOut(**{f: getattr(r, f) for f in CallRowOut.model_fields})
               for r in report.rows],
        next_cursor=report.next_cursor,
    )  # fmt: skip


@router.get(
    "/accounts/{account_id}/reports/calls.csv",
    summary="Call-cost report of a month as CSV (streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_call_report_csv(
    account_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep,
    month: MonthQuery = None,
) -> StreamingResponse:  # fmt: skip
    authorize(db, principal, account_id, Action.READ)
    chosen = _month(db, clock, account_id, month)
    export = reports.call_csv(db, account_id, chosen)
    return _csv_download(export, f"calls-{account_id}-{chosen}.csv")


@router.get(
    "/accounts/{account_id}/counters",
    response_model=CountersOut,
    summary="Usage counters of a month (minutes, SMS, speech, unique users)",
)
def get_counters(
    account_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep,
    month: MonthQuery = None,
) -> CountersOut:  # fmt: skip
    authorize(db, principal, account_id, Action.READ)
    counters = counters_service.period_counters(db, account_id, now=clock.now(), month=month)
    return CountersOut(
        account_id=counters.account_id, period=counters.period, timezone=counters.timezone,
        calls=counters.calls, voice_s=counters.voice_s, minutes=f"{counters.minutes:f}",
        sms=counters.sms, speech_s=counters.speech_s, unique_users=counters.unique_users,
    )  # fmt: skip


@router.get(
    "/accounts/{account_id}/counters/campaigns",
    response_model=CampaignBreakdownOut,
    summary="Usage counters of a month broken down by campaign",
)
def get_campaign_breakdown(
    account_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep,
    month: MonthQuery = None,
) -> CampaignBreakdownOut:  # fmt: skip
    authorize(db, principal, account_id, Action.READ)
    breakdown = counters_service.campaign_breakdown(db, account_id, now=clock.now(), month=month)
    return CampaignBreakdownOut(
        account_id=breakdown.account_id,
        period=breakdown.period,
        timezone=breakdown.timezone,
        items=[_campaign_out(item) for item in breakdown.items],
    )


@router.get(
    "/accounts/{account_id}/counters/campaigns.csv",
    summary="Usage counters of a month by campaign, as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_campaign_breakdown_csv(
    account_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep,
    month: MonthQuery = None,
) -> StreamingResponse:  # fmt: skip
    authorize(db, principal, account_id, Action.READ)
    breakdown = counters_service.campaign_breakdown(db, account_id, now=clock.now(), month=month)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CAMPAIGN_CSV_HEADER)
        for item in breakdown.items:
            out = _campaign_out(item)
            writer.writerow(["" if v is None else v
                             for v in (getattr(out, f) for f in CAMPAIGN_CSV_HEADER)])  # fmt: skip
        yield buffer.getvalue()

    return _csv_download(lines(), f"campaign-counters-{account_id}-{breakdown.period}.csv")


@router.get(
    "/campaigns/{campaign_id}/counters",
    response_model=CampaignCountersOut,
    summary="A campaign's own usage counters of a month (its account's timezone)",
)
def get_campaign_counters(
    campaign_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep,
    month: MonthQuery = None,
) -> CampaignCountersOut:  # fmt: skip
    owner = counters_service.campaign_owner(db, campaign_id)
    try:
        authorize(db, principal, owner, Action.READ)
    except NotFound:
        # Another organisation's campaign looks exactly like one that does not exist.
        raise NotFound(f"campaign {campaign_id} not found", campaign_id=campaign_id) from None
    counters = counters_service.campaign_counters(db, campaign_id, now=clock.now(), month=month)
    return _campaign_out(counters)


@router.get(
    "/accounts/{account_id}/reports/margin",
    response_model=MarginReportOut,
    summary="Revenue, carrier cost and margin per destination of a month (provider admins)",
)
def get_margin_report(
    account_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep,
    month: MonthQuery = None,
) -> MarginReportOut:  # fmt: skip
    authorize(db, principal, account_id, Action.GRANT_CREDIT)
    report = margin.margin_report(db, account_id, _month(db, clock, account_id, month))
    return MarginReportOut.model_validate(margin.report_json(report))


@router.get(
    "/accounts/{account_id}/reports/margin.csv",
    summary="Margin per destination of a month as CSV (provider admins)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_margin_report_csv(
    account_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep,
    month: MonthQuery = None,
) -> StreamingResponse:  # fmt: skip
    authorize(db, principal, account_id, Action.GRANT_CREDIT)
    chosen = _month(db, clock, account_id, month)
    report = margin.margin_report(db, account_id, chosen)
    return _csv_download(margin.csv_lines(report), f"margin-{account_id}-{chosen}.csv")
