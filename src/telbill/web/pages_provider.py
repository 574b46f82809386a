"""Provider pages (provider admins): accounts tree, plans, tariffs (import with progress,
versions, diff), number inventory, suspended accounts, revenue, cost and margin by
destination and month.

Every page checks `Action.GRANT_CREDIT` on the provider's account (the provider admin's
right): an organisation admin gets a 403 page, another provider's id a 404 page. Tariffs
and plans are the provider's own catalogue plus the operator's shared retail tariffs and
plans (`tariffs.Viewer`); an import goes into the provider's own catalogue only.
"""

from __future__ import annotations

import hashlib
import html
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from telbill.adapters.formats.tariff_csv import parse_column_pairs, read_tariff_csv
from telbill.adapters.formats.tariff_fields import ParsedRow
from telbill.adapters.formats.twilio import read_twilio_csv
from telbill.domain.tariffs import Increment, TariffSettings
from telbill.errors import InvalidInput, TelbillError
from telbill.services import accounts, margin, numbers, reports
from telbill.services import tariffs as tariffs_service
from telbill.services.auth import Action, authorize
from telbill.services.tariffs import BadTariffRows, TariffSource, Viewer
from telbill.web import queries
from telbill.web.core import (
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

MAX_DIFF_ROWS = 200
RATES_PER_PAGE = 50
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


def _provider(db: DbDep, session: SessionDep, provider_id: int, section: str) -> dict[str, Any]:
    authorize(db, session.principal, provider_id, Action.GRANT_CREDIT)
    return {"account": accounts.get_account(db, provider_id), "section": section}


@router.get("/provider/{provider_id}/accounts", response_class=HTMLResponse)
def accounts_page(
    request: Request, provider_id: int, db: DbDep, session: SessionDep,
    parent: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str, Query(max_length=200)] = "",
    kind: Annotated[str, Query(max_length=16)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
) -> HTMLResponse:  # fmt: skip
    """The tree one level at a time, or a search of the whole tree (name or id, kind,
    status), and a form to create an account under the level shown."""
    context = _provider(db, session, provider_id, "accounts")
    searching = bool(q.strip() or kind or status)
    context.update(q=q, kind=kind, status=status, searching=searching,
                   kinds=queries.ACCOUNT_KINDS, statuses=queries.ACCOUNT_STATUSES)  # fmt: skip
    node_id = parent or provider_id
    authorize(db, session.principal, node_id, Action.READ)
    node = accounts.get_account(db, node_id)
    trail = [node]
    while trail[0].parent_id is not None and trail[0].id != provider_id:
        trail.insert(0, accounts.get_account(db, trail[0].parent_id))
    rows = (
        queries.search_accounts(db, provider_id, text=q, kind=kind or None,
                                status=status or None, cursor=cursor)
        if searching
        else queries.children_page(db, node_id, cursor=cursor)
    )  # fmt: skip
    context.update(node=node, trail=trail, page_rows=rows)
    return render(request, "provider_accounts.html", context)


@router.post("/provider/{provider_id}/accounts")
def create_account_page(
    provider_id: int,
    db: DbDep,
    clock: ClockDep,
    session: CsrfSessionDep,
    name: Annotated[str, Form(max_length=200)],
    parent: Annotated[int, Form(ge=1)],
    kind: Annotated[str, Form(max_length=16)] = "organisation",
    billing_mode: Annotated[str, Form(max_length=16)] = "prepaid",
    idem: Annotated[str | None, Form(max_length=80)] = None,
) -> RedirectResponse:
    """Create an organisation or a user under `parent` (in the provider's tree)."""
    _provider(db, session, provider_id, "accounts")
    authorize(db, session.principal, parent, Action.CREATE_ACCOUNT)
    if kind not in queries.ACCOUNT_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(queries.ACCOUNT_KINDS)}")
    created = accounts.create_account(
        db, kind=kind, name=name.strip(), parent_id=parent,
        billing_mode=billing_mode if kind == "organisation" else None,
        idempotency_key=form_key(session, idem), clock=clock,
    )  # fmt: skip
    return see_other(f"/provider/{provider_id}/accounts?parent={parent}&created={created.id}",
                     "account")  # fmt: skip


