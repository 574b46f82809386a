"""Catalogue endpoints: a provider's subscription plans, packages and number inventory.

Writing the catalogue is the provider's business: ``/v1/plans``, ``/v1/packages`` and
``/v1/inventory/numbers`` act on the caller's own provider and need a provider admin key
(the GRANT_CREDIT action, as the CLI's catalogue commands). Customers read what they may
buy under their account: ``/v1/accounts/{id}/plans`` and ``/v1/accounts/{id}/package-offers``
(READ). Thin over `telbill.services.subscriptions` and `telbill.services.numbers`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.schemas import AmountIn, plain_json
from telbill.api.types import Code
from telbill.errors import InvalidInput, PermissionDenied
from telbill.services import numbers, subscriptions
from telbill.services.auth import ROLE_ACTIONS, Action, Principal, authorize

router = APIRouter(tags=["catalogue"])
MAX_SHOWN = 20  # bad rows named in the problem's detail


def _json(value: Any, code: int = status.HTTP_200_OK) -> JSONResponse:
    return JSONResponse(plain_json(value), status_code=code)


def _own_provider(principal: Principal) -> int:
    """The provider whose catalogue the caller manages (a provider admin's own account)."""
    if Action.GRANT_CREDIT not in ROLE_ACTIONS[principal.role]:
        raise PermissionDenied(
            f"a {principal.role.value} key may not change or list the provider's catalogue"
        )
    return principal.account_id


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    monthly_fee: AmountIn = Field(description="Per seat, in the provider's currency")
    free_credit_percent: Decimal = Field(default=Decimal(0), ge=0, le=100)
    trial_credit: AmountIn = Decimal(0)
    trial_number_days: int = Field(default=7, ge=0, le=366)
    keep_anniversary: bool = False


class PackageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    unit: Code = Field(description="s:call, s:speech or msg:sms")
    amount: AmountIn = Field(description="Seconds or messages")
    price: AmountIn
    validity_days: int | None = Field(default=None, ge=1, le=3660)


class InventoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csv: str = Field(
        min_length=1,
        max_length=20_000_000,
        description="number,country,type,region,locality,area_code,monthly_price,"
        "setup_price,verification_required (header row first)",
    )
    skip_bad: bool = Field(default=False, description="Import the good rows even if some are bad")


@router.get("/plans", summary="The caller's provider catalogue of subscription plans")
def list_own_plans(db: DbDep, principal: PrincipalDep) -> JSONResponse:
    return _json({"plans": subscriptions.list_plans(db, _own_provider(principal))})


@router.post(
    "/plans",
    status_code=status.HTTP_201_CREATED,
    summary="Add a subscription plan (fee per seat, free credit %, trial settings)",
)
def create_plan(
    body: PlanIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    plan = subscriptions.create_plan(
        db,
        _own_provider(principal),
        code=body.code,
        name=body.name or body.code,
        monthly_fee=body.monthly_fee,
        free_credit_percent=body.free_credit_percent,
        trial_credit=body.trial_credit,
        trial_number_days=body.trial_number_days,
        keep_anniversary=body.keep_anniversary,
        clock=clock,
        idempotency_key=idempotency_key,
    )
    return _json(plan, status.HTTP_201_CREATED)


@router.get("/packages", summary="The caller's provider catalogue of minute/SMS packages")
def list_own_packages(db: DbDep, principal: PrincipalDep) -> JSONResponse:
    return _json({"packages": subscriptions.list_packages(db, _own_provider(principal))})


@router.post(
    "/packages",
    status_code=status.HTTP_201_CREATED,
    summary="Add a minute/SMS package (units, price, optional validity)",
)
def create_package(
    body: PackageIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    package = subscriptions.create_package(
        db,
        _own_provider(principal),
        code=body.code,
        name=body.name or body.code,
        unit=body.unit,
        amount=body.amount,
        price=body.price,
        validity_days=body.validity_days,
        clock=clock,
        idempotency_key=idempotency_key,
    )
    return _json(package, status.HTTP_201_CREATED)


@router.post(
    "/inventory/numbers",
    summary="Import numbers into the caller's inventory (CSV); bad rows reported by line",
)
def import_numbers(
    body: InventoryIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    provider_id = _own_provider(principal)
    try:
        rows, errors = read_inventory_text(body.csv)
    except InvalidInput as exc:
        raise InvalidInput(f"csv: {exc.message}") from None
    bad = [{"line": error.line, "reason": error.reason} for error in errors]
    if errors and not body.skip_bad:
        shown = "; ".join(f"line {e['line']}: {e['reason']}" for e in bad[:MAX_SHOWN])
        more = f" (and {len(bad) - MAX_SHOWN} more)" if len(bad) > MAX_SHOWN else ""
        raise InvalidInput(f"{len(bad)} bad row(s), nothing imported: {shown}{more}")
    result = numbers.import_inventory(
        db, provider_id, rows, clock=clock, idempotency_key=idempotency_key
    )
    return _json(
        {"added": result.added, "updated": result.updated, "taken": result.taken, "errors": bad}
    )


@router.get("/accounts/{account_id}/plans", summary="Plans this account may subscribe to")
def plans_for_account(account_id: int, db: DbDep, principal: PrincipalDep) -> JSONResponse:
    authorize(db, principal, account_id, Action.READ)
    return _json({"plans": subscriptions.list_plans(db, account_id)})


@router.get(
    "/accounts/{account_id}/package-offers", summary="Packages this account may buy, with prices"
)
def packages_for_account(account_id: int, db: DbDep, principal: PrincipalDep) -> JSONResponse:
    authorize(db, principal, account_id, Action.READ)
    return _json({"packages": subscriptions.list_packages(db, account_id)})
