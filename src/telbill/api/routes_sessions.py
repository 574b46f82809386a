"""The real-time session routes: authorize, interim update, end (most of a switch's traffic).

Each route exists twice, with one implementation behind both:

* the documented FastAPI route (`realtime_router`): its body model, headers and answers are
  what the OpenAPI document shows, and it answers any request the lean route leaves;
* a lean Starlette route (`lean_routes`, matched first, `api/app.py`) for the requests a
  switch sends: ``Authorization: Bearer``, ``Idempotency-Key`` and a JSON body. No
  dependency solving per request: the key comes from the per-process key cache (valid for
  `services.auth.KEY_CACHE_TTL_S`, a revoked key dropped at once in the revoking process),
  the body is validated by its pydantic model straight from the bytes, and the answer is
  encoded in one pass.

Authorisations and ends wait on the event loop, not in threads: `AsyncGroupCommit` hands
everything queued to one worker thread, which checks each caller's scope, prepares and
decides them in one batch (`services.session_batch`). Interim updates (rarer) run in one
thread-pool hop each.

Both check the same things in the same order (401, 429, the key's 400, then the body's 422)
and answer the same bodies. A refused authorisation is an answer (200, ``allowed: false``
with its reason), not an error: the switch needs the reason to play the right announcement.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.routing import Match, Route
from starlette.types import Scope

from telbill.adapters.db.engine import Database
from telbill.api.deps import KeyedCall, KeyedCallDep, scoped_key
from telbill.api.ratelimit import RateLimiter
from telbill.api.schemas import plain_json
from telbill.api.types import Instant
from telbill.errors import Unauthenticated
from telbill.services import charging
from telbill.services import sessions as sessions_service
from telbill.services.auth import Action, authenticate, authorize, cached_principal
from telbill.services.plans import TariffCache
from telbill.services.session_batch import AsyncGroupCommit, AuthorizeRequest, EndRequest

realtime_router = APIRouter(tags=["charging"])
ModelT = TypeVar("ModelT", bound=BaseModel)


class AuthorizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(description="The account or user making (or receiving) the call")
    to: str = Field(min_length=1, max_length=40)
    from_: str | None = Field(default=None, alias="from", max_length=40)
    direction: Literal["outbound", "inbound"] = "outbound"
    at: Instant | None = None
    call_id: str | None = Field(default=None, max_length=200)


class UpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    elapsed_s: int = Field(ge=0)


class EndIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: int | None = Field(default=None, ge=0)
    answer: Instant | None = None
    end: Instant | None = None


def tariff_cache(request: Request, db: Database) -> TariffCache:
    """The app's tariff cache (one per app: compiled tariffs are reused across requests)."""
    cache: TariffCache | None = getattr(request.app.state, "tariff_cache", None)
    if cache is None:
        cache = TariffCache(db)
        request.app.state.tariff_cache = cache
    return cache


# ---------------------------------------------------------------------------- the work

_FIELDS: dict[type, tuple[str, ...]] = {}


def _flat_json(value: Any) -> Response:
    """A flat dataclass or a dict as a JSON response (`plain_json`'s rules, without `asdict`'s
    deep copy or FastAPI's second encoding pass)."""
    if isinstance(value, dict):
        data = value
    else:
        names = _FIELDS.get(type(value))
        if names is None:
            names = _FIELDS[type(value)] = tuple(f.name for f in dataclasses.fields(value))
        data = {name: plain_json(getattr(value, name)) for name in names}
    return Response(json.dumps(data, separators=(",", ":")), media_type="application/json")


async def _in_thread(work: Callable[[], Any]) -> Response:
    return _flat_json(await to_thread.run_sync(work))


def _engine(request: Request, db: Database) -> AsyncGroupCommit:
    """The app's batcher on this worker's event loop."""
    engine: AsyncGroupCommit | None = getattr(request.app.state, "session_engine", None)
    loop = asyncio.get_running_loop()
    if engine is None or engine.loop is not loop:  # a test client may run a loop per request
        engine = request.app.state.session_engine = AsyncGroupCommit(db, loop)
    return engine


async def _authorize(request: Request, call: KeyedCall, body: AuthorizeIn) -> Response:
    db, clock, principal, key = call.db, call.clock, call.principal, call.key
    cache = tariff_cache(request, db)

    def prepare() -> AuthorizeRequest:
        authorize(db, principal, body.account_id, Action.REALTIME)
        return sessions_service.prepare_authorize(
            db, cache, account_id=body.account_id, to_number=body.to, idempotency_key=key,
            clock=clock, direction=body.direction, from_number=body.from_, at=body.at,
            call_id=body.call_id, within=principal.account_id,
        )  # fmt: skip

    def finish(prepared: AuthorizeRequest, answer: dict[str, Any]) -> Response:
        return _flat_json(sessions_service.authorization_of(db, prepared, answer))

    response: Response = await _engine(request, db).submit(prepare, finish)
    return response


