"""Tariff endpoints: the caller's provider's tariffs (list, versions) and deck import.

Tariffs belong to a provider: ``GET /v1/tariffs`` lists the caller's provider's own tariffs
and the operator's shared retail ones (carrier cost decks only for a provider admin key);
``POST /v1/tariffs`` imports a deck (CSV text, the native format) as a new version of a tariff
of the caller's own provider, never of another provider or of the operator (provider admin
keys only). A tariff the caller may not see answers 404, like a missing one. Thin over
`telbill.services.tariffs`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from telbill.adapters.formats.tariff_csv import read_tariff_csv
from telbill.adapters.formats.tariff_fields import ParsedRow
from telbill.api.deps import ClockDep, DbDep, IdempotencyKeyDep, PrincipalDep
from telbill.api.types import Currency
from telbill.domain.tariffs import Increment, TariffSettings
from telbill.errors import InvalidInput, PermissionDenied
from telbill.services import tariffs
from telbill.services.auth import Principal, Role

router = APIRouter(tags=["tariffs"])


class TariffIn(BaseModel):
    """A rate deck in telbill's native CSV layout (header row first)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    csv: str = Field(min_length=1, max_length=20_000_000)
    currency: Currency = Field(default="USD", min_length=3, max_length=3)
    increment: str = Field(default="60/60", max_length=11, description="first/next seconds")
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    purpose: str = Field(default="retail", description="retail or cost (a carrier cost deck)")
    skip_bad: bool = False

    @field_validator("name", "csv", "currency", "increment", "timezone", "purpose")
    @classmethod
    def _printable(cls, value: str) -> str:
        """No NUL and no lone surrogate: neither can be stored (PostgreSQL refuses them)."""
        if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
            raise ValueError("must not contain NUL or lone surrogate characters")
        return value


def _version(v: tariffs.TariffVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "currency": v.currency,
        "rows": v.row_count,
        "purpose": v.purpose,
        "shared": v.owner_id is None,
        "created_at": v.created_at.isoformat(),
        "effective_from": v.effective_from.isoformat() if v.effective_from else None,
    }


def _provider_admin(principal: Principal) -> None:
    if principal.role is not Role.PROVIDER_ADMIN:
        raise PermissionDenied(f"a {principal.role.value} key may not import tariffs")


@router.get("/tariffs", summary="Tariffs the caller's provider uses, with their newest version")
def list_tariffs(db: DbDep, principal: PrincipalDep) -> JSONResponse:
    if principal.role is Role.SWITCH:
        raise PermissionDenied("a switch key may not list tariffs")
    found = tariffs.list_tariffs(db, tariffs.viewer_of(db, principal))
    return JSONResponse({"tariffs": [_version(v) for v in found]})


@router.get("/tariffs/{name}/versions", summary="Every version of one tariff, oldest first")
def list_versions(name: str, db: DbDep, principal: PrincipalDep) -> JSONResponse:
    if principal.role is Role.SWITCH:
        raise PermissionDenied("a switch key may not list tariffs")
    found = tariffs.list_versions(db, name, tariffs.viewer_of(db, principal))
    return JSONResponse({"versions": [_version(v) for v in found]})


@router.post(
    "/tariffs",
    status_code=status.HTTP_201_CREATED,
    summary="Import a deck as a new version of a tariff of the caller's provider",
)
def import_tariff(
    body: TariffIn,
    db: DbDep,
    clock: ClockDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    _provider_admin(principal)
    if body.purpose not in tariffs.PURPOSES:
        raise InvalidInput("purpose must be retail or cost")
    viewer = tariffs.viewer_of(db, principal)
    settings = TariffSettings(
        currency=body.currency.upper(),
        default_increment=Increment.parse(body.increment),
        timezone=body.timezone,
    )
    digest = hashlib.sha256(body.csv.encode("utf-8", "surrogatepass")).hexdigest()
    rows = (
        (item.row if item.values is None else item.values) if isinstance(item, ParsedRow) else item
        for item in read_tariff_csv(body.csv.splitlines(keepends=True), timezone=body.timezone)
    )
    result = tariffs.import_tariff(
        db, body.name, rows, settings, tariffs.TariffSource("api", digest, "native"),
        now=clock.now(), skip_bad=body.skip_bad,
        owner=viewer.provider, purpose=body.purpose, idempotency_key=idempotency_key,
    )  # fmt: skip
    payload = _version(result.version)
    payload["skipped"] = [{"line": e.line, "reason": e.reason} for e in result.skipped]
    return JSONResponse(payload, status_code=status.HTTP_201_CREATED)
