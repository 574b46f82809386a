"""Dashboard pages of trusted money sources: a customer's top-up request (bank transfer it
says it made) and the provider's list of requests to confirm or reject.

The customer's "bank transfer" form books nothing: it creates a pending request
(`services.top_up_requests`). Provider admins see their pending requests under
/provider/{id}/topup-requests and confirm (booked with receipt and VAT) or reject each one.
A manual payment the provider received is recorded on the customer's balance page
(`pages_customer.top_up`, provider admins only).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from telbill.services import accounts, top_up_requests
from telbill.services.auth import Action, authorize
from telbill.web.core import (
    NOTICES,
    ClockDep,
    CsrfSessionDep,
    DbDep,
    PageRoute,
    SessionDep,
    form_key,
    render,
    see_other,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

FormText = Annotated[str, Form()]
OptionalFormText = Annotated[str | None, Form()]

NOTICES.update(
    {
        "requested": "Top-up request sent: your provider books it once the transfer arrives.",
        "confirmed": "Payment confirmed and booked: the receipt is on the customer's account.",
        "rejected": "Top-up request rejected: nothing was booked.",
    }
)


@router.post("/accounts/{account_id}/topup-requests")
def request_top_up(
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    session: CsrfSessionDep,
    amount: FormText,
    reference: FormText = "",
    idem: OptionalFormText = None,
) -> RedirectResponse:
    top_up_requests.request_top_up(
        db, session.principal, account_id, amount.strip(), reference=reference,
        idempotency_key=form_key(session, idem), clock=clock,
    )  # fmt: skip
    return see_other(f"/accounts/{account_id}/balance", "requested")


@router.get("/provider/{provider_id}/topup-requests", response_class=HTMLResponse)
def requests_page(
    request: Request,
    provider_id: int,
    db: DbDep,
    session: SessionDep,
    status: Annotated[str | None, Query(max_length=10)] = "pending",
) -> HTMLResponse:
    authorize(db, session.principal, provider_id, Action.BOOK_PAYMENT)
    rows = top_up_requests.list_requests(db, session.principal, provider_id, status=status or None)
    with db.read() as conn:
        found = accounts.find_accounts(conn, [r.account_id for r in rows])
    names = {account_id: account.name for account_id, account in found.items()}
    context = {
        "account": accounts.get_account(db, provider_id),
        "section": "topup-requests",
        "rows": rows,
        "names": names,
        "status": status or "",
    }
    return render(request, "provider_topup_requests.html", context)


@router.post("/provider/{provider_id}/topup-requests/{request_id}/confirm")
def confirm(
    provider_id: int, request_id: int, db: DbDep, clock: ClockDep, session: CsrfSessionDep
) -> RedirectResponse:
    top_up_requests.confirm(db, session.principal, request_id, clock=clock)
    return see_other(f"/provider/{provider_id}/topup-requests", "confirmed")


@router.post("/provider/{provider_id}/topup-requests/{request_id}/reject")
def reject(
    provider_id: int,
    request_id: int,
    db: DbDep,
    clock: ClockDep,
    session: CsrfSessionDep,
    reason: FormText = "",
) -> RedirectResponse:
    top_up_requests.reject(db, session.principal, request_id, reason=reason, clock=clock)
    return see_other(f"/provider/{provider_id}/topup-requests", "rejected")


__all__ = ["router"]
