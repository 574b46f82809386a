"""Charging endpoints: CDR batches, the quarantine, real-time sessions, campaigns, and the
explanation of a charge.

Roles: a ``switch`` key may post CDRs and drive sessions of its subtree, nothing else;
campaigns are managed by admins (the ``top_up`` right); reading a charge needs ``read``.
A refused authorisation is an answer (200, ``allowed: false`` with its reason), not an error:
the switch needs the reason to play the right announcement.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from telbill.adapters.db.engine import Database
from telbill.adapters.formats.cdr_common import CdrRowError
from telbill.adapters.formats.cdr_native import NATIVE_COLUMNS, NativeLayout
from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.schemas import plain_json
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput
from telbill.services import campaigns as campaigns_service
from telbill.services import charging
from telbill.services.auth import Action, authorize
from telbill.services.plans import TariffCache

router = APIRouter(tags=["charging"])
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
# The real-time session routes live in `api.routes_sessions` (a lean path of their own).


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
