"""Wallet endpoints: top-ups (with a receipt), adjustments, refunds, credit grants,
balances and history of an account's wallet (its own, or its nearest payer's)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.schemas import AmountIn, AmountOut
from telbill.api.types import Code, Currency, Instant
from telbill.services import balances as balances_service
from telbill.services import payments, wallets
from telbill.services.auth import Action, authorize, check_wallet_visible
from telbill.services.ledger_views import Receipt, Transaction

router = APIRouter(tags=["wallets"])


class TopUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: AmountIn = Field(description="Gross amount paid, VAT included")
    currency: Currency | None = Field(default=None, description="Must be the wallet's currency")
    payment_ref: str | None = Field(default=None, max_length=200)
    memo: str | None = Field(default=None, max_length=500)


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: AmountIn = Field(description="Signed: positive credits, negative debits")
    reason: str = Field(min_length=1, max_length=500)
    currency: Currency | None = None


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: AmountIn
    reason: str = Field(min_length=1, max_length=500)
    currency: Currency | None = None


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Code = Field(description="trial, free, incoming, outgoing or package")
    amount: AmountIn
    unit: Code | None = Field(
        default=None, description="Packages: s:<counter> or msg:<counter>; else the currency"
    )
    expires_at: Instant | None = None
    priority: int | None = Field(default=None, ge=0)
    service: Code | None = None
    direction: Code | None = None
    label: str | None = Field(default=None, max_length=200)


class ReceiptOut(BaseModel):
    id: int
    number: int
    provider_id: int
    account_id: int
    transaction_id: int
    currency: str
    amount: AmountOut
    vat: AmountOut
    net: AmountOut
    vat_rate: AmountOut
    vat_country: str | None
    new_balance: AmountOut
    payment_ref: str | None
    created_at: datetime


class PostingOut(BaseModel):
    ledger_account_id: int
    amount: AmountOut
    unit: str
    bucket_kind: str
    owner_account_id: int | None
    code: str | None


class TransactionOut(BaseModel):
    id: int
    kind: str
    account_id: int | None
    subject_account_id: int | None
    created_at: datetime
    memo: str | None
    details: dict[str, Any]
    postings: list[PostingOut]
    changes: dict[str, AmountOut]


class GrantOut(BaseModel):
    bucket_id: int
    kind: str
    unit: str
    amount: AmountOut
    expires_at: datetime | None
    transaction: TransactionOut


def receipt_out(receipt: Receipt) -> ReceiptOut:
    return ReceiptOut(
        id=receipt.id,
        number=receipt.number,
        provider_id=receipt.provider_id,
        account_id=receipt.account_id,
        transaction_id=receipt.transaction_id,
        currency=receipt.currency,
        amount=receipt.amount,
        vat=receipt.vat,
        net=receipt.net,
        vat_rate=receipt.vat_rate,
        vat_country=receipt.vat_country,
        new_balance=receipt.new_balance,
        payment_ref=receipt.payment_ref,
        created_at=receipt.created_at,
    )


def transaction_out(tx: Transaction) -> TransactionOut:
    return TransactionOut(
        id=tx.id,
        kind=tx.kind,
        account_id=tx.account_id,
        subject_account_id=tx.subject_account_id,
        created_at=tx.created_at,
        memo=tx.memo,
        details=dict(tx.details),
        postings=[
            PostingOut(
                ledger_account_id=p.ledger_account_id,
                amount=p.amount,
                unit=p.unit,
                bucket_kind=p.bucket_kind,
                owner_account_id=p.owner_account_id,
                code=p.code,
            )
            for p in tx.postings
        ],
        changes=dict(tx.changes),
    )


@router.post(
    "/accounts/{account_id}/topups",
    status_code=status.HTTP_201_CREATED,
    response_model=ReceiptOut,
    summary="Book a payment received into the paid balance (provider admins); the receipt",
)
def create_top_up(
    account_id: int,
    body: TopUpIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> ReceiptOut:
    # Money enters a wallet only from a trusted source: a provider admin above the wallet
    # (a customer asks with POST /topup-requests; cards come through the signed callback).
    payments.authorize_booking(db, principal, account_id)
    receipt = payments.record_top_up(
        db,
        account_id,
        body.amount,
        currency=body.currency,
        payment_ref=body.payment_ref,
        memo=body.memo,
        idempotency_key=idempotency_key,
        clock=clock,
    )
    return receipt_out(receipt)


@router.post(
    "/accounts/{account_id}/adjustments",
    status_code=status.HTTP_201_CREATED,
    response_model=TransactionOut,
    summary="Correct the paid balance by a signed amount",
)
def create_adjustment(
    account_id: int,
    body: AdjustmentIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> TransactionOut:
    authorize(db, principal, account_id, Action.ADJUST)
    tx = wallets.adjust(
        db,
        account_id,
        body.amount,
        reason=body.reason,
        currency=body.currency,
        idempotency_key=idempotency_key,
        clock=clock,
    )
    return transaction_out(tx)


@router.post(
    "/accounts/{account_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    response_model=TransactionOut,
    summary="Pay money back out of the paid balance",
)
def create_refund(
    account_id: int,
    body: RefundIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> TransactionOut:
    authorize(db, principal, account_id, Action.REFUND)
    tx = wallets.refund(
        db,
        account_id,
        body.amount,
        reason=body.reason,
        currency=body.currency,
        idempotency_key=idempotency_key,
        clock=clock,
    )
    return transaction_out(tx)


@router.post(
    "/accounts/{account_id}/credit-grants",
    status_code=status.HTTP_201_CREATED,
    response_model=GrantOut,
    summary="Grant credit in a new bucket (trial, free, directional, unit package)",
)
def create_grant(
    account_id: int,
    body: GrantIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> GrantOut:
    authorize(db, principal, account_id, Action.GRANT_CREDIT)
    grant = wallets.grant_credit(
        db,
        account_id,
        body.amount,
        kind=body.kind,
        unit=body.unit,
        expires_at=body.expires_at,
        priority=body.priority,
        service=body.service,
        direction=body.direction,
        label=body.label,
        idempotency_key=idempotency_key,
        clock=clock,
    )
    return GrantOut(
        bucket_id=grant.bucket_id,
        kind=grant.kind,
        unit=grant.unit,
        amount=grant.amount,
        expires_at=grant.expires_at,
        transaction=transaction_out(grant.transaction),
    )


class BucketOut(BaseModel):
    id: int
    kind: str
    unit: str
    balance: AmountOut
    held: AmountOut
    available: AmountOut
    priority: int
    expires_at: datetime | None
    expired: bool
    service: str | None
    direction: str | None
    label: str | None


class UnitBalanceOut(BaseModel):
    unit: str
    posted: AmountOut
    held: AmountOut
    available: AmountOut
    spendable: AmountOut
    buckets: list[BucketOut]


class BalancesOut(BaseModel):
    account_id: int
    billing_account_id: int = Field(
        description="The account whose wallet pays (itself or an ancestor)"
    )
    currency: str
    billing_mode: str
    credit_limit: AmountOut
    units: list[UnitBalanceOut]


class HistoryOut(BaseModel):
    items: list[TransactionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


@router.get(
    "/accounts/{account_id}/balances",
    response_model=BalancesOut,
    summary="Balances per unit (posted, held, available) with their buckets",
)
def get_balances(
    account_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep
) -> BalancesOut:
    authorize(db, principal, account_id, Action.READ)
    result = balances_service.get_balances(db, account_id, clock=clock)
    check_wallet_visible(db, principal, result.billing_account_id)
    return BalancesOut(
        account_id=result.account_id,
        billing_account_id=result.billing_account_id,
        currency=result.currency,
        billing_mode=result.billing_mode,
        credit_limit=result.credit_limit,
        units=[
            UnitBalanceOut(
                unit=u.unit,
                posted=u.posted,
                held=u.held,
                available=u.available,
                spendable=u.spendable,
                buckets=[
                    BucketOut(
                        id=b.id,
                        kind=b.kind,
                        unit=b.unit,
                        balance=b.balance,
                        held=b.held,
                        available=b.available,
                        priority=b.priority,
                        expires_at=b.expires_at,
                        expired=b.expired,
                        service=b.service,
                        direction=b.direction,
                        label=b.label,
                    )
                    for b in u.buckets
                ],
            )
            for u in result.units
        ],
    )


@router.get(
    "/accounts/{account_id}/history",
    response_model=HistoryOut,
    summary="Transactions, newest first, with cursor paging",
)
def get_history(
    account_id: int,
    db: DbDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=balances_service.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> HistoryOut:
    authorize(db, principal, account_id, Action.READ)
    page = balances_service.list_history(db, account_id, limit=limit, cursor=cursor)
    return HistoryOut(
        items=[transaction_out(tx) for tx in page.items], next_cursor=page.next_cursor
    )


__all__ = ["router", "receipt_out", "transaction_out"]