def _update_work(
    request: Request, call: KeyedCall, session_id: int, body: UpdateIn
) -> Callable[[], Any]:
    db, clock, principal, key = call.db, call.clock, call.principal, call.key
    cache = tariff_cache(request, db)

    # Keyed like every POST: a retried update answers as the first one did (found by
    # schemathesis: a replay answered with a new last_update_at).
    def compute() -> dict[str, Any]:
        view = sessions_service.update_session(
            db, session_id, elapsed_s=body.elapsed_s, clock=clock, cache=cache,
            check=lambda account_id: authorize(db, principal, account_id, Action.REALTIME),
        )  # fmt: skip
        result: dict[str, Any] = plain_json(view)
        return result

    def work() -> dict[str, Any]:
        return charging.run_once(
            db, scope=f"api.sessions.update:{principal.key_id}", key=key, clock=clock,
            request={"session_id": session_id, **body.model_dump()}, compute=compute,
        )  # fmt: skip

    return work


async def _end(request: Request, call: KeyedCall, session_id: int, body: EndIn) -> Response:
    db, clock, principal, key = call.db, call.clock, call.principal, call.key
    cache = tariff_cache(request, db)

    def prepare() -> EndRequest:
        return sessions_service.prepare_end(
            db, cache, session_id, idempotency_key=key, clock=clock,
            duration_s=body.duration_s, answer_at=body.answer, end_at=body.end,
            check=lambda account_id: authorize(db, principal, account_id, Action.REALTIME),
        )  # fmt: skip

    def finish(_: EndRequest, view: sessions_service.SessionView) -> Response:
        return _flat_json(view)

    response: Response = await _engine(request, db).submit(prepare, finish)
    return response


# ---------------------------------------------------------------------------- documented


@realtime_router.post(
    "/sessions/authorize", summary="May this call start, and for how many seconds?",
    response_model=dict[str, Any],
)  # fmt: skip
async def authorize_session(body: AuthorizeIn, request: Request, call: KeyedCallDep) -> Response:
    return await _authorize(request, call, body)


@realtime_router.post(
    "/sessions/{session_id}/update", summary="Interim update of a call in progress",
    response_model=dict[str, Any],
)  # fmt: skip
async def update_session(
    session_id: int, body: UpdateIn, request: Request, call: KeyedCallDep
) -> Response:
    return await _in_thread(_update_work(request, call, session_id, body))


@realtime_router.post(
    "/sessions/{session_id}/end", summary="End a call: settle its exact charge",
    response_model=dict[str, Any],
)  # fmt: skip
async def end_session(
    session_id: int, body: EndIn, request: Request, call: KeyedCallDep
) -> Response:
    return await _end(request, call, session_id, body)


# ---------------------------------------------------------------------------- lean


async def _lean_call(request: Request) -> KeyedCall:
    """`deps.get_keyed_call` without FastAPI: the same checks in the same order."""
    state = request.app.state
    db: Database = state.db
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthenticated("missing or malformed Authorization: Bearer <api key> header")
    principal = cached_principal(db, secret)
    if principal is None:
        principal = await run_in_threadpool(authenticate, db, secret)
    limiter: RateLimiter | None = getattr(state, "rate_limiter", None)
    if limiter is not None:
        limiter.check(principal.key_id)
    key = scoped_key(principal, request.headers.get("idempotency-key"))
    return KeyedCall(db, state.clock, principal, key)


def _body(model: type[ModelT], raw: bytes) -> ModelT:
    try:
        return model.model_validate_json(raw)
    except ValidationError as invalid:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors()]
        ) from None


async def _lean_authorize(request: Request) -> Response:
    call = await _lean_call(request)
    body = _body(AuthorizeIn, await request.body())
    return await _authorize(request, call, body)


async def _lean_update(request: Request) -> Response:
    call = await _lean_call(request)
    body = _body(UpdateIn, await request.body())
    session_id: int = request.path_params["session_id"]
    return await _in_thread(_update_work(request, call, session_id, body))


async def _lean_end(request: Request) -> Response:
    call = await _lean_call(request)
    body = _body(EndIn, await request.body())
    session_id: int = request.path_params["session_id"]
    return await _end(request, call, session_id, body)


class _LeanRoute(Route):
    """Matches only the requests a switch sends (a POST with a bearer key, an idempotency key
    and a JSON body); any other request goes on to the documented route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("method") != "POST":
            return Match.NONE, {}
        found = {"authorization": False, "idempotency-key": False, "json": False}
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                found["authorization"] = value[:7].lower() == b"bearer "
            elif name == b"idempotency-key":
                found["idempotency-key"] = True
            elif name == b"content-type":
                found["json"] = value.split(b";")[0].strip().lower() == b"application/json"
        if not all(found.values()):
            return Match.NONE, {}
        match, child = super().matches(scope)
        return (Match.FULL, child) if match is Match.FULL else (Match.NONE, {})


def lean_routes(prefix: str) -> list[Route]:
    """The lean routes under `prefix` (``/v1``), to put before every other route."""
    return [
        _LeanRoute(f"{prefix}/sessions/authorize", _lean_authorize, methods=["POST"]),
        _LeanRoute(
            f"{prefix}/sessions/{{session_id:int}}/update", _lean_update, methods=["POST"]
        ),  # fmt: skip
        _LeanRoute(f"{prefix}/sessions/{{session_id:int}}/end", _lean_end, methods=["POST"]),
    ]


__all__ = ["AuthorizeIn", "EndIn", "UpdateIn", "lean_routes", "realtime_router", "tariff_cache"]
