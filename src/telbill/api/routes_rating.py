"""Rating endpoints: quote a call or a message, segment an SMS text.

Pure pricing: nothing is stored and no balance moves. Any authenticated key may quote with
the tariffs of its own provider and the operator's shared retail ones, never another
provider's; carrier cost decks only with a provider admin key (`tariffs.viewer_of`): any
other tariff name is a 404, like a missing one. ``GET /v1/quote`` takes query parameters;
``POST /v1/quote`` takes the same fields as JSON (for long texts) and, like every POST of
this API, an ``Idempotency-Key``. No matching rate is a ``no_rate`` problem (422).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from telbill.api.deps import DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.types import Instant
from telbill.domain.sms import segment_sms
from telbill.domain.tariffs import Direction, Service
from telbill.services.auth import Principal
from telbill.services.quotes import QuoteRequest, load_tariff_index, quote, quote_summary
from telbill.services.tariffs import viewer_of

router = APIRouter(tags=["rating"])


class QuoteBody(BaseModel):
    """What to price. `at` defaults to now; a time without an offset is UTC."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    tariff: str = Field(min_length=1, max_length=200)
    to: str = Field(min_length=1, max_length=64, description="Called number.")
    from_: str | None = Field(None, alias="from", max_length=64)
    service: Service = Service.VOICE
    direction: Direction = Direction.OUTBOUND
    duration: int | None = Field(None, ge=0, description="Call seconds (default 60).")
    text: str | None = Field(None, max_length=10_000, description="SMS text.")
    at: Instant | None = None
    units: int | None = Field(None, ge=0, description="Data bytes or generic units.")


class SegmentsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=10_000)


def _quote(db: DbDep, principal: Principal, body: QuoteBody) -> dict[str, Any]:
    at = body.at or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    request = QuoteRequest(
        to_number=body.to,
        at=at,
        service=body.service,
        direction=body.direction,
        from_number=body.from_,
        duration_s=body.duration,
        text=body.text,
        units=body.units,
    )
    index = load_tariff_index(db, body.tariff, at=at, viewer=viewer_of(db, principal))
    return quote_summary(quote(request, index))


@router.get("/quote", summary="Price a call or a message, with its breakdown")
def get_quote(
    db: DbDep,
    principal: PrincipalDep,
    tariff: Annotated[str, Query(min_length=1, max_length=200)],
    to: Annotated[str, Query(min_length=1, max_length=64)],
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    service: Service = Service.VOICE,
    direction: Direction = Direction.OUTBOUND,
    duration: Annotated[int | None, Query(ge=0)] = None,
    text: Annotated[str | None, Query(max_length=2_000)] = None,
    at: Instant | None = None,
    units: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    body = QuoteBody(
        tariff=tariff, to=to, **{"from": from_}, service=service, direction=direction,
        duration=duration, text=text, at=at, units=units,
    )  # fmt: skip
    return _quote(db, principal, body)


@router.post("/quote", summary="Price a call or a message (JSON body), with its breakdown")
def post_quote(
    db: DbDep, principal: PrincipalDep, _key: IdempotencyKeyDep, body: QuoteBody
) -> dict[str, Any]:
    return _quote(db, principal, body)


@router.post("/sms/segments", summary="Encoding and segments of an SMS text")
def post_sms_segments(
    principal: PrincipalDep, _key: IdempotencyKeyDep, body: SegmentsBody
) -> dict[str, Any]:
    result = segment_sms(body.text)
    return {
        "encoding": result.encoding,
        "segments": result.segments,
        "chars_per_segment": result.chars_per_segment,
        "units": result.units,
        "characters": result.characters,
        "parts": list(result.parts),
    }
