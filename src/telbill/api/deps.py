"""FastAPI dependencies shared by every router: database, clock, caller, idempotency key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from telbill.adapters.db.engine import Database
from telbill.errors import InvalidInput, MissingIdempotencyKey, Unauthenticated
from telbill.services.auth import Principal, authenticate
from telbill.services.clock import Clock

MAX_IDEMPOTENCY_KEY_LENGTH = 120


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="api_key",
    description="An API key: `Authorization: Bearer tb_...`",
)


def get_principal(
    db: Annotated[Database, Depends(get_db)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller of ``Authorization: Bearer <key>``, or 401."""
    if credentials is None or not credentials.credentials.strip():
        raise Unauthenticated("missing or malformed Authorization: Bearer <api key> header")
    return authenticate(db, credentials.credentials.strip())


def get_idempotency_key(
    principal: Annotated[Principal, Depends(get_principal)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Unique per request; a retry with the same key returns the first "
            "response and changes nothing.",
        ),
    ] = None,
) -> str:
    """The request's ``Idempotency-Key``, scoped to the caller's account.

    Scoping keeps two customers who happen to choose the same key from colliding.
    """
    if idempotency_key is None or not idempotency_key.strip():
        raise MissingIdempotencyKey("the Idempotency-Key header is required on every POST")
    key = idempotency_key.strip()
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    return f"api:{principal.account_id}:{key}"


DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
IdempotencyKeyDep = Annotated[str, Depends(get_idempotency_key)]

__all__ = [
    "ClockDep",
    "DbDep",
    "IdempotencyKeyDep",
    "PrincipalDep",
    "get_clock",
    "get_db",
    "get_idempotency_key",
    "get_principal",
]
