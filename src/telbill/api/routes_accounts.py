"""Accounts endpoints: create a child account, read one account, list a subtree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.schemas import AmountIn, AmountOut
from telbill.api.types import Code, Currency, TimezoneName
from telbill.services import accounts as accounts_service
from telbill.services.accounts import Account
from telbill.services.auth import Action, authorize, check_account_settings

router = APIRouter(tags=["accounts"])


class AccountCreate(BaseModel):
    """A new account under the path's account; unset settings are inherited from it."""

    model_config = ConfigDict(extra="forbid")

    kind: Code = Field(description="organisation (under a provider) or user", examples=["user"])
    name: str = Field(min_length=1, max_length=200)
    currency: Currency | None = Field(default=None, description="ISO 4217; default: the parent's")
    timezone: TimezoneName | None = Field(
        default=None, description="IANA name; default: the parent's"
    )
    billing_mode: Code | None = Field(default=None, description="prepaid or postpaid")
    credit_limit: AmountIn | None = Field(default=None, description="postpaid only")
    vat_country: Code | None = None
    vat_rate: AmountIn | None = Field(default=None, description='fraction: "0.2" for 20%')
    has_wallet: bool | None = Field(
        default=None, description="default: organisations yes, users are charged to the parent"
    )


class AccountOut(BaseModel):
    id: int
    parent_id: int | None
    provider_id: int
    kind: str
    name: str
    currency: str
    timezone: str
    billing_mode: str
    credit_limit: AmountOut
    status: str
    vat_country: str | None
    vat_rate: AmountOut
    has_wallet: bool
    created_at: datetime


class AccountList(BaseModel):
    items: list[AccountOut]


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        id=account.id,
        parent_id=account.parent_id,
        provider_id=account.provider_id,
        kind=account.kind.value,
        name=account.name,
        currency=account.currency,
        timezone=account.timezone,
        billing_mode=account.billing_mode.value,
        credit_limit=account.credit_limit,
        status=account.status.value,
        vat_country=account.vat_country,
        vat_rate=account.vat_rate,
        has_wallet=account.has_wallet,
        created_at=account.created_at,
    )


@router.post(
    "/accounts/{account_id}/children",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountOut,
    summary="Create a child account",
)
def create_child_account(
    account_id: int,
    body: AccountCreate,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> AccountOut:
    authorize(db, principal, account_id, Action.CREATE_ACCOUNT)
    settings: dict[str, Any] = body.model_dump(exclude_unset=True)
    check_account_settings(principal, settings)
    account = accounts_service.create_account(
        db,
        kind=body.kind,
        name=body.name,
        parent_id=account_id,
        currency=body.currency,
        timezone=body.timezone,
        billing_mode=body.billing_mode,
        credit_limit=body.credit_limit if body.credit_limit is not None else 0,
        vat_country=body.vat_country,
        vat_rate=body.vat_rate,
        has_wallet=body.has_wallet,
        idempotency_key=idempotency_key,
        clock=clock,
    )
    return account_out(account)


@router.get("/accounts/{account_id}", response_model=AccountOut, summary="Get an account")
def get_account(account_id: int, db: DbDep, principal: PrincipalDep) -> AccountOut:
    authorize(db, principal, account_id, Action.READ)
    return account_out(accounts_service.get_account(db, account_id))


@router.get(
    "/accounts/{account_id}/subtree",
    response_model=AccountList,
    summary="List an account and every account below it",
)
def list_subtree(account_id: int, db: DbDep, principal: PrincipalDep) -> AccountList:
    authorize(db, principal, account_id, Action.READ)
    return AccountList(
        items=[account_out(a) for a in accounts_service.list_subtree(db, account_id)]
    )
