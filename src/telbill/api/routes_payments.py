"""Trusted money sources over the API: customers' top-up requests and their provider's
decision, the provider's card-callback secret, and the signed card-payment callback.

A manual payment is booked by `POST /v1/accounts/{id}/topups` (routes_wallets.py, provider
admins only); everything a customer can do here is ask.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.routes_wallets import ReceiptOut, receipt_out
from telbill.api.schemas import AmountIn, AmountOut
from telbill.api.types import Currency
from telbill.errors import InvalidInput
from telbill.services import card_payments, top_up_requests
from telbill.services.top_up_requests import TopUpRequest

router = APIRouter(tags=["payments"])

# A PSP's event is small; refuse anything larger before reading more of it.
MAX_CALLBACK_BYTES = 64 * 1024


class TopUpRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: AmountIn = Field(description="Gross amount the customer says it paid")
    reference: str = Field(min_length=1, max_length=150, description="The bank reference")
    currency: Currency | None = Field(default=None, max_length=3)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class TopUpRequestOut(BaseModel):
    id: int
    account_id: int
    provider_id: int
    amount: AmountOut
    currency: str
    reference: str
    status: str = Field(description="pending, confirmed or rejected")
    requested_by: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    receipt_id: int | None


class TopUpRequestList(BaseModel):
    items: list[TopUpRequestOut]


class ConfirmedOut(BaseModel):
    request: TopUpRequestOut
    receipt: ReceiptOut


class CallbackSecretOut(BaseModel):
    provider_id: int
    key_prefix: str = Field(description="The secret's first characters, to tell secrets apart")
    secret: str | None = Field(
        description="Shown once: give it to the payment provider; null on a replay"
    )


class CallbackOut(BaseModel):
    event_id: str
    status: str = Field(description="booked, or ignored for event types that book nothing")
    receipt: ReceiptOut | None


def request_out(found: TopUpRequest) -> TopUpRequestOut:
    return TopUpRequestOut(**found.__dict__)


@router.post(
    "/accounts/{account_id}/topup-requests",
    status_code=status.HTTP_201_CREATED,
    response_model=TopUpRequestOut,
    summary="Ask the provider to book a bank transfer (pending until it confirms)",
)
def create_top_up_request(
    account_id: int,
    body: TopUpRequestIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> TopUpRequestOut:
    created = top_up_requests.request_top_up(
        db, principal, account_id, body.amount, reference=body.reference,
        currency=body.currency, idempotency_key=idempotency_key, clock=clock,
    )  # fmt: skip
    return request_out(created)


@router.get(
    "/accounts/{account_id}/topup-requests",
    response_model=TopUpRequestList,
    summary="Top-up requests of an account, or those a provider decides",
)
def list_top_up_requests(
    account_id: int,
    db: DbDep,
    principal: PrincipalDep,
    request_status: Annotated[
        str | None, Query(alias="status", description="pending, confirmed or rejected")
    ] = None,
) -> TopUpRequestList:
    found = top_up_requests.list_requests(db, principal, account_id, status=request_status)
    return TopUpRequestList(items=[request_out(r) for r in found])


@router.post(
    "/topup-requests/{request_id}/confirm",
    response_model=ConfirmedOut,
    summary="Confirm a pending top-up request: the payment is booked (receipt, VAT)",
)
def confirm_top_up_request(
    request_id: int,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> ConfirmedOut:
    # Deciding is idempotent by the request itself: confirming twice books once.
    confirmed, receipt = top_up_requests.confirm(db, principal, request_id, clock=clock)
    return ConfirmedOut(request=request_out(confirmed), receipt=receipt_out(receipt))


@router.post(
    "/topup-requests/{request_id}/reject",
    response_model=TopUpRequestOut,
    summary="Reject a pending top-up request: nothing is booked",
)
def reject_top_up_request(
    request_id: int,
    body: RejectIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> TopUpRequestOut:
    rejected = top_up_requests.reject(db, principal, request_id, reason=body.reason, clock=clock)
    return request_out(rejected)


@router.post(
    "/accounts/{account_id}/payment-callback-secret",
    status_code=status.HTTP_201_CREATED,
    response_model=CallbackSecretOut,
    summary="Set a new secret for the card payment provider's signed callbacks",
)
def rotate_callback_secret(
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> CallbackSecretOut:
    rotated = card_payments.rotate_secret(
        db, principal, account_id, clock=clock, idempotency_key=idempotency_key
    )
    return CallbackSecretOut(
        provider_id=rotated.provider_id, key_prefix=rotated.key_prefix, secret=rotated.secret
    )


@router.post(
    "/payment-callbacks/{provider_id}",
    response_model=CallbackOut,
    summary="A card payment provider reports a payment (HMAC-signed, no API key)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def payment_callback(
    provider_id: int,
    request: Request,
    db: DbDep,
    clock: ClockDep,
    signature: Annotated[
        str | None,
        Header(
            alias=card_payments.SIGNATURE_HEADER,
            description='t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">',
        ),
    ] = None,
) -> CallbackOut:
    """Signed by the provider's callback secret; a bad or stale signature is a 401 and books
    nothing; the event id makes a repeated delivery book once."""
    body = await request.body()
    if len(body) > MAX_CALLBACK_BYTES:
        raise InvalidInput(f"a payment callback is at most {MAX_CALLBACK_BYTES} bytes")
    result = await run_in_threadpool(
        card_payments.book_callback, db, provider_id, body, signature, clock=clock
    )
    return CallbackOut(
        event_id=result.event_id,
        status="booked" if result.receipt is not None else "ignored",
        receipt=receipt_out(result.receipt) if result.receipt is not None else None,
    )
