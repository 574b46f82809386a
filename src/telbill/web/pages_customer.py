"""Customer pages: what an organisation admin (or a user, for their own data) looks at.

Each page authorises with `services.auth.authorize` exactly like the API route of the same
data (an account outside the caller's subtree is a 404 page, a role that may not act a 403
page), calls the same service, and renders. Forms post back here with the session's CSRF
token and a one-time idempotency value, then redirect (post/redirect/get).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from telbill.domain.money import from_micros
from telbill.domain.rating import rate_event
from telbill.domain.tariffs import Direction, Service
from telbill.errors import InvalidInput, NoRate, NotFound, PermissionDenied
from telbill.services import (
    accounts,
    campaigns,
    notifications,
    numbers,
    payments,
    plans,
    receipts,
    reports,
    subscriptions,
    top_up_requests,
)
from telbill.services import balances as balances_service
from telbill.services import thresholds as thresholds_service
from telbill.services.auth import ROLE_ACTIONS, Action, Principal, authorize, check_wallet_visible
from telbill.services.clock import Clock
from telbill.services.quotes import QuoteRequest, load_tariff_index, quote_event, quote_summary
from telbill.services.tariffs import Viewer
from telbill.web import payment_providers, queries
from telbill.web.core import (
    ClockDep,
    CsrfSessionDep,
    DbDep,
    PageRoute,
    SessionDep,
    form_key,
    format_money,
    render,
    see_other,
    templates,
)
from telbill.web.svg import spend_chart

try:  # invoices are their own business area; the receipts page lists them when installed
    from telbill.services import invoice_documents
    from telbill.services import invoices as invoices_service
except ImportError:  # pragma: no cover - a build without the invoices area
    invoice_documents = invoices_service = None  # type: ignore[assignment]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MICRO = Decimal("0.000001")
FormText = Annotated[str, Form()]
OptionalFormText = Annotated[str | None, Form()]


def may(principal: Principal, action: Action) -> bool:
    """Whether the role may do `action` at all (shows or hides a form; `authorize` decides)."""
    return action in ROLE_ACTIONS[principal.role]


def _base(db: DbDep, principal: Principal, account_id: int, section: str) -> dict[str, Any]:
    authorize(db, principal, account_id, Action.READ)
    return {"account": accounts.get_account(db, account_id), "section": section}


def _names(context: dict[str, Any], users: list[queries.AccountRow]) -> dict[int, str]:
    """Names of the account and its direct children, to label rows (ids beyond: shown as is)."""
    names = {row.id: row.name for row in users}
    names[context["account"].id] = context["account"].name
    return names


def _day(text: str | None, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} must be a date (YYYY-MM-DD), got {text!r}") from None


def _start_of(day: date | None, extra_days: int = 0) -> datetime | None:
    if day is None:
        return None
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return moment + timedelta(days=extra_days)


# ------------------------------------------------------------------------------- balance


@router.get("/accounts/{account_id}/balance", response_class=HTMLResponse)
def balance_page(
    request: Request, account_id: int, db: DbDep, clock: ClockDep, session: SessionDep
) -> HTMLResponse:
    principal = session.principal
    context = _base(db, principal, account_id, "balance")
    result = balances_service.get_balances(db, account_id, clock=clock)
    check_wallet_visible(db, principal, result.billing_account_id)
    money = result.unit(result.currency)
    credits = [b for b in money.buckets if b.kind != "paid"]
    packages = [b for u in result.units if u.unit != result.currency for b in u.buckets]
    context.update(
        balances=result,
        money=money,
        paid_balance=paid_balance(result),
        credits=credits,
        packages=packages,
        thresholds=thresholds_service.get_settings(db, account_id),
        providers=payment_providers.available(),
        # Booking money is a provider's (docs/security.md); a customer asks for it.
        can_top_up=may(principal, Action.BOOK_PAYMENT) and principal.account_id != account_id,
        can_request_top_up=may(principal, Action.REQUEST_TOP_UP),
        top_up_requests=top_up_requests.list_requests(db, principal, account_id, limit=5),
        can_manage=may(principal, Action.MANAGE_NOTIFICATIONS),
        recent=queries.receipts_page(db, account_id, limit=5).items,
    )
    return render(request, "balance.html", context)


def paid_balance(result: balances_service.Balances) -> Decimal:
    """The wallet's paid money (its "paid" buckets): the balance every page shows."""
    money = result.unit(result.currency)
    return sum((b.balance for b in money.buckets if b.kind == "paid"), Decimal(0))


