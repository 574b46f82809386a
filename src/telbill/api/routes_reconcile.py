"""Reconcile endpoint: prove the whole ledger adds up (top-level provider admins only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from telbill.api.deps import DbDep, PrincipalDep
from telbill.api.schemas import plain_json
from telbill.services import reconcile as reconcile_service
from telbill.services.auth import Action, authorize_global

router = APIRouter(tags=["reconcile"])


@router.get(
    "/reconcile",
    summary="Check every balance equals its postings, every transaction sums to zero, "
    "every hold is accounted for",
    responses={200: {"description": "The report; `ok` is false when a problem was found"}},
)
def reconcile(db: DbDep, principal: PrincipalDep) -> JSONResponse:
    authorize_global(db, principal, Action.RECONCILE)
    report = reconcile_service.reconcile(db)
    body: dict[str, Any] = plain_json(report)
    return JSONResponse(body)
