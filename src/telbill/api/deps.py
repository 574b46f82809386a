"""FastAPI dependencies shared by every router: database, clock, caller, idempotency key.

They are ``async`` because FastAPI runs a plain ``def`` dependency in its thread pool: one
thread hop each, per request, for work that never blocks. The caller's key is found in the
per-process key cache without blocking; only a key not cached is looked up in the thread
pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from telbill.adapters.db.engine import Database
from telbill.api.ratelimit import RateLimiter
from telbill.errors import InvalidInput, MissingIdempotencyKey, Unauthenticated
from telbill.services.auth import Principal, authenticate, cached_principal
from telbill.services.clock import Clock

MAX_IDEMPOTENCY_KEY_LENGTH = 120


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="api_key",
    description="An API key: `Authorization: Bearer tb_...`",
)


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller of ``Authorization: Bearer <key>``, or 401; 429 past its key's rate limit."""
    if credentials is None or not credentials.credentials.strip():
        raise Unauthenticated("missing or malformed Authorization: Bearer <api key> header")
    secret = credentials.credentials.strip()
    db: Database = request.app.state.db
    clock: Clock = request.app.state.clock
    principal = cached_principal(db, secret, clock)
    if principal is None:
        principal = await run_in_threadpool(authenticate, db, secret, clock)
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.check(principal.key_id)
    return principal


IDEMPOTENCY_KEY_HEADER = Header(
    alias="Idempotency-Key",
    description="Unique per request; a retry with the same key returns the first "
    "response and changes nothing.",
)


def _scoped_key(principal: Principal, idempotency_key: str | None) -> str:
    if idempotency_key is None or not idempotency_key.strip():
        raise MissingIdempotencyKey("the Idempotency-Key header is required on every POST")
    key = idempotency_key.strip()
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    return f"api:{principal.account_id}:{key}"


async def get_idempotency_key(
    principal: Annotated[Principal, Depends(get_principal)],
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY_HEADER] = None,
) -> str:
    """The request's ``Idempotency-Key``, scoped to the caller's account.

    Scoping keeps two customers who happen to choose the same key from colliding.
    """
    return _scoped_key(principal, idempotency_key)


@dataclass(frozen=True, slots=True)
class KeyedCall:
    """What a keyed POST needs, found by one dependency (`get_keyed_call`)."""

    db: Database
    clock: Clock
    principal: Principal
    key: str


async def get_keyed_call(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY_HEADER] = None,
) -> KeyedCall:
    """`DbDep`, `ClockDep`, `PrincipalDep` and `IdempotencyKeyDep` in one dependency, with
    the same checks in the same order (401, 429, then the key's 400), for the real-time
    routes: FastAPI's cost per request grows with the number of dependencies it solves."""
    principal = await get_principal(request, credentials)
    state = request.app.state
    return KeyedCall(state.db, state.clock, principal, _scoped_key(principal, idempotency_key))


# The lean real-time routes (`api.routes_sessions`) scope the key the same way.
scoped_key = _scoped_key

DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
IdempotencyKeyDep = Annotated[str, Depends(get_idempotency_key)]
KeyedCallDep = Annotated[KeyedCall, Depends(get_keyed_call)]

__all__ = [
    "ClockDep",
    "DbDep",
    "IdempotencyKeyDep",
    "KeyedCall",
    "KeyedCallDep",
    "PrincipalDep",
    "get_clock",
    "get_db",
    "get_idempotency_key",
    "get_keyed_call",
    "get_principal",
]
