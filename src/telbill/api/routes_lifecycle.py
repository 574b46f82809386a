"""Lifecycle endpoints: number search/buy/release/list, subscriptions, packages.

Authorisation uses the existing actions until dedicated ones exist: reading needs READ;
spending the account's own balance on a number, a subscription or a package needs TOP_UP
(the organisation admin's money action); changing the provider's catalogue (plans,
packages) needs GRANT_CREDIT (provider admins).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from telbill.api import routes_catalogue
from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.schemas import AmountIn, plain_json
from telbill.api.types import MAX_CODE, MAX_NAME, Number
from telbill.services import accounts, numbers, subscriptions
from telbill.services.auth import Action, authorize

router = APIRouter(tags=["lifecycle"])
# Plans, packages and inventory of the catalogue live in their own module, served with these.
router.include_router(routes_catalogue.router)


def _json(value: Any, code: int = status.HTTP_200_OK) -> JSONResponse:
    return JSONResponse(plain_json(value), status_code=code)


class BuyNumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: Number = Field(description="E.164, e.g. +16175550100")


class VerifyNumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(description="E.164 number waiting for its verification")
    approved: bool = Field(description="true: charge and activate it; false: release it")
    reference: str | None = Field(default=None, max_length=200, description="The documents checked")


class AddOnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    monthly_fee: AmountIn
    quantity: int = Field(default=1, ge=1)


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(min_length=1, max_length=64)
    seats: int = Field(default=1, ge=1)
    addons: list[AddOnIn] = Field(default_factory=list)


class ChangeSubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seats: int | None = Field(default=None, ge=1)
    addons: list[AddOnIn] | None = None


class BuyPackageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package: str = Field(min_length=1, max_length=64)


def _addons(items: list[AddOnIn] | None) -> list[dict[str, Any]] | None:
    if items is None:
        return None
    return [
        {
            "code": a.code,
            "name": a.name or a.code,
            "monthly_fee": a.monthly_fee,
            "quantity": a.quantity,
        }
        for a in items
    ]


@router.get(
    "/accounts/{account_id}/numbers/available",
    summary="Search the numbers this account can buy, with their prices",
)
def search_numbers(
    account_id: int,
    db: DbDep,
    principal: PrincipalDep,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    number_type: Annotated[str | None, Query(alias="type", max_length=MAX_CODE)] = None,
    area_code: Annotated[str | None, Query(max_length=MAX_CODE)] = None,
    locality: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> JSONResponse:
    authorize(db, principal, account_id, Action.READ)
    offers = numbers.search_numbers(
        db,
        country=country,
        number_type=number_type,
        area_code=area_code,
        locality=locality,
        provider_id=accounts.get_account(db, account_id).provider_id,
        limit=limit,
    )
    return _json({"numbers": offers})


@router.get("/accounts/{account_id}/numbers", summary="Numbers an account rents")
def list_numbers(account_id: int, db: DbDep, principal: PrincipalDep) -> JSONResponse:
    authorize(db, principal, account_id, Action.READ)
    return _json({"numbers": numbers.list_numbers(db, account_id)})


@router.post(
    "/accounts/{account_id}/numbers",
    status_code=status.HTTP_201_CREATED,
    summary="Buy a number: setup fee and first month now (or pending a verification)",
)
def buy_number(
    account_id: int,
    body: BuyNumberIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    authorize(db, principal, account_id, Action.TOP_UP)
    rental = numbers.buy_number(
        db, account_id, body.number, idempotency_key=idempotency_key, clock=clock
    )
    return _json(rental, status.HTTP_201_CREATED)


@router.post(
    "/accounts/{account_id}/numbers/verification",
    summary="Approve (charge, activate) or reject (release) a number waiting for verification",
)
def verify_number(
    account_id: int,
    body: VerifyNumberIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,  # required like every POST
) -> JSONResponse:
    del idempotency_key  # a decision is made once: deciding the same number again is a 409
    authorize(db, principal, account_id, Action.GRANT_CREDIT)  # provider admins
    rental = numbers.verify_number(
        db, body.number, approved=body.approved, reference=body.reference, clock=clock,
        account_id=account_id,
    )  # fmt: skip
    return _json(rental)


@router.post(
    "/accounts/{account_id}/numbers/release",
    summary="Give a number back (it is quarantined before it returns to the inventory)",
)
def release_number(
    account_id: int,
    body: BuyNumberIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    authorize(db, principal, account_id, Action.TOP_UP)
    rental = numbers.release_number(
        db, account_id, body.number, idempotency_key=idempotency_key, clock=clock
    )
    return _json(rental)


@router.post(
    "/accounts/{account_id}/subscription",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe to a plan: fee x seats + add-ons charged now, credits granted",
)
def subscribe(
    account_id: int,
    body: SubscribeIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    authorize(db, principal, account_id, Action.TOP_UP)
    sub = subscriptions.subscribe(
        db,
        account_id,
        body.plan,
        seats=body.seats,
        addons=_addons(body.addons) or [],
        idempotency_key=idempotency_key,
        clock=clock,
    )
    return _json(sub, status.HTTP_201_CREATED)


@router.post(
    "/accounts/{account_id}/subscription/change",
    summary="Change seats or add-ons of the current subscription; the difference is prorated",
)
def change_subscription(
    account_id: int,
    body: ChangeSubscriptionIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    authorize(db, principal, account_id, Action.TOP_UP)
    current = subscriptions.current_subscription(db, account_id)
    sub = subscriptions.change_subscription(
        db,
        current.id,
        seats=body.seats,
        addons=_addons(body.addons),
        idempotency_key=idempotency_key,
        clock=clock,
    )
    return _json(sub)


@router.post(
    "/accounts/{account_id}/packages",
    status_code=status.HTTP_201_CREATED,
    summary="Buy a minute/SMS package from the balance",
)
def buy_package(
    account_id: int,
    body: BuyPackageIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    authorize(db, principal, account_id, Action.TOP_UP)
    purchase = subscriptions.buy_package(
        db, account_id, body.package, idempotency_key=idempotency_key, clock=clock
    )
    return _json(purchase, status.HTTP_201_CREATED)


@router.get("/accounts/{account_id}/packages", summary="Package units left per counter")
def package_counters(
    account_id: int, db: DbDep, clock: ClockDep, principal: PrincipalDep
) -> JSONResponse:
    authorize(db, principal, account_id, Action.READ)
    return _json({"counters": subscriptions.package_counters(db, account_id, clock=clock)})
