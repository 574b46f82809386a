"""Notification endpoints: low-balance threshold settings, in-app notifications (list, mark
read), webhook endpoints, and top-up receipts as PDF."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.schemas import AmountIn, AmountOut
from telbill.api.types import Code
from telbill.errors import NotFound
from telbill.services import notifications, receipts, thresholds
from telbill.services.auth import Action, authorize
from telbill.services.charging import run_once
from telbill.services.notifications import Endpoint

router = APIRouter(tags=["notifications"])


class ThresholdsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fixed_levels: list[AmountIn] = Field(
        max_length=thresholds.MAX_FIXED_LEVELS,
        description="Balances that warn when the balance drops below them (0 sends balance.zero)",
    )
    fixed_modes: list[Literal["below", "at_or_below"]] | None = Field(
        default=None,
        max_length=thresholds.MAX_FIXED_LEVELS,
        description="Mode of each level, in the order of fixed_levels: below (warns under the "
        "level, not at it) or at_or_below; null: below, and at_or_below for 0",
    )
    spend_days: int | None = Field(
        default=None, ge=1, description="Warn when the balance lasts fewer days than this"
    )
    spend_window_days: int | None = Field(
        default=None, ge=1, description="Days of spend the average is taken over"
    )


class ThresholdsOut(BaseModel):
    account_id: int = Field(description="The wallet's account (the payer)")
    fixed_levels: list[AmountOut]
    fixed_modes: list[str] = Field(description="Mode of each level (below / at_or_below)")
    spend_days: int | None
    spend_window_days: int | None
    is_default: bool


class NotificationOut(BaseModel):
    event_id: int
    type: str
    account_id: int
    payload: dict[str, Any]
    occurred_at: datetime
    read: bool
    read_at: datetime | None


class NotificationList(BaseModel):
    items: list[NotificationOut]


class MarkReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_ids: list[int] | None = Field(
        default=None, max_length=notifications.MAX_PAGE, description="null marks all read"
    )


class MarkReadOut(BaseModel):
    marked: int


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=500)
    event_types: list[Code] | None = Field(
        default=None, max_length=100, description="null: every event type"
    )
    secret: str | None = Field(
        default=None, min_length=16, max_length=200, description="Generated when omitted"
    )


class WebhookOut(BaseModel):
    id: int
    account_id: int
    url: str
    event_types: list[str] | None
    active: bool
    created_at: datetime


class CreatedWebhookOut(WebhookOut):
    secret: str = Field(description="HMAC-SHA256 key of the Telbill-Signature header")


class WebhookList(BaseModel):
    items: list[WebhookOut]


def _thresholds_out(settings: thresholds.ThresholdSettings) -> ThresholdsOut:
    return ThresholdsOut(
        account_id=settings.account_id,
        fixed_levels=list(settings.fixed_levels),
        fixed_modes=list(settings.fixed_modes),
        spend_days=settings.spend_days,
        spend_window_days=settings.spend_window_days,
        is_default=settings.is_default,
    )


def _webhook_fields(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "account_id": endpoint.account_id,
        "url": endpoint.target,
        "event_types": list(endpoint.event_types) if endpoint.event_types is not None else None,
        "active": endpoint.active,
        "created_at": endpoint.created_at,
    }


@router.get(
    "/accounts/{account_id}/thresholds",
    response_model=ThresholdsOut,
    summary="Low-balance thresholds of the account's wallet",
)
def get_thresholds(account_id: int, db: DbDep, principal: PrincipalDep) -> ThresholdsOut:
    authorize(db, principal, account_id, Action.READ)
    return _thresholds_out(thresholds.get_settings(db, account_id))


@router.put(
    "/accounts/{account_id}/thresholds",
    response_model=ThresholdsOut,
    summary="Replace the low-balance thresholds of the account's wallet",
)
def put_thresholds(
    account_id: int, body: ThresholdsIn, db: DbDep, clock: ClockDep, principal: PrincipalDep
) -> ThresholdsOut:
    authorize(db, principal, account_id, Action.MANAGE_NOTIFICATIONS)
    settings = thresholds.set_settings(
        db,
        account_id,
        fixed_levels=body.fixed_levels,
        spend_days=body.spend_days,
        spend_window_days=body.spend_window_days,
        now=clock.now(),
        fixed_modes=body.fixed_modes,
    )
    return _thresholds_out(settings)


@router.get(
    "/accounts/{account_id}/notifications",
    response_model=NotificationList,
    summary="In-app notifications (the account's events), oldest first",
)
def list_notifications(
    account_id: int,
    db: DbDep,
    principal: PrincipalDep,
    unread: Annotated[bool, Query(description="Only those not marked read")] = False,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=notifications.MAX_PAGE)] = 100,
) -> NotificationList:
    authorize(db, principal, account_id, Action.READ)
    found = notifications.list_notifications(
        db, account_id, unread_only=unread, after_id=after_id, limit=limit
    )
    return NotificationList(
        items=[
            NotificationOut(
                event_id=n.event_id,
                type=n.type,
                account_id=n.account_id,
                payload=n.payload,
                occurred_at=n.occurred_at,
                read=n.read_at is not None,
                read_at=n.read_at,
            )
            for n in found
        ]
    )


@router.post(
    "/accounts/{account_id}/notifications/read",
    response_model=MarkReadOut,
    summary="Mark notifications read (those listed, or all); anyone who may read them",
)
def mark_read(
    account_id: int,
    body: MarkReadIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> MarkReadOut:
    authorize(db, principal, account_id, Action.READ)
    # Keyed like every POST: a retry answers the first `marked` count, not 0.
    answer = run_once(
        db, scope="api.notifications.read", key=idempotency_key, clock=clock,
        request={"account_id": account_id, "event_ids": body.event_ids},
        compute=lambda: {
            "marked": notifications.mark_read(db, account_id, body.event_ids, now=clock.now())
        },
    )  # fmt: skip
    return MarkReadOut(**answer)


@router.post(
    "/accounts/{account_id}/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedWebhookOut,
    summary="Register a webhook URL for the account's events (signed with the secret)",
)
def create_webhook(
    account_id: int,
    body: WebhookIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> CreatedWebhookOut:
    authorize(db, principal, account_id, Action.MANAGE_NOTIFICATIONS)
    endpoint = notifications.add_endpoint(
        db,
        account_id,
        kind="webhook",
        target=body.url,
        event_types=body.event_types,
        secret=body.secret,
        now=clock.now(),
        idempotency_key=idempotency_key,
    )
    return CreatedWebhookOut(**_webhook_fields(endpoint), secret=endpoint.secret or "")


@router.get(
    "/accounts/{account_id}/webhooks",
    response_model=WebhookList,
    summary="Webhook endpoints of the account (secrets are not shown again)",
)
def list_webhooks(account_id: int, db: DbDep, principal: PrincipalDep) -> WebhookList:
    authorize(db, principal, account_id, Action.MANAGE_NOTIFICATIONS)
    return WebhookList(
        items=[
            WebhookOut(**_webhook_fields(e))
            for e in notifications.list_endpoints(db, account_id)
            if e.kind == "webhook"
        ]
    )


@router.get(
    "/receipts/{receipt_id}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
    summary="A top-up receipt as PDF",
)
def receipt_pdf(receipt_id: int, db: DbDep, principal: PrincipalDep) -> Response:
    receipt = receipts.get_receipt(db, receipt_id)
    try:
        authorize(db, principal, receipt.account_id, Action.READ)
    except NotFound:  # a foreign receipt looks exactly like a missing one
        raise NotFound(f"receipt {receipt_id} not found") from None
    return Response(
        content=receipts.receipt_pdf(db, receipt_id),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{receipt.number}.pdf"'},
    )


@router.delete(
    "/accounts/{account_id}/webhooks/{webhook_id}",
    response_model=WebhookOut,
    summary="Stop a webhook (kept, inactive: its delivery history stays readable)",
)
def delete_webhook(
    account_id: int, webhook_id: int, db: DbDep, principal: PrincipalDep
) -> WebhookOut:
    authorize(db, principal, account_id, Action.MANAGE_NOTIFICATIONS)
    endpoint = notifications.get_endpoint(db, webhook_id)
    if endpoint.account_id != account_id or endpoint.kind != "webhook":
        raise NotFound(f"webhook {webhook_id} not found")
    return WebhookOut(**_webhook_fields(notifications.set_endpoint_active(db, webhook_id, False)))