def wallet_summary(
    db: DbDep, principal: Principal, account_id: int, clock: Clock
) -> tuple[Decimal, str] | None:
    """(paid balance, currency) of the wallet paying for `account_id`, or None when the
    caller may not see that wallet (the page then shows no balance, not an error)."""
    result = balances_service.get_balances(db, account_id, clock=clock)
    try:
        check_wallet_visible(db, principal, result.billing_account_id)
    except PermissionDenied:
        return None
    return paid_balance(result), result.currency


@router.get("/accounts/{account_id}/spend.svg")
def spend_svg(account_id: int, db: DbDep, clock: ClockDep, session: SessionDep) -> Response:
    """The 30-day spend chart of the account's wallet, as an image of its own: the balance
    page does not wait for the aggregate, and the browser keeps it for five minutes."""
    authorize(db, session.principal, account_id, Action.READ)
    payer = accounts.billing_account_for(db, account_id)
    check_wallet_visible(db, session.principal, payer.id)
    spend = queries.daily_spend(db, payer.id, has_wallet=True, now=clock.now(), days=30)
    svg = templates.get_template("spend.svg").render(
        chart=spend_chart(spend, currency=payer.currency)
    )
    return Response(
        svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=300"}
    )


@router.post("/accounts/{account_id}/topups")
def top_up(
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    session: CsrfSessionDep,
    amount: FormText,
    provider: FormText = "bank_transfer",
    reference: FormText = "",
    idem: OptionalFormText = None,
) -> RedirectResponse:
    # A payment received, recorded by whoever may book money into this wallet (a provider
    # admin above it); a customer's transfer is a request instead (pages_payments.py).
    payments.authorize_booking(db, session.principal, account_id)
    payment_providers.get(provider).top_up(
        db, account_id, amount.strip(), reference=reference,
        idempotency_key=form_key(session, idem), clock=clock,
    )  # fmt: skip
    return see_other(f"/accounts/{account_id}/balance", "topup")


@router.post("/accounts/{account_id}/thresholds")
def save_thresholds(
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    session: CsrfSessionDep,
    levels: FormText = "",
    spend_days: FormText = "",
    spend_window_days: FormText = "",
) -> RedirectResponse:
    authorize(db, session.principal, account_id, Action.MANAGE_NOTIFICATIONS)
    # "0.50" or "0.50:at_or_below" (a level's mode, see docs/rules.md).
    parts = [part.strip() for part in levels.replace(";", ",").split(",") if part.strip()]
    fixed = [part.partition(":")[0].strip() for part in parts]
    modes = [part.partition(":")[2].strip() or None for part in parts]

    def whole(text: str, field: str) -> int | None:
        if not text.strip():
            return None
        if not text.strip().isdigit():
            raise InvalidInput(f"{field} must be a whole number of days")
        return int(text.strip())

    thresholds_service.set_settings(
        db, account_id, fixed_levels=fixed, spend_days=whole(spend_days, "spend days"),
        spend_window_days=whole(spend_window_days, "spend window"), now=clock.now(),
        fixed_modes=modes,
    )  # fmt: skip
    return see_other(f"/accounts/{account_id}/balance", "thresholds")


# --------------------------------------------------------------------------------- usage


def _usage_args(
    db: DbDep, account_id: int, since: str | None, until: str | None, service: str | None
) -> dict[str, Any]:
    if service and service not in {s.value for s in Service}:
        raise InvalidInput(f"unknown service {service!r}")
    owner = accounts.get_account(db, account_id)
    return {
        "has_wallet": owner.has_wallet,
        "since": _start_of(_day(since, "from")),
        "until": _start_of(_day(until, "to"), 1),
        "service": service or None,
    }


@router.get("/accounts/{account_id}/usage", response_class=HTMLResponse)
def usage_page(
    request: Request,
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    session: SessionDep,
    since: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    service: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=80)] = None,
) -> HTMLResponse:
    context = _base(db, session.principal, account_id, "usage")
    args = _usage_args(db, account_id, since, until, service)
    page = queries.usage_page(db, account_id, cursor=cursor, limit=50, **args)
    users = queries.children_page(db, account_id, limit=queries.MAX_PAGE).items
    filters = {"from": since or "", "to": until or "", "service": service or ""}
    context.update(
        page=page, filters=filters, services=[s.value for s in Service],
        names=_names(context, users),
        query_string=urlencode({k: v for k, v in filters.items() if v}),
        wallet=wallet_summary(db, session.principal, account_id, clock),
    )  # fmt: skip
    return render(request, "usage.html", context)