@router.get("/provider/{provider_id}/plans", response_class=HTMLResponse)
def plans_page(request: Request, provider_id: int, db: DbDep, session: SessionDep) -> HTMLResponse:
    context = _provider(db, session, provider_id, "plans")
    context.update(catalogue=queries.catalogue(db, provider_id))
    return render(request, "provider_plans.html", context)


@router.get("/provider/{provider_id}/inventory", response_class=HTMLResponse)
def inventory_page(
    request: Request, provider_id: int, db: DbDep, session: SessionDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:  # fmt: skip
    context = _provider(db, session, provider_id, "inventory")
    context.update(
        rows=queries.inventory_page(db, provider_id, status=status or None, cursor=cursor),
        status=status or "",
        statuses=("available", "rented", "suspended", "quarantined"),
        pending=numbers.pending_verifications(db, provider_id),
    )
    return render(request, "provider_inventory.html", context)


@router.post("/provider/{provider_id}/numbers/verify")
def verify_number_page(
    provider_id: int,
    db: DbDep,
    clock: ClockDep,
    session: CsrfSessionDep,
    number: Annotated[str, Form(max_length=32)],
    decision: Annotated[str, Form(max_length=16)],
) -> RedirectResponse:
    """Approve (charge, activate) or reject (release) a number waiting for verification."""
    authorize(db, session.principal, provider_id, Action.GRANT_CREDIT)
    if decision not in ("approve", "reject"):
        raise InvalidInput("decision must be approve or reject")
    rental = numbers.verify_number(
        db, number, approved=decision == "approve", clock=clock, provider_id=provider_id
    )
    return see_other(f"/provider/{provider_id}/inventory", f"{rental.number}: {rental.status}")


@router.get("/provider/{provider_id}/suspended", response_class=HTMLResponse)
def suspended_page(
    request: Request, provider_id: int, db: DbDep, session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:  # fmt: skip
    context = _provider(db, session, provider_id, "suspended")
    context.update(rows=queries.suspended_page(db, provider_id, cursor=cursor))
    return render(request, "provider_suspended.html", context)


@router.get("/provider/{provider_id}/revenue", response_class=HTMLResponse)
def revenue_page(
    request: Request, provider_id: int, db: DbDep, clock: ClockDep, session: SessionDep,
    month: Annotated[str | None, Query(max_length=7)] = None,
) -> HTMLResponse:  # fmt: skip
    context = _provider(db, session, provider_id, "revenue")
    chosen = month or reports.current_month(db, provider_id, now=clock.now())
    start, end = reports.month_bounds(chosen, context["account"].timezone)
    rows = margin.margin_by_destination(db, provider_id, start, end)
    context.update(month=chosen, rows=rows, totals=margin.totals_of(rows))
    return render(request, "provider_revenue.html", context)


@router.get("/provider/{provider_id}/revenue.csv")
def revenue_csv(
    provider_id: int, db: DbDep, clock: ClockDep, session: SessionDep,
    month: Annotated[str | None, Query(max_length=7)] = None,
) -> StreamingResponse:  # fmt: skip
    """The revenue page as CSV: the same rows as the API's margin report CSV."""
    _provider(db, session, provider_id, "revenue")
    chosen = month or reports.current_month(db, provider_id, now=clock.now())
    report = margin.margin_report(db, provider_id, chosen)
    return StreamingResponse(
        margin.csv_lines(report), media_type="text/csv",
        headers={"Content-Disposition":
                 f'attachment; filename="revenue-{provider_id}-{chosen}.csv"'},
    )  # fmt: skip


# ---------------------------------------------------------------------------------- tariffs


@router.get("/provider/{provider_id}/tariffs", response_class=HTMLResponse)
def tariffs_page(
    request: Request, provider_id: int, db: DbDep, session: SessionDep
) -> HTMLResponse:
    context = _provider(db, session, provider_id, "tariffs")
    context.update(tariffs=tariffs_service.list_tariffs(db, _viewer(provider_id)))
    return render(request, "provider_tariffs.html", context)


@router.get("/provider/{provider_id}/tariffs/{name}", response_class=HTMLResponse)
def tariff_versions_page(
    request: Request, provider_id: int, name: str, db: DbDep, session: SessionDep,
    from_version: Annotated[int | None, Query(alias="from", ge=1)] = None,
    to_version: Annotated[int | None, Query(alias="to", ge=1)] = None,
) -> HTMLResponse:  # fmt: skip
    context = _provider(db, session, provider_id, "tariffs")
    viewer = _viewer(provider_id)
    versions = tariffs_service.list_versions(db, name, viewer)
    diff = None
    if from_version is not None and to_version is not None:
        diff = tariffs_service.diff_versions(db, name, from_version, to_version, viewer)
    context.update(
        name=name, versions=versions, diff=diff, max_rows=MAX_DIFF_ROWS,
        from_version=from_version, to_version=to_version,
    )  # fmt: skip
    return render(request, "provider_tariff_versions.html", context)


@router.get(
    "/provider/{provider_id}/tariffs/{name}/versions/{version}", response_class=HTMLResponse
)
def tariff_rates_page(
    request: Request, provider_id: int, name: str,
    version: Annotated[int, PathParam(ge=1, le=2**31 - 1)], db: DbDep, session: SessionDep,
    prefix: Annotated[str, Query(max_length=32)] = "",
    destination: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:  # fmt: skip
    """One version's rates, 50 a page, filtered by prefix start or destination text; a
    tariff the provider may not see (another provider's) is a 404 page."""
    context = _provider(db, session, provider_id, "tariffs")
    found, rows = queries.tariff_rates_page(
        db, name, version, _viewer(provider_id), prefix=prefix, destination=destination,
        cursor=cursor, limit=RATES_PER_PAGE,
    )  # fmt: skip
    filters = {"prefix": prefix, "destination": destination}
    context.update(
        name=name, found=found, page_rows=rows, filters=filters,
        query_string=urlencode({k: v for k, v in filters.items() if v}),
    )  # fmt: skip
    return render(request, "provider_tariff_rates.html", context)


def _viewer(provider_id: int) -> Viewer:
    """What a provider admin sees: its own tariffs (cost decks too), the operator's retail."""
    return Viewer(provider_id, costs=True)


def _settings(currency: str, increment: str, timezone: str) -> TariffSettings:
    currency = currency.strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise InvalidInput("currency is a three-letter code such as USD")
    first, _, following = increment.strip().partition("/")
    if not first.isdigit() or not following.isdigit():
        raise InvalidInput("increment is first/next seconds, such as 60/60 or 6/6")
    return TariffSettings(
        currency=currency,
        default_increment=Increment(int(first), int(following)),
        timezone=timezone.strip() or "UTC",
    )


def _rows(items: Iterator[Any]) -> Iterator[Any]:
    for item in items:
        if isinstance(item, ParsedRow):
            yield item.row if item.values is None else item.values
        else:
            yield item


@router.post("/provider/{provider_id}/tariffs/import")
def import_tariff_page(
    request: Request,
    provider_id: int,
    db: DbDep,
    clock: ClockDep,
    session: CsrfSessionDep,
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form(max_length=200)],
    currency: Annotated[str, Form(max_length=3)] = "USD",
    increment: Annotated[str, Form(max_length=11)] = "60/60",
    file_format: Annotated[str, Form(alias="format", max_length=8)] = "native",
    column_map: Annotated[str, Form(max_length=500)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    purpose: Annotated[str, Form(max_length=8)] = "retail",
) -> StreamingResponse:
    """Import an uploaded deck; the page streams its progress as the rows are stored."""
    authorize(db, session.principal, provider_id, Action.GRANT_CREDIT)
    if file_format not in {"native", "twilio"}:
        raise InvalidInput("format must be native or twilio")
    if purpose not in tariffs_service.PURPOSES:
        raise InvalidInput("purpose must be retail or cost")
    settings = _settings(currency, increment, timezone)
    mapping = parse_column_pairs(column_map or None, "column map")
    spooled = tempfile.NamedTemporaryFile(prefix="telbill-upload-", suffix=".csv", delete=False)
    with spooled:
        shutil.copyfileobj(file.file, spooled, 1 << 20)
    path = Path(spooled.name)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        path.unlink()
        raise InvalidInput(f"the file is larger than {MAX_UPLOAD_BYTES // (1 << 20)} MB")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    source = TariffSource(file.filename or "upload.csv", digest, file_format)
    messages: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                done = 0

                def lines() -> Iterator[str]:
                    nonlocal done
                    while batch := handle.readlines(1 << 18):
                        yield from batch
                        done += sum(len(line) for line in batch)
                        messages.put(("bytes", done))

                if file_format == "twilio":
                    items = read_twilio_csv(lines(), source="")
                else:
                    items = read_tariff_csv(lines(), column_map=mapping, timezone=settings.timezone)
                result = tariffs_service.import_tariff(
                    db, name, _rows(items), settings, source, now=clock.now(),
                    on_progress=lambda n: messages.put(("rows", n)),
                    owner=provider_id, purpose=purpose,
                )  # fmt: skip
            messages.put(("done", result.version))
        except BadTariffRows as exc:
            messages.put(("bad", exc))
        except TelbillError as exc:
            messages.put(("error", exc.message))
        except Exception:  # reported to the page; the server keeps serving
            messages.put(("error", "the import failed unexpectedly"))
        finally:
            path.unlink(missing_ok=True)

    threading.Thread(target=work, name="telbill-web-import", daemon=True).start()
    head = render(
        request, "import_progress.html",
        {"account": accounts.get_account(db, provider_id), "section": "tariffs", "name": name,
         "filename": source.file, "size": size},
    ).body.decode()  # fmt: skip
    top, _, bottom = head.partition("<!--progress-->")
    return StreamingResponse(
        _progress_stream(top, bottom, messages, size, provider_id, name),
        media_type="text/html; charset=utf-8",
    )


def _progress_stream(
    top: str, bottom: str, messages: queue.Queue[tuple[str, Any]], size: int,
    provider_id: int, name: str,
) -> Iterator[str]:  # fmt: skip
    yield top
    rows = 0
    last_percent = -1
    while True:
        kind, value = messages.get()
        if kind == "bytes":
            percent = min(99, int(value * 100 / max(size, 1)))
            if percent != last_percent:
                last_percent = percent
                yield (f'<p class="step"><progress max="100" value="{percent}">{percent}%'
                       f"</progress> {percent}% read, {rows:,} rows stored</p>\n")  # fmt: skip
        elif kind == "rows":
            rows = int(value)
        elif kind == "done":
            link = f"/provider/{provider_id}/tariffs/{html.escape(name)}"
            yield (
                f'<p class="notice" role="status" id="import-done">Imported '
                f"<strong>{html.escape(value.name)}</strong> version {value.version}: "
                f'{value.row_count:,} rates. <a href="{link}">Versions and diff</a></p>\n'
            )
            break
        elif kind == "bad":
            errors = "".join(
                f"<li>line {e.line}: {html.escape(e.reason)}</li>" for e in value.errors[:50]
            )
            yield (
                f'<div class="error" role="alert" id="import-failed"><p>'
                f"{len(value.errors)} bad row(s): nothing imported.</p><ul>{errors}</ul></div>"
            )
            break
        else:
            yield (
                f'<p class="error" role="alert" id="import-failed">'
                f"{html.escape(str(value))}: nothing imported.</p>"
            )
            break
    yield bottom


__all__ = ["router"]
