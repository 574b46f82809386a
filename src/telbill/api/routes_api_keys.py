"""API key endpoints: create a key for an account in the caller's scope, list its keys."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.types import Code, Instant
from telbill.services.auth import ApiKey, create_api_key_as, list_api_keys

router = APIRouter(tags=["api keys"])


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Code = Field(description="provider_admin, org_admin, user or switch")
    expires_at: Instant | None = Field(
        default=None, description="Optional: the key is refused (401) from this time on"
    )


class ApiKeyOut(BaseModel):
    id: int
    name: str
    role: str
    account_id: int
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = Field(description="null: the key does not expire")
    last_used_at: datetime | None = Field(
        description="Last time the key was accepted, to the minute; null: never used"
    )


class CreatedApiKeyOut(ApiKeyOut):
    secret: str | None = Field(
        description="The plain key, shown once; null when the request is a replay"
    )


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


def _key_fields(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role.value,
        "account_id": key.account_id,
        "key_prefix": key.key_prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
    }


@router.post(
    "/accounts/{account_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedApiKeyOut,
    summary="Create an API key bound to an account (the secret is shown once)",
)
def create_key(
    account_id: int,
    body: ApiKeyIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> CreatedApiKeyOut:
    created = create_api_key_as(
        db,
        principal,
        account_id=account_id,
        role=body.role,
        name=body.name,
        expires_at=body.expires_at,
        idempotency_key=idempotency_key,
        clock=clock,
    )
    return CreatedApiKeyOut(**_key_fields(created.key), secret=created.secret)  # type: ignore[arg-type]


@router.get(
    "/accounts/{account_id}/api-keys",
    response_model=ApiKeyList,
    summary="List the API keys bound to an account (never their secrets)",
)
def list_keys(account_id: int, db: DbDep, principal: PrincipalDep) -> ApiKeyList:
    keys = list_api_keys(db, principal, account_id)
    return ApiKeyList(items=[ApiKeyOut(**_key_fields(k)) for k in keys])  # type: ignore[arg-type]