@router.get("/accounts/{account_id}/usage.csv")
def usage_csv(
    account_id: int,
    db: DbDep,
    session: SessionDep,
    since: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    service: Annotated[str | None, Query(max_length=16)] = None,
) -> StreamingResponse:
    authorize(db, session.principal, account_id, Action.READ)
    args = _usage_args(db, account_id, since, until, service)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["charge_id", "time", "account_id", "service", "direction", "number",
                         "prefix", "billed_units", "unit", "package_units", "amount",
                         "currency", "revision"])  # fmt: skip
        for row in queries.iter_usage(db, account_id, **args):
            writer.writerow([
                row.charge_id, row.occurred_at.isoformat(), row.account_id, row.service,
                row.direction, row.number, row.prefix or "", row.billed_units, row.unit,
                row.package_units, f"{row.amount:f}", row.currency, row.revision,
            ])  # fmt: skip
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(), media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="usage-{account_id}.csv"'},
    )  # fmt: skip


# ----------------------------------------------------------------------------- call report


@router.get("/accounts/{account_id}/calls", response_class=HTMLResponse)
def calls_page(
    request: Request,
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    session: SessionDep,
    month: Annotated[str | None, Query(max_length=7)] = None,
    cursor: Annotated[str | None, Query(max_length=60)] = None,
) -> HTMLResponse:
    context = _base(db, session.principal, account_id, "calls")
    chosen = month or reports.current_month(db, account_id, now=clock.now())
    report = reports.call_report(db, account_id, chosen, limit=50, cursor=cursor)
    users = queries.children_page(db, account_id, limit=queries.MAX_PAGE).items
    context.update(report=report, month=chosen, users=users, names=_names(context, users))
    return render(request, "calls.html", context)


@router.get("/accounts/{account_id}/calls/user")
def calls_of_user(
    account_id: int, db: DbDep, session: SessionDep,
    user: Annotated[int, Query(ge=1)],
    month: Annotated[str | None, Query(max_length=7)] = None,
) -> RedirectResponse:  # fmt: skip
    authorize(db, session.principal, user, Action.READ)
    suffix = f"?month={month}" if month and reports.month_bounds(month, "UTC") else ""
    return see_other(f"/accounts/{user}/calls{suffix}")


@router.get("/accounts/{account_id}/calls.csv")
def calls_csv(
    account_id: int,
    db: DbDep,
    clock: ClockDep,
    session: SessionDep,
    month: Annotated[str | None, Query(max_length=7)] = None,
) -> StreamingResponse:
    authorize(db, session.principal, account_id, Action.READ)
    chosen = month or reports.current_month(db, account_id, now=clock.now())
    reports.month_bounds(chosen, "UTC")  # a bad month is a 422 page before streaming starts
    return StreamingResponse(
        reports.call_csv_lines(db, account_id, chosen), media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="calls-{account_id}-{chosen}.csv"'},
    )  # fmt: skip


# ------------------------------------------------------------------------------- numbers


