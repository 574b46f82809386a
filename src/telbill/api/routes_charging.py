"""Charging endpoints: CDR batches, the quarantine, real-time sessions, campaigns, and the
explanation of a charge.

Roles: a ``switch`` key may post CDRs and drive sessions of its subtree, nothing else;
campaigns are managed by admins (the ``top_up`` right); reading a charge needs ``read``.
A refused authorisation is an answer (200, ``allowed: false`` with its reason), not an error:
the switch needs the reason to play the right announcement.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from telbill.adapters.db.engine import Database
from telbill.adapters.formats.cdr_common import CdrRowError
from telbill.adapters.formats.cdr_native import NATIVE_COLUMNS, NativeLayout
from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, KeyedCallDep, PrincipalDep
from telbill.api.schemas import plain_json
from telbill.api.types import Instant
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput
from telbill.services import campaigns as campaigns_service
from telbill.services import charging
from telbill.services import sessions as sessions_service
from telbill.services.auth import Action, authorize
from telbill.services.plans import TariffCache

router = APIRouter(tags=["charging"])
# The real-time session calls, included ahead of every other router (`api/app.py`): a request
# is matched against the routes in order, and a switch's authorize and end are most of the
# traffic.
realtime_router = APIRouter(tags=["charging"])
MAX_BATCH = 10_000


def _cache(request: Request, db: Database) -> TariffCache:
    cache: TariffCache | None = getattr(request.app.state, "tariff_cache", None)
    if cache is None:
        cache = TariffCache(db)
        request.app.state.tariff_cache = cache
    return cache


# ---------------------------------------------------------------------------- CDRs


class CdrBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(default="api", max_length=120, description="Name shown in quarantine")
    cdrs: list[dict[str, str]] = Field(
        max_length=MAX_BATCH,
        description="Records with the native CDR columns (id, account, user, direction, "
        "from, to, start, answer, end | duration, service, text | segments, speech_seconds)",
    )


@router.post("/cdrs", summary="Rate and post a batch of CDRs (the CDR id is its idempotency key)")
def post_cdrs(
    body: CdrBatchIn,
    request: Request,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    key: IdempotencyKeyDep,
) -> dict[str, Any]:
    authorize(db, principal, principal.account_id, Action.POST_CDRS)
    unknown = {name for record in body.cdrs for name in record} - set(NATIVE_COLUMNS)
    if unknown:
        raise InvalidInput(f"unknown CDR field(s): {', '.join(sorted(unknown))}")

    def compute() -> dict[str, Any]:
        records = _batch_records(body.cdrs, default_account=str(principal.account_id))
        summary = charging.post_cdrs(
            db, records, clock=clock, source=f"{body.source}", cache=_cache(request, db),
            within=principal.account_id,
        )  # fmt: skip
        result: dict[str, Any] = plain_json(summary)
        # Each bad CDR is quarantined on its own, the others post: the answer names each by
        # its index in `cdrs` (the quarantine's line is index + FIRST_ITEM_LINE).
        result["bad_items"] = [
            {"index": None if problem["line"] is None else problem["line"] - FIRST_ITEM_LINE,
             "id": problem["cdr_id"],
             "reason": problem["reason"]}
            for problem in result.pop("problems")
        ]  # fmt: skip
        return result

    return charging.run_once(
        db, scope="api.cdrs", key=key, request=body.model_dump(), compute=compute, clock=clock
    )


# A batch's CDRs are numbered as the lines of a native CSV file with a header (line 1) and
# one line per CDR: the quarantine's `line` of `cdrs[i]` is i + 2.
FIRST_ITEM_LINE = 2
_BATCH_LAYOUT = NativeLayout.of(NATIVE_COLUMNS)


def _batch_records(
    items: list[dict[str, str]], *, default_account: str
) -> Iterator[UsageEvent | CdrRowError]:
    """The record (or the error) of each CDR of a batch, read one by one: a bad one is an
    error with its line, never an exception for the batch."""
    for index, item in enumerate(items):
        fields = [item.get(name, "") for name in NATIVE_COLUMNS]
        if any(value.strip() for value in fields):
            yield _BATCH_LAYOUT.record(fields, index + FIRST_ITEM_LINE, default_account, UTC)


@router.get("/cdrs/quarantine", summary="CDR rows that could not be posted, with line and reason")
def list_quarantine(
    db: DbDep,
    principal: PrincipalDep,
    status: Annotated[Literal["open", "fixed", "reposted"] | None, Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after_id: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    # Each row belongs to a tenant (the account that made the usage, else the poster's):
    # a caller sees the rows of its subtree; rows without an owner are the platform's.
    authorize(db, principal, principal.account_id, Action.READ)
    items = charging.list_quarantine(
        db, status=status, limit=limit, after_id=after_id, viewer=principal.account_id
    )
    return {"items": plain_json(items)}


class RepostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fixes: dict[str, str | int | None] = Field(
        default_factory=dict, description='Corrected usage fields, e.g. {"to": "+4477..."}'
    )


@router.post(
    "/cdrs/quarantine/{quarantine_id}/repost",
    summary="Post a quarantined CDR again, with corrected fields",
)
def repost_quarantined(
    quarantine_id: int,
    body: RepostIn,
    request: Request,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    key: IdempotencyKeyDep,
) -> dict[str, Any]:
    authorize(db, principal, principal.account_id, Action.POST_CDRS)

    def compute() -> dict[str, Any]:
        summary = charging.repost_quarantined(
            db, quarantine_id, clock=clock, fixed=body.fixes, cache=_cache(request, db),
            viewer=principal.account_id,
        )  # fmt: skip
        result: dict[str, Any] = plain_json(summary)
        return result

    return charging.run_once(
        db, scope=f"api.cdrs.repost:{principal.account_id}", key=key, clock=clock,
        request={"quarantine_id": quarantine_id, **body.model_dump()}, compute=compute,
    )  # fmt: skip


# ---------------------------------------------------------------------------- sessions


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


# Real-time calls: the blocking work (authorisation, the service) in one thread-pool hop,
# and the answer encoded here in one pass (flat dataclasses), not by FastAPI's encoder.
_FIELDS: dict[type, tuple[str, ...]] = {}


async def _in_session_thread(work: Callable[[], Any]) -> Any:
    return await to_thread.run_sync(work)


def _flat_json(value: Any) -> Response:
    """A flat dataclass as a JSON response (`plain_json`'s rules, without `asdict`'s deep
    copy or FastAPI's second encoding pass)."""
    names = _FIELDS.get(type(value))
    if names is None:
        names = _FIELDS[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    data = {name: plain_json(getattr(value, name)) for name in names}
    return Response(json.dumps(data, separators=(",", ":")), media_type="application/json")


@realtime_router.post(
    "/sessions/authorize", summary="May this call start, and for how many seconds?",
    response_model=dict[str, Any],
)  # fmt: skip
async def authorize_session(body: AuthorizeIn, request: Request, call: KeyedCallDep) -> Response:
    db, clock, principal, key = call.db, call.clock, call.principal, call.key
    cache = _cache(request, db)

    def work() -> sessions_service.Authorization:
        authorize(db, principal, body.account_id, Action.REALTIME)
        return sessions_service.authorize(
            db, cache, account_id=body.account_id, to_number=body.to, idempotency_key=key,
            clock=clock, direction=body.direction, from_number=body.from_, at=body.at,
            call_id=body.call_id, within=principal.account_id,
        )  # fmt: skip

    return _flat_json(await _in_session_thread(work))


@realtime_router.post(
    "/sessions/{session_id}/update", summary="Interim update of a call in progress"
)
async def update_session(
    session_id: int, body: UpdateIn, request: Request, call: KeyedCallDep
) -> dict[str, Any]:
    # Async with the blocking work in one thread-pool hop, like authorize and end (a sync
    # route costs a hop for the route and another to check its answer).
    db, clock, principal, key = call.db, call.clock, call.principal, call.key
    cache = _cache(request, db)

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

    result: dict[str, Any] = await _in_session_thread(work)
    return result


@realtime_router.post(
    "/sessions/{session_id}/end", summary="End a call: settle its exact charge",
    response_model=dict[str, Any],
)  # fmt: skip
async def end_session(
    session_id: int, body: EndIn, request: Request, call: KeyedCallDep
) -> Response:
    db, clock, principal, key = call.db, call.clock, call.principal, call.key
    cache = _cache(request, db)

    def work() -> sessions_service.SessionView:
        return sessions_service.end_session(
            db, cache, session_id, idempotency_key=key, clock=clock,
            duration_s=body.duration_s, answer_at=body.answer, end_at=body.end,
            check=lambda account_id: authorize(db, principal, account_id, Action.REALTIME),
        )  # fmt: skip

    return _flat_json(await _in_session_thread(work))


# ---------------------------------------------------------------------------- campaigns


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int
    name: str = Field(min_length=1, max_length=200)


@router.post("/campaigns", summary="Start a campaign (needs a positive balance)", status_code=201)
def start_campaign(
    body: CampaignIn, db: DbDep, clock: ClockDep, principal: PrincipalDep, key: IdempotencyKeyDep
) -> dict[str, Any]:
    authorize(db, principal, body.account_id, Action.TOP_UP)
    return charging.run_once(
        db, scope="api.campaigns", key=key, request=body.model_dump(), clock=clock,
        compute=lambda: plain_json(
            campaigns_service.start_campaign(db, body.account_id, body.name, clock=clock)
        ),
    )  # fmt: skip


@router.post("/campaigns/{campaign_id}/{action}", summary="Pause, resume or stop a campaign")
def change_campaign(
    campaign_id: int,
    action: Literal["pause", "resume", "stop"],
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    key: IdempotencyKeyDep,
) -> dict[str, Any]:
    current = campaigns_service.get_campaign(db, campaign_id)
    authorize(db, principal, current.account_id, Action.TOP_UP)
    change = {
        "pause": campaigns_service.pause_campaign,
        "resume": campaigns_service.resume_campaign,
        "stop": campaigns_service.stop_campaign,
    }[action]
    return charging.run_once(
        db, scope="api.campaigns.change", key=key, clock=clock,
        request={"campaign_id": campaign_id, "action": action},
        compute=lambda: plain_json(change(db, campaign_id, clock=clock)),
    )  # fmt: skip


# ---------------------------------------------------------------------------- explain


@router.get("/charges/{charge_id}/explain", summary="How a charge was computed")
def explain_charge(
    charge_id: int, request: Request, db: DbDep, principal: PrincipalDep
) -> dict[str, Any]:
    charge = charging.get_charge(db, charge_id, cache=_cache(request, db))
    authorize(db, principal, charge.account_id, Action.READ)
    body: dict[str, Any] = plain_json(charge)
    # The carrier's cost is the provider's business (its margin report), not its customers'.
    body.pop("cost", None)
    body["text"] = charge.text
    return body