@router.get("/accounts/{account_id}/numbers", response_class=HTMLResponse)
def numbers_page(
    request: Request,
    account_id: int,
    db: DbDep,
    session: SessionDep,
    country: Annotated[str | None, Query(max_length=2)] = None,
    number_type: Annotated[str | None, Query(alias="type", max_length=16)] = None,
    area_code: Annotated[str | None, Query(max_length=10)] = None,
    locality: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    context = _base(db, session.principal, account_id, "numbers")
    searched = any([country, number_type, area_code, locality])
    offers: list[numbers.NumberOffer] = []
    if searched:
        offers = numbers.search_numbers(
            db, country=country or None, number_type=number_type or None,
            area_code=area_code or None, locality=locality or None,
            provider_id=context["account"].provider_id, limit=50,
        )  # fmt: skip
    context.update(
        rentals=numbers.list_numbers(db, account_id),
        offers=offers,
        searched=searched,
        search={"country": country or "", "type": number_type or "",
                "area_code": area_code or "", "locality": locality or ""},
        can_buy=may(session.principal, Action.TOP_UP),
    )  # fmt: skip
    return render(request, "numbers.html", context)


@router.post("/accounts/{account_id}/numbers/buy")
def buy_number(
    account_id: int, db: DbDep, clock: ClockDep, session: CsrfSessionDep,
    number: FormText, idem: OptionalFormText = None,
) -> RedirectResponse:  # fmt: skip
    authorize(db, session.principal, account_id, Action.TOP_UP)
    numbers.buy_number(
        db, account_id, number.strip(), idempotency_key=form_key(session, idem), clock=clock
    )
    return see_other(f"/accounts/{account_id}/numbers", "bought")


@router.post("/accounts/{account_id}/numbers/release")
def release_number(
    account_id: int, db: DbDep, clock: ClockDep, session: CsrfSessionDep,
    number: FormText, idem: OptionalFormText = None,
) -> RedirectResponse:  # fmt: skip
    authorize(db, session.principal, account_id, Action.TOP_UP)
    numbers.release_number(
        db, account_id, number.strip(), idempotency_key=form_key(session, idem), clock=clock
    )
    return see_other(f"/accounts/{account_id}/numbers", "released")


# ----------------------------------------------------------------------------- campaigns


@router.get("/accounts/{account_id}/campaigns", response_class=HTMLResponse)
def campaigns_page(
    request: Request, account_id: int, db: DbDep, clock: ClockDep, session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:  # fmt: skip
    context = _base(db, session.principal, account_id, "campaigns")
    context.update(
        page=queries.campaigns_page(db, account_id, cursor=cursor),
        can_manage=may(session.principal, Action.TOP_UP),
        packages=subscriptions.list_packages(db, account_id),
        package_left=subscriptions.package_counters(db, account_id, clock=clock),
    )
    return render(request, "campaigns.html", context)


@router.post("/accounts/{account_id}/packages/{code}/buy")
def buy_package(
    account_id: int, code: str, db: DbDep, clock: ClockDep, session: CsrfSessionDep,
    idem: OptionalFormText = None,
) -> RedirectResponse:  # fmt: skip
    """Buy a minute or SMS package of the provider's catalogue, paid from the balance."""
    authorize(db, session.principal, account_id, Action.TOP_UP)
    subscriptions.buy_package(db, account_id, code, idempotency_key=form_key(session, idem),
                              clock=clock)  # fmt: skip
    return see_other(f"/accounts/{account_id}/campaigns", "package")


@router.post("/accounts/{account_id}/campaigns/{campaign_id}/{action}")
def change_campaign(
    account_id: int, campaign_id: int, action: str, db: DbDep, clock: ClockDep,
    session: CsrfSessionDep,
) -> RedirectResponse:  # fmt: skip
    change = {"pause": campaigns.pause_campaign, "resume": campaigns.resume_campaign}.get(action)
    if change is None:
        raise NotFound(f"no campaign action {action!r}")
    authorize(db, session.principal, account_id, Action.TOP_UP)
    current = campaigns.get_campaign(db, campaign_id)
    try:
        authorize(db, session.principal, current.account_id, Action.TOP_UP)
    except NotFound:
        raise NotFound(f"campaign {campaign_id} not found") from None
    change(db, campaign_id, clock=clock)
    return see_other(f"/accounts/{account_id}/campaigns", "campaign")


# ------------------------------------------------------------------------- notifications


@router.get("/accounts/{account_id}/notifications", response_class=HTMLResponse)
def notifications_page(
    request: Request, account_id: int, db: DbDep, session: SessionDep,
    after: Annotated[int, Query(ge=0)] = 0,
    unread: bool = False,
) -> HTMLResponse:  # fmt: skip
    context = _base(db, session.principal, account_id, "notifications")
    found = notifications.list_notifications(
        db, account_id, unread_only=unread, after_id=after, limit=51
    )
    context.update(
        items=found[:50], next_after=found[49].event_id if len(found) > 50 else None,
        unread=unread, details={n.event_id: payload_details(n.payload) for n in found[:50]},
    )  # fmt: skip
    return render(request, "notifications.html", context)


# Payload fields that are amounts of money (as decimal text, or integer micro-units).
MONEY_FIELDS = frozenset({"balance", "level", "average_daily_spend", "price", "amount"})


def payload_details(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """A notification's fields as (label, text), amounts shown like every other amount on
    the dashboard (`format_money`, to the micro-unit); the account id is left out."""
    shown: list[tuple[str, str]] = []
    for key, value in payload.items():
        if key == "account_id":
            continue
        text = str(value)
        try:
            if key.endswith("_micros") and isinstance(value, int):
                key, text = key.removesuffix("_micros"), format_money(from_micros(value))
            elif key in MONEY_FIELDS:
                text = format_money(Decimal(text).quantize(MICRO, rounding=ROUND_HALF_UP))
        except (ArithmeticError, ValueError):
            pass  # not a number after all: shown as it is
        shown.append((key, text))
    return shown


@router.post("/accounts/{account_id}/notifications/read")
def mark_notifications_read(
    account_id: int, db: DbDep, clock: ClockDep, session: CsrfSessionDep,
    event_id: Annotated[list[str] | None, Form()] = None,
) -> RedirectResponse:  # fmt: skip
    authorize(db, session.principal, account_id, Action.READ)
    ids: list[int] | None = None
    if event_id:
        if not all(v.isdigit() and len(v) < 19 for v in event_id):
            raise InvalidInput("event ids are whole numbers")
        ids = [int(v) for v in event_id]
    notifications.mark_read(db, account_id, ids, now=clock.now())
    return see_other(f"/accounts/{account_id}/notifications", "read")


# ------------------------------------------------------------------------------ receipts


@router.get("/accounts/{account_id}/receipts", response_class=HTMLResponse)
def receipts_page(
    request: Request, account_id: int, db: DbDep, clock: ClockDep, session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:  # fmt: skip
    context = _base(db, session.principal, account_id, "receipts")
    invoices: list[Any] | None = None
    if invoices_service is not None:
        invoices = invoices_service.list_invoices(db, account_id, clock=clock, limit=24)
    context.update(page=queries.receipts_page(db, account_id, cursor=cursor), invoices=invoices)
    return render(request, "receipts.html", context)


@router.get("/accounts/{account_id}/invoices/{invoice_id}.pdf")
def invoice_pdf(
    account_id: int, invoice_id: int, db: DbDep, clock: ClockDep, session: SessionDep
) -> Response:
    authorize(db, session.principal, account_id, Action.READ)
    if invoices_service is None:
        raise NotFound("invoices are not part of this installation")
    invoice = invoices_service.get_invoice(db, invoice_id, clock=clock)
    if invoice.account_id != account_id:  # a foreign invoice looks like a missing one
        raise NotFound(f"invoice {invoice_id} not found")
    return Response(
        content=invoice_documents.invoice_pdf(db, invoice_id, clock=clock),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="invoice-{invoice.label}.pdf"'},
    )


@router.get("/accounts/{account_id}/receipts/{receipt_id}.pdf")
def receipt_pdf(account_id: int, receipt_id: int, db: DbDep, session: SessionDep) -> Response:
    authorize(db, session.principal, account_id, Action.READ)
    receipt = receipts.get_receipt(db, receipt_id)
    if receipt.account_id != account_id:  # a foreign receipt looks like a missing one
        raise NotFound(f"receipt {receipt_id} not found")
    return Response(
        content=receipts.receipt_pdf(db, receipt_id), media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{receipt.number}.pdf"'},
    )  # fmt: skip


# --------------------------------------------------------------------------------- rates


@router.get("/accounts/{account_id}/rates", response_class=HTMLResponse)
def rates_page(
    request: Request, account_id: int, db: DbDep, clock: ClockDep, session: SessionDep,
    to: Annotated[str | None, Query(max_length=40)] = None,
    service: Annotated[str, Query(max_length=8)] = "voice",
) -> HTMLResponse:  # fmt: skip
    context = _base(db, session.principal, account_id, "rates")
    result: dict[str, Any] | None = None
    error: str | None = None
    if to:
        try:
            result = price_for(db, account_id, to, service, clock.now())
        except (InvalidInput, NoRate, NotFound) as exc:
            error = exc.message
    context.update(to=to or "", service=service, result=result, error=error)
    return render(request, "rates.html", context)


def price_for(db: DbDep, account_id: int, to: str, service: str, at: datetime) -> dict[str, Any]:
    """The account's price of one minute (or one SMS) to `to`: its plan's tariff and markup,
    rated by the same code as a real call."""
    if service not in {"voice", "sms"}:
        raise InvalidInput("service must be voice or sms")
    with db.engine.connect() as conn:
        record = plans.plan_for(conn, account_id)
    request = QuoteRequest(
        to_number=to.strip(), at=at, service=Service(service), direction=Direction.OUTBOUND,
        duration_s=60 if service == "voice" else None, text="x" if service == "sms" else None,
    )  # fmt: skip
    index = load_tariff_index(db, record.tariff, at=at, viewer=Viewer.rating(record.scope))
    rated = rate_event(quote_event(request), index, record.plan)
    summary = quote_summary(rated)
    summary["plan"] = record.name
    return summary


__all__ = ["router"]
